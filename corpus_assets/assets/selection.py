"""Targeted selection as assets, partitioned by target (the ``selection.targets`` of the
settings: one static partition each, so a data lead can backfill any target). The work is
in ``corpus_assets.selection_stages``; these definitions only wire and report.

    external sources (gsm8k_train, code, gpteacher, enwiki) ─┐
    rw_deduped (every dump x shard) ─────────────────────────┼─> selection_pool ─┬─> zipfit_selection ─┐
    target files (gsm8k, humaneval) ─────────────────────────┘    (target)        └─> dsir_selection ───┴─> selection_comparison
"""


import dagster as dg

from corpus_assets import selection_stages as stages
from corpus_assets.config import PipelineConfig, fingerprint
from corpus_assets.metadata import records_table
from corpus_assets.resources import CorpusStoreResource
from corpus_assets.steps.selection.decontamination import REASONS as DECONTAMINATION_REASONS

SELECTION_GROUP = "selection"
# Bump when a stage's code changes what it writes; settings changes are fingerprinted.
CODE_REVISION = {stages.POOL: "2", stages.ZIPFIT: "1", stages.DSIR: "1", stages.COMPARISON: "1"}
POOL_CHECK = "pool_conservation"
# One run per target materializes these, in this order.
SELECTION_ASSETS = [stages.POOL, stages.ZIPFIT, stages.DSIR, stages.COMPARISON]

COMPOSITION_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("source", "string"), dg.TableColumn("docs", "int"),
    dg.TableColumn("chars", "int"), dg.TableColumn("share_docs", "float"),
])
HISTOGRAM_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("bin_low", "float"), dg.TableColumn("bin_high", "float"),
    dg.TableColumn("pool_docs", "int"), dg.TableColumn("selected_docs", "int"),
])
PER_SOURCE_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("source", "string"), dg.TableColumn("domain", "string"),
    dg.TableColumn("available", "int"), dg.TableColumn("sampled", "int"),
    dg.TableColumn("removed", "int"), dg.TableColumn("kept", "int"),
    dg.TableColumn("missing", "bool"),
])
REMOVED_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("step", "string"), dg.TableColumn("reason", "string"), dg.TableColumn("count", "int"),
])
METHODS_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("method", "string"), dg.TableColumn("selected_docs", "int"),
    dg.TableColumn("selected_chars", "int"), dg.TableColumn("heldout_bits_per_byte", "float"),
    dg.TableColumn("heldout_bits_per_byte_equal_bytes", "float"), dg.TableColumn("cpu_seconds", "float"),
    dg.TableColumn("top_domain", "string"), dg.TableColumn("top_domain_share", "float"),
])


def target_partitions_def(config: PipelineConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition([t.name for t in config.selection.targets])


def external_asset_key(kind: str, name: str) -> str:
    return f"selection_{kind}_{name}"


def _composition_table(composition: dict) -> dg.MetadataValue:
    rows = [dg.TableRecord({"source": s, "docs": c["docs"], "chars": c["chars"],
                            "share_docs": c.get("share_docs", 0.0)}) for s, c in composition.items()]
    return dg.MetadataValue.table(rows, schema=COMPOSITION_SCHEMA)


def _top_domain(method: dict) -> tuple[str, float]:
    by_domain = method["composition_by_domain"]
    if not by_domain:
        return "", 0.0
    name = max(by_domain, key=lambda d: by_domain[d]["docs"])
    return name, by_domain[name]["share_docs"]


def build_selection_assets(config: PipelineConfig) -> list:
    cfg = config.selection
    if not cfg.targets:
        return []
    partitions = target_partitions_def(config)
    version = {asset: f"{rev}-{fingerprint(cfg)}" for asset, rev in CODE_REVISION.items()}
    eager = dg.AutomationCondition.eager()

    externals = [
        dg.AssetSpec(external_asset_key("source", s.name), group_name=SELECTION_GROUP,
                     description=f"External pool source ({s.domain or 'unlabelled'}): {stages.resolve_path(cfg, s.path)}, "
                     f"fields {list(s.fields)}. Not materialized here: a file this project reads.")
        for s in cfg.sources
    ] + [
        dg.AssetSpec(external_asset_key("target", t.name), group_name=SELECTION_GROUP,
                     description=f"Target task examples: {stages.resolve_path(cfg, t.path)}, fields "
                     f"{list(t.fields)}; {t.heldout_fraction:.0%} held out for evaluation.")
        for t in cfg.targets
    ]
    pool_deps = [spec.key for spec in externals]
    if cfg.include_rw_deduped:
        pool_deps.append(dg.AssetDep("rw_deduped", partition_mapping=dg.AllPartitionMapping()))

    @dg.asset(
        name=stages.POOL,
        partitions_def=partitions,
        deps=pool_deps,
        code_version=version[stages.POOL],
        group_name=SELECTION_GROUP,
        kinds={"parquet"},
        check_specs=[dg.AssetCheckSpec(POOL_CHECK, asset=stages.POOL, blocking=True,
                                       description="docs_in == kept + removed, recounted from the stored tables.")],
        description=f"The candidate pool for one target: a seeded sample of at most "
        f"{cfg.max_docs_per_source} documents per source (external sources"
        f"{' and rw_deduped' if cfg.include_rw_deduped else ''}), each with its source and lineage id, "
        f"minus every document sharing a {cfg.decontamination_n}-gram with any target example "
        "(held-out ones included). Also holds the target's examples and their select/held-out split.",
    )
    def selection_pool(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource):
        store = corpus_store.get_store()
        target = context.partition_key
        report = stages.build_selection_pool(store, target, config)
        removed = sum(report["removed_by_reason"].values())
        per_source = [dg.TableRecord({
            "source": name, "domain": s.get("domain", ""), "available": s.get("available", 0),
            "sampled": s.get("sampled", 0), "removed": sum(s.get(r, 0) for r in DECONTAMINATION_REASONS), "kept": s.get("kept", 0),
            "missing": bool(s.get("missing", False))}) for name, s in report["per_source"].items()]
        facts = report["target_facts"]
        kept_rows = store.row_count(stages.table_path(stages.POOL, target))
        removed_rows = store.row_count(stages.table_path(stages.POOL, target, "removed.parquet"))
        yield dg.MaterializeResult(metadata={
            "docs_in": report["docs_in"], "docs_out": report["docs_out"], "docs_removed": removed,
            "retention": round(report["docs_out"] / report["docs_in"], 6) if report["docs_in"] else 0.0,
            "chars_in": report["chars_in"], "chars_out": report["chars_out"],
            "decontamination_removed": removed,
            "removed_by_reason": dg.MetadataValue.table(
                [dg.TableRecord({"step": "decontamination", "reason": r, "count": n})
                 for r, n in report["removed_by_reason"].items()], schema=REMOVED_SCHEMA),
            "per_source": dg.MetadataValue.table(per_source, schema=PER_SOURCE_SCHEMA),
            "target_examples": facts["examples"], "target_heldout": facts["heldout"],
            "dagster/row_count": report["docs_out"],
            "path": dg.MetadataValue.path(store.uri(stages.table_path(stages.POOL, target))),
        })
        yield dg.AssetCheckResult(
            check_name=POOL_CHECK, passed=(kept_rows == report["docs_out"]
                                           and removed_rows == removed
                                           and report["docs_in"] == kept_rows + removed_rows),
            metadata={"docs_in": report["docs_in"], "kept_rows": kept_rows, "removed_rows": removed_rows})

    def selection_metadata(store, asset: str, target: str, report: dict) -> dict:
        return {
            "pool_docs": report["pool_docs"], "k": report["k"],
            "selected_docs": report["selected_docs"], "selected_chars": report["selected_chars"],
            "retention": report["retention"],
            "composition": _composition_table(report["composition"]),
            "composition_by_domain": _composition_table(report["composition_by_domain"]),
            "score_histogram": records_table(report["histogram"], HISTOGRAM_SCHEMA),
            "cpu_seconds": report["cpu_seconds"], "wall_seconds": report["wall_seconds"],
            "target_examples": report["target_examples"],
            "dagster/row_count": report["selected_docs"],
            "path": dg.MetadataValue.path(store.uri(stages.table_path(asset, target))),
        }

    @dg.asset(
        name=stages.ZIPFIT,
        partitions_def=partitions,
        deps=[stages.POOL],
        code_version=version[stages.ZIPFIT],
        group_name=SELECTION_GROUP,
        kinds={"parquet"},
        automation_condition=eager,
        description=f"ZIP-FIT (arXiv 2410.18194): the pool's documents ranked by the mean over "
        f"target examples of 1 - NCD (gzip level {cfg.compression_level}); the top "
        f"{cfg.k if cfg.k > 0 else f'{cfg.top_fraction:.0%}'} kept, with score and rank.",
    )
    def zipfit_selection(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        report = stages.build_zipfit_selection(store, context.partition_key, config)
        meta = selection_metadata(store, stages.ZIPFIT, context.partition_key, report)
        meta.update(compression_level=report["compression_level"], pairs=report["pairs"], workers=report["workers"])
        return dg.MaterializeResult(metadata=meta)

    @dg.asset(
        name=stages.DSIR,
        partitions_def=partitions,
        deps=[stages.POOL],
        code_version=version[stages.DSIR],
        group_name=SELECTION_GROUP,
        kinds={"parquet"},
        automation_condition=eager,
        description=f"DSIR (Xie et al. 2023): hashed uni+bigram importance weights "
        f"({cfg.dsir_buckets} buckets, add-{cfg.dsir_alpha:g} smoothing), the same k as "
        f"zipfit_selection drawn by Gumbel top-k under seed {cfg.seed}, with score (log weight) and rank.",
    )
    def dsir_selection(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        report = stages.build_dsir_selection(store, context.partition_key, config)
        return dg.MaterializeResult(metadata=selection_metadata(store, stages.DSIR, context.partition_key, report))

    @dg.asset(
        name=stages.COMPARISON,
        partitions_def=partitions,
        deps=[stages.ZIPFIT, stages.DSIR],
        code_version=version[stages.COMPARISON],
        group_name=SELECTION_GROUP,
        kinds={"json"},
        automation_condition=eager,
        description=f"ZIP-FIT vs DSIR vs a random selection of the same size on one target: CPU "
        f"seconds, overlap, composition, and the held-out examples' bits per byte under a byte "
        f"{cfg.lm_order}-gram LM (interpolated Witten-Bell) trained on each selection.",
    )
    def selection_comparison(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        report = stages.build_selection_comparison(store, context.partition_key, config)
        rows = []
        for method, m in report["methods"].items():
            domain, share = _top_domain(m)
            rows.append(dg.TableRecord({
                "method": method, "selected_docs": m["selected_docs"], "selected_chars": m["selected_chars"],
                "heldout_bits_per_byte": m["heldout_bits_per_byte"],
                "heldout_bits_per_byte_equal_bytes": m["heldout_bits_per_byte_equal_bytes"],
                "cpu_seconds": m["cpu_seconds"] if m["cpu_seconds"] is not None else 0.0,
                "top_domain": domain, "top_domain_share": share}))
        return dg.MaterializeResult(metadata={
            "pool_docs": report["pool_docs"], "k": report["k"],
            "decontamination_removed": report["decontamination_removed"],
            "heldout_examples": report["heldout_examples"],
            "overlap_docs": report["overlap_docs"], "overlap_jaccard": report["overlap_jaccard"],
            "equal_train_bytes": report["equal_train_bytes"], "lm": report["lm"],
            "methods": dg.MetadataValue.table(rows, schema=METHODS_SCHEMA),
            "report": dg.MetadataValue.json(report),
            "path": dg.MetadataValue.path(store.uri(stages.stats_path(stages.COMPARISON, context.partition_key))),
        })

    # As definitions (not bare specs): the rest of the code location reads code versions
    # off every entry of ``Definitions.assets``.
    external_defs = [dg.AssetsDefinition(specs=[spec]) for spec in externals]
    return external_defs + [selection_pool, zipfit_selection, dsir_selection, selection_comparison]

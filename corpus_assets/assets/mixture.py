"""The training mixture as an asset, partitioned by mixture spec (one static partition per
``<name>.yaml`` in ``mixture.specs_dir``). The work is in ``corpus_assets.mixture_stages``;
this only wires and reports.

    rw_deduped, domain_subsets, zipfit_selection / dsir_selection, external JSONL ──> training_mixture (mixture)
"""


import dagster as dg

from corpus_assets import mixture_stages as stages
from corpus_assets.assets.selection import external_asset_key
from corpus_assets.config import PipelineConfig, fingerprint
from corpus_assets.metadata import records_table
from corpus_assets.resources import CorpusStoreResource, TokenizerResource
from corpus_assets.steps.domains.analysis import png_markdown
from corpus_assets.steps.mixture import report
from corpus_assets.steps.mixture.config import check_mixture_settings

MIXTURE_GROUP = "mixture"
# 2: sources reach their asked tokens (bounded overshoot); string columns never null.
# 3: repeated rows' ids <source>#<epoch>/<doc id>; count tables keyed by reader settings;
#    the config hash covers the output settings.
# 4: sources pinned to one data version per build; reader settings in the manifest and the
#    config hash; the selection sources the specs read in the code version.
CODE_REVISION = "4"
SHARES_CHECK = "achieved_shares_within_tolerance"

SHARES_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("source", "string"), dg.TableColumn("asset", "string"),
    dg.TableColumn("requested_share", "float"), dg.TableColumn("achieved_share", "float"),
    dg.TableColumn("asked_tokens", "int"), dg.TableColumn("tokens", "int"), dg.TableColumn("docs", "int"),
    dg.TableColumn("available_tokens", "int"), dg.TableColumn("epochs", "float"),
])


FIT_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("validation_set", "string"), dg.TableColumn("examples", "int"),
    dg.TableColumn("in_objective", "bool"), dg.TableColumn("spearman_heldout", "float"),
    dg.TableColumn("heldout_candidates", "int"),
])
WEIGHTS_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("source", "string"), dg.TableColumn("natural", "float"),
    dg.TableColumn("spec", "float"), dg.TableColumn("proposed", "float"),
])


def mixture_partitions_def(config: PipelineConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(sorted(config.mixture.specs()))


def build_mixture_assets(config: PipelineConfig) -> list:
    specs = config.mixture.specs()
    if not specs:
        return []
    cfg = config.mixture
    # A spec naming an external source or target the settings lack fails here, at load.
    check_mixture_settings(cfg, config.selection, specs)
    upstream = sorted({s.asset for spec in specs.values() for s in spec.sources} - {"external"})
    deps = [dg.AssetDep(a, partition_mapping=dg.AllPartitionMapping()) for a in upstream]
    if config.selection.targets:  # the external sources are assets of the selection group
        known = {s.name for s in config.selection.sources}
        deps += [external_asset_key("source", n) for n in sorted({p for spec in specs.values() for s in spec.sources
                                                           if s.asset == "external" for p in s.partitions} & known)]

    # Both assets read the same sources, per the same partitions and settings. The reader
    # settings of the external sources the specs read (path, fields, ids, domain labels)
    # change the shards: in the code version, as the specs are. (A code version is the
    # asset's, not a partition's: editing one spec marks every mixture partition stale.)
    read = {p for spec in specs.values() for s in spec.sources if s.asset == "external" for p in s.partitions}
    readers = [config.selection.data_dir] + [s for s in config.selection.sources if s.name in read]
    common = dict(partitions_def=mixture_partitions_def(config), deps=deps, group_name=MIXTURE_GROUP,
                  code_version=f"{CODE_REVISION}-{fingerprint(cfg, *[specs[n] for n in sorted(specs)], *readers)}")

    @dg.asset(
        name=stages.MIXTURE,
        **common,
        kinds={"parquet", "json"},
        check_specs=[dg.AssetCheckSpec(SHARES_CHECK, asset=stages.MIXTURE, description=(
            f"Every source's achieved share of output tokens within {cfg.share_tolerance} (absolute) of "
            "the requested one."))],
        description="Training shards of one mixture spec (partition = spec name): sources weighted by their "
        "share of OUTPUT tokens under a token budget, epochs capped per source, interleaved by a seeded shuffle, "
        f"~{cfg.shard_tokens:,}-token shards in Parquet and JSONL.zst, and manifest.json (sources with partitions "
        "and data versions, requested vs achieved shares, epochs, tokenizer, config hash, source overlaps), "
        "row_ids.parquet (each shard's row ids).",
    )
    def training_mixture(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource,
                         tokenizer: TokenizerResource):
        store = corpus_store.get_store()
        name = context.partition_key
        manifest = stages.build_training_mixture(store, name, config, specs[name], tokenizer.get_counter(cfg))
        rows = report.share_rows(manifest)
        passed, facts = stages.verify_shares(manifest)
        yield dg.MaterializeResult(metadata={
            "tokens": manifest["tokens"], "docs": manifest["docs"], "shards": len(manifest["shards"]),
            "token_budget": manifest["token_budget"], "tokenizer": manifest["tokenizer"],
            "config_hash": manifest["config_hash"], "tokenized_units": manifest["tokenized_units"],
            # documents two sources share (an rw_deduped dump and a domain subset of it):
            # repeated in the output however few epochs each source reports
            "source_overlaps": dg.MetadataValue.json(manifest["source_overlaps"]),
            "docs_written_by_two_sources": sum(o["written_by_both_docs"] for o in manifest["source_overlaps"]),
            "seconds": manifest["seconds"],
            "achieved_mixture": records_table(rows, SHARES_SCHEMA),
            "shares_chart": dg.MetadataValue.md(png_markdown(report.shares_png(manifest),
                                                             "requested vs achieved token shares")),
            "dagster/row_count": manifest["docs"],
            "path": dg.MetadataValue.path(store.uri(stages.manifest_path(name))),
        })
        yield dg.AssetCheckResult(check_name=SHARES_CHECK, passed=passed, metadata={
            "tolerance": facts["tolerance"], "max_gap": facts["max_gap"], "gaps": dg.MetadataValue.json(facts["gaps"])})

    @dg.asset(
        name=stages.SEARCH,
        **common,
        kinds={"json", "yaml"},
        description=f"RegMix-style search (Liu et al. 2024) around one mixture spec's sources: "
        f"{cfg.search_candidates} Dirichlet candidates around the natural token shares, a byte "
        f"{cfg.search_lm_order}-gram proxy LM each on {cfg.search_train_bytes:,} bytes, ridge regression from "
        f"weights to each validation loss, Spearman on held-out candidates, and proposal.yaml: a spec "
        f"minimizing the mean predicted loss on {list(cfg.search_objective)}.",
    )
    def mixture_search(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource,
                       tokenizer: TokenizerResource):
        store = corpus_store.get_store()
        name = context.partition_key
        result = stages.build_mixture_search(store, name, config, specs[name], tokenizer.get_counter(cfg))
        fit_rows = [dg.TableRecord({"validation_set": v, "examples": result["validation_sets"].get(v, 0),
                                    "in_objective": v in result["objective"],
                                    "spearman_heldout": f["spearman_heldout"],
                                    "heldout_candidates": f["heldout_candidates"]}) for v, f in result["fit"].items()]
        weight_rows = [dg.TableRecord({"source": n, "natural": result["natural"][i], "spec": result["spec_weights"][i],
                                       "proposed": result["proposal"][i]}) for i, n in enumerate(result["sources"])]
        # None: too few held-out candidates for a rank correlation (see fit_quality)
        objective_rho = [r for r in (result["fit"][o]["spearman_heldout"] for o in result["objective"])
                         if r is not None]
        return dg.MaterializeResult(metadata={
            "fit_quality": dg.MetadataValue.table(fit_rows, schema=FIT_SCHEMA),
            "weights": dg.MetadataValue.table(weight_rows, schema=WEIGHTS_SCHEMA),
            "objective": ", ".join(result["objective"]),
            "min_objective_spearman": min(objective_rho) if objective_rho else None,
            "predicted_objective": dg.MetadataValue.json(result["predicted_objective"]),
            "regression": result["regression"], "seconds": result["seconds"],
            "path": dg.MetadataValue.path(store.uri(stages.search_path(name, "proposal.yaml"))),
        })

    return [training_mixture, mixture_search]

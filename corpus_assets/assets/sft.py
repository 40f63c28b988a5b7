"""Fine-tuning pool selection as assets (docs/sft.md). The work is in
``corpus_assets.sft_stages``; these definitions only wire and report.

    sft_file_<dataset> (JSONL) ──> sft_samples (dataset) ──> sft_statistics (dataset) ──> sft_selection (recipe)
"""


import dagster as dg

from corpus_assets import sft_stages as stages
from corpus_assets.config import PipelineConfig, fingerprint
from corpus_assets.resources import CorpusStoreResource, SentenceEncoderResource, TokenizerResource
from corpus_assets.steps.sft.config import SftRecipeError

SFT_GROUP = "sft"
CODE_REVISION = {stages.SAMPLES: "2", stages.STATISTICS: "2", stages.SELECTION: "2"}  # 2: issue 15 fixes
BUDGET_CHECK = "token_budget_respected"
CONSERVATION_CHECK = "samples_conserved"
NONEMPTY_CHECK = "selection_not_empty"

REMOVED_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("step", "string"), dg.TableColumn("reason", "string"), dg.TableColumn("count", "int"),
])
FUNNEL_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("step", "string"), dg.TableColumn("samples_in", "int"), dg.TableColumn("samples_out", "int"),
    dg.TableColumn("tokens_out", "int"), dg.TableColumn("retention", "float"),
    dg.TableColumn("cumulative_retention", "float"),
])
COMPOSITION_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("source", "string"), dg.TableColumn("dataset", "string"), dg.TableColumn("pool_samples", "int"),
    dg.TableColumn("selected_samples", "int"), dg.TableColumn("selected_tokens", "int"),
    dg.TableColumn("share_tokens", "float"), dg.TableColumn("random_share_tokens", "float"),
])
DIVERSITY_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("selection", "string"), dg.TableColumn("samples", "int"), dg.TableColumn("tokens", "int"),
    dg.TableColumn("mean_nearest_distance", "float"), dg.TableColumn("max_nearest_distance", "float"),
    dg.TableColumn("cluster_entropy", "float"), dg.TableColumn("clusters_covered", "int"),
    dg.TableColumn("mean_quality", "float"),
])


def dataset_partitions_def(config: PipelineConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition([d.name for d in config.sft.datasets])


def recipe_partitions_def(recipes: dict) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(sorted(recipes))


def file_asset_key(name: str) -> str:
    return f"sft_file_{name}"


def removed_rows(manifest: dict) -> list:
    return [dg.TableRecord({"step": step, "reason": reason, "count": int(n)})
            for step, reasons in manifest["removed_by_step"].items() for reason, n in reasons.items()]


def build_sft_assets(config: PipelineConfig, sentence_encoder: SentenceEncoderResource = None) -> list:
    cfg = config.sft
    if not cfg.datasets:
        return []
    recipes = cfg.recipe_entries()  # a bad recipe file fails its own partition, not the code location
    datasets = dataset_partitions_def(config)
    files = [dg.AssetSpec(file_asset_key(d.name), group_name=SFT_GROUP,
                          description=f"Instruction dataset {d.name}: {cfg.dataset_file(d)} (fields "
                          f"{d.instruction_field}/{d.input_field}/{d.output_field}/{d.source_field}). "
                          "A file this project reads; not materialized here.") for d in cfg.datasets]

    @dg.asset(
        name=stages.SAMPLES, partitions_def=datasets, deps=[f.key for f in files], group_name=SFT_GROUP,
        code_version=f"{CODE_REVISION[stages.SAMPLES]}-{fingerprint(cfg)}", kinds={"parquet"},
        description="One instruction dataset (partition = dataset) read into samples: instruction, input, "
        "output, source; every line that is not a usable sample (malformed JSON, missing or non-string "
        "fields, empty instruction or response, over-long record) is a counted reason.",
    )
    def sft_samples(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource):
        store = corpus_store.get_store()
        report = stages.build_sft_samples(store, context.partition_key, config)
        removed = sum(report["removed_by_reason"].values())
        return dg.MaterializeResult(metadata={
            "docs_in": report["lines"], "docs_out": report["samples"], "docs_removed": removed,
            "retention": round(report["samples"] / report["lines"], 6) if report["lines"] else 0.0,
            "removed_by_reason": dg.MetadataValue.json(report["removed_by_reason"]),
            "by_source": dg.MetadataValue.json(report["by_source"]), "file_sha256": report["file_sha256"],
            "dagster/row_count": report["samples"],
            "path": dg.MetadataValue.path(store.uri(stages.samples_path(context.partition_key))),
        })

    @dg.asset(
        name=stages.STATISTICS, partitions_def=datasets, deps=[stages.SAMPLES], group_name=SFT_GROUP,
        code_version=f"{CODE_REVISION[stages.STATISTICS]}-{fingerprint(cfg, config.lm, config.mixture.tokenizer, config.mixture.tokenizer_file, config.language_id.model_path)}",
        kinds={"parquet"},
        description="Per-sample statistics with Data-Juicer's names: text_len, alnum_ratio, char_rep_ratio, "
        "word_rep_ratio, special_char_ratio, lang and lang_score (lid.176), perplexity (the shared 5-gram "
        f"Kneser-Ney LM, language {cfg.perplexity_language}), token_count (the mixture's tokenizer), ir_ratio.",
    )
    def sft_statistics(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource,
                       tokenizer: TokenizerResource):
        store = corpus_store.get_store()
        report = stages.build_sft_statistics(store, context.partition_key, config,
                                             tokenizer.get_counter(config.mixture))
        return dg.MaterializeResult(metadata={
            "samples": report["samples"], "tokens": report["tokens"], "tokenizer": report["tokenizer"],
            "lm": dg.MetadataValue.json(report["lm"]), "medians": dg.MetadataValue.json(report["medians"]),
            "languages": dg.MetadataValue.json(report["languages"]),
            "samples_per_second": report["samples_per_second"], "seconds": report["seconds"],
            "dagster/row_count": report["samples"],
            "path": dg.MetadataValue.path(store.uri(stages.statistics_path(context.partition_key))),
        })

    assets = files + [sft_samples, sft_statistics]
    if not recipes:
        return assets
    encoder_resource = sentence_encoder or SentenceEncoderResource()

    @dg.asset(
        name=stages.SELECTION, partitions_def=recipe_partitions_def(recipes),
        deps=[dg.AssetDep(stages.STATISTICS, partition_mapping=dg.AllPartitionMapping())], group_name=SFT_GROUP,
        code_version=f"{CODE_REVISION[stages.SELECTION]}-{fingerprint(cfg, config.domains, *[recipes[n] for n in sorted(recipes)])}",
        kinds={"json", "parquet"},
        check_specs=[
            dg.AssetCheckSpec(BUDGET_CHECK, asset=stages.SELECTION, blocking=True,
                              description="Tokens used <= the recipe's token budget, recounted per source and "
                              "from the written selection.jsonl."),
            dg.AssetCheckSpec(CONSERVATION_CHECK, asset=stages.SELECTION,
                              description="At every step: samples in == samples out + removed by reason."),
            dg.AssetCheckSpec(NONEMPTY_CHECK, asset=stages.SELECTION,
                              description="The selection holds at least one sample (a budget below every "
                              "sample, or filters that leave nothing, fail it; WARN, not blocking)."),
        ],
        description="One recipe (partition = recipe name): filters on the statistics, quality score, exact and "
        "MinHash near dedup (character 5-grams, 256 permutations, Jaccard 0.7), the best quality fraction, "
        "k-center greedy over sentence embeddings under the token budget. selection.jsonl (instruction, input, output, source, dataset), "
        "selected.parquet, manifest.json (funnel, reasons, composition, thresholds, seed, diversity vs random).",
    )
    def sft_selection(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource,
                      tokenizer: TokenizerResource):
        store = corpus_store.get_store()
        recipe = recipes[context.partition_key]
        if isinstance(recipe, SftRecipeError):
            raise recipe
        encoder = encoder_resource.get_encoder(config.domains)
        manifest = stages.build_sft_selection(store, recipe, config, encoder)
        comp = manifest["composition"]
        comp_rows = [dg.TableRecord({
            "source": s, "dataset": e["dataset"], "pool_samples": e["samples"],
            "selected_samples": comp["selection"].get(s, {}).get("samples", 0),
            "selected_tokens": comp["selection"].get(s, {}).get("tokens", 0),
            "share_tokens": comp["selection"].get(s, {}).get("share_tokens", 0.0),
            "random_share_tokens": comp["random"].get(s, {}).get("share_tokens", 0.0)}) for s, e in comp["pool"].items()]
        div_rows = [dg.TableRecord({"selection": f"{name} ({f['method']})" if "method" in f else name, **{k: f[k] for k in (
            "samples", "tokens", "mean_nearest_distance", "max_nearest_distance", "cluster_entropy",
            "clusters_covered", "mean_quality")}}) for name, f in manifest["diversity"].items() if name != "pool"]
        retention = {f["step"]: f["retention"] for f in manifest["funnel"]}
        yield dg.MaterializeResult(metadata={
            "samples": manifest["samples"], "samples_in": manifest["samples_in"],
            "tokens_used": manifest["tokens_used"], "token_budget": manifest["token_budget"],
            "budget_used": manifest["budget_used"], "seed": manifest["seed"],
            "funnel": dg.MetadataValue.table([dg.TableRecord(f) for f in manifest["funnel"]], schema=FUNNEL_SCHEMA),
            "retention_per_step": dg.MetadataValue.json(retention),
            "removed_by_reason": dg.MetadataValue.table(removed_rows(manifest), schema=REMOVED_SCHEMA),
            "composition": dg.MetadataValue.table(comp_rows, schema=COMPOSITION_SCHEMA),
            "diversity_vs_random": dg.MetadataValue.table(div_rows, schema=DIVERSITY_SCHEMA),
            "perplexity_bounds": dg.MetadataValue.json(manifest["thresholds"]["perplexity_bounds"]),
            "quality_threshold": manifest["thresholds"]["quality_threshold"],
            "config_hash": manifest["config_hash"], "seconds": manifest["seconds"],
            "dagster/row_count": manifest["samples"],
            "path": dg.MetadataValue.path(store.uri(stages.selection_path(recipe.name, "selection.jsonl"))),
        })
        written = stages.selection_tokens(store, recipe.name, tokenizer.get_counter(config.mixture))
        ok, facts = stages.budget_respected(manifest, written)
        yield dg.AssetCheckResult(check_name=BUDGET_CHECK, passed=ok, metadata=facts)
        ok, facts = stages.conservation(manifest)
        yield dg.AssetCheckResult(check_name=CONSERVATION_CHECK, passed=ok, metadata={"gaps": dg.MetadataValue.json(facts["gaps"])})
        for warning in manifest["warnings"]:
            context.log.warning(f"sft_selection[{recipe.name}]: {warning}")
        yield dg.AssetCheckResult(check_name=NONEMPTY_CHECK, passed=manifest["samples"] > 0,
                                  severity=dg.AssetCheckSeverity.WARN,
                                  metadata={"samples": manifest["samples"], "warnings": dg.MetadataValue.json(manifest["warnings"])})

    return assets + [sft_selection]

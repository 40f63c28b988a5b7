"""CCNet (Wenzek et al. 2020) as assets: ccnet_text -> ccnet_line_duplicates (dump) ->
ccnet_line_dedup -> ccnet_perplexity -> ccnet_cutoffs (dump) -> ccnet_buckets. Thin
wiring of ``corpus_assets.ccnet_stages``; docs/ccnet.md.

Two ways in: ``build_ccnet_assets`` (definitions.py) builds the whole branch from
raw_documents, beside whatever the pipeline runs; a recipe that names the stages
``ccnet_line_dedup`` / ``ccnet_perplexity`` builds them instead through
``ccnet_stages.build_line_dedup_assets`` / ``build_perplexity_assets`` (line dedup then
reads the recipe's rw_raw, and the recipe's steps follow it), and ``build_ccnet_assets``
builds nothing, so no asset is defined twice.

No eager automation: the branch trains a language model on first use (minutes), so it
runs when asked (a recipe, a job, the UI), not whenever raw_documents
changes.
"""

from functools import partial

import dagster as dg

from corpus_assets import ccnet_stages
from corpus_assets.assets.documents import shard_document_asset
from corpus_assets.config import PipelineConfig, fingerprint
from corpus_assets.partitions import dump_partitions, shard_keys, shard_partitions_def, shard_to_dump, validate_dump_name
from corpus_assets.resources import CorpusStoreResource

CCNET_GROUP = "ccnet"
# Bump when a stage's code changes what it writes; settings changes are fingerprinted.
CODE_REVISION = {
    ccnet_stages.TEXT: "1",
    ccnet_stages.DUPLICATES: "2",  # 2: the ccnet_text versions counted, checked by line dedup
    ccnet_stages.DEDUPED: "1",
    ccnet_stages.PERPLEXITY: "3",  # 2: no_words removal, the LM identity in the stats; 3: the model's content
    ccnet_stages.CUTOFFS: "3",  # 2: the LM identity stored and checked; 3: the perplexity versions too
    ccnet_stages.BUCKETS: "2",
}
CCNET_SHARD_ASSETS = [ccnet_stages.TEXT, ccnet_stages.DEDUPED, ccnet_stages.PERPLEXITY, ccnet_stages.BUCKETS]
CCNET_DUMP_ASSETS = [ccnet_stages.DUPLICATES, ccnet_stages.CUTOFFS]


def _version(asset: str, *settings) -> str:
    return f"{CODE_REVISION[asset]}-{fingerprint(*settings)}"


def _settings(config: PipelineConfig) -> dict:
    cc = config.ccnet
    text = (config.html_guard, config.extraction)
    dedup = (cc.line_dedup_group_shards, config.num_shards)
    deduped = (*dedup, cc.min_chars, cc.languages, cc.language_min_score,
               cc.language_model_path or config.language_id.model_path)
    # the models' cache keys (lm settings, each reference's SHA-256, the estimator's
    # revision) and query engine: editing the reference file re-runs the perplexities too
    perplexity = (ccnet_stages.perplexity_identity(config),)
    return {"text": text, "dedup": dedup, "deduped": deduped, "perplexity": perplexity,
            "cutoffs": (*perplexity, cc.cutoff_settings())}


def recipe_runs_ccnet(config: PipelineConfig) -> bool:
    """Whether the settings' recipe (where the recipe mechanism exists) names CCNet's
    stages: its builders then make these assets."""
    name = getattr(config, "recipe", None)
    if not name:
        return False
    try:
        from corpus_assets.recipes import load_recipe
    except ImportError:
        return False
    return "ccnet_line_dedup" in load_recipe(name).stages or "ccnet_perplexity" in load_recipe(name).stages


def build_ccnet_assets(config: PipelineConfig) -> list[dg.AssetsDefinition]:
    """The whole branch from raw_documents (none when the recipe builds CCNet's stages)."""
    if recipe_runs_ccnet(config):
        return []
    settings = _settings(config)
    text = shard_document_asset(
        name=ccnet_stages.TEXT,
        stage=partial(ccnet_stages.build_ccnet_text, config=config),
        upstream="raw_documents",
        partitions_def=shard_partitions_def(config.num_shards),
        code_version=_version(ccnet_stages.TEXT, *settings["text"]),
        deps=["raw_documents"],
        group_name=CCNET_GROUP,
        automation_condition=None,
        description="CCNet's input text: HTML guard -> extraction (CCNet read Common Crawl's "
        "WET files). No URL filter and no language ID yet: CCNet identifies languages after "
        "line dedup.",
    )
    return [text, *line_dedup_assets(config, ccnet_stages.TEXT, ccnet_stages.ccnet_language_steps,
                                     upstream_version=settings["text"]),
            *perplexity_assets(config)]


def line_dedup_assets(config: PipelineConfig, upstream: str, steps_after,
                      upstream_version: tuple = ()) -> list[dg.AssetsDefinition]:
    """``ccnet_line_duplicates`` (dump) and ``ccnet_line_dedup`` (shard) over ``upstream``'s
    documents, ``steps_after(config)`` running after the dedup."""
    settings = _settings(config)
    shards = shard_keys(config.num_shards)
    after = getattr(steps_after, "__name__", str(steps_after))
    dedup_version = (upstream, *upstream_version, *settings["dedup"])

    @dg.asset(
        name=ccnet_stages.DUPLICATES,
        partitions_def=dump_partitions,
        deps=[dg.AssetDep(upstream, partition_mapping=shard_to_dump)],
        code_version=_version(ccnet_stages.DUPLICATES, *dedup_version),
        group_name=CCNET_GROUP,
        kinds={"parquet"},
        description="Per group of ccnet.line_dedup_group_shards shards, the SHA-1 hashes of "
        f"normalized lines of {upstream} seen more than once (CCNet removes every copy).",
    )
    def ccnet_line_duplicates(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        dump = validate_dump_name(context.partition_key)
        report = ccnet_stages.build_ccnet_line_duplicates(corpus_store.get_store(), dump, shards, config, upstream)
        return dg.MaterializeResult(metadata={
            "groups": len(report["groups"]),
            "group_shards": report["group_shards"],
            "lines": report["lines"],
            "distinct_lines": sum(g["distinct_lines"] for g in report["groups"]),
            "duplicated_hashes": sum(g["duplicated_hashes"] for g in report["groups"]),
            "seconds": report["seconds"],
        })

    deduped = shard_document_asset(
        name=ccnet_stages.DEDUPED,
        stage=partial(ccnet_stages.build_ccnet_deduped, config=config, upstream=upstream, steps_after=steps_after),
        upstream=upstream,
        partitions_def=shard_partitions_def(config.num_shards),
        # a recipe's language ID reads the language_id section; the standalone one ccnet's
        code_version=_version(ccnet_stages.DEDUPED, *dedup_version, *settings["deduped"], after,
                              *([config.language_id] if upstream != ccnet_stages.TEXT else [])),
        deps=[upstream, ccnet_stages.DUPLICATES],
        group_name=CCNET_GROUP,
        automation_condition=None,
        description="CCNet line dedup (every copy of a line duplicated in the group removed; "
        "documents left under ccnet.min_chars removed), then language ID (CCNet: fastText, 0.5).",
    )
    return [ccnet_line_duplicates, deduped]


def perplexity_assets(config: PipelineConfig) -> list[dg.AssetsDefinition]:
    """``ccnet_perplexity`` (signal) -> ``ccnet_cutoffs`` (dump) -> ``ccnet_buckets``."""
    cc = config.ccnet
    settings = _settings(config)
    shards = shard_keys(config.num_shards)
    shard_partitions = shard_partitions_def(config.num_shards)
    perplexity = shard_document_asset(
        name=ccnet_stages.PERPLEXITY,
        stage=partial(ccnet_stages.build_ccnet_perplexity, config=config),
        upstream=ccnet_stages.DEDUPED,
        partitions_def=shard_partitions,
        code_version=_version(ccnet_stages.PERPLEXITY, *settings["perplexity"]),
        deps=[ccnet_stages.DEDUPED],
        group_name=CCNET_GROUP,
        automation_condition=None,
        description="Every deduplicated document with ccnet_perplexity (SentencePiece + 5-gram "
        "Kneser-Ney LM of its language; -1 without a model). Removes nothing.",
    )

    @dg.asset(
        name=ccnet_stages.CUTOFFS,
        partitions_def=dump_partitions,
        deps=[dg.AssetDep(ccnet_stages.PERPLEXITY, partition_mapping=shard_to_dump)],
        code_version=_version(ccnet_stages.CUTOFFS, *settings["cutoffs"]),
        group_name=CCNET_GROUP,
        kinds={"json"},
        description="Per language, the perplexity cut-offs at ccnet.head_percentile and "
        "ccnet.tail_percentile (CCNet: 30th and 60th) of a sample of the dump.",
    )
    def ccnet_cutoffs(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        dump = validate_dump_name(context.partition_key)
        report = ccnet_stages.build_ccnet_cutoffs(corpus_store.get_store(), dump, shards, config)
        return dg.MaterializeResult(metadata={
            "cutoffs": dg.MetadataValue.json(report["cutoffs"]),
            "sample_docs": dg.MetadataValue.json(report["sample_docs"]),
            "head_percentile": report["head_percentile"],
            "tail_percentile": report["tail_percentile"],
        })

    buckets = shard_document_asset(
        name=ccnet_stages.BUCKETS,
        stage=partial(ccnet_stages.build_ccnet_buckets, config=config),
        upstream=ccnet_stages.PERPLEXITY,
        partitions_def=shard_partitions,
        code_version=_version(ccnet_stages.BUCKETS, *settings["cutoffs"], cc.keep_buckets),
        deps=[ccnet_stages.PERPLEXITY, ccnet_stages.CUTOFFS],
        group_name=CCNET_GROUP,
        automation_condition=None,
        description="ccnet_bucket (head / middle / tail; all without a model) from the stored "
        "perplexity and the dump's cut-offs; keeps ccnet.keep_buckets. Decisions only.",
    )
    return [perplexity, ccnet_cutoffs, buckets]

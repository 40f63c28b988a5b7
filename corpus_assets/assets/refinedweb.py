"""RefinedWeb's Macrodata Refinement as assets: crawl listing -> raw dump -> RW-RAW ->
quality signals -> RW-Filtered. Built from the pipeline settings by ``build_assets``."""


from functools import partial

import dagster as dg

from corpus_assets import stages
from corpus_assets.assets.documents import shard_document_asset
from corpus_assets.config import PipelineConfig, fingerprint
from corpus_assets.classifier_stages import reference_digest
from corpus_assets.steps.url_allowlist import allowlist_digest
from corpus_assets.steps.quality.decisions import thresholds_fingerprint
from corpus_assets.steps.quality.signals import signals_fingerprint
from corpus_assets.steps.segmentation.profiles import profiles_for
from corpus_assets.partitions import dump_partitions, shard_partitions_def, shard_to_dump, validate_dump_name
from corpus_assets.resources import CorpusStoreResource, CrawlSourceResource

# Bump when a stage's code changes what it writes; settings changes are fingerprinted.
CODE_REVISION = {
    "crawl_manifest": "1",
    "raw_documents": "1",
    "rw_raw": "1",
    "rw_quality_signals": "1",
    "rw_filtered": "2",  # one text, no signal columns (they stay in rw_quality_signals)
}

INGEST_GROUP = "ingest"
FILTER_GROUP = "filtering"


def code_version(asset: str, *configs) -> str:
    return f"{CODE_REVISION[asset]}-{fingerprint(*configs)}"


def build_assets(config: PipelineConfig) -> list[dg.AssetsDefinition]:
    shard_partitions = shard_partitions_def(config.num_shards)

    @dg.asset(
        name="crawl_manifest",
        partitions_def=dump_partitions,
        code_version=code_version("crawl_manifest", config.num_shards),
        group_name=INGEST_GROUP,
        kinds={"parquet"},
        description="The dump's WARC files from crawl-data/<dump>/warc.paths.gz, each "
        "assigned to a shard (contiguous blocks in manifest order).",
    )
    def crawl_manifest(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource,
                       crawl_source: CrawlSourceResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        table = stages.build_crawl_manifest(crawl_source.get_source(), store, validate_dump_name(context.partition_key), config.num_shards)
        rows = table.to_pylist()
        per_shard: dict[str, list[int]] = {}
        for row in rows:
            per_shard.setdefault(row["shard"], []).append(row["bytes"])
        known_bytes = [b for b in (r["bytes"] for r in rows) if b >= 0]
        return dg.MaterializeResult(
            metadata={
                "files": len(rows),
                "bytes": sum(known_bytes) if len(known_bytes) == len(rows) else -1,
                "num_shards": config.num_shards,
                "empty_shards": config.num_shards - len(per_shard),
                "files_per_shard": dg.MetadataValue.table(
                    [dg.TableRecord({"shard": s, "files": len(b), "bytes": sum(x for x in b if x >= 0)})
                     for s, b in sorted(per_shard.items())],
                    schema=dg.TableSchema(columns=[dg.TableColumn("shard", "string"),
                                                   dg.TableColumn("files", "int"),
                                                   dg.TableColumn("bytes", "int")]),
                ),
                "path": dg.MetadataValue.path(store.uri(stages.manifest_table_path(context.partition_key))),
            }
        )

    raw_documents = shard_document_asset(
        name="raw_documents",
        stage=partial(stages.ingest_raw_documents, config=config),
        upstream=None,
        partitions_def=shard_partitions,
        code_version=code_version("raw_documents", config.html_decode),
        deps=[dg.AssetDep("crawl_manifest", partition_mapping=shard_to_dump)],
        group_name=INGEST_GROUP,
        needs_crawl_source=True,
        description="HTTP 200 HTML responses of the shard's WARC files, decoded to text "
        "(charset from the HTTP header, then the page's own declaration, then detection).",
    )
    rw_raw = shard_document_asset(
        name="rw_raw",
        stage=partial(stages.build_rw_raw, config=config),
        upstream="raw_documents",
        partitions_def=shard_partitions,
        # The pre-screen's settings count only when it runs: while it is off they
        # change nothing in the output.
        code_version=code_version("rw_raw", config.url_filter, config.html_guard, config.extraction, config.language_id,
                                  *([config.language_prescreen] if config.language_prescreen.enabled else []),
                                  # the pre-screen's segmenters (none for English: unchanged)
                                  *([profiles_for(config).segmenter_identities()]
                                    if config.language_prescreen.enabled and profiles_for(config).segmenter_identities() else []),
                                  # the list's content, not only its path: edited lists re-run rw_raw
                                  *([config.url_allowlist, allowlist_digest(config.url_allowlist.path)]
                                    if config.url_allowlist.path else [])),
        deps=["raw_documents"],
        group_name=INGEST_GROUP,
        description="RefinedWeb's RW-RAW: URL filter -> language pre-screen (skips extraction "
        "for pages with no text in a kept language; audited, see prescreen_* metadata) -> "
        "trafilatura extraction -> fastText language identification.",
    )
    rw_quality_signals = shard_document_asset(
        name="rw_quality_signals",
        stage=partial(stages.build_quality_signals, config=config),
        upstream="rw_raw",
        partitions_def=shard_partitions,
        code_version=f"{CODE_REVISION['rw_quality_signals']}-{signals_fingerprint(config.quality_signals, profiles_for(config))}",
        deps=["rw_raw"],
        group_name=FILTER_GROUP,
        description="Every RW-RAW document with its Gopher, line-wise, C4 and FineWeb quality "
        "signals as columns. Removes nothing; thresholds are applied downstream.",
    )
    rw_filtered = shard_document_asset(
        name="rw_filtered",
        stage=partial(stages.build_rw_filtered, config=config),
        upstream="rw_quality_signals",
        partitions_def=shard_partitions,
        code_version=f"{CODE_REVISION['rw_filtered']}-{thresholds_fingerprint(config.quality_thresholds, profiles_for(config))}"
        + (f"-gpt3-{fingerprint(config.classifiers.gpt3, reference_digest(config, 'gpt3'))}"
           if config.classifiers.gpt3.enabled else ""),
        # GPT-3's classifier (classifiers.gpt3) decides here, from the dump's trained model
        deps=["rw_quality_signals",
              *([dg.AssetDep("gpt3_quality_model", partition_mapping=shard_to_dump)]
                if config.classifiers.gpt3.enabled else [])],
        group_name=FILTER_GROUP,
        description="RefinedWeb's RW-Filtered: keep/drop decisions from the stored signals "
        "(repetition -> document quality -> line-wise corrections). Changing a threshold "
        "re-runs only this asset.",
    )
    return [crawl_manifest, raw_documents, rw_raw, rw_quality_signals, rw_filtered]

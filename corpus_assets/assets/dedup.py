"""RW-Deduped as assets: MinHash fuzzy dedup, exact substring dedup and URL dedup, with
a cross-dump index that grows dump by dump. The work is in ``corpus_assets.dedup_stages``;
these definitions only wire partitions, dependencies and metadata.

    rw_filtered ──> minhash_signatures ──> minhash_buckets ──> duplicate_clusters
         │              (dump x shard)         (dump)              (dump)
         │                                                            │
         └──────────────────────────> exact_substring_spans <─────────┘
                                              (dump)
    rw_filtered + duplicate_clusters + exact_substring_spans ──> rw_deduped (dump x shard)
    rw_deduped + minhash_signatures ──> dedup_index (dump) ─ ─ > next dump's minhash_buckets

The dashed edge (a dump reads the index of the dump before it in crawl order) is not a
Dagster dependency: Dagster cannot map a dynamic partition to "the previous one" and
the graph would be a cycle. So everything after the signatures is driven by
``dedup_order_sensor``, not by eager conditions: it runs a dump's dedup once the dump
before it is indexed, and redoes a stage when what it was built from changed (a
threshold change re-ran rw_filtered and the signatures; an earlier dump was re-indexed).
Each stage also refuses inputs built from other signatures (``StaleDedupError``), and
the ``index_chain`` check shows when an earlier dump's index changed after a later dump
used it.
"""


from functools import partial

import dagster as dg

from corpus_assets import dedup_stages
from corpus_assets.assets.documents import shard_document_asset
from corpus_assets.config import PipelineConfig, fingerprint
from corpus_assets.partitions import DUMP_DIM, dump_partitions, shard_keys, shard_partitions_def, shard_to_dump, split_shard_key
from corpus_assets.resources import CorpusStoreResource
from corpus_assets.steps.dedup import get_preset

DEDUP_GROUP = "dedup"
# Bump when a stage's code changes what it writes; settings changes are fingerprinted.
CODE_REVISION = {
    "minhash_signatures": "3",  # 2: control characters removed, fineweb numbers; 3: reports carry the signatures' version
    "minhash_buckets": "2",  # records the signature versions and earlier matches' owners
    "duplicate_clusters": "2",  # candidate verification; names an earlier dump's keeper
    "exact_substring_spans": "2",
    "rw_deduped": "2",
    "dedup_index": "2",  # band keys with owners and a document table
}
INDEX_CHAIN_CHECK = "index_chain"
# The dump-level dedup assets share one concurrency pool; dagster.yaml's
# `concurrency: pools: default_limit: 1` lets one of them execute at a time across all runs,
# however launched (a job, a backfill, the UI's Materialize button), so no dump's dedup
# runs twice at once. docs/operations.md.
DUMP_DEDUP_POOL = "corpus_dump_dedup"


def _version(asset: str, *parts) -> str:
    return f"{CODE_REVISION[asset]}-{fingerprint(*parts)}"


def _json(value) -> dg.MetadataValue:
    return dg.MetadataValue.json(value)


def _known_dumps(context) -> list[str]:
    return context.instance.get_dynamic_partitions(DUMP_DIM)


def build_dedup_assets(config: PipelineConfig) -> list:
    cfg = config.dedup
    preset = get_preset(cfg.minhash_preset)
    shards = shard_keys(config.num_shards)
    shard_partitions = shard_partitions_def(config.num_shards)
    eager = dg.AutomationCondition.eager()
    # segmenters of the languages written without spaces (none for English: unchanged)
    segmenters = dedup_stages.dedup_segmenter_identities(config)
    seg_version = (segmenters,) if segmenters else ()
    fuzzy_version = (cfg.minhash_preset, *seg_version)
    bucket_version = (cfg.minhash_preset, cfg.bands_per_range, config.num_shards, cfg.candidate_min_jaccard, *seg_version)
    exact_version = (cfg.exact_substring, cfg.exact_mode, cfg.exact_min_tokens, cfg.exact_keep_first,
                     cfg.exact_method, cfg.exact_hash_parts, *seg_version)

    @dg.asset(
        name="minhash_signatures",
        partitions_def=shard_partitions,
        deps=["rw_filtered"],
        code_version=_version("minhash_signatures", *fuzzy_version),
        group_name=DEDUP_GROUP,
        kinds={"parquet"},
        automation_condition=eager,
        description=f"MinHash LSH band keys of every rw_filtered document ({preset.name}: "
        f"{preset.num_bands} bands x {preset.rows_per_band} rows on word {preset.ngram}-grams, "
        f"LSH threshold {preset.threshold:.2f}), one column per band.",
    )
    def minhash_signatures(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        dump, shard = split_shard_key(context)
        store = corpus_store.get_store()
        report = dedup_stages.build_minhash_signatures(store, dump, shard, config, log=context.log)
        return dg.MaterializeResult(metadata={
            "docs": report["docs"],
            "dagster/row_count": report["docs"],
            "docs_per_second": round(report["docs"] / report["seconds"], 1) if report["seconds"] else 0.0,
            "preset": preset.name,
            "lsh_threshold": round(preset.threshold, 4),
            "minhash": _json(report["preset"]),
            "path": dg.MetadataValue.path(store.uri(dedup_stages.signatures_path(dump, shard))),
        })

    @dg.asset(
        name="minhash_buckets",
        partitions_def=dump_partitions,
        pool=DUMP_DEDUP_POOL,
        deps=[dg.AssetDep("minhash_signatures", partition_mapping=shard_to_dump)],
        code_version=_version("minhash_buckets", *bucket_version),
        group_name=DEDUP_GROUP,
        kinds={"parquet"},
        description="Candidate duplicate pairs, bucketed one band range at a time over the "
        "dump's signatures, and the documents that share a band with one an earlier dump "
        "kept. Launched in crawl order by dedup_order_sensor, and re-launched by it when the "
        "signatures change (no eager condition: the sensor holds the crawl order).",
    )
    def minhash_buckets(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        dump = context.partition_key
        earlier = dedup_stages.earlier_snapshot(store, dump, _known_dumps(context), preset.name,
                                                dedup_stages.index_segmenter_identities(config))
        report = dedup_stages.build_minhash_buckets(store, dump, shards, config, earlier)
        return dg.MaterializeResult(metadata={
            "docs": report["num_docs"],
            "band_range_pairs": report["band_range_pairs"],
            "band_ranges": len(report["band_ranges"]),
            "docs_matching_earlier_dumps": report["docs_matching_earlier_dumps"],
            "earlier_dump": report["earlier_dump"] or "",
            "earlier_snapshot": report["earlier_snapshot"] or "",
            "lsh_threshold": round(preset.threshold, 4),
            "minhash": _json(report["preset"]),
        })

    @dg.asset(
        name="duplicate_clusters",
        partitions_def=dump_partitions,
        pool=DUMP_DEDUP_POOL,
        deps=["minhash_buckets"],
        code_version=_version("duplicate_clusters", *bucket_version),
        group_name=DEDUP_GROUP,
        kinds={"parquet"},
        description="Connected components of the candidate pairs (union-find); in each "
        "cluster the first document in dump order (shard, then row) is kept, and none when "
        "the cluster matches a document an earlier dump kept"
        + (f". Candidate pairs are verified: exact shingle Jaccard >= {cfg.candidate_min_jaccard}."
           if cfg.candidate_min_jaccard > 0 else ".") + " Refuses signatures other than those its buckets used.",
    )
    def duplicate_clusters(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        report = dedup_stages.build_duplicate_clusters(store, context.partition_key, config)
        return dg.MaterializeResult(metadata={
            "docs": report["num_docs"],
            "candidate_pairs": report["candidate_pairs"],
            "verify_min_jaccard": report["verify_min_jaccard"],
            "candidate_pairs_rejected": report["candidate_pairs_rejected"],
            "earlier_candidate_pairs": report["earlier_candidate_pairs"],
            "earlier_candidate_pairs_rejected": report["earlier_candidate_pairs_rejected"],
            "earlier_candidate_pairs_unverifiable": report["earlier_candidate_pairs_unverifiable"],
            "clusters": report["clusters"],
            "docs_in_clusters": report["docs_in_clusters"],
            "docs_to_remove": report["docs_to_remove"],
            "docs_to_remove_within_dump": report["docs_to_remove_within_dump"],
            "docs_to_remove_earlier_dumps": report["docs_to_remove_earlier_dumps"],
            "largest_cluster": report["largest_cluster"],
            "cluster_sizes": _json(report["cluster_sizes"]),
            "band_range_pairs": report["band_range_pairs"],
            "lsh_threshold": round(preset.threshold, 4),
            "earlier_snapshot": report["earlier_snapshot"] or "",
        })

    @dg.asset(
        name="exact_substring_spans",
        partitions_def=dump_partitions,
        pool=DUMP_DEDUP_POOL,
        deps=["duplicate_clusters", dg.AssetDep("rw_filtered", partition_mapping=shard_to_dump)],
        code_version=_version("exact_substring_spans", *bucket_version, *exact_version),
        group_name=DEDUP_GROUP,
        kinds={"parquet"},
        description=f"Spans of >= {cfg.exact_min_tokens} consecutive tokens that occur more "
        f"than once across the dump's fuzzy survivors (Lee et al. 2022; {cfg.exact_method}).",
    )
    def exact_substring_spans(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        report = dedup_stages.build_exact_substring_spans(store, context.partition_key, shards, config)
        return dg.MaterializeResult(metadata={
            k: report[k] for k in ("enabled", "method", "mode", "min_tokens", "docs_scanned", "tokens_scanned",
                                   "docs_with_spans", "spans", "dup_tokens", "dup_token_fraction")
        })

    rw_deduped = shard_document_asset(
        name="rw_deduped",
        stage=partial(dedup_stages.build_rw_deduped, config=config),
        upstream="rw_filtered",
        partitions_def=shard_partitions,
        code_version=_version("rw_deduped", *bucket_version, *exact_version, cfg.exact_drop_fraction, cfg.url_dedup),
        deps=["rw_filtered",
              dg.AssetDep("duplicate_clusters", partition_mapping=shard_to_dump),
              dg.AssetDep("exact_substring_spans", partition_mapping=shard_to_dump)],
        group_name=DEDUP_GROUP,
        needs_known_dumps=True,
        automation_condition=None,  # dedup_order_sensor runs it, in crawl order
        description="RefinedWeb's RW (deduplicated): fuzzy duplicates removed (within the "
        "dump and against earlier dumps), exact duplicated spans treated "
        f"({cfg.exact_mode}), URLs an earlier dump kept dropped.",
    )

    @dg.asset(
        name="dedup_index",
        partitions_def=dump_partitions,
        pool=DUMP_DEDUP_POOL,
        deps=[dg.AssetDep("rw_deduped", partition_mapping=shard_to_dump),
              dg.AssetDep("minhash_signatures", partition_mapping=shard_to_dump)],
        code_version=_version("dedup_index", *bucket_version, *exact_version, cfg.url_dedup),
        group_name=DEDUP_GROUP,
        kinds={"parquet"},
        description="The cross-dump index after this dump: band keys and normalized-URL "
        "hashes of every document kept by this dump and all earlier ones. The next dump in "
        "crawl order is deduplicated against it.",
    )
    def dedup_index(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        dump = context.partition_key
        known = _known_dumps(context)
        manifest = dedup_stages.build_dedup_index(store, dump, shards, config, known)
        for d in dedup_stages.dumps_built_on_an_older_snapshot(store, dump, known):
            context.log.warning(
                f"{d} was deduplicated against an earlier index of {dump}; its output is "
                f"unchanged and its {INDEX_CHAIN_CHECK} check now fails: re-run its dedup to use the new one"
            )
        return dg.MaterializeResult(metadata={
            "snapshot": manifest["snapshot"],
            "previous_snapshot": manifest["previous_snapshot"] or "",
            "dumps": _json(manifest["dumps"]),
            "docs_added": manifest["docs_added"],
            "urls": manifest["urls"],
            "band_keys": manifest["band_keys"],
        })

    @dg.asset_check(
        asset=dedup_index,
        name=INDEX_CHAIN_CHECK,
        description="This dump was deduplicated against the CURRENT index of the dump before "
        "it in crawl order. Fails (warning) when that earlier dump was re-materialized since: "
        "this dump's output is unchanged until its dedup is re-run.",
    )
    def index_chain(context: dg.AssetCheckExecutionContext, corpus_store: CorpusStoreResource) -> dg.AssetCheckResult:
        # Asset checks are not partitioned: every indexed dump is looked at, each against
        # the current snapshot of the dump before it.
        dumps = _known_dumps(context)
        store = corpus_store.get_store()
        results = {}
        for dump in dumps:
            if dedup_stages.load_snapshot(store, dump) is None:
                continue
            passed, facts = dedup_stages.index_chain_status(store, dump, dumps)
            results[dump] = {"passed": passed, **facts}
        return dg.AssetCheckResult(
            passed=all(r["passed"] for r in results.values()),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"dumps": _json(results)},
        )

    return [minhash_signatures, minhash_buckets, duplicate_clusters, exact_substring_spans, rw_deduped,
            dedup_index, index_chain]

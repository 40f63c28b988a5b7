"""The crawl sensor: a new ``crawl-data/<DUMP>/warc.paths.gz`` becomes a dump partition.

Each tick lists the dumps of the crawl source (one delimiter listing on S3, never the WARC
files), adds the unseen ones as ``dump`` partitions and requests their ``crawl_manifest``
runs in the same tick. The shard-level assets downstream carry
``AutomationCondition.eager()``, so the automation sensor materializes every (dump, shard)
partition once its manifest exists: nobody clicks.

The cursor holds every dump already handled, so a dump is requested once even if its
partition is later deleted by hand; run keys make a repeated request harmless anyway.
"""


import json

import dagster as dg

from corpus_assets import dedup_stages
from corpus_assets.crawl import CrawlSourceError, dump_sort_key
from corpus_assets.partitions import DUMP_DIM, dump_partitions, shard_keys, shard_partition_key
from corpus_assets.resources import CorpusStoreResource, CrawlSourceResource


def build_crawl_sensor(manifest_job) -> dg.SensorDefinition:
    @dg.sensor(
        name="new_crawl_sensor",
        job=manifest_job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds each new crawl-data/<DUMP>/warc.paths.gz as a dump partition and "
        "requests its crawl_manifest run.",
    )
    def new_crawl_sensor(context: dg.SensorEvaluationContext, crawl_source: CrawlSourceResource):
        source = crawl_source.get_source()
        try:
            dumps = source.list_dumps()
        except CrawlSourceError as exc:
            return dg.SkipReason(str(exc))
        handled = set(json.loads(context.cursor)) if context.cursor else set()
        existing = set(context.instance.get_dynamic_partitions(DUMP_DIM))
        new = [d for d in dumps if d not in handled and d not in existing]
        if not new:
            return dg.SkipReason(f"no new dump in {source.describe()} ({len(dumps)} known)")
        context.log.info(f"new dumps: {new}")
        return dg.SensorResult(
            dynamic_partitions_requests=[dump_partitions.build_add_request(new)],
            run_requests=[dg.RunRequest(partition_key=d, run_key=f"crawl_manifest:{d}") for d in new],
            cursor=json.dumps(sorted(handled | set(new))),
        )

    return new_crawl_sensor


def build_dedup_order_sensor(dedup_job, num_shards: int) -> dg.SensorDefinition:
    """Launches a dump's dump-level dedup (buckets -> clusters -> exact spans) once all of
    its ``minhash_signatures`` partitions exist and the dump before it in crawl order is
    indexed, and again when its signatures changed (a threshold change re-ran
    rw_filtered) or the dump before it was re-indexed (``dedup_stages.dedup_state``). Dagster's automation cannot express "after the previous dynamic partition",
    so this sensor holds the crawl order; everything after it is eager automation."""

    @dg.sensor(
        name="dedup_order_sensor",
        job=dedup_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Deduplicates dumps in crawl order: requests the first unindexed dump's "
        "dump-level dedup when its signatures are complete and the dump before it is indexed.",
    )
    def dedup_order_sensor(context: dg.SensorEvaluationContext, corpus_store: CorpusStoreResource):
        store = corpus_store.get_store()
        dumps = sorted(context.instance.get_dynamic_partitions(DUMP_DIM), key=dump_sort_key)
        done = set(context.instance.get_materialized_partitions(dg.AssetKey("minhash_signatures")))
        previous_snapshot = None
        for dump in dumps:
            # A dump is redone when its signatures changed (a threshold change) or the
            # dump before it was re-indexed, not only when it was never indexed.
            state, detail = dedup_stages.dedup_state(store, dump, shard_keys(num_shards), previous_snapshot)
            if state == "indexed":
                previous_snapshot = detail
                continue
            missing = [s for s in shard_keys(num_shards) if shard_partition_key(dump, s) not in done]
            if missing:
                return dg.SkipReason(f"{dump} is next in crawl order; waiting for minhash_signatures of shards {missing}")
            if state == "wait":
                return dg.SkipReason(detail)
            return dg.RunRequest(partition_key=dump, run_key=f"dedup:{dump}:{previous_snapshot or 'first'}:{detail}")
        return dg.SkipReason(f"every dump is indexed ({len(dumps)})")

    return dedup_order_sensor

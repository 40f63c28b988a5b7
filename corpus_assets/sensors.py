"""The crawl sensor: a new ``crawl-data/<DUMP>/warc.paths.gz`` becomes a dump partition.

Each tick lists the dumps of the crawl source (one delimiter listing on S3, never the WARC
files), adds the unseen ones as ``dump`` partitions and requests their ``crawl_manifest``
runs in the same tick. The shard-level assets downstream carry
``AutomationCondition.eager()``, so the automation sensor materializes every (dump, shard)
partition once its manifest exists: nobody clicks.

The cursor holds every dump already handled, so a dump is requested once even if its
partition is later deleted by hand; run keys make a repeated request harmless anyway.

A listed name that is not a valid dump name (``..``, ``a|b``, `` CC-MAIN-2024-10``; see
``partitions.dump_name_problem``) is logged and skipped at every tick, never added.
"""


import json

import dagster as dg

from corpus_assets import dedup_stages
from corpus_assets.crawl import CrawlSourceError, dump_sort_key
from corpus_assets.partitions import DUMP_DIM, dump_name_problem, dump_partitions, shard_keys, shard_partition_key
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
        rejected = [d for d in dumps if dump_name_problem(d)]
        for name in rejected:
            context.log.warning(f"{source.describe('crawl-data')}: skipped, {dump_name_problem(name)}")
        dumps = [d for d in dumps if d not in rejected]
        handled = set(json.loads(context.cursor)) if context.cursor else set()
        existing = set(context.instance.get_dynamic_partitions(DUMP_DIM))
        new = [d for d in dumps if d not in handled and d not in existing]
        if not new:
            ignored = f"; ignored names that are not dump names: {rejected}" if rejected else ""
            return dg.SkipReason(f"no new dump in {source.describe()} ({len(dumps)} known){ignored}")
        context.log.info(f"new dumps: {new}")
        return dg.SensorResult(
            dynamic_partitions_requests=[dump_partitions.build_add_request(new)],
            run_requests=[dg.RunRequest(partition_key=d, run_key=f"crawl_manifest:{d}") for d in new],
            cursor=json.dumps(sorted(handled | set(new))),
        )

    return new_crawl_sensor


def build_dedup_order_sensor(dedup_job, num_shards: int, deduped_job, index_job) -> dg.SensorDefinition:
    """Drives each dump's dedup after its signatures, in crawl order: the dump-level dedup
    (buckets -> clusters -> exact spans), then ``rw_deduped`` per shard, then
    ``dedup_index``, once the dump before it is indexed. It redoes a stage when what the
    stage was built from changed (``dedup_stages.dedup_state``): a threshold change that
    re-ran rw_filtered and the signatures, or an earlier dump re-indexed. Dagster's
    automation cannot express "after the previous dynamic partition", and eager
    conditions on these assets would run a later dump against an earlier dump's index
    that is about to change, so this sensor holds the whole order."""
    steps = {"dedup": dedup_job, "deduped": deduped_job, "index": index_job}

    @dg.sensor(
        name="dedup_order_sensor",
        jobs=list(steps.values()),
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Deduplicates dumps in crawl order: for the first dump whose dedup is not "
        "current (never run, or built on signatures or an earlier index that changed since), "
        "requests its next stage: dump-level dedup, rw_deduped per shard, or dedup_index.",
    )
    def dedup_order_sensor(context: dg.SensorEvaluationContext, corpus_store: CorpusStoreResource):
        store = corpus_store.get_store()
        dumps = []
        for dump in context.instance.get_dynamic_partitions(DUMP_DIM):
            if dump_name_problem(dump):  # added by hand: never a path in the store
                context.log.warning(f"dump partition skipped: {dump_name_problem(dump)}")
            else:
                dumps.append(dump)
        dumps.sort(key=dump_sort_key)
        done = set(context.instance.get_materialized_partitions(dg.AssetKey("minhash_signatures")))
        shards = shard_keys(num_shards)
        previous_snapshot = None
        for dump in dumps:
            missing = [s for s in shards if shard_partition_key(dump, s) not in done]
            if missing:
                return dg.SkipReason(f"{dump} is next in crawl order; waiting for minhash_signatures of shards {missing}")
            state = dedup_stages.dedup_state(store, dump, shards, previous_snapshot)
            if state.step == "indexed":
                previous_snapshot = state.snapshot
                continue
            if state.step == "wait":
                return dg.SkipReason(state.reason)
            job = steps[state.step]
            context.log.info(f"{dump}: {state.reason}")
            if state.step == "deduped":
                return [dg.RunRequest(partition_key=shard_partition_key(dump, s), job_name=job.name,
                                      run_key=f"deduped:{dump}|{s}:{state.key}") for s in state.shards]
            return dg.RunRequest(partition_key=dump, job_name=job.name,
                                 run_key=f"{state.step}:{dump}:{previous_snapshot or 'first'}:{state.key}")
        return dg.SkipReason(f"every dump is indexed ({len(dumps)})")

    return dedup_order_sensor

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

from corpus_assets.crawl import CrawlSourceError
from corpus_assets.partitions import DUMP_DIM, dump_partitions
from corpus_assets.resources import CrawlSourceResource


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

"""The single wiring point of the code location: assets, checks, jobs, sensors, resources.

Settings come from ``$CORPUS_CONFIG`` (default: the bundled ``defaults/pipeline.yaml``);
where data lives comes from the environment:

- ``CORPUS_ROOT``: the corpus store, a folder (default ``.corpus``) or ``s3://bucket/prefix``;
- ``CORPUS_CRAWL_ROOT``: the crawl source, a folder holding ``crawl-data/`` (default
  ``../shared/data`` when present), ``s3://commoncrawl`` or ``https://data.commoncrawl.org``;
- ``CORPUS_CRAWL_DUMPS``: for HTTPS sources, comma-separated dumps to pick up;
- ``CORPUS_S3_ENDPOINT_URL``: an S3-compatible endpoint other than AWS (MinIO, moto).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import dagster as dg

from corpus_assets.assets.refinedweb import build_assets
from corpus_assets.config import PipelineConfig, load_config
from corpus_assets.partitions import dump_partitions, shard_partitions_def
from corpus_assets.resources import CorpusStoreResource, CrawlSourceResource
from corpus_assets.sensors import build_crawl_sensor

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARD_ASSETS = ["raw_documents", "rw_raw", "rw_quality_signals", "rw_filtered"]


def default_crawl_root() -> str:
    return os.environ.get("CORPUS_CRAWL_ROOT") or str((REPO_ROOT.parent / "shared" / "data").resolve())


def build_definitions(
    config: Optional[PipelineConfig] = None,
    corpus_root: Optional[str] = None,
    crawl_root: Optional[str] = None,
) -> dg.Definitions:
    config = config or load_config()
    endpoint = os.environ.get("CORPUS_S3_ENDPOINT_URL") or None
    assets = build_assets(config)
    manifest_job = dg.define_asset_job(
        "crawl_manifest_job", selection=["crawl_manifest"], partitions_def=dump_partitions
    )
    shard_job = dg.define_asset_job(
        "shard_pipeline_job",
        selection=SHARD_ASSETS,
        partitions_def=shard_partitions_def(config.num_shards),
        description="Raw dump -> RW-RAW -> quality signals -> RW-Filtered for one (dump, shard).",
    )
    automation = dg.AutomationConditionSensorDefinition(
        "corpus_automation_sensor",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
    )
    dumps_env = os.environ.get("CORPUS_CRAWL_DUMPS", "")
    return dg.Definitions(
        assets=assets,
        jobs=[manifest_job, shard_job],
        sensors=[build_crawl_sensor(manifest_job), automation],
        resources={
            "corpus_store": CorpusStoreResource(
                root=corpus_root or os.environ.get("CORPUS_ROOT") or str(REPO_ROOT / ".corpus"),
                s3_endpoint_url=endpoint,
            ),
            "crawl_source": CrawlSourceResource(
                root=crawl_root or default_crawl_root(),
                dumps=[d.strip() for d in dumps_env.split(",") if d.strip()],
                s3_endpoint_url=endpoint,
            ),
        },
    )


defs = build_definitions()

"""Resources as typed config: where the corpus is written and where crawls are read.

Both take a plain URI. A local folder needs nothing else; an ``s3://`` URI gets its
client from dagster-aws's ``S3Resource`` (region, endpoint, credentials as it reads
them), so the same assets and sensor run against a laptop folder or a bucket.
"""

from __future__ import annotations

from typing import Optional

import dagster as dg
from dagster_aws.s3 import S3Resource

from corpus_assets.crawl import CrawlSource
from corpus_assets.storage import CorpusStore, is_s3_uri


def _s3_client(endpoint_url: Optional[str], region_name: Optional[str]):
    return S3Resource(endpoint_url=endpoint_url, region_name=region_name).get_client()


class CorpusStoreResource(dg.ConfigurableResource):
    """The corpus root: every asset's Parquet partitions live under it. A folder,
    ``file:///path`` or ``s3://bucket/prefix`` (scheme in any case); any other URL scheme
    is refused when the store is built."""

    root: str = ".corpus"
    s3_endpoint_url: Optional[str] = None
    s3_region_name: Optional[str] = None

    def get_store(self) -> CorpusStore:
        client = _s3_client(self.s3_endpoint_url, self.s3_region_name) if is_s3_uri(self.root) else None
        return CorpusStore(self.root, s3_client=client)


class CrawlSourceResource(dg.ConfigurableResource):
    """Where crawls come from: a folder, ``s3://commoncrawl`` or an HTTPS base."""

    root: str
    # HTTPS bases cannot be listed: the dumps to pick up (e.g. ["CC-MAIN-2024-10"]).
    dumps: list[str] = []
    s3_endpoint_url: Optional[str] = None
    s3_region_name: Optional[str] = None

    def get_source(self) -> CrawlSource:
        client = _s3_client(self.s3_endpoint_url, self.s3_region_name) if self.root.startswith("s3://") else None
        return CrawlSource(self.root, s3_client=client, dumps=tuple(self.dumps))

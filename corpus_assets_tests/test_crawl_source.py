"""Crawl sources (folder, S3, HTTPS) and deterministic shard assignment."""

from __future__ import annotations

import functools
import gzip
import http.server
import threading
import uuid
from pathlib import Path

import pytest

from corpus_assets.crawl import CrawlSource, CrawlSourceError, assign_shards, dump_sort_key, shard_key


def test_assign_shards_is_contiguous_balanced_and_deterministic():
    paths = [f"f{i}" for i in range(10)]
    shards = assign_shards(paths, 4)
    assert shards == sorted(shards), "contiguous blocks in manifest order"
    assert [shards.count(s) for s in range(4)] == [3, 2, 3, 2]
    assert assign_shards(paths, 4) == shards
    assert assign_shards(paths[:4], 4) == [0, 1, 2, 3]
    assert assign_shards(paths[:2], 4) == [0, 2], "fewer files than shards leaves shards empty"
    assert assign_shards([], 4) == []


def test_shard_keys_and_dump_order():
    assert shard_key(7, 4) == "007" and shard_key(7, 10000) == "0007"
    dumps = ["CC-MAIN-2024-18", "CC-MAIN-2023-50", "CC-MAIN-2024-10"]
    assert sorted(dumps, key=dump_sort_key) == ["CC-MAIN-2023-50", "CC-MAIN-2024-10", "CC-MAIN-2024-18"]


def test_local_sample_crawl(sample_crawl):
    source = CrawlSource(str(sample_crawl))
    assert source.list_dumps() == ["CC-MAIN-2024-10", "CC-MAIN-2024-18"]
    paths = source.read_manifest("CC-MAIN-2024-10")
    assert len(paths) == 4 and all(p.endswith(".warc.gz") for p in paths)
    assert source.size(paths[0]) == (sample_crawl / paths[0]).stat().st_size
    with source.open(paths[0]) as fh:
        assert fh.read(2) == b"\x1f\x8b"


def test_missing_source_and_manifest_name_the_path(tmp_path):
    with pytest.raises(CrawlSourceError, match=str(tmp_path / "nowhere")):
        CrawlSource(str(tmp_path / "nowhere")).list_dumps()
    (tmp_path / "crawl-data" / "CC-MAIN-2030-01").mkdir(parents=True)
    source = CrawlSource(str(tmp_path))
    assert source.list_dumps() == [], "a dump folder without warc.paths.gz is not a dump yet"
    with pytest.raises(CrawlSourceError, match="CC-MAIN-2030-01/warc.paths.gz"):
        source.read_manifest("CC-MAIN-2030-01")
    (tmp_path / "crawl-data" / "CC-MAIN-2030-01" / "warc.paths.gz").write_bytes(b"not gzip")
    with pytest.raises(CrawlSourceError, match="unreadable manifest"):
        source.read_manifest("CC-MAIN-2030-01")


def _upload_tree(client, bucket: str, prefix: str, root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root)}")


def test_s3_source_against_a_real_s3_server(s3_client, fixture_crawl):
    bucket = f"crawl-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    _upload_tree(s3_client, bucket, "cc", fixture_crawl)
    s3_client.put_object(Bucket=bucket, Key="cc/crawl-data/CC-MAIN-2030-01/README", Body=b"no manifest yet")
    source = CrawlSource(f"s3://{bucket}", s3_client=s3_client)
    with pytest.raises(CrawlSourceError):
        source.read_manifest("CC-MAIN-2024-10")
    source = CrawlSource(f"s3://{bucket}/cc", s3_client=s3_client)
    assert source.list_dumps() == ["CC-MAIN-2024-10", "CC-MAIN-2024-18"]
    paths = source.read_manifest("CC-MAIN-2024-10")
    local = CrawlSource(str(fixture_crawl)).read_manifest("CC-MAIN-2024-10")
    assert paths == local
    with source.open(paths[0]) as body:
        assert body.read() == (fixture_crawl / paths[0]).read_bytes()
    assert source.size(paths[0]) == (fixture_crawl / paths[0]).stat().st_size
    # The scheme in any letter case is the same bucket, never a local folder named `S3:`.
    shouting = CrawlSource(f"S3://{bucket}/cc", s3_client=s3_client)
    assert shouting.kind == "s3" and shouting.list_dumps() == ["CC-MAIN-2024-10", "CC-MAIN-2024-18"]


def test_crawl_root_schemes_are_case_insensitive():
    assert CrawlSource("S3://b/cc").root == "s3://b/cc" and CrawlSource("S3://b/cc").kind == "s3"
    assert CrawlSource("HTTPS://data.example.org").kind == "http"
    assert CrawlSource("/data/S3://x").kind == "local"


def test_https_source_on_loopback(fixture_crawl):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(fixture_crawl))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        source = CrawlSource(base, dumps=("CC-MAIN-2024-10", "CC-MAIN-2099-01"))
        assert source.list_dumps() == ["CC-MAIN-2024-10"]
        paths = source.read_manifest("CC-MAIN-2024-10")
        with source.open(paths[0]) as fh:
            assert gzip.decompress(fh.read()).startswith(b"WARC/1")
        with pytest.raises(CrawlSourceError, match="CC-MAIN-2099-01"):
            source.read_manifest("CC-MAIN-2099-01")
    finally:
        server.shutdown()

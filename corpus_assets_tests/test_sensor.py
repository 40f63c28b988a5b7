"""The crawl sensor, against a local folder and against a real S3 server on loopback."""

from __future__ import annotations

import shutil
import uuid

import dagster as dg
import pytest

from corpus_assets.definitions import build_definitions
from corpus_assets.partitions import DUMP_DIM
from corpus_assets.resources import CrawlSourceResource


def _tick(defs: dg.Definitions, instance, resources, cursor=None):
    sensor = defs.get_sensor_def("new_crawl_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    return sensor(context), context


def _apply(instance, result) -> None:
    """What the daemon does with a tick's partition requests (tests must do it themselves)."""
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def _exercise(defs, resources, add_dump):
    with dg.instance_for_test() as instance:
        result, ctx = _tick(defs, instance, resources)
        assert isinstance(result, dg.SensorResult)
        [request] = result.dynamic_partitions_requests
        assert request.partitions_def_name == DUMP_DIM
        assert list(request.partition_keys) == ["CC-MAIN-2024-10", "CC-MAIN-2024-18"]
        assert [r.partition_key for r in result.run_requests] == ["CC-MAIN-2024-10", "CC-MAIN-2024-18"]
        assert defs.get_sensor_def("new_crawl_sensor").job_name == "crawl_manifest_job"
        _apply(instance, result)

        again, _ = _tick(defs, instance, resources, cursor=result.cursor)
        assert isinstance(again, dg.SkipReason), "the same dumps are never requested twice"

        # Even with the cursor lost, dumps that are already partitions are not re-requested.
        lost, _ = _tick(defs, instance, resources, cursor=None)
        assert isinstance(lost, dg.SkipReason)

        add_dump("CC-MAIN-2024-22")
        new, _ = _tick(defs, instance, resources, cursor=result.cursor)
        assert [r.partition_key for r in new.run_requests] == ["CC-MAIN-2024-22"]
        assert list(new.dynamic_partitions_requests[0].partition_keys) == ["CC-MAIN-2024-22"]


def test_sensor_on_a_local_folder(tmp_path, fixture_crawl):
    root = tmp_path / "crawl"
    shutil.copytree(fixture_crawl, root)
    defs = build_definitions(crawl_root=str(root), corpus_root=str(tmp_path / "corpus"))
    resources = {"crawl_source": CrawlSourceResource(root=str(root))}

    def add_dump(dump):
        (root / "crawl-data" / dump).mkdir(parents=True)
        shutil.copy(root / "crawl-data/CC-MAIN-2024-10/warc.paths.gz", root / "crawl-data" / dump / "warc.paths.gz")

    _exercise(defs, resources, add_dump)


def test_sensor_on_s3(tmp_path, s3_endpoint, s3_client, fixture_crawl):
    bucket = f"crawl-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    for dump in ("CC-MAIN-2024-10", "CC-MAIN-2024-18"):
        s3_client.upload_file(str(fixture_crawl / f"crawl-data/{dump}/warc.paths.gz"), bucket,
                              f"commoncrawl/crawl-data/{dump}/warc.paths.gz")
    # A dump folder whose manifest has not landed yet is not picked up.
    s3_client.put_object(Bucket=bucket, Key="commoncrawl/crawl-data/CC-MAIN-2024-30/segments/x", Body=b"")
    root = f"s3://{bucket}/commoncrawl"
    defs = build_definitions(crawl_root=root, corpus_root=str(tmp_path / "corpus"))
    resources = {"crawl_source": CrawlSourceResource(root=root, s3_endpoint_url=s3_endpoint)}

    def add_dump(dump):
        s3_client.upload_file(str(fixture_crawl / "crawl-data/CC-MAIN-2024-10/warc.paths.gz"), bucket,
                              f"commoncrawl/crawl-data/{dump}/warc.paths.gz")

    _exercise(defs, resources, add_dump)


def test_sensor_skips_with_the_path_when_the_source_is_missing(tmp_path):
    defs = build_definitions(crawl_root=str(tmp_path / "absent"), corpus_root=str(tmp_path / "corpus"))
    with dg.instance_for_test() as instance:
        result, _ = _tick(defs, instance, {"crawl_source": CrawlSourceResource(root=str(tmp_path / "absent"))})
    assert isinstance(result, dg.SkipReason)
    assert str(tmp_path / "absent") in result.skip_message


def test_sensor_skips_and_logs_dump_names_that_are_not_safe(tmp_path, fixture_crawl, capfd):
    """Issue 10 item 9: a listing may name `..`, `a|b` or ` CC-MAIN-2024-10`; none of them
    may become a partition (its folders would escape or alias the corpus root)."""
    root = tmp_path / "crawl"
    shutil.copytree(fixture_crawl, root)
    manifest = root / "crawl-data/CC-MAIN-2024-10/warc.paths.gz"
    for bad in ("a|b", " CC-MAIN-2024-10", "CC-MAIN-2024-1", "-x"):
        (root / "crawl-data" / bad).mkdir()
        shutil.copy(manifest, root / "crawl-data" / bad / "warc.paths.gz")
    defs = build_definitions(crawl_root=str(root), corpus_root=str(tmp_path / "corpus"))
    resources = {"crawl_source": CrawlSourceResource(root=str(root))}
    with dg.instance_for_test() as instance:
        result, ctx = _tick(defs, instance, resources)
        [request] = result.dynamic_partitions_requests
        assert list(request.partition_keys) == ["CC-MAIN-2024-10", "CC-MAIN-2024-18"]
        assert [r.partition_key for r in result.run_requests] == ["CC-MAIN-2024-10", "CC-MAIN-2024-18"]
        _apply(instance, result)
        again, _ = _tick(defs, instance, resources, cursor=result.cursor)
        assert isinstance(again, dg.SkipReason)
        assert "a|b" in again.skip_message, "the skip says which names were ignored"
    logged = capfd.readouterr().err
    assert "a|b" in logged and "dump name" in logged


@pytest.mark.parametrize("bad", ["..", "CC-MAIN-2024-10\n", "CC-MAIN-9999-99"])
def test_dedup_order_sensor_ignores_a_bad_dump_added_by_hand(tmp_path, bad, capfd):
    """A trailing newline passed a ``$``-anchored check and then made every tick raise
    (the store refuses the path), blocking every later dump."""
    defs = build_definitions(crawl_root=str(tmp_path / "crawl"), corpus_root=str(tmp_path / "corpus"))
    from corpus_assets.resources import CorpusStoreResource

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DUMP_DIM, [bad, "CC-MAIN-2024-10"])
        sensor = defs.get_sensor_def("dedup_order_sensor")
        ctx = dg.build_sensor_context(instance=instance, resources={"corpus_store": CorpusStoreResource(root=str(tmp_path / "corpus"))})
        result = sensor(ctx)
        assert isinstance(result, dg.SkipReason)
        assert "CC-MAIN-2024-10" in result.skip_message
    assert "dump partition skipped" in capfd.readouterr().err

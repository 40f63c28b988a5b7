"""Names that must not escape the store (issue 10, items 9 and 10): partition folders built
from dump names, and corpus roots that look like URLs."""

from __future__ import annotations

import dagster as dg
import pytest

from corpus_assets.partitions import InvalidDumpName, validate_dump_name
from corpus_assets.stages import documents_path, run_document_stage
from corpus_assets.storage import CorpusStore, is_s3_uri

HOSTILE_COMPONENTS = ["..", ".", "", " CC-MAIN-2024-10", "CC-MAIN-2024-10 ", "a\nb", "a\x00b", "a\\b"]


@pytest.mark.parametrize("dump", HOSTILE_COMPONENTS + ["../../../escape_dump", "/etc"])
def test_the_store_refuses_paths_that_leave_or_alias_a_folder(tmp_path, dump):
    root = tmp_path / "corpus"
    store = CorpusStore(str(root))
    rel = f"rw_raw/{dump}/000/documents.parquet"
    with pytest.raises(ValueError, match="path"):
        with store.table_writer(rel) as w:
            w.write({"a": 1})
    with pytest.raises(ValueError, match="path"):
        store.write_json(f"rw_raw/{dump}/000/stats.json", {})
    with pytest.raises(ValueError, match="path"):
        store.exists(rel)
    with pytest.raises(ValueError, match="path"):
        with store.publish_partition(f"rw_raw/{dump}/000"):
            pass
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == []


def test_a_stage_with_a_bad_dump_writes_nothing(tmp_path):
    store = CorpusStore(str(tmp_path / "corpus"))
    with pytest.raises(ValueError, match="path"):
        run_document_stage(store, "rw_raw", "../../../escape_dump", "000", iter([{"doc_id": "a"}]), [])
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.parametrize("name", ["CC-MAIN-2024-10", "CC-MAIN-2013-20", "LAB-crawl_2024.1", "mydump"])
def test_good_dump_names(name):
    validate_dump_name(name)


@pytest.mark.parametrize("name", ["..", ".", "", "a|b", " CC-MAIN-2024-10", "CC-MAIN-2024-10 ", "a/b", "-x",
                                  "CC-MAIN-2024-1", "CC-MAIN-24-10", "x" * 101, "a\tb", "dump name"])
def test_bad_dump_names(name):
    with pytest.raises(InvalidDumpName, match="dump name"):
        validate_dump_name(name)


def test_an_asset_refuses_a_bad_partition_key_before_writing(tmp_path, fixture_crawl):
    from corpus_assets.definitions import build_definitions
    from corpus_assets.partitions import DUMP_DIM

    corpus = tmp_path / "corpus"
    defs = build_definitions(corpus_root=str(corpus), crawl_root=str(fixture_crawl))
    bad = "../../../escape_dump"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DUMP_DIM, [bad])
        for selection, key in ((["raw_documents"], f"{bad}|000"), (["crawl_manifest"], bad)):
            result = dg.materialize(defs.assets, selection=selection, partition_key=key, instance=instance,
                                    resources=defs.resources, raise_on_error=False)
            assert not result.success
            failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
            assert "dump name" in failure.event_specific_data.error.to_string()
    assert not corpus.exists() or not [p for p in corpus.rglob("*") if p.is_file()]
    assert not (tmp_path.parent / "escape_dump").exists()


# -- 10. roots -------------------------------------------------------------------------------

def test_s3_scheme_is_case_insensitive(s3_client):
    s3_client.create_bucket(Bucket="upper-case-root")
    store = CorpusStore("S3://upper-case-root/prefix", s3_client=s3_client)
    store.write_json("a/b.json", {"x": 1})
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket="upper-case-root")["Contents"]]
    assert keys == ["prefix/a/b.json"]
    assert store.uri("a/b.json") == "s3://upper-case-root/prefix/a/b.json"
    assert is_s3_uri("S3://x") and is_s3_uri("s3://x") and not is_s3_uri("s3x/y")


@pytest.mark.parametrize("root", ["gs://bucket/x", "hdfs://nn/x", "https://example.org/x", "s3a://b/x",
                                  "file://otherhost/x", "s3://", "S3:///x", "ftp:/x"])
def test_unknown_or_malformed_url_roots_are_refused(tmp_path, monkeypatch, root):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="root"):
        CorpusStore(root)
    assert list(tmp_path.iterdir()) == []


def test_file_urls_are_local_folders(tmp_path):
    for root in (f"file://{tmp_path}/a", f"FILE://{tmp_path}/a", f"file://localhost{tmp_path}/a"):
        store = CorpusStore(root)
        store.write_json("x.json", {"ok": True})
        assert (tmp_path / "a").is_dir()
        assert store.read_json("x.json") == {"ok": True}


def test_plain_folders_with_a_colon_are_still_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = CorpusStore("./data:v2")
    store.write_json("x.json", {})
    assert (tmp_path / "data:v2" / "x.json").is_file()


def test_a_write_to_documents_path_lands_inside_the_root(tmp_path):
    store = CorpusStore(str(tmp_path / "c"))
    run_document_stage(store, "rw_raw", "CC-MAIN-2024-10", "000", iter([]), [], baseline_docs=0)
    assert store.exists(documents_path("rw_raw", "CC-MAIN-2024-10", "000"))

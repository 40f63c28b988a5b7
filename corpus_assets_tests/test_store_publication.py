"""A partition is published as a whole (issue 10, items 12, 13 and 7).

A partition's files become visible together, through one small pointer written last; a
re-run that dies between its writes (an exception, a kill, a failed S3 upload) leaves the
old partition readable and consistent; readers refuse a partition whose parts disagree;
leftovers of interrupted writes are cleaned by the next run; published files get the
process umask's mode; an empty table keeps a schema a dataset scan can use.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from corpus_assets.stages import (
    LINEAGE_COLUMNS,
    documents_path,
    load_report,
    removed_path,
    run_document_stage,
    stats_path,
    verify_conservation,
)
from corpus_assets.steps.base import Step, StepErrorLimitExceeded
from corpus_assets.storage import POINTER_NAME, CorpusStore, PartitionIntegrityError
from corpus_assets_tests.test_storage import store  # noqa: F401  (the local + S3 store fixture)

REPO = Path(__file__).resolve().parent.parent
DUMP, SHARD = "CC-MAIN-2024-10", "000"
PARTITION = f"rw_raw/{DUMP}/{SHARD}"


class DropOdd(Step):
    """Removes documents whose number is odd (or every document, with ``drop_all``)."""

    name = "drop_odd"

    def __init__(self, drop_all: bool = False):
        self.drop_all = drop_all

    def apply(self, doc):
        return "odd" if self.drop_all or doc["n"] % 2 else None


def _docs(n: int, shard: str = SHARD) -> list[dict]:
    return [{"doc_id": f"{shard}-{i}", "url": f"https://e.x/{shard}/{i}", "n": i, "text": "t" * i,
             "dump": DUMP, "shard": shard, "warc_path": "w.warc.gz", "warc_offset": i,
             "warc_record_id": f"<urn:{i}>", "warc_date": "2024-01-01"} for i in range(n)]


def _run(store, n: int, shard: str = SHARD, **kwargs):
    return run_document_stage(store, "rw_raw", DUMP, shard, iter(_docs(n, shard)), [DropOdd(**kwargs)])


def _state(store, shard: str = SHARD) -> tuple:
    """What a reader sees: the report's figures and the rows of both tables."""
    report = load_report(store, "rw_raw", DUMP, shard)
    kept = [r["doc_id"] for r in store.iter_rows(documents_path("rw_raw", DUMP, shard))]
    removed = [r["doc_id"] for r in store.iter_rows(removed_path("rw_raw", DUMP, shard))]
    return report.docs_in, report.docs_out, kept, removed


# -- 12. atomic publication ---------------------------------------------------------------

def test_a_rerun_that_fails_after_its_tables_leaves_the_old_partition(store, monkeypatch):
    _run(store, 10)
    before = _state(store)
    assert before[:2] == (10, 5) and len(before[2]) == 5 and len(before[3]) == 5

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed between the tables and stats.json")

    monkeypatch.setattr(store, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(store, 30)
    monkeypatch.undo()
    assert _state(store) == before, "readers see the old, complete partition"
    assert verify_conservation(store, "rw_raw", DUMP, SHARD, None)[0]
    # Nothing of the dead run is left in the partition's folder.
    assert _only_published_objects(store)


def _only_published_objects(store) -> bool:
    pointer = store.read_pointer(PARTITION)
    expected = sorted(f"{PARTITION}/{n}" for n in [POINTER_NAME] + [f["object"] for f in pointer["files"].values()])
    return store.list(PARTITION, physical=True) == expected


def test_a_rerun_that_fails_after_its_first_table_leaves_the_old_partition(store):
    _run(store, 10)
    before = _state(store)

    class Boom(Step):
        name = "boom"

        def apply(self, doc):
            # One raising document is only a step_error removal; a step that breaks for
            # good (every document from the 25th on) fails the stage.
            if doc["n"] >= 25:
                raise RuntimeError("step crashed after the ledger had rows")
            return "odd" if doc["n"] % 2 else None

    with pytest.raises(StepErrorLimitExceeded):
        run_document_stage(store, "rw_raw", DUMP, SHARD, iter(_docs(30)), [Boom()])
    assert _state(store) == before


def test_a_rerun_killed_after_its_first_file_leaves_the_old_partition(store, monkeypatch):
    _run(store, 10)
    before = _state(store)
    objects_before = store.list(PARTITION, physical=True)
    put, calls = store._backend.put, []

    def put_then_die(local_tmp, rel):
        if rel.endswith(".claim"):  # a publication's claim on its objects, not an object
            return put(local_tmp, rel)
        calls.append(rel)
        if len(calls) == 2:
            os.unlink(local_tmp)
            raise KeyboardInterrupt("killed after the first file was stored")
        return put(local_tmp, rel)

    monkeypatch.setattr(store._backend, "put", put_then_die)
    with pytest.raises(KeyboardInterrupt):
        _run(store, 30)
    monkeypatch.undo()
    assert calls[0].startswith(f"{PARTITION}/documents."), "the new documents table was stored"
    assert _state(store) == before
    assert store.list(PARTITION, physical=True) == objects_before


def test_an_s3_upload_that_fails_mid_partition_leaves_the_old_partition(s3_client):
    bucket = f"corpus-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    store = CorpusStore(f"s3://{bucket}/p", s3_client=s3_client)
    _run(store, 10)
    before = _state(store)
    objects_before = store.list(PARTITION, physical=True)

    class FlakyClient:
        """The real client, except that the second upload of a run fails."""

        def __init__(self, real):
            self.real, self.uploads = real, 0

        def upload_file(self, *args, **kwargs):
            self.uploads += 1
            if self.uploads == 2:
                from botocore.exceptions import ClientError
                raise ClientError({"Error": {"Code": "SlowDown", "Message": "throttled"}}, "PutObject")
            return self.real.upload_file(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.real, name)

    flaky = CorpusStore(f"s3://{bucket}/p", s3_client=FlakyClient(s3_client))
    with pytest.raises(Exception, match="throttled"):
        _run(flaky, 30)
    assert _state(store) == before
    assert verify_conservation(store, "rw_raw", DUMP, SHARD, None)[0]
    assert store.list(PARTITION, physical=True) == objects_before, "the failed run's uploads are removed"


def test_killed_writer_leftovers_are_cleaned_by_the_next_run(tmp_path):
    root = tmp_path / "corpus"
    store = CorpusStore(str(root))
    _run(store, 10)
    before = _state(store)
    # A real kill (no exception handler runs) while the documents table is half written.
    script = textwrap.dedent(f"""
        import os
        from corpus_assets.storage import CorpusStore
        store = CorpusStore({str(root)!r})
        with store.publish_partition({PARTITION!r}):
            with store.table_writer({removed_path("rw_raw", DUMP, SHARD)!r}) as w:
                w.write({{"doc_id": "new"}})
            with store.table_writer({documents_path("rw_raw", DUMP, SHARD)!r}) as w:
                w.write_many([{{"doc_id": str(i)}} for i in range(5000)])
                os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 9
    folder = root / PARTITION
    leftovers = sorted(p.name for p in folder.iterdir())
    assert any(n.startswith(".tmp-") for n in leftovers), leftovers
    assert _state(store) == before, "the killed run changed nothing a reader sees"

    _run(store, 12)
    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.startswith(".tmp-")], names
    pointer = json.loads((folder / POINTER_NAME).read_text())
    assert sorted(names) == sorted([POINTER_NAME] + [f["object"] for f in pointer["files"].values()])
    assert _state(store)[:2] == (12, 6)


def test_two_runs_of_one_partition_at_once_both_finish_and_the_last_commit_wins(tmp_path):
    """The second run's cleanup must not delete the first run's staging file while that
    run is still writing it (its process is alive)."""
    first, second = CorpusStore(str(tmp_path)), CorpusStore(str(tmp_path))
    with first.publish_partition(PARTITION):
        with first.table_writer(documents_path("rw_raw", DUMP, SHARD)) as w:
            w.write_many(_docs(3000))
            _run(second, 10)
            assert _state(second)[:2] == (10, 5)
        first.write_json(stats_path("rw_raw", DUMP, SHARD), {"by": "first"})
    assert first.row_count(documents_path("rw_raw", DUMP, SHARD)) == 3000
    assert first.read_json(stats_path("rw_raw", DUMP, SHARD)) == {"by": "first"}
    assert not first.exists(removed_path("rw_raw", DUMP, SHARD)), "nothing of the other version is mixed in"
    assert _only_published_objects(first)


def test_identical_reruns_keep_the_same_table_objects(tmp_path):
    store = CorpusStore(str(tmp_path))
    _run(store, 10)
    tables = sorted(p.name for p in (tmp_path / PARTITION).glob("*.parquet"))
    _run(store, 10)
    assert sorted(p.name for p in (tmp_path / PARTITION).glob("*.parquet")) == tables


def test_a_tampered_pointer_is_refused(store):
    _run(store, 10)
    pointer = store.read_pointer(PARTITION)
    pointer["files"]["documents.parquet"]["rows"] = 6
    _put_pointer(store, pointer)
    with pytest.raises(PartitionIntegrityError, match=r"documents\.parquet.*6 rows.*5"):
        list(store.iter_rows(documents_path("rw_raw", DUMP, SHARD)))
    with pytest.raises(PartitionIntegrityError):
        verify_conservation(store, "rw_raw", DUMP, SHARD, None)
    _put_raw_pointer(store, b"{not json")
    with pytest.raises(PartitionIntegrityError, match="unreadable"):
        store.exists(documents_path("rw_raw", DUMP, SHARD))


def test_a_tampered_stats_file_is_refused(tmp_path):
    store = CorpusStore(str(tmp_path))
    _run(store, 10)
    pointer = store.read_pointer(PARTITION)
    stats_file = tmp_path / PARTITION / pointer["files"]["stats.json"]["object"]
    text = stats_file.read_text()
    # Same length, other figure: only the content check can tell.
    stats_file.write_text(text.replace('"docs_out": 5', '"docs_out": 4', 1))
    with pytest.raises(PartitionIntegrityError, match="stats.json"):
        load_report(store, "rw_raw", DUMP, SHARD)


def test_stats_that_disagree_with_the_tables_are_refused(store):
    """A writer bug: figures in stats.json that the tables do not hold."""
    _run(store, 10)
    report = store.read_json(stats_path("rw_raw", DUMP, SHARD))
    report["steps"][0]["docs_out"] = 6
    report["steps"][0]["docs_in"] = 11
    with store.publish_partition(PARTITION):
        with store.table_writer(documents_path("rw_raw", DUMP, SHARD)) as w:
            w.write_many(_docs(5))
        with store.table_writer(removed_path("rw_raw", DUMP, SHARD)) as w:
            w.write_many([{"doc_id": str(i)} for i in range(5)])
        store.write_json(stats_path("rw_raw", DUMP, SHARD), report)
    with pytest.raises(PartitionIntegrityError, match=r"docs_out.*6.*5 rows"):
        load_report(store, "rw_raw", DUMP, SHARD)


def test_a_missing_object_is_refused_clearly(tmp_path):
    store = CorpusStore(str(tmp_path))
    _run(store, 10)
    pointer = store.read_pointer(PARTITION)
    (tmp_path / PARTITION / pointer["files"]["removed.parquet"]["object"]).unlink()
    with pytest.raises(PartitionIntegrityError, match="removed.parquet.*missing"):
        store.read_table(removed_path("rw_raw", DUMP, SHARD))


def test_writes_outside_a_publication_amend_a_published_partition(store):
    _run(store, 10)
    store.write_json(f"{PARTITION}/note.json", {"a": 1})
    assert store.read_json(f"{PARTITION}/note.json") == {"a": 1}
    assert _state(store)[:2] == (10, 5)
    assert sorted(store.list(PARTITION)) == sorted(
        f"{PARTITION}/{n}" for n in ["documents.parquet", "removed.parquet", "stats.json", "note.json"])


def test_reads_of_an_unpublished_folder_still_work(store):
    """Corpora written before publications: plain files, no pointer."""
    with store.table_writer("legacy/CC/000/documents.parquet") as w:
        w.write({"doc_id": "a"})
    assert store.row_count("legacy/CC/000/documents.parquet") == 1
    assert store.read_pointer("legacy/CC/000") is None


def test_nested_or_repeated_publications_are_refused(store):
    with store.publish_partition(PARTITION):
        with pytest.raises(ValueError, match="already"):
            with store.publish_partition(PARTITION):
                pass
        with pytest.raises(ValueError, match="inside"):
            store.write_json(f"{PARTITION}/sub/x.json", {})


def _put_pointer(store, pointer: dict) -> None:
    _put_raw_pointer(store, json.dumps(pointer).encode())


def _put_raw_pointer(store, data: bytes) -> None:
    rel = f"{PARTITION}/{POINTER_NAME}"
    if store.root.startswith("s3://"):
        backend = store._backend
        backend.client.put_object(Bucket=backend.bucket, Key=backend._key(rel), Body=data)
    else:
        (Path(store.root) / rel).write_bytes(data)


# -- 13. file modes --------------------------------------------------------------------------

def test_published_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        store = CorpusStore(str(tmp_path))
        _run(store, 4)
        with store.table_writer("plain/x.parquet") as w:
            w.write({"a": 1})
        store.write_json("plain/y.json", {})
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 6
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


# -- 7. empty tables keep a schema ----------------------------------------------------------

def test_an_empty_partition_keeps_a_schema_a_dataset_scan_can_use(tmp_path):
    store = CorpusStore(str(tmp_path))
    upstream = "raw_documents"
    for shard, n in (("000", 4), ("001", 6)):
        with store.publish_partition(f"{upstream}/{DUMP}/{shard}"):
            with store.table_writer(documents_path(upstream, DUMP, shard)) as w:
                w.write_many(_docs(n, shard))
    # Shard 000 loses every document; its schema is inferred (no schema given).
    run_document_stage(store, "rw_raw", DUMP, "000", store.iter_rows(documents_path(upstream, DUMP, "000")),
                       [DropOdd(drop_all=True)])
    run_document_stage(store, "rw_raw", DUMP, "001", store.iter_rows(documents_path(upstream, DUMP, "001")),
                       [DropOdd()])
    empty = store.read_table(documents_path("rw_raw", DUMP, "000"))
    assert empty.num_rows == 0
    assert set(LINEAGE_COLUMNS) <= set(empty.schema.names)
    assert empty.schema.field("warc_offset").type == pa.int64()
    files = store.published_paths("rw_raw", "documents.parquet")
    assert [Path(f).parent.name for f in files] == ["000", "001"], "the empty shard comes first"
    table = ds.dataset(files, format="parquet").to_table(columns=["doc_id", "url", "n"])
    assert table.column("doc_id").to_pylist() == ["001-0", "001-2", "001-4"]


def test_an_empty_table_without_any_known_schema_has_the_lineage_columns(tmp_path):
    store = CorpusStore(str(tmp_path))
    run_document_stage(store, "raw_documents", DUMP, SHARD, iter([]), [DropOdd()])
    table = store.read_table(documents_path("raw_documents", DUMP, SHARD))
    assert table.num_rows == 0 and set(LINEAGE_COLUMNS) <= set(table.schema.names)


# -- the pipeline on S3 ----------------------------------------------------------------------

def test_shard_assets_publish_whole_partitions_on_s3(s3_endpoint, s3_client, fixture_crawl, monkeypatch):
    import dagster as dg

    from corpus_assets.config import load_config
    from corpus_assets.definitions import SHARD_ASSETS, build_definitions
    from corpus_assets.partitions import DUMP_DIM
    from corpus_assets_tests.helpers import SHARD_DOCUMENT_ASSETS, materialize

    monkeypatch.setenv("CORPUS_S3_ENDPOINT_URL", s3_endpoint)
    bucket = f"corpus-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    root = f"S3://{bucket}/corpus"  # the scheme in capitals is still S3 (item 10)
    config = load_config(fixture_crawl / "pipeline.yaml")
    defs = build_definitions(config=config, corpus_root=root, crawl_root=str(fixture_crawl))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DUMP_DIM, [DUMP])
        materialize(defs, instance, ["crawl_manifest"], DUMP)
        materialize(defs, instance, SHARD_ASSETS, f"{DUMP}|{SHARD}", check_count=len(SHARD_DOCUMENT_ASSETS))
    store = CorpusStore(root, s3_client=s3_client)
    for asset in SHARD_DOCUMENT_ASSETS:
        assert store.read_pointer(f"{asset}/{DUMP}/{SHARD}")["files"].keys() == {
            "documents.parquet", "removed.parquet", "stats.json"}
        assert verify_conservation(store, asset, DUMP, SHARD, None if asset == "raw_documents" else
                                   SHARD_DOCUMENT_ASSETS[SHARD_DOCUMENT_ASSETS.index(asset) - 1])[0]
    assert store.read_pointer(f"crawl_manifest/{DUMP}")["files"].keys() == {"manifest.parquet"}
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert all(k.startswith("corpus/") for k in keys) and not any("/.tmp-" in k for k in keys)

"""The corpus store: same behaviour on a local folder and on a real S3 server."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from corpus_assets.storage import ROW_GROUP_ROWS, CorpusStore


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return CorpusStore(str(tmp_path / "corpus"))
    client = request.getfixturevalue("s3_client")
    bucket = f"corpus-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    return CorpusStore(f"s3://{bucket}/prefix", s3_client=client)


def test_table_round_trip_streams_in_batches(store):
    rows = [{"doc_id": f"d{i}", "text": "x" * (i % 7), "n": i} for i in range(ROW_GROUP_ROWS * 2 + 5)]
    with store.table_writer("a/CC/000/documents.parquet") as w:
        w.write_many(rows)
    assert store.exists("a/CC/000/documents.parquet")
    assert store.row_count("a/CC/000/documents.parquet") == len(rows)
    assert list(store.iter_rows("a/CC/000/documents.parquet")) == rows
    assert [r["n"] for r in store.iter_rows("a/CC/000/documents.parquet", columns=["n", "absent"])] == list(range(len(rows)))
    assert store.list("a/") == ["a/CC/000/documents.parquet"]


def test_failed_write_publishes_nothing_and_keeps_the_old_version(store):
    rel = "a/x.parquet"
    with store.table_writer(rel) as w:
        w.write({"v": 1})
    with pytest.raises(RuntimeError):
        with store.table_writer(rel) as w:
            w.write({"v": 2})
            raise RuntimeError("killed mid-write")
    assert [r["v"] for r in store.iter_rows(rel)] == [1]
    assert store.list("a/") == [rel], "no temporary file is left behind"


def test_empty_table_keeps_its_schema(store):
    schema = pa.schema([("doc_id", pa.string()), ("n", pa.int64())])
    with store.table_writer("e.parquet", schema):
        pass
    assert store.row_count("e.parquet") == 0
    assert store.read_table("e.parquet").schema == schema


def test_json_and_missing_artifacts(store):
    store.write_json("s/stats.json", {"b": 2, "a": [1]})
    assert store.read_json("s/stats.json") == {"a": [1], "b": 2}
    assert not store.exists("nope.parquet")
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        list(store.iter_rows("nope.parquet"))


def test_local_writes_are_byte_identical_for_identical_input(tmp_path):
    store = CorpusStore(str(tmp_path))
    rows = [{"doc_id": str(i), "text": "hello " * i} for i in range(50)]
    for name in ("one.parquet", "two.parquet"):
        with store.table_writer(name) as w:
            w.write_many(rows)
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "two.parquet").read_bytes()

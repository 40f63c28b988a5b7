"""A tester's attacks on the corpus store (issue: store, second round).

Two runs of one partition at once; an object corrupted without changing its size; dump
names with a trailing newline; S3 staging leftovers of killed runs; partitions swapped
between folders; a deleted pointer; roots with blank edges or bad bucket names.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from corpus_assets.partitions import dump_name_problem
from corpus_assets.storage import POINTER_NAME, CorpusStore, PartitionIntegrityError, parse_root

REPO = Path(__file__).resolve().parent.parent
FOLDER = "a/D/000"
SCHEMA = pa.schema([("doc_id", pa.string())])


def _publish(store: CorpusStore, folder: str, rows: int, tag: str) -> None:
    with store.publish_partition(folder):
        with store.table_writer(f"{folder}/documents.parquet", SCHEMA) as writer:
            writer.write_many([{"doc_id": f"{tag}-{j}"} for j in range(rows)])
        store.write_json(f"{folder}/stats.json", {"tag": tag, "rows": rows})


def _read(store: CorpusStore, folder: str = FOLDER) -> tuple:
    table = store.read_table(f"{folder}/documents.parquet")
    stats = store.read_json(f"{folder}/stats.json")
    return table.num_rows, stats


# -- 1. two publications of one partition at once ----------------------------------------

def _racer(root: str, tag: str, rows: int, barrier, rounds: int, results) -> None:
    store = CorpusStore(root)
    for i in range(rounds):
        barrier.wait()
        try:
            _publish(store, FOLDER, rows, f"{tag}{i}")
            outcome = "ok"
        except PartitionIntegrityError as exc:  # failing loudly is allowed; breaking is not
            outcome = f"failed: {exc}"
        barrier.wait()
        if tag == "A":
            try:
                n, stats = _read(store)
                state = "whole" if n == stats["rows"] else f"MIXED {n} {stats}"
            except Exception as exc:
                state = f"BROKEN {type(exc).__name__}: {exc}"
            results.put((i, state))
        results.put((tag, i, outcome))
        barrier.wait()


def test_two_publications_at_once_always_leave_a_whole_partition(tmp_path):
    rounds = 25
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(str(tmp_path), tag, rows, barrier, rounds, results))
             for tag, rows in (("A", 5), ("B", 7))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    out = [results.get(timeout=5) for _ in range(3 * rounds)]
    states = [r[1] for r in out if len(r) == 2]
    assert states and all(s == "whole" for s in states), [s for s in states if s != "whole"][:3]
    failed = [r for r in out if len(r) == 3 and r[2] != "ok"]
    assert not failed, failed[:3]  # both writers succeed: the last pointer wins
    # Two commits at once may leave the loser's objects (each protected the other's while
    # it ran); the next publication removes them.
    store = CorpusStore(str(tmp_path))
    _publish(store, FOLDER, 3, "after")
    pointer = store.read_pointer(FOLDER)
    names = sorted(os.listdir(tmp_path / FOLDER))
    assert names == sorted([POINTER_NAME] + [e["object"] for e in pointer["files"].values()])


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_live_writers_objects_survive_another_publication(tmp_path, kind, request):
    """The interleaving of the report, made deterministic: B has stored its objects
    when A commits and cleans; B commits afterwards and its partition is whole."""
    if kind == "s3":
        client = request.getfixturevalue("s3_client")
        bucket = f"corpus-{uuid.uuid4().hex[:8]}"
        client.create_bucket(Bucket=bucket)
        a, b = (CorpusStore(f"s3://{bucket}/p", s3_client=client) for _ in range(2))
    else:
        a, b = CorpusStore(str(tmp_path)), CorpusStore(str(tmp_path))
    with b.publish_partition(FOLDER):
        with b.table_writer(f"{FOLDER}/documents.parquet", SCHEMA) as writer:
            writer.write_many([{"doc_id": f"b-{j}"} for j in range(7)])
        b.write_json(f"{FOLDER}/stats.json", {"tag": "b", "rows": 7})
        _publish(a, FOLDER, 5, "a")  # A's cleanup runs while B is between its writes and its commit
        assert _read(a)[0] == 5
    assert _read(a) == (7, {"tag": "b", "rows": 7})
    _publish(a, FOLDER, 2, "c")  # the next publication cleans what the two left
    objects = sorted(e["object"] for e in a.read_pointer(FOLDER)["files"].values())
    assert sorted(n.rsplit("/", 1)[1] for n in a.list(FOLDER, physical=True)) == sorted([POINTER_NAME] + objects)


# -- 2. a same-size corruption ------------------------------------------------------------

def _corrupt(path: Path, where: float) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))


def _documents_object(root: Path) -> Path:
    return next(p for p in (root / FOLDER).iterdir() if p.name.startswith("documents."))


@pytest.mark.parametrize("where", [0.3, 0.97])
def test_a_corrupt_object_is_refused_and_a_rerun_repairs_it(tmp_path, where):
    store = CorpusStore(str(tmp_path))
    _publish(store, FOLDER, 300, "x")
    _corrupt(_documents_object(tmp_path), where)
    with pytest.raises(PartitionIntegrityError, match="re-materialize"):
        store.read_table(f"{FOLDER}/documents.parquet")
    with pytest.raises(PartitionIntegrityError):
        list(store.iter_rows(f"{FOLDER}/documents.parquet"))
    _publish(store, FOLDER, 300, "x")  # identical output: the object is rewritten
    assert _read(store) == (300, {"tag": "x", "rows": 300})


# -- 3. dump names ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["CC-MAIN-2024-10\n", "lab\n", "CC-MAIN-9999-99", "CC-MAIN-2024-00",
                                  "CC-MAIN-2024-54", "CC-MAIN-2012-10", "CC-MAIN-2100-01"])
def test_bad_dump_names_are_refused(name):
    assert dump_name_problem(name)


@pytest.mark.parametrize("name", ["CC-MAIN-2024-10", "CC-MAIN-2013-20", "CC-MAIN-2020-53", "CC-MAIN-2099-01", "lab1"])
def test_good_dump_names_pass(name):
    assert dump_name_problem(name) is None


# -- 5. S3 staging in the temp folder -----------------------------------------------------------

def test_s3_staging_leftovers_of_a_killed_run_are_cleaned(s3_client, tmp_path, monkeypatch):
    bucket = f"corpus-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    store = CorpusStore(f"s3://{bucket}/p", s3_client=s3_client)
    _publish(store, FOLDER, 5, "x")
    staging = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not staging, staging
    # A dead process of this host left a staging file and a read copy.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    folder = tmp_path / "corpus-staging"
    folder.mkdir(exist_ok=True)
    leftovers = [folder / f"{socket.gethostname()}-{dead_pid}-{uuid.uuid4().hex}.parquet",
                 folder / f"{socket.gethostname()}-{dead_pid}-{uuid.uuid4().hex}.json"]
    for path in leftovers:
        path.write_bytes(b"x" * 10)
    live = folder / f"{socket.gethostname()}-{os.getppid()}-{uuid.uuid4().hex}.parquet"
    live.write_bytes(b"live")
    store = CorpusStore(f"s3://{bucket}/p", s3_client=s3_client)
    _publish(store, FOLDER, 6, "y")
    assert _read(store) == (6, {"tag": "y", "rows": 6})
    assert not any(p.exists() for p in leftovers)
    assert live.exists(), "a live process's staging file is left alone"


# -- 6. partitions swapped between folders ------------------------------------------------------

def test_swapped_partition_folders_are_refused(tmp_path):
    store = CorpusStore(str(tmp_path))
    _publish(store, "a/D/000", 3, "zero")
    _publish(store, "a/D/001", 4, "one")
    base = tmp_path / "a" / "D"
    os.rename(base / "000", base / "tmp")
    os.rename(base / "001", base / "000")
    os.rename(base / "tmp", base / "001")
    with pytest.raises(PartitionIntegrityError, match="a/D/001"):
        store.read_table("a/D/000/documents.parquet")
    with pytest.raises(PartitionIntegrityError):
        store.read_json("a/D/001/stats.json")


# -- minor: a deleted pointer, roots --------------------------------------------------------

def test_a_deleted_pointer_is_an_integrity_error_not_an_absent_partition(tmp_path):
    store = CorpusStore(str(tmp_path))
    _publish(store, FOLDER, 3, "x")
    (tmp_path / FOLDER / POINTER_NAME).unlink()
    with pytest.raises(PartitionIntegrityError, match="pointer"):
        store.exists(f"{FOLDER}/documents.parquet")
    with pytest.raises(PartitionIntegrityError, match="pointer"):
        store.list("a")
    with pytest.raises(PartitionIntegrityError, match="pointer"):
        store.read_table(f"{FOLDER}/documents.parquet")


def test_a_first_publication_in_progress_is_not_materialized_yet(tmp_path):
    store, reader = CorpusStore(str(tmp_path)), CorpusStore(str(tmp_path))
    with store.publish_partition(FOLDER):
        with store.table_writer(f"{FOLDER}/documents.parquet", SCHEMA) as writer:
            writer.write({"doc_id": "x"})
        assert not reader.exists(f"{FOLDER}/documents.parquet")
        assert reader.list("a") == []
    assert reader.list("a") == [f"{FOLDER}/documents.parquet"]


@pytest.mark.parametrize("root", [" s3://x", "s3://x ", "s3://b?x", "s3://..", "s3://b\n/x", "s3://ab",
                                  "s3://Bucket", "s3://" + "a" * 64, "\t/tmp/x", "/tmp/x\n"])
def test_bad_roots_are_refused(root):
    with pytest.raises(ValueError):
        parse_root(root)


@pytest.mark.parametrize("root", ["s3://my-bucket.v2/p", "s3://abc", "/tmp/x y", "./name:x"])
def test_good_roots_pass(root):
    parse_root(root)


# -- 4. empty document partitions keep the asset's schema ------------------------------------

def test_empty_shards_have_the_schema_of_non_empty_ones(fixture_crawl, tmp_path, monkeypatch):
    """More shards than WARC files: some shards of every document asset are empty. Each
    must carry the asset's real columns, so a dataset scan that meets it first still finds
    ``text`` (it failed with ``No match for FieldRef.Name(text)``)."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from corpus_assets_tests.helpers import pipeline_run

    monkeypatch.setenv("CORPUS_NUM_SHARDS", "4")
    with pipeline_run(fixture_crawl / "pipeline.yaml", fixture_crawl, tmp_path / "corpus", ["CC-MAIN-2024-10"]) as run:
        store = run[3]
        for asset in ("raw_documents", "rw_raw", "rw_quality_signals", "rw_filtered", "rw_deduped"):
            paths = store.published_paths(asset, "documents.parquet")
            rows = {p: pq.ParquetFile(p).metadata.num_rows for p in paths}
            empty = [p for p in paths if rows[p] == 0]
            full = [p for p in paths if rows[p] > 0]
            assert empty and full, (asset, rows)
            expected = pq.ParquetFile(full[0]).schema_arrow
            for path in empty + full[1:]:
                assert pq.ParquetFile(path).schema_arrow == expected, (asset, path)
            wanted = ["doc_id", "html"] if asset == "raw_documents" else ["doc_id", "text"]
            table = ds.dataset(empty + full, format="parquet").to_table(columns=wanted)
            assert table.num_rows == sum(rows.values())


def test_a_rerun_after_a_umask_change_gives_its_objects_the_new_mode(tmp_path):
    import stat

    old = os.umask(0o077)
    try:
        _publish(CorpusStore(str(tmp_path)), FOLDER, 3, "x")
        os.umask(0o022)
        _publish(CorpusStore(str(tmp_path)), FOLDER, 3, "x")  # identical output
    finally:
        os.umask(old)
    for path in (tmp_path / FOLDER).iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path

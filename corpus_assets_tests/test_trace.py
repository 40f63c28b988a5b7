"""`python -m corpus_assets.trace`: where a document came from and why a URL was dropped,
on the session's sample run (read only)."""

from __future__ import annotations

import json

import pytest

from corpus_assets import trace
from corpus_assets.stages import documents_path, removed_path

D10 = "CC-MAIN-2024-10"


def _root(sample_run) -> str:
    return sample_run.store.root


def test_kept_document_is_traced_to_its_warc_record(sample_run, sample_crawl, capsys):
    row = sample_run.store.read_table(documents_path("rw_deduped", D10, "000"),
                                      columns=["doc_id", "url", "warc_record_id"]).to_pylist()[0]
    result = trace.trace(sample_run.store, row["doc_id"], str(sample_crawl))
    kept = [h["asset"] for h in result["hits"] if h["role"] == "kept"]
    assert kept[:5] == ["raw_documents", "rw_raw", "rw_quality_signals", "rw_filtered", "rw_deduped"]
    assert not [h for h in result["hits"] if h["role"] == "removed"]
    record = result["warc_records"][row["doc_id"]]
    assert record["record_id_matches"] is True and record["warc_record_id"] == row["warc_record_id"]
    assert record["target_uri"] == row["url"] and record["http_status"] == "200"
    assert trace.main([row["doc_id"], "--corpus-root", _root(sample_run), "--crawl-root", str(sample_crawl)]) == 0
    out = capsys.readouterr().out
    assert "kept through" in out and "record id matches" in out and "relative to the crawl root" in out


def test_removed_url_names_the_step_and_reason(sample_run, sample_crawl, capsys):
    ledger = sample_run.store.read_table(removed_path("rw_raw", D10, "000")).to_pylist()
    gone = next(r for r in ledger if r["reason"] == "language_not_selected")
    assert trace.main([gone["url"], "--corpus-root", _root(sample_run), "--crawl-root", str(sample_crawl),
                       "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "url"
    removed = [h for h in result["hits"] if h["role"] == "removed" and h["row"]["doc_id"] == gone["doc_id"]]
    assert [(h["asset"], h["row"]["step"], h["row"]["reason"]) for h in removed] == [
        ("rw_raw", "language_id", "language_not_selected")]
    assert removed[0]["row"]["detail"] == gone["detail"]
    # it never reached the assets after the one that removed it
    assert not [h for h in result["hits"] if h["row"].get("doc_id") == gone["doc_id"] and h["asset"] == "rw_filtered"]
    assert result["warc_records"][gone["doc_id"]]["record_id_matches"] is True
    trace.main([gone["url"], "--corpus-root", _root(sample_run), "--no-warc"])
    assert "dropped at rw_raw, step language_id: language_not_selected" in capsys.readouterr().out


def test_unknown_id_is_not_found(sample_run, capsys):
    assert trace.main(["0123456789abcdef01234567", "--corpus-root", _root(sample_run), "--no-warc"]) == 1
    assert "no doc_id like this" in capsys.readouterr().out


@pytest.mark.parametrize("query", ["", "   ", "a\x00b", "x\ny", "\x1b[31m", "u" * 9000])
def test_hostile_input_is_refused_with_a_message(sample_run, query, capsys):
    assert trace.main([query, "--corpus-root", _root(sample_run)]) == 2
    assert "trace:" in capsys.readouterr().err


def test_a_root_that_is_no_store_is_refused(capsys):
    assert trace.main(["abc", "--corpus-root", "gs://bucket/x", "--no-warc"]) == 2
    assert "trace:" in capsys.readouterr().err


@pytest.mark.parametrize("query", ["*", "%", "../../etc/passwd", "' OR 1=1 --", "http://", "doc_id", "\u202e"])
def test_odd_but_printable_input_matches_nothing(sample_run, query):
    assert trace.trace(sample_run.store, query)["hits"] == []


def test_warc_read_back_of_a_bad_place_says_why(sample_crawl):
    assert "error" in trace.read_warc_record(str(sample_crawl), "crawl-data/none.warc.gz", 0)
    assert "error" in trace.read_warc_record(str(sample_crawl), "../../etc/passwd", 0)
    assert "error" in trace.read_warc_record(str(sample_crawl), "x.warc.gz", -1)


def test_the_documented_glob_reads_exactly_the_published_documents(sample_run, tmp_path):
    """docs/reading_output.md: the glob skips ledgers, counters and pointers, and names the
    files the pointers name; a reader without it trips over them."""
    import glob
    import os

    datasets = pytest.importorskip("datasets")
    root = sample_run.store.root
    found = sorted(glob.glob(os.path.join(root, "rw_deduped/*/*/documents.*.parquet")))
    assert found == sorted(sample_run.store.published_paths("rw_deduped", "documents.parquet"))
    ds = datasets.load_dataset("parquet", data_files=os.path.join(root, "rw_deduped/*/*/documents.*.parquet"),
                               split="train", cache_dir=str(tmp_path))
    expected = sum(sample_run.store.row_count(f"rw_deduped/{d}/{s}/documents.parquet")
                   for d in ("CC-MAIN-2024-10", "CC-MAIN-2024-18") for s in ("000", "001", "002", "003"))
    assert ds.num_rows == expected > 0 and {"text", "doc_id", "warc_path"} <= set(ds.column_names)
    with pytest.raises(Exception):
        datasets.load_dataset("parquet", data_dir=os.path.join(root, "rw_deduped"), split="train",
                              cache_dir=str(tmp_path / "no_glob"))


def test_datatrove_reads_the_corpus_with_the_documented_glob(sample_run):
    readers = pytest.importorskip("datatrove.pipeline.readers")
    import os

    folder = os.path.join(sample_run.store.root, "rw_deduped")
    docs = list(readers.ParquetReader(folder, glob_pattern="*/*/documents.*.parquet", id_key="doc_id")())
    ids = {d.id for d in docs}
    expected = set()
    for path in sample_run.store.published_paths("rw_deduped", "documents.parquet"):
        import pyarrow.parquet as pq

        expected |= set(pq.read_table(path, columns=["doc_id"]).column("doc_id").to_pylist())
    assert ids == expected and len(docs) == len(expected) > 0
    assert all(d.metadata.get("warc_path", "").startswith("crawl-data/") for d in docs)
    with pytest.raises(Exception):  # without the glob it opens _partition.json as Parquet
        list(readers.ParquetReader(folder, id_key="doc_id")())

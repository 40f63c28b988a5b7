"""`corpus_assets.trace` on the edges a breaker found (issue 16): a record at offset 0, a
damaged partition, a root that holds no store. Small stores built here, no pipeline run."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest

from corpus_assets import trace


def _one_record_warc(root, rel="crawl-data/X/a.warc.gz"):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    path = root / rel
    path.parent.mkdir(parents=True)
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        rec = writer.create_warc_record(
            "https://ex.org/", "response", payload=io.BytesIO(b"<html>hi</html>"),
            http_headers=StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1"))
        writer.write_record(rec)
    return rel, rec.rec_headers.get_header("WARC-Record-ID")


def test_a_record_at_offset_zero_is_read_back(tmp_path, monkeypatch):
    rel, rid = _one_record_warc(tmp_path)
    hit = {"asset": "raw_documents", "partition": "X/000", "file": "f", "role": "kept",
           "row": {"doc_id": "d0", "url": "https://ex.org/", "warc_path": rel, "warc_offset": 0, "warc_record_id": rid}}
    monkeypatch.setattr(trace, "search", lambda store, query: {"hits": [hit], "tables": 1, "skipped": []})
    record = trace.trace(None, "d0", crawl=str(tmp_path))["warc_records"]["d0"]
    assert record.get("record_id_matches") is True and record["target_uri"] == "https://ex.org/"


def test_a_missing_offset_is_said_unless_another_table_has_it(tmp_path, monkeypatch):
    rel, rid = _one_record_warc(tmp_path)
    bare = {"asset": "raw_documents", "partition": "X/000", "file": "f", "role": "kept",
            "row": {"doc_id": "d0", "warc_path": rel, "warc_offset": None}}
    monkeypatch.setattr(trace, "search", lambda store, query: {"hits": [bare], "tables": 1, "skipped": []})
    assert "no offset recorded" in trace.trace(None, "d0", crawl=str(tmp_path))["warc_records"]["d0"]["error"]
    full = {**bare, "row": {**bare["row"], "warc_offset": 0, "warc_record_id": rid}}
    monkeypatch.setattr(trace, "search", lambda store, query: {"hits": [bare, full], "tables": 1, "skipped": []})
    assert trace.trace(None, "d0", crawl=str(tmp_path))["warc_records"]["d0"]["record_id_matches"] is True


D10, D18 = "CC-MAIN-2024-10", "CC-MAIN-2024-18"
SCHEMA = pa.schema([("doc_id", pa.string()), ("url", pa.string())])


def _publish(store, folder, ids):
    with store.publish_partition(folder):
        with store.table_writer(f"{folder}/documents.parquet", SCHEMA) as writer:
            writer.write_many([{"doc_id": i, "url": f"https://ex.org/{i}"} for i in ids])


@pytest.fixture
def damaged_store(tmp_path):
    """Two partitions: the queried document's, and one of another dump, then damaged."""
    from corpus_assets.storage import CorpusStore

    store = CorpusStore(str(tmp_path / "corpus"))
    _publish(store, f"rw_raw/{D10}/000", ["d0"])
    _publish(store, f"rw_raw/{D18}/003", ["d9"])
    return store, tmp_path / "corpus" / "rw_raw" / D18 / "003"


def test_a_damaged_table_is_skipped_and_named_not_a_crash(damaged_store, capsys):
    store, bad = damaged_store
    obj = next(p for p in bad.iterdir() if p.suffix == ".parquet")
    data = bytearray(obj.read_bytes())
    data[100:104] = b"XXXX"
    obj.write_bytes(bytes(data))
    assert trace.main(["d0", "--corpus-root", str(store.root),
                       "--no-warc"]) == 0
    captured = capsys.readouterr()
    assert "kept" in captured.out and f"trace: skipped rw_raw/{D18}/003" in captured.err
    # not found, some tables unread: exit 3, not the plain "not found" 1
    assert trace.main(["d9", "--corpus-root", str(store.root), "--no-warc"]) == 3
    assert "could not be searched" in capsys.readouterr().out


def test_an_unreadable_partition_pointer_is_skipped_and_named(damaged_store, capsys):
    store, bad = damaged_store
    (bad / "_partition.json").write_text("{")
    result = trace.trace(store, "https://ex.org/d0")
    assert [h["row"]["doc_id"] for h in result["hits"]] == ["d0"]
    assert [s["file"] for s in result["skipped"]] == [f"rw_raw/{D18}/003"]
    assert trace.main(["d0", "--corpus-root", str(store.root), "--no-warc"]) == 0
    assert "trace: skipped" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["missing", "file", "empty"])
def test_a_root_without_a_store_says_so_exit_2(tmp_path, where, capsys):
    root = tmp_path / "corpus"
    if where == "file":
        root.write_text("not a store")
    elif where == "empty":
        root.mkdir()
    assert trace.main(["3f0f400d6c3da7f7fb033b79", "--corpus-root", str(root), "--no-warc"]) == 2
    captured = capsys.readouterr()
    assert f"no corpus store at {root}" in captured.err and "no doc_id like this" not in captured.out


def test_a_url_not_found_hints_at_exact_matching(damaged_store):
    store, _ = damaged_store
    result = trace.trace(store, "https://ex.org/d0 ")  # stripped: still exact
    assert result["hits"]
    text = trace.format_report(trace.trace(store, "https://EX.org/d0"))
    assert "matched exactly as stored" in text and "%20" in text


def test_a_url_with_a_space_finds_the_record_warcio_stored_with_percent_20(tmp_path):
    from corpus_assets.storage import CorpusStore

    store = CorpusStore(str(tmp_path / "corpus"))
    folder = f"rw_raw/{D10}/000"
    with store.publish_partition(folder):
        with store.table_writer(f"{folder}/documents.parquet", SCHEMA) as writer:
            writer.write_many([{"doc_id": "d1", "url": "https://ex.org/a%20b?x=1"}])
    result = trace.trace(store, "https://ex.org/a b?x=1")
    assert [h["row"]["doc_id"] for h in result["hits"]] == ["d1"]
    assert result["matched_as"] == "https://ex.org/a%20b?x=1"
    assert "matched as https://ex.org/a%20b?x=1" in trace.format_report(result)


def test_a_keepers_cluster_row_of_its_duplicate_is_said_so_and_no_stub_block():
    def hit(asset, role, row):
        return {"asset": asset, "partition": "p", "file": f"{asset}/p/x.parquet", "role": role, "row": row}

    keeper, dup = "3f0f400d6c3da7f7fb033b79", "338a309faf26cc0dbc967e21"
    result = {"query": keeper, "kind": "doc_id", "warc_records": {}, "hits": [
        hit("rw_raw", "kept", {"doc_id": keeper, "url": "https://ex.org/"}),
        hit("duplicate_clusters", "referenced", {"doc_id": dup, "keeper_doc_id": keeper, "keep": False}),
        hit("rw_deduped", "kept", {"doc_id": keeper, "url": "https://ex.org/"})]}
    text = trace.format_report(result)
    assert f"kept in place of its duplicate {dup}" in text and "kept through rw_deduped" in text
    assert f"doc_id {dup}" not in text  # no headless block for the duplicate

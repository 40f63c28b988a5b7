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
    monkeypatch.setattr(trace, "find", lambda store, query: [hit])
    record = trace.trace(None, "d0", crawl=str(tmp_path))["warc_records"]["d0"]
    assert record.get("record_id_matches") is True and record["target_uri"] == "https://ex.org/"


def test_a_missing_offset_is_said_unless_another_table_has_it(tmp_path, monkeypatch):
    rel, rid = _one_record_warc(tmp_path)
    bare = {"asset": "raw_documents", "partition": "X/000", "file": "f", "role": "kept",
            "row": {"doc_id": "d0", "warc_path": rel, "warc_offset": None}}
    monkeypatch.setattr(trace, "find", lambda store, query: [bare])
    assert "no offset recorded" in trace.trace(None, "d0", crawl=str(tmp_path))["warc_records"]["d0"]["error"]
    full = {**bare, "row": {**bare["row"], "warc_offset": 0, "warc_record_id": rid}}
    monkeypatch.setattr(trace, "find", lambda store, query: [bare, full])
    assert trace.trace(None, "d0", crawl=str(tmp_path))["warc_records"]["d0"]["record_id_matches"] is True

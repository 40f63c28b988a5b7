"""The WARC reading layer on real data: counts, lineage, truncated and malformed files,
charset decoding. See corpus_assets/steps/warc.py."""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from collections import Counter
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from corpus_assets.steps.base import run_steps
from corpus_assets.steps.warc import (
    RESPONSE_FIELDS,
    HtmlDecode,
    HtmlDecodeConfig,
    decode_html,
    iter_warc_responses,
    make_doc_id,
)

DUMP_10 = "CC-MAIN-2024-10"
DUMP_18 = "CC-MAIN-2024-18"


class NonSeekable(io.RawIOBase):
    """What an S3 or HTTP body looks like to the reader: read() only."""

    def __init__(self, data: bytes, fail_at: int | None = None):
        self._b = io.BytesIO(data)
        self._fail_at = fail_at

    def readable(self):
        return True

    def seekable(self):
        return False

    def tell(self):
        raise OSError("not tellable")

    def read(self, n=-1):
        if self._fail_at is not None and self._b.tell() >= self._fail_at:
            raise ConnectionResetError("connection reset by peer")
        return self._b.read(n)


def dump_files(sample_crawl: Path, dump: str) -> list[Path]:
    root = sample_crawl / "crawl-data" / dump
    with gzip.open(root / "warc.paths.gz", "rt") as fh:
        rels = [line.strip() for line in fh if line.strip()]
    assert rels, f"empty manifest in {root}"  # it names files relative to the crawl root
    return [sample_crawl / rel for rel in rels]


def read_all(paths: list[Path]) -> list[dict]:
    docs = []
    for path in paths:
        with open(path, "rb") as fh:
            docs.extend(iter_warc_responses(fh, str(path)))
    return docs


def decode_all(docs: list[dict], config: HtmlDecodeConfig | None = None):
    removed = []

    def sink(doc, step, reason, detail):
        removed.append((doc, reason, detail))

    stream, stats = run_steps([HtmlDecode(config)], (dict(d) for d in docs), sink)
    kept = list(stream)
    assert stats[0].check() is None
    return kept, removed, stats[0]


def check_schema(doc: dict) -> None:
    assert set(RESPONSE_FIELDS) <= set(doc)
    for name, missing in RESPONSE_FIELDS.items():
        assert doc[name] is not None, name
        assert type(doc[name]) is type(missing), (name, type(doc[name]))


@pytest.fixture(scope="module")
def dump10(sample_crawl):
    paths = dump_files(sample_crawl, DUMP_10)
    return paths, read_all(paths)


@pytest.fixture(scope="module")
def dump18(sample_crawl):
    paths = dump_files(sample_crawl, DUMP_18)
    return paths, read_all(paths)


# -- the sample crawl ---------------------------------------------------------------------


def test_dump_yields_every_response_and_counts_removals(dump10):
    _, docs = dump10
    assert len(docs) == 759
    for doc in docs:
        check_schema(doc)
        assert doc["read_error"] == ""
        assert doc["body_length"] == len(doc["body"])
        assert doc["url"].startswith(("http://", "https://")) and " " not in doc["url"]
        assert doc["warc_date"].startswith("2024-")

    kept, removed, stats = decode_all(docs)
    reasons = Counter(reason for _, reason, _ in removed)
    assert reasons == {"http_status_not_200": 10, "not_html": 15}
    assert stats.docs_in == 759 and stats.docs_out == 734
    assert Counter(d for _, r, d in removed if r == "http_status_not_200") == {"404": 6, "301": 4}
    assert {d for _, r, d in removed if r == "not_html"} == {"application/pdf", "image/jpeg"}
    for doc in kept:
        assert isinstance(doc["html"], str) and "<" in doc["html"]
        assert "body" not in doc
        assert doc["charset"]
        assert "\ufffd" not in doc["html"][:2000] or doc["charset"] == "utf-8"
    # The sample's pages are German, English, French, Polish...: check a few decoded
    # non-ASCII letters really came out (a wrong charset would give mojibake instead).
    text = "".join(d["html"] for d in kept)
    for letter in "äöüßéàłż":
        assert letter in text
    charsets = Counter(d["charset"] for d in kept)
    assert charsets["utf-8"] > 600 and charsets["cp1252"] > 0


def test_doc_ids_are_unique_and_stable(dump10):
    paths, docs = dump10
    ids = [d["doc_id"] for d in docs]
    assert len(set(ids)) == len(ids)
    for doc in docs:
        # The physical record: file, offset and WARC-Record-ID (issue 12: an id alone may repeat).
        key = f"{doc['warc_path']}@{doc['warc_offset']} {doc['warc_record_id']}"
        assert doc["doc_id"] == hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
    assert [d["doc_id"] for d in read_all(paths)] == ids


def test_offset_leads_back_to_the_record(dump10):
    _, docs = dump10
    sample = docs[::40] + [d for d in docs if d["http_status"] != 200]
    for doc in sample:
        with open(doc["warc_path"], "rb") as fh:
            fh.seek(doc["warc_offset"])
            # Independently, with plain warcio: the record at the offset is this one.
            record = next(iter(ArchiveIterator(fh)))
            assert record.rec_headers.get_header("WARC-Record-ID") == doc["warc_record_id"]
            assert record.rec_headers.get_header("WARC-Type") == "response"
            fh.seek(doc["warc_offset"])
            again = next(iter_warc_responses(fh, doc["warc_path"]))
        assert again["doc_id"] == doc["doc_id"]
        assert again["body"] == doc["body"]
        assert again["warc_offset"] == doc["warc_offset"]


def test_truncated_file_counts_one_loss_and_keeps_what_is_before_the_cut(dump18):
    paths, docs = dump18
    errors = [d for d in docs if d["read_error"]]
    good = [d for d in docs if not d["read_error"]]
    # README: 464 of the 530 responses written are readable before the cut. The 464th
    # is the record the cut goes through (61% of its bytes there): it is the counted loss.
    assert len(docs) == 464
    assert len(errors) == 1 and len(good) == 463
    (err,) = errors
    check_schema(err)
    assert err["read_error"].startswith("truncated_file: ")
    assert err["warc_path"] == str(paths[-1])
    assert err["url"].startswith("https://") and err["warc_record_id"]
    assert err["doc_id"] == make_doc_id(f"{paths[-1]}@{err['warc_offset']}")
    assert err["body"] == b"" and err["http_status"] == -1
    # Every record before the cut is whole, and the cut record starts where it says.
    last_file_docs = [d for d in good if d["warc_path"] == str(paths[-1])]
    assert len(last_file_docs) == 64
    assert max(d["warc_offset"] for d in last_file_docs) < err["warc_offset"]
    with open(paths[-1], "rb") as fh:
        fh.seek(err["warc_offset"])
        assert fh.read(3) == b"\x1f\x8b\x08"
    # The page whose target URI has the scheme "xhttps" (a typo in the source data)
    # still has its HTTP response parsed; warcio's own parser would skip it.
    odd = [d for d in good if d["url"].startswith("xhttps://")]
    assert len(odd) == 1 and odd[0]["http_status"] == 200

    kept, removed, stats = decode_all(docs)
    assert Counter(r for _, r, _ in removed) == {"read_error": 1}
    assert removed[0][2].startswith("truncated_file")
    assert stats.docs_out == 463


def test_truncation_anywhere_in_a_real_file_is_one_counted_loss(sample_crawl):
    path = dump_files(sample_crawl, DUMP_10)[3]
    data = path.read_bytes()
    full = [d["doc_id"] for d in iter_warc_responses(io.BytesIO(data), str(path))]
    for cut in range(len(data) // 13, len(data) - 1000, len(data) // 13):
        docs = list(iter_warc_responses(io.BytesIO(data[:cut]), str(path)))
        errors = [d["read_error"] for d in docs if d["read_error"]]
        good = [d["doc_id"] for d in docs if not d["read_error"]]
        assert good == full[: len(good)]
        assert len(errors) == 1 and errors[0].startswith("truncated_file"), (cut, errors)


def test_corrupt_gzip_member_is_one_loss_and_reading_resumes(sample_crawl):
    path = dump_files(sample_crawl, DUMP_10)[3]
    data = bytearray(path.read_bytes())
    full = [d["doc_id"] for d in iter_warc_responses(io.BytesIO(bytes(data)), str(path))]
    for pos in (18_666, 1_919_996, 3_737_178):  # inside three response records
        broken = bytearray(data)
        for k in range(20):
            broken[pos + k] ^= 0xFF
        # A non-seekable stream, as from S3: resuming needs no seek.
        docs = list(iter_warc_responses(NonSeekable(bytes(broken)), str(path)))
        errors = [d for d in docs if d["read_error"]]
        good = [d["doc_id"] for d in docs if not d["read_error"]]
        assert len(errors) == 1 and errors[0]["read_error"].startswith("corrupt_gzip"), errors
        assert len(good) == len(full) - 1 and set(good) < set(full)
        assert errors[0]["warc_offset"] < pos


def test_garbage_between_records_is_one_loss(sample_crawl):
    path = dump_files(sample_crawl, DUMP_10)[0]
    data = path.read_bytes()
    at = data.find(b"\x1f\x8b\x08", len(data) // 2)
    docs = list(iter_warc_responses(io.BytesIO(data[:at] + b"not a record\r\n" * 50 + data[at:]), "x"))
    errors = [d["read_error"] for d in docs if d["read_error"]]
    assert len(errors) == 1 and errors[0].startswith("corrupt_record")
    assert len(docs) - 1 == 190  # nothing lost: the garbage held no record


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "not_warc"),
        (b"<html><body>not a warc</body></html>\n" * 20, "not_warc"),
        (gzip.compress(b"just some text\n" * 50), "not_warc"),
        (bytes(range(256)) * 20, "not_warc"),
    ],
)
def test_files_that_are_not_warc_are_one_loss(data, code):
    docs = list(iter_warc_responses(io.BytesIO(data), "bogus.warc.gz"))
    assert len(docs) == 1
    check_schema(docs[0])
    assert docs[0]["read_error"].startswith(code + ": ")
    assert docs[0]["doc_id"] == make_doc_id("bogus.warc.gz@0")


def test_errors_of_the_stream_itself_propagate(sample_crawl):
    # A dropped connection is not bad data: the partition must fail and be retried,
    # not be recorded as "file truncated".
    path = dump_files(sample_crawl, DUMP_10)[0]
    with pytest.raises(ConnectionResetError):
        list(iter_warc_responses(NonSeekable(path.read_bytes(), fail_at=100_000), str(path)))


def test_payloads_above_the_memory_cap_are_not_held(sample_crawl):
    path = dump_files(sample_crawl, DUMP_10)[0]
    with open(path, "rb") as fh:
        docs = list(iter_warc_responses(fh, str(path), max_payload_bytes=100_000))
    big = [d for d in docs if d["body_length"] > 100_000]
    assert big and all(d["body"] == b"" for d in big)
    kept, removed, _ = decode_all(big, HtmlDecodeConfig(max_body_bytes=10_000_000))
    assert not kept and {r for _, r, _ in removed} <= {"oversized", "not_html", "http_status_not_200"}


# -- malformed and unusual files ----------------------------------------------------------

# file -> (responses read whole, read errors, first url)
EDGE_CASES = {
    "example-bad-non-chunked.warc.gz": (1, 0, "http://example.com/"),
    "example-bad.warc.gz.bad": (2, 0, "http://example.com?example=1"),
    "example-iana.org-chunked.warc": (1, 0, "http://www.iana.org/"),
    "example-resource.warc.gz": (0, 0, None),
    "example-space-in-target-uri.warc.gz": (0, 0, None),
    "example-trunc.warc": (1, 0, "http://example.com/"),
    "example-wget-bad-target-uri.warc.gz": (1, 0, "http://example.com/"),
    "example-wrong-chunks.warc.gz": (1, 0, "http://example.com/"),
    "example.arc.gz": (1, 0, "http://example.com/"),
    "example.warc.gz": (1, 0, "http://example.com/"),
}


def test_every_edge_case_file_is_read(edge_case_warcs):
    names = sorted(p.name for p in edge_case_warcs.iterdir())
    assert set(EDGE_CASES) <= set(names)
    for name in names:
        data = (edge_case_warcs / name).read_bytes()
        docs = list(iter_warc_responses(io.BytesIO(data), name))
        # The same through a non-seekable stream.
        assert [(d["doc_id"], d["body"]) for d in iter_warc_responses(NonSeekable(data), name)] \
            == [(d["doc_id"], d["body"]) for d in docs]
        for doc in docs:
            check_schema(doc)
        if name not in EDGE_CASES:
            continue
        n_good, n_err, url = EDGE_CASES[name]
        good = [d for d in docs if not d["read_error"]]
        assert (len(good), len(docs) - len(good)) == (n_good, n_err), name
        if url:
            assert good[0]["url"] == url
        for doc in good:
            assert doc["http_status"] in (200, 302)
            if doc["http_status"] == 200:
                # Chunked, gzip Content-Encoding, ARC: all give the plain page.
                assert doc["body"].lstrip().lower().startswith(b"<!doctype html"), name
                assert doc["content_type"] == "text/html"
        kept, removed, _ = decode_all(docs)
        for doc in kept:
            assert "Example Domain" in doc["html"] or "IANA" in doc["html"]


def test_edge_case_details(edge_case_warcs):
    def read(name):
        return list(iter_warc_responses(io.BytesIO((edge_case_warcs / name).read_bytes()), name))

    (arc,) = read("example.arc.gz")
    assert arc["warc_record_id"] == "" and arc["warc_date"] == "2014-02-16T05:02:21Z"
    assert arc["doc_id"] == make_doc_id(f"example.arc.gz@{arc['warc_offset']}")
    assert arc["warc_offset"] > 0 and arc["body_length"] == 1270

    (chunked,) = read("example-iana.org-chunked.warc")
    assert b"\r\n0\r\n" not in chunked["body"] and chunked["body"].rstrip().endswith(b"</html>")

    # Misaligned gzip members are re-read as one gzip stream: nothing is lost, but
    # there is no byte offset to seek to.
    (wrong,) = read("example-wrong-chunks.warc.gz")
    assert wrong["body_length"] == 1270 and wrong["warc_offset"] == -1
    bad = read("example-bad.warc.gz.bad")
    assert [d["http_status"] for d in bad] == [200, 302]
    assert bad[1]["url"] == "http://www.iana.org/domains/example"

    (wget,) = read("example-wget-bad-target-uri.warc.gz")
    assert wget["url"] == "http://example.com/"


def gzip_member_ends(data: bytes) -> list[int]:
    ends, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj(31)
        d.decompress(data[pos:])
        pos = len(data) - len(d.unused_data)
        ends.append(pos)
    return ends


def test_truncating_small_files_at_every_byte_never_raises(edge_case_warcs):
    for name in ("example.warc.gz", "example.arc.gz", "example-bad-non-chunked.warc.gz"):
        data = (edge_case_warcs / name).read_bytes()
        full = [d["doc_id"] for d in iter_warc_responses(io.BytesIO(data), name)]
        member_ends = gzip_member_ends(data)
        losses = 0
        for cut in range(len(data)):
            docs = list(iter_warc_responses(io.BytesIO(data[:cut]), name))
            errors = [d for d in docs if d["read_error"]]
            good = [d["doc_id"] for d in docs if not d["read_error"]]
            assert good == full[: len(good)], (name, cut)
            assert len(errors) <= 1, (name, cut)
            losses += len(errors)
            if not errors:
                # Silent only when the cut falls exactly between two gzip members.
                assert cut in member_ends, (name, cut)
        assert losses > 0.95 * len(data), name


def _warc_response(url: str, http: bytes, record_id: str = "<urn:uuid:1>") -> bytes:
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\n"
        f"WARC-Date: 2024-01-01T00:00:00Z\r\nWARC-Record-ID: {record_id}\r\n"
        f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(http)}\r\n\r\n"
    ).encode()
    return gzip.compress(head + http + b"\r\n\r\n")


def test_target_uri_brackets_and_spaces():
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>x</html>"
    data = _warc_response("<http://ex.com/a b?q=1>", http)
    (doc,) = iter_warc_responses(io.BytesIO(data), "x.warc.gz")
    assert doc["url"] == "http://ex.com/a%20b?q=1"


def test_http_parsing_quirks():
    # Bare LF line ends, a Content-Encoding that lies (ClueWeb09), a status line with
    # no reason phrase, a garbled status.
    data = _warc_response(
        "http://a/", b"HTTP/1.1 200\nContent-Type: Text/HTML; Charset=\"ISO-8859-1\"\n"
        b"Content-Encoding: gzip\n\n<html>caf\xe9</html>", "<urn:uuid:a>"
    ) + _warc_response("http://b/", b"HTTP/1.1 abc Broken\r\n\r\n<html></html>", "<urn:uuid:b>") \
      + _warc_response("dns:b", b"20240101000000\n b. 300 IN A 1.2.3.4\n", "<urn:uuid:c>")
    a, b, c = iter_warc_responses(io.BytesIO(data), "x")
    assert (a["http_status"], a["content_type"], a["http_charset"]) == (200, "text/html", "iso-8859-1")
    assert a["body"] == b"<html>caf\xe9</html>"
    assert b["http_status"] == -1 and c["http_status"] == -1
    assert HtmlDecode().apply(b) == ("http_status_not_200", "-1")
    assert HtmlDecode().apply(a) is None and a["html"] == "<html>café</html>"


# -- the real files from other projects --------------------------------------------------


def test_real_warc_files(shared_data):
    real = shared_data / "real-warc"
    expected = {
        "dolma_sample-0000.warc.gz": 22,
        "dolma_sample-0001.warc.gz": 15,
        "resiliparse_clueweb-quirk.warc.gz": 29,
        "resiliparse_warcfile.warc.gz": 16,
        "whirlwind.warc.gz": 1,
        "whirlwind.warc.wet.gz": 0,  # WET holds conversion records, no responses
    }
    for name, n in expected.items():
        docs = read_all([real / name])
        assert len(docs) == n, name
        assert all(not d["read_error"] for d in docs)
        for doc in docs:
            check_schema(doc)
            # wget wraps the target URI in <...> (dolma files): stripped.
            assert doc["url"].startswith(("http://", "https://")), doc["url"]
        kept, removed, _ = decode_all(docs)
        assert not removed, (name, removed[:1])
        if name.startswith("resiliparse_clueweb"):
            # WARC/0.18, LF-only HTTP headers, "Content-Encoding: gzip" on a body that is
            # not gzipped, EUC-JP: the whole page, Japanese intact.
            assert all(d["charset"] == "euc_jp" for d in kept)
            assert all(d["html"].lstrip().startswith("<html>") for d in kept)
            assert all("ブランド" in d["html"] or "ヘッドポーター" in d["html"] for d in kept)
        if name == "whirlwind.warc.gz":
            assert kept[0]["url"] == "https://an.wikipedia.org/wiki/Escopete"
            assert "Escopete" in kept[0]["html"]


# -- charsets ------------------------------------------------------------------------------

GERMAN = "Grüße aus Köln: „Öl“ – ein Maß für Überfluss"


def _doc(body: bytes, charset: str = "", content_type: str = "text/html", status: int = 200):
    doc = dict(RESPONSE_FIELDS)
    doc.update(body=body, body_length=len(body), http_charset=charset,
               content_type=content_type, http_status=status)
    return doc


def _decode(body: bytes, charset: str = "") -> dict:
    doc = _doc(body, charset)
    assert HtmlDecode().apply(doc) is None
    assert "body" not in doc
    return doc


def test_charset_from_http_header():
    body = f"<html><body>{GERMAN}</body></html>".encode("cp1252")
    doc = _decode(body, "iso-8859-1")
    # latin-1 as browsers read it (windows-1252): the „“ – quotes survive.
    assert GERMAN in doc["html"] and doc["charset"] == "cp1252"


def test_charset_from_meta_only():
    for decl in ('<meta charset="iso-8859-2">',
                 "<meta http-equiv='Content-Type' content='text/html; charset=ISO-8859-2'>"):
        polish = "Zażółć gęślą jaźń"
        doc = _decode(f"<html><head>{decl}</head><body>{polish}</body></html>".encode("iso-8859-2"))
        assert polish in doc["html"] and doc["charset"] == "iso8859-2"


def test_header_wins_over_meta():
    body = '<html><head><meta charset="iso-8859-1"></head><body>Grüße</body></html>'.encode()
    doc = _decode(body, "utf-8")
    assert "Grüße" in doc["html"] and doc["charset"] == "utf-8"


def test_undeclared_utf8_and_cp1252():
    doc = _decode(f"<html><body>{GERMAN}</body></html>".encode("utf-8"))
    assert GERMAN in doc["html"] and doc["charset"] == "utf-8"
    text = ("Der Ausflug nach Köln war schön. Über die Brücke gingen wir zur Straße, "
            "wo es „Kölsch“ gab – das Maß aller Dinge. ") * 5
    doc = _decode(f"<html><body>{text}</body></html>".encode("cp1252"))
    assert text in doc["html"], doc["charset"]


def test_bogus_and_non_text_charset_labels_fall_through():
    for label in ("x-no-such-charset", "base64", "rot13", "utf-7", ""):
        doc = _decode(f"<html><body>{GERMAN}</body></html>".encode("utf-8"), label)
        assert GERMAN in doc["html"] and doc["charset"] == "utf-8", label
    doc = _decode(
        f'<html><head><meta charset="nonsense"></head><body>{GERMAN}</body></html>'.encode("utf-8"),
        "also-nonsense",
    )
    assert GERMAN in doc["html"]


def test_wrong_declaration_falls_through():
    # Declared UTF-8 but the bytes are cp1252 throughout: not accepted with mojibake.
    text = "Größere Übungen für Männer und Frauen im Süden. " * 10
    doc = _decode(f"<html><body>{text}</body></html>".encode("cp1252"), "utf-8")
    assert text in doc["html"] and doc["charset"] != "utf-8"
    # A UTF-8 page with one stray byte stays UTF-8.
    body = f"<html><body>{text}</body></html>".encode("utf-8").replace(b"Frauen", b"Fr\xe4uen", 1)
    doc = _decode(body, "utf-8")
    assert doc["charset"] == "utf-8" and doc["html"].count("\ufffd") == 1


def test_bom_and_meta_utf16():
    doc = _decode(b"\xef\xbb\xbf" + f"<html><body>{GERMAN}</body></html>".encode(), "iso-8859-1")
    assert doc["charset"] == "utf-8" and doc["html"].startswith("<html>")
    # A <meta> readable as ASCII cannot mean UTF-16.
    doc = _decode(f'<html><head><meta charset="utf-16"></head><body>{GERMAN}</body></html>'.encode())
    assert GERMAN in doc["html"] and doc["charset"] == "utf-8"


def test_decode_html_unit():
    assert decode_html(b"", "utf-8") == ("", "utf-8")
    text, charset = decode_html("<p>日本語のページ</p>".encode("euc-jp") * 20, "euc-jp")
    assert "日本語" in text and charset == "euc_jp"
    text, charset = decode_html("<p>中文网页内容</p>".encode("gbk") * 20, "gb2312")
    assert "中文网页" in text and charset == "gb18030"


# -- HtmlDecode's removal reasons ----------------------------------------------------------


def test_removal_reasons_in_order():
    step = HtmlDecode(HtmlDecodeConfig(max_body_bytes=1000))
    html = b"<!DOCTYPE html><html><body>hello</body></html>"
    errored = _doc(b"", status=-1)
    errored["read_error"] = "truncated_file: cut"
    assert step.apply(errored) == ("read_error", "truncated_file: cut")
    assert step.apply(_doc(html, status=404)) == ("http_status_not_200", "404")
    assert step.apply(_doc(b"%PDF-1.4", content_type="application/pdf")) == ("not_html", "application/pdf")
    assert step.apply(_doc(b"", content_type="text/html")) == "empty_body"
    assert step.apply(_doc(b" \r\n ", content_type="text/html")) == "empty_body"
    assert step.apply(_doc(html + b" " * 2000)) == ("oversized", "2046")
    dropped = _doc(b"")
    dropped["body_length"] = 50_000_000  # held back by the reader's memory cap
    assert step.apply(dropped) == ("oversized", "50000000")
    assert step.apply(_doc(html, content_type="application/xhtml+xml")) is None


def test_undecodable_binary_behind_an_html_content_type():
    import random

    rng = random.Random(0)
    junk = bytes(rng.randrange(256) for _ in range(5000))
    verdict = HtmlDecode().apply(_doc(junk))
    assert isinstance(verdict, tuple) and verdict[0] == "undecodable"


def test_missing_content_type_is_sniffed():
    step = HtmlDecode()
    doc = _doc(b"\n  <!DOCTYPE HTML><html><body>hi</body></html>", content_type="")
    assert step.apply(doc) is None and doc["html"].strip().startswith("<!DOCTYPE")
    assert step.apply(_doc(b"\x89PNG\r\n\x1a\n....", content_type=""))[0] == "not_html"

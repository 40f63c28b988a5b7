"""The malformed-input suite (issue 10): warcio's edge-case files, the hostile cases of the
issue, and seeded random bytes (plain, gzipped, truncated gzip members, bit flips, lying
headers) through the reader + ``HtmlDecode`` and through the ``raw_documents`` stage.

What must hold for every input: no exception escapes, every document is kept or removed
with a reason (docs in = kept + removed), and ``HtmlDecode`` itself never raises (the
``step_error`` safety net would hide a bug: here it must stay at zero)."""

from __future__ import annotations

import encodings.aliases
import gzip
import io
import random
import zlib

import pytest

from corpus_assets.config import PipelineConfig
from corpus_assets.crawl import CrawlSource
from corpus_assets.stages import (
    build_crawl_manifest,
    documents_path,
    ingest_raw_documents,
    removed_path,
    verify_conservation,
)
from corpus_assets.steps.base import STEP_ERROR, run_steps
from corpus_assets.steps.warc import RESPONSE_FIELDS, HtmlDecode, HtmlDecodeConfig, iter_warc_responses
from corpus_assets.storage import CorpusStore
from corpus_assets_tests.test_ingest_hardening import (
    DUMP,
    SHARD,
    TEXT_LINES,
    http_response,
    page,
    warc_record,
    write_crawl,
)

SEED = 20240110


def _gzip_member_starts(data: bytes) -> list[int]:
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        d = zlib.decompressobj(31)
        d.decompress(data[pos:])
        if not d.eof:
            break
        pos = len(data) - len(d.unused_data)
    return starts


def good_warc() -> bytes:
    """A small valid WARC of several records of every kind."""
    return b"".join([
        warc_record("warcinfo", "", b"software: test\r\n", "application/warc-fields"),
        warc_record("request", "http://a.example/", b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
                    "application/http; msgtype=request"),
        page("http://a.example/", b"<html><body>" + "Grüße".encode() * 50 + b"</body></html>"),
        page("http://a.example/latin", "<html><body>caf\u00e9</body></html>".encode("latin-1"),
             "text/html; charset=iso-8859-1"),
        warc_record("response", "http://a.example/404", http_response(b"<html>gone</html>", status=404)),
        warc_record("metadata", "http://a.example/", b"fetchTimeMs: 12\r\n", "application/warc-fields"),
        page("http://a.example/pdf", b"%PDF-1.4 ...", "application/pdf"),
    ])


def hostile_inputs() -> dict[str, bytes]:
    """name -> bytes: the issue's cases and seeded random corruption."""
    rng = random.Random(SEED)
    good = good_warc()
    cases: dict[str, bytes] = {
        "empty.warc.gz": b"",
        "text-named-warc.warc.gz": TEXT_LINES,
        "text-gzipped.warc.gz": gzip.compress(TEXT_LINES),
        "charset-labels.warc.gz": b"".join(
            page(f"http://c.example/{label}", "<html><body>Grüße</body></html>".encode(), f"text/html; charset={label}")
            for label in ("punycode", "idna", "undefined", "unicode_escape", "utf-7", "base64", "x-\x01bad", ""))
        + page("http://c.example/meta", b'<html><head><meta charset="punycode"></head><body>\xff\xfe</body></html>'),
        "content-length-lies.warc": b"".join(
            b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://l.example/\r\n"
            b"Content-Length: " + value + b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n<html>x</html>\r\n\r\n"
            for value in (b"-5", b"99999999999999999999", b"abc", b"0", b"")),
        "header-then-junk.warc": b"WARC/1.0\r\nWARC-Type: response\r\n" + bytes(rng.randrange(256) for _ in range(3000)),
        "gzip-magic-then-junk.warc.gz": b"\x1f\x8b\x08" + bytes(rng.randrange(256) for _ in range(3000)),
        "http-without-status.warc.gz": warc_record("response", "http://h.example/", b"HTTP/1.1\r\n\r\n<html>x</html>"),
        "chunked-garbage.warc.gz": warc_record(
            "response", "http://k.example/",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip, br, zstd\r\n"
            b"Content-Type: text/html\r\n\r\nzz\r\n\x1f\x8b\x08garbage\r\n0\r\n"),
        "good.warc.gz": good,
        "good-uncompressed.warc": gzip.decompress(good),
    }
    for size in (1, 2, 5, 100, 4000):
        cases[f"random-{size}.warc.gz"] = bytes(rng.randrange(256) for _ in range(size))
        cases[f"random-gzipped-{size}.warc.gz"] = gzip.compress(bytes(rng.randrange(256) for _ in range(size)))
    # Truncated gzip members: the valid file cut inside a member, at random places.
    starts = _gzip_member_starts(good)
    for i in range(8):
        member = rng.randrange(len(starts))
        start = starts[member]
        end = starts[member + 1] if member + 1 < len(starts) else len(good)
        cut = rng.randrange(start + 1, end)
        cases[f"truncated-member-{i}.warc.gz"] = good[:cut]
        # ... and the cut member followed by the rest of the file (a member cut mid-file).
        cases[f"cut-member-mid-file-{i}.warc.gz"] = good[:cut] + good[end:]
    # Bit flips and overwritten runs in the valid file, compressed and not.
    for i in range(12):
        data = bytearray(good if i % 2 else gzip.decompress(good))
        for _ in range(1 + i % 4):
            pos = rng.randrange(len(data))
            data[pos] ^= 1 << rng.randrange(8)
        if i % 3 == 0:
            pos = rng.randrange(len(data))
            data[pos:pos + 40] = bytes(rng.randrange(256) for _ in range(40))
        cases[f"flipped-{i}.warc{'.gz' if i % 2 else ''}"] = bytes(data)
    # Records shuffled with junk between them.
    members = [good[a:b] for a, b in zip(starts, starts[1:] + [len(good)])]
    for i in range(4):
        parts = members[:]
        rng.shuffle(parts)
        parts.insert(rng.randrange(len(parts)), bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
        cases[f"shuffled-junk-{i}.warc.gz"] = b"".join(parts)
    return cases


def check_reader_and_decode(name: str, data: bytes) -> tuple[int, int]:
    """Through the reader and HtmlDecode: (documents in, removed)."""
    docs = list(iter_warc_responses(io.BytesIO(data), name))
    for doc in docs:
        assert set(RESPONSE_FIELDS) <= set(doc), name
        for field, missing in RESPONSE_FIELDS.items():
            assert type(doc[field]) is type(missing), (name, field)
    removed = []
    stream, stats = run_steps([HtmlDecode(HtmlDecodeConfig())], docs,
                              lambda doc, step, reason, detail: removed.append((doc, reason, detail)))
    kept = list(stream)
    assert stats[0].check() is None, name
    assert stats[0].docs_in == len(docs) == len(kept) + len(removed), name
    assert all(reason for _, reason, _ in removed), name
    assert STEP_ERROR not in stats[0].removed_by_reason, (name, stats[0].first_error)
    for doc in kept:
        assert isinstance(doc["html"], str) and doc["charset"], name
    return len(docs), len(removed)


def test_every_edge_case_file(edge_case_warcs):
    names = sorted(p.name for p in edge_case_warcs.iterdir())
    assert len(names) >= 10
    for name in names:
        data = (edge_case_warcs / name).read_bytes()
        check_reader_and_decode(name, data)
        # Cut anywhere in the first and last KB: still counted, never raised.
        for cut in list(range(0, min(len(data), 1024), 37)) + list(range(max(0, len(data) - 1024), len(data), 37)):
            check_reader_and_decode(f"{name}[:{cut}]", data[:cut])


def test_hostile_and_random_inputs():
    cases = hostile_inputs()
    assert len(cases) > 50
    for name, data in cases.items():
        docs_in, _ = check_reader_and_decode(name, data)
        assert docs_in >= 1 or name.startswith("good"), f"{name}: a file that gives nothing must say why"
    # The specific outcomes the issue asks for.
    for name in ("empty.warc.gz", "text-named-warc.warc.gz", "text-gzipped.warc.gz"):
        (doc,) = iter_warc_responses(io.BytesIO(cases[name]), name)
        assert doc["read_error"].startswith("not_warc: "), name


def test_every_python_codec_name_as_a_charset_label():
    # Any label a page or server may send, Python's own codec names included, decodes or
    # falls through; HtmlDecode never raises.
    labels = sorted(set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
                    | {"punycode", "idna", "undefined", "mbcs", "oem", "utf-7", "unicode-escape"})
    body = "<html><body>Grüße „Köln“ ☃</body></html>".encode()
    step = HtmlDecode()
    for label in labels:
        for doc in (
            {**RESPONSE_FIELDS, "body": body, "body_length": len(body), "http_status": 200,
             "content_type": "text/html", "http_charset": label},
            {**RESPONSE_FIELDS, "body": f'<meta charset="{label}">'.encode() + body, "body_length": 999,
             "http_status": 200, "content_type": "text/html"},
        ):
            verdict = step.apply(doc)
            assert verdict is None or verdict[0] == "undecodable", (label, verdict)


def test_the_raw_documents_stage_on_every_malformed_file(tmp_path, edge_case_warcs, shared_data):
    files = dict(hostile_inputs())
    for path in edge_case_warcs.iterdir():
        files[f"edge-{path.name}"] = path.read_bytes()
    files["wet.warc.wet.gz"] = (shared_data / "real-warc" / "whirlwind.warc.wet.gz").read_bytes()
    crawl = write_crawl(tmp_path / "crawl", files)
    rels = [f"crawl-data/{DUMP}/segments/1/warc/{name}" for name in files]
    hostile_paths = ["/etc/passwd", "../../x.warc.gz", f"crawl-data/{DUMP}/segments/1/warc/absent.warc.gz"]
    (crawl / "crawl-data" / DUMP / "warc.paths.gz").write_bytes(gzip.compress("\n".join(rels + hostile_paths).encode()))

    expected_in = sum(check_reader_and_decode(name, data)[0] for name, data in files.items()) + len(hostile_paths)
    source = CrawlSource(str(crawl))
    store = CorpusStore(str(tmp_path / "corpus"))
    build_crawl_manifest(source, store, DUMP, 1)
    report = ingest_raw_documents(source, store, DUMP, SHARD, PipelineConfig())
    kept = store.read_table(documents_path("raw_documents", DUMP, SHARD)).to_pylist()
    removed = store.read_table(removed_path("raw_documents", DUMP, SHARD)).to_pylist()
    passed, facts = verify_conservation(store, "raw_documents", DUMP, SHARD, None)
    assert passed, facts
    assert report.docs_in == expected_in == len(kept) + len(removed)
    assert all(row["reason"] for row in removed)
    reasons = {r for _, r, _ in report.removed_by_reason()}
    assert STEP_ERROR not in reasons
    assert {"read_error", "path_outside_root", "not_html", "http_status_not_200"} <= reasons
    assert sum(1 for r in removed if r["reason"] == "path_outside_root") == 2
    assert any(r["detail"].startswith("missing_file") for r in removed)
    assert report.extra["warc_files_without_responses"] >= 2  # the WET file, the resource-only WARC
    # Every file of the manifest left a trace: a document, a removal, or a name in the
    # files-without-responses list.
    traced = {d["warc_path"] for d in kept} | {r["warc_path"] for r in removed} \
        | set(report.extra["warc_files_without_responses_sample"])
    missing = set(rels + hostile_paths) - traced
    assert len(missing) <= max(0, report.extra["warc_files_without_responses"] - len(report.extra["warc_files_without_responses_sample"])), missing


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_through_the_stage(tmp_path, seed):
    rng = random.Random(SEED + seed)
    files = {}
    for i in range(6):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5000)))
        files[f"r{i}.warc.gz"] = gzip.compress(raw)[: rng.randrange(1, len(raw) + 30)] if i % 2 else raw
    report = None
    crawl = write_crawl(tmp_path / "crawl", files)
    source = CrawlSource(str(crawl))
    store = CorpusStore(str(tmp_path / "corpus"))
    build_crawl_manifest(source, store, DUMP, 1)
    report = ingest_raw_documents(source, store, DUMP, SHARD, PipelineConfig())
    passed, facts = verify_conservation(store, "raw_documents", DUMP, SHARD, None)
    assert passed, facts
    assert report.docs_out == 0 and report.docs_in >= len(files)


# -- issue 12: the second hostile pass over the reader ---------------------------------------

HELLO = b"<html><body>" + b"hello world " * 100 + b"</body></html>"
GOOD_NEXT = b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:good>\r\nWARC-Target-URI: http://good.example/\r\nContent-Length: %d\r\n\r\n"


def _raw_record(length_line: bytes, block: bytes, rec_type: bytes = b"WARC-Type: response\r\n") -> bytes:
    return (b"WARC/1.0\r\n" + rec_type + b"WARC-Record-ID: <urn:uuid:a1>\r\n"
            b"WARC-Target-URI: http://b.example/x\r\n" + length_line + b"\r\n" + block + b"\r\n\r\n")


def _good_next() -> bytes:
    block = http_response(b"<html><body>next page</body></html>")
    return GOOD_NEXT % len(block) + block + b"\r\n\r\n"


def _read(data: bytes, limit: int = 50) -> list[dict]:
    import itertools
    return list(itertools.islice(iter_warc_responses(io.BytesIO(data), "x.warc.gz"), limit))


@pytest.mark.parametrize("length_line", [b"Content-Length: -5\r\n", b"Content-Length: abc\r\n",
                                         b"Content-Length: \r\n", b"Content-Length: 1e3\r\n",
                                         "Content-Length: \u0661\u0662\r\n".encode(), b"Content-Length: +12\r\n"],
                         ids=["negative", "word", "empty", "float", "arabic-digits", "plus"])
@pytest.mark.parametrize("gzipped", [True, False], ids=["gz", "plain"])
def test_an_invalid_content_length_is_one_corrupt_record_and_reading_goes_on(length_line, gzipped):
    bad = _raw_record(length_line, http_response(HELLO))
    data = gzip.compress(bad) + gzip.compress(_good_next()) if gzipped else bad + _good_next()
    docs = _read(data)
    assert [d["read_error"].split(":")[0] for d in docs] == ["corrupt_record", ""], [d["read_error"] for d in docs]
    assert docs[0]["warc_offset"] == 0 and docs[0]["url"] == "http://b.example/x"
    assert docs[1]["url"] == "http://good.example/" and docs[1]["http_status"] == 200


@pytest.mark.parametrize("gzipped", [True, False], ids=["gz", "plain"])
def test_a_record_without_content_length_is_a_corrupt_record_not_a_cut_file(gzipped):
    bad = _raw_record(b"", http_response(HELLO))
    data = gzip.compress(bad) + gzip.compress(_good_next()) if gzipped else bad + _good_next()
    docs = _read(data)
    assert [d["read_error"].split(":")[0] for d in docs] == ["corrupt_record", ""], [d["read_error"] for d in docs]


def test_recovery_never_moves_backwards(monkeypatch):
    """Whatever offset a failure names, the next try starts after the previous one: a
    failure that claims to be before the start cannot make the reader loop."""
    from corpus_assets.steps import warc as warc_mod

    real = warc_mod._Reader._members

    def lying_members(self, start, probing):
        yield from real(self, start, probing)
        raise warc_mod._Failure("corrupt_record", "lie", -1000)

    monkeypatch.setattr(warc_mod._Reader, "_members", lying_members)
    data = gzip.compress(_good_next()) * 3
    docs = _read(data, 1000)
    assert len(docs) < 20, len(docs)


def _header_bomb(header_mb: int, many_lines: bool) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://x/\r\n"
    out = [c.compress(head if many_lines else head + b"X-Long: ")]
    unit = (b"X: y\r\n" * (1 << 18))[: 1 << 20] if many_lines else b"A" * (1 << 20)
    out += [c.compress(unit) for _ in range(header_mb)]
    out += [c.compress(b"\r\nContent-Length: 0\r\n\r\n\r\n\r\n"), c.flush()]
    return b"".join(out) + gzip.compress(_good_next())


@pytest.mark.parametrize("many_lines", [False, True], ids=["one-long-line", "many-lines"])
def test_an_endless_warc_header_is_a_corrupt_record_in_bounded_memory(tmp_path, many_lines):
    import subprocess
    import sys
    path = tmp_path / "bomb.warc.gz"
    path.write_bytes(_header_bomb(24 if many_lines else 48, many_lines))
    code = (
        "import sys, tracemalloc\n"
        "from corpus_assets.steps.warc import iter_warc_responses\n"
        "tracemalloc.start()\n"
        f"docs = list(iter_warc_responses(open({str(path)!r}, 'rb'), 'bomb.warc.gz'))\n"
        "peak = tracemalloc.get_traced_memory()[1]\n"
        "print([d['read_error'].split(':')[0] for d in docs], [d['url'] for d in docs], peak // 2**20)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    errors, urls, peak_mb = out.stdout.strip().rsplit(" ", 1)[0], out.stdout, int(out.stdout.split()[-1])
    assert errors.startswith("['corrupt_record', '']"), out.stdout
    assert "http://good.example/" in urls
    # Bounded, not proportional: ~45 MB whether the header is 48 MB or 200 MB (warcio
    # inflates 16 KB of input at a time, up to ~16 MB of it); 160 MB before the cap.
    assert peak_mb < 64, f"{peak_mb} MB for a 24-48 MB header"


def test_memory_error_is_not_recorded_as_bad_data(monkeypatch):
    from corpus_assets.steps import warc as warc_mod

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(warc_mod, "_parse_http", exhausted)
    with pytest.raises(MemoryError):
        _read(gzip.compress(_good_next()))
    monkeypatch.undo()
    monkeypatch.setattr(warc_mod.ArchiveIterator, "__next__", exhausted)
    with pytest.raises(MemoryError):
        _read(gzip.compress(_good_next()))


def test_a_multi_member_gzip_body_is_decoded_whole():
    from corpus_assets.steps.warc import _decode_payload
    body = gzip.compress(b"<html><body>first half ") + gzip.compress(b"second half</body></html>")
    assert _decode_payload(body, {"content-encoding": "gzip"}, 1 << 20) == \
        b"<html><body>first half second half</body></html>"
    # The cap holds over all members together.
    many = gzip.compress(b"a" * 1000) * 50
    assert len(_decode_payload(many, {"content-encoding": "gzip"}, 10_000)) <= 10_001


@pytest.mark.parametrize("label", ["utf-16", "utf_16_be", "utf-16-be", "utf16", "UTF-16LE", "utf-32", "utf_32_le", "ucs-2"])
def test_any_spelling_of_utf16_or_32_in_meta_is_read_as_utf8(label):
    from corpus_assets.steps.warc import decode_html
    body = f'<html><head><meta charset="{label}"></head><body>Grüße</body></html>'.encode()
    text, codec = decode_html(body)
    assert codec == "utf-8" and "Grüße" in text


@pytest.mark.parametrize("type_line,expected", [
    (b"WARC-Type: Response\r\n", [""]),          # accepted: the page is read
    (b"WARC-Type: RESPONSE\r\n", [""]),
    (b"", ["corrupt_record"]),                   # no WARC-Type at all: counted, not skipped
], ids=["capital", "upper", "missing"])
def test_warc_type_spelling_and_absence(type_line, expected):
    block = http_response(HELLO)
    rec = _raw_record(b"Content-Length: %d\r\n" % len(block), block, type_line)
    docs = _read(gzip.compress(rec))
    assert [d["read_error"].split(":")[0] for d in docs] == expected, [d["read_error"] for d in docs]


def test_nul_bytes_are_removed_from_decoded_html():
    from corpus_assets.steps.warc import decode_html
    text, _ = decode_html(b"<html><body>a\x00b\x00\x00c</body></html>")
    assert "\x00" not in text and "abc" in text
    doc = {"http_status": 200, "content_type": "text/html", "body": b"<html><p>x\x00y</p></html>", "read_error": ""}
    assert HtmlDecode().apply(doc) is None and "\x00" not in doc["html"]

"""Issue 10, the ingest side: hostile or unlucky input that used to crash a partition,
lose documents silently, count them under the wrong reason or read outside the crawl.

Every case writes its own few bytes of input (real gzipped WARC records) and runs them
through the reader, ``HtmlDecode`` and the ``raw_documents`` stage."""

from __future__ import annotations

import gzip
import io
import logging
import os
import subprocess
import sys
import uuid
import zlib
from collections import Counter
from pathlib import Path

import pytest

from corpus_assets.config import PipelineConfig
from corpus_assets.crawl import CrawlSource, CrawlSourceError
from corpus_assets.stages import (
    build_crawl_manifest,
    documents_path,
    ingest_raw_documents,
    removed_path,
    run_document_stage,
    stats_path,
    verify_conservation,
)
from corpus_assets.steps.base import Step, StepErrorLimitExceeded, StepErrorPolicy
from corpus_assets.steps.warc import HtmlDecode, iter_warc_responses, normalize_charset
from corpus_assets.storage import CorpusStore

DUMP = "CC-MAIN-2030-01"
SHARD = "000"  # one shard: every file of the manifest lands in it
GERMAN = "Grüße aus Köln: ein Maß für Überfluss"


# -- writing input ------------------------------------------------------------------------

def warc_record(rec_type: str, url: str, block: bytes, content_type: str = "application/http; msgtype=response") -> bytes:
    """One gzipped WARC record (one gzip member, as Common Crawl writes them)."""
    head = (
        f"WARC/1.0\r\nWARC-Type: {rec_type}\r\nWARC-Target-URI: {url}\r\n"
        f"WARC-Date: 2030-01-01T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, rec_type + url)}>\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(block)}\r\n\r\n"
    ).encode()
    return gzip.compress(head + block + b"\r\n\r\n")


def http_response(body: bytes, content_type: str = "text/html", status: int = 200) -> bytes:
    return (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def page(url: str, body: bytes, content_type: str = "text/html") -> bytes:
    return warc_record("response", url, http_response(body, content_type))


def write_crawl(root: Path, files: dict[str, bytes], manifest: list[str] | None = None, dump: str = DUMP) -> Path:
    """A crawl root with ``files`` under the dump's segment folder and a manifest naming
    them (or ``manifest``, verbatim)."""
    base = root / "crawl-data" / dump / "segments" / "1" / "warc"
    base.mkdir(parents=True, exist_ok=True)
    rels = []
    for name, data in files.items():
        (base / name).write_bytes(data)
        rels.append(f"crawl-data/{dump}/segments/1/warc/{name}")
    lines = rels if manifest is None else manifest
    (root / "crawl-data" / dump / "warc.paths.gz").write_bytes(gzip.compress("".join(f"{p}\n" for p in lines).encode()))
    return root


def ingest(crawl_root: Path | str, corpus: Path, config: PipelineConfig | None = None, source: CrawlSource | None = None):
    """crawl_manifest + raw_documents of the one shard; (report, kept rows, ledger rows)."""
    source = source or CrawlSource(str(crawl_root))
    store = CorpusStore(str(corpus))
    build_crawl_manifest(source, store, DUMP, 1)
    report = ingest_raw_documents(source, store, DUMP, SHARD, config or PipelineConfig())
    kept = store.read_table(documents_path("raw_documents", DUMP, SHARD)).to_pylist()
    removed = store.read_table(removed_path("raw_documents", DUMP, SHARD)).to_pylist()
    passed, facts = verify_conservation(store, "raw_documents", DUMP, SHARD, None)
    assert passed, facts
    assert report.docs_in == len(kept) + len(removed)
    return report, kept, removed


# -- 1. charset labels that are not text codecs ---------------------------------------------

@pytest.mark.parametrize("label", ["punycode", "idna", "undefined", "PUNYCODE", "unicode_escape", "raw-unicode-escape"])
def test_non_charset_codecs_are_not_charsets(label):
    assert normalize_charset(label) is None


def test_punycode_idna_undefined_charsets_decode_or_are_removed(tmp_path):
    body = f"<html><body>{GERMAN}</body></html>".encode()
    warc = b"".join([
        page("http://a.example/header-punycode", body, "text/html; charset=punycode"),
        page("http://a.example/header-idna", body, "text/html; charset=idna"),
        page("http://a.example/header-undefined", body, "text/html; charset=undefined"),
        page("http://a.example/meta-punycode",
             f'<html><head><meta charset="punycode"></head><body>{GERMAN}</body></html>'.encode()),
        page("http://a.example/meta-undefined",
             f'<html><head><meta http-equiv="Content-Type" content="text/html; charset=undefined"></head>'
             f'<body>{GERMAN}</body></html>'.encode()),
    ])
    report, kept, removed = ingest(write_crawl(tmp_path / "crawl", {"a.warc.gz": warc}), tmp_path / "corpus")
    assert not removed, removed
    assert len(kept) == 5
    for doc in kept:
        assert GERMAN in doc["html"] and doc["charset"] == "utf-8", doc["url"]


# -- 1. an exception on one document is a counted removal ------------------------------------

class RaisesOn(Step):
    name = "fragile"

    def __init__(self, bad: set[str]):
        self.bad = bad

    def apply(self, doc):
        if doc["doc_id"] in self.bad or "*" in self.bad:
            raise ZeroDivisionError(f"cannot handle {doc['doc_id']}")
        doc["seen"] = True
        return None


def docs(n: int) -> list[dict]:
    return [{"doc_id": f"d{i}", "url": f"http://x/{i}", "text": "t"} for i in range(n)]


def test_a_step_raising_on_one_document_removes_it_as_step_error(tmp_path):
    store = CorpusStore(str(tmp_path))
    report = run_document_stage(store, "rw_test", DUMP, SHARD, docs(10), [RaisesOn({"d3"})])
    assert report.docs_out == 9
    assert report.removed_by_reason() == [("fragile", "step_error", 1)]
    (row,) = store.read_table(removed_path("rw_test", DUMP, SHARD)).to_pylist()
    assert row["doc_id"] == "d3" and row["reason"] == "step_error"
    assert row["detail"].startswith("ZeroDivisionError: cannot handle d3")
    kept = store.read_table(documents_path("rw_test", DUMP, SHARD)).to_pylist()
    assert [d["doc_id"] for d in kept] == [f"d{i}" for i in range(10) if i != 3]


def test_a_step_raising_on_every_document_fails_the_partition_and_publishes_nothing(tmp_path):
    store = CorpusStore(str(tmp_path))
    with pytest.raises(StepErrorLimitExceeded) as info:
        run_document_stage(store, "rw_test", DUMP, SHARD, docs(40), [RaisesOn({"*"})])
    message = str(info.value)
    for part in ("fragile", "40 of 40", "100.0%", "ZeroDivisionError: cannot handle d0", "max_error_share"):
        assert part in message, (part, message)
    for rel in (documents_path, removed_path, stats_path):
        assert not store.exists(rel("rw_test", DUMP, SHARD))


@pytest.mark.parametrize(
    "n_docs, n_bad, fails",
    [
        (1, 1, True),      # every document of a one-document shard: a broken step
        (10, 1, False),    # a tiny shard with one odd page
        (10, 2, False),    # 20%, but two errors are not yet a pattern (min_errors)
        (20, 3, True),     # 15% and three of them
        (100, 5, False),   # 5% is the limit, not above it
        (100, 6, True),
    ],
)
def test_step_error_policy_semantics(tmp_path, n_docs, n_bad, fails):
    store = CorpusStore(str(tmp_path))
    bad = {f"d{i}" for i in range(n_bad)}
    policy = StepErrorPolicy(max_error_share=0.05, min_errors=3)
    if fails:
        with pytest.raises(StepErrorLimitExceeded):
            run_document_stage(store, "rw_test", DUMP, SHARD, docs(n_docs), [RaisesOn(bad)], step_errors=policy)
    else:
        report = run_document_stage(store, "rw_test", DUMP, SHARD, docs(n_docs), [RaisesOn(bad)], step_errors=policy)
        assert report.removed_by_reason() == [("fragile", "step_error", n_bad)]
    # max_error_share 1.0 switches the failure off.
    report = run_document_stage(store, "rw_test", DUMP, SHARD, docs(n_docs), [RaisesOn({"*"})],
                                step_errors=StepErrorPolicy(max_error_share=1.0))
    assert report.docs_out == 0


def test_step_error_policy_rejects_nonsense():
    for kwargs in ({"max_error_share": -0.1}, {"max_error_share": 1.5}, {"min_errors": 0}):
        with pytest.raises(ValueError):
            StepErrorPolicy(**kwargs)


def test_step_error_policy_is_a_setting(tmp_path):
    from corpus_assets.config import load_config

    assert load_config().step_errors == StepErrorPolicy()
    path = tmp_path / "p.yaml"
    path.write_text("step_errors:\n  max_error_share: 0.2\n  min_errors: 7\n")
    assert load_config(path).step_errors == StepErrorPolicy(max_error_share=0.2, min_errors=7)


def test_raw_documents_uses_the_step_error_setting(tmp_path, monkeypatch):
    # HtmlDecode made to raise on every page: raw_documents fails, naming the step.
    crawl = write_crawl(tmp_path / "crawl", {"a.warc.gz": page("http://a/", b"<html>a</html>")})

    def broken(self, doc):
        raise RuntimeError("model file is gone")

    monkeypatch.setattr(HtmlDecode, "apply", broken)
    with pytest.raises(StepErrorLimitExceeded, match="raw_documents.*1 of 1.*model file is gone"):
        ingest(crawl, tmp_path / "corpus")
    report, kept, removed = ingest(crawl, tmp_path / "corpus2",
                                   PipelineConfig(step_errors=StepErrorPolicy(max_error_share=1.0)))
    assert [r["reason"] for r in removed] == ["step_error"]


# -- 3. a text file named .warc.gz ------------------------------------------------------------

TEXT_LINES = b"".join(b"line %d of a plain text file\n" % i for i in range(20))


@pytest.mark.parametrize("data", [TEXT_LINES, gzip.compress(TEXT_LINES)], ids=["plain", "gzipped"])
def test_a_text_file_named_warc_gz_is_one_not_warc_loss(data, tmp_path):
    docs_read = list(iter_warc_responses(io.BytesIO(data), "notes.warc.gz"))
    assert len(docs_read) == 1 and docs_read[0]["read_error"].startswith("not_warc: ")
    report, kept, removed = ingest(write_crawl(tmp_path / "crawl", {"notes.warc.gz": data}), tmp_path / "corpus")
    assert not kept
    assert [(r["reason"], r["detail"][:9]) for r in removed] == [("read_error", "not_warc:")]


@pytest.mark.parametrize("data", [b"\n", b" ", b"x", b"\r\n\r\n", gzip.compress(b""), gzip.compress(b"\n\n")],
                         ids=["newline", "space", "one-byte", "blank-lines", "empty-gzip", "gzipped-blank-lines"])
def test_a_file_without_any_record_is_one_not_warc_loss(data):
    # Found by the malformed-input suite: these gave no document at all (a silent loss) or
    # a "truncated gzip member" in a file that is not gzip.
    (doc,) = iter_warc_responses(io.BytesIO(data), "blank.warc.gz")
    assert doc["read_error"].startswith("not_warc: "), doc["read_error"]


def test_an_empty_gzip_member_after_the_last_record_is_not_a_loss():
    data = page("http://a/", b"<html>a</html>") + gzip.compress(b"")
    assert [d["read_error"] for d in iter_warc_responses(io.BytesIO(data), "a.warc.gz")] == [""]


def test_arc_files_still_read(edge_case_warcs):
    data = (edge_case_warcs / "example.arc.gz").read_bytes()
    (doc,) = iter_warc_responses(io.BytesIO(data), "example.arc.gz")
    assert not doc["read_error"] and doc["url"] == "http://example.com/"
    # An ARC file whose second record header is garbage: one loss after the good record.
    broken = gzip.decompress(data) + b"this is not an arc header line\n" + b"x" * 100
    docs_read = list(iter_warc_responses(io.BytesIO(broken), "example.arc"))
    assert [bool(d["read_error"]) for d in docs_read] == [False, True]
    assert docs_read[1]["read_error"].startswith("corrupt_record")


# -- 4. a body above the reader's memory cap -----------------------------------------------

def test_a_30_mb_html_body_is_oversized_not_a_bad_status():
    body = b"<html><body>" + b"<p>word word word</p>\n" * 1_400_000 + b"</body></html>"
    assert len(body) > 30_000_000
    data = page("http://big.example/", body) + page("http://big.example/pdf", body, "application/pdf")
    html_doc, pdf_doc = iter_warc_responses(io.BytesIO(data), "big.warc.gz")
    assert html_doc["body"] == b"" and html_doc["http_status"] == 200
    assert html_doc["body_length"] == len(body)
    verdict = HtmlDecode().apply(html_doc)
    assert verdict == ("oversized", str(len(body)))
    assert HtmlDecode().apply(pdf_doc) == ("not_html", "application/pdf")


# -- 5. files without responses -----------------------------------------------------------------

def test_records_that_are_not_responses_are_counted_by_type(tmp_path, edge_case_warcs, shared_data):
    files = {
        "resource.warc.gz": (edge_case_warcs / "example-resource.warc.gz").read_bytes(),
        "text.warc.wet.gz": (shared_data / "real-warc" / "whirlwind.warc.wet.gz").read_bytes(),
        "pages.warc.gz": warc_record("request", "http://a/", b"GET / HTTP/1.1\r\n\r\n", "application/http; msgtype=request")
        + page("http://a/", b"<html>a</html>"),
    }
    report, kept, removed = ingest(write_crawl(tmp_path / "crawl", files), tmp_path / "corpus")
    assert len(kept) == 1 and not removed
    by_type = report.extra["records_by_type"]
    assert by_type["response"] == 1 and by_type["request"] == 1
    assert by_type["resource"] >= 1 and by_type["conversion"] >= 1 and by_type["warcinfo"] >= 1
    assert report.extra["warc_files_without_responses"] == 2
    assert sorted(report.extra["warc_files_without_responses_sample"]) == [
        f"crawl-data/{DUMP}/segments/1/warc/resource.warc.gz", f"crawl-data/{DUMP}/segments/1/warc/text.warc.wet.gz"]


def test_files_without_responses_show_in_the_materialization(tmp_path, shared_data):
    import dagster as dg

    from corpus_assets.definitions import build_definitions
    from corpus_assets.partitions import DUMP_DIM
    from corpus_assets_tests.helpers import QUIET, latest

    crawl = write_crawl(tmp_path / "crawl", {
        "text.warc.wet.gz": (shared_data / "real-warc" / "whirlwind.warc.wet.gz").read_bytes()})
    defs = build_definitions(config=PipelineConfig(num_shards=1), corpus_root=str(tmp_path / "corpus"),
                             crawl_root=str(crawl))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DUMP_DIM, [DUMP])
        for selection, key in ((["crawl_manifest"], DUMP), (["raw_documents"], f"{DUMP}|{SHARD}")):
            result = dg.materialize(defs.assets, selection=selection, partition_key=key, instance=instance,
                                    resources=defs.resources, run_config=QUIET)
            assert result.success
        meta = latest(instance, "raw_documents", f"{DUMP}|{SHARD}")
        assert meta["docs_in"] == 0 and meta["warc_files_without_responses"] == 1
        assert meta["records_by_type"]["conversion"] >= 1
        warnings = [e for e in instance.all_logs(result.run_id)
                    if e.level == logging.WARNING and "no response record" in (e.user_message or "")]
        assert warnings, "a warning names the file that gave nothing"


def test_reader_counts_record_types(edge_case_warcs):
    counts: Counter = Counter()
    data = (edge_case_warcs / "example.warc.gz").read_bytes()
    docs_read = list(iter_warc_responses(io.BytesIO(data), "example.warc.gz", record_counts=counts))
    assert len(docs_read) == 1
    # As warcio itself lists the file: revisits are not responses.
    assert counts == {"warcinfo": 2, "request": 2, "response": 1, "revisit": 1}


# -- 6. an empty manifest ---------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", gzip.compress(b""), gzip.compress(b"\n  \n")], ids=["zero-byte", "empty-gzip", "blank-lines"])
def test_an_empty_manifest_fails_naming_the_file(tmp_path, content):
    crawl = write_crawl(tmp_path / "crawl", {})
    manifest = crawl / "crawl-data" / DUMP / "warc.paths.gz"
    manifest.write_bytes(content)
    source = CrawlSource(str(crawl))
    with pytest.raises(CrawlSourceError, match=f"{manifest}.*no WARC file"):
        source.read_manifest(DUMP)
    store = CorpusStore(str(tmp_path / "corpus"))
    with pytest.raises(CrawlSourceError, match="no WARC file"):
        build_crawl_manifest(source, store, DUMP, 4)
    assert not store.exists(f"crawl_manifest/{DUMP}/manifest.parquet")


# -- 8. manifest paths outside the crawl root -------------------------------------------------

SECRET = b"TOP-SECRET-MARKER-8c1f"


def test_manifest_paths_outside_the_root_are_removed_unread(tmp_path, monkeypatch):
    # A valid WARC beside (not inside) the crawl root, holding a page with a marker: were it
    # read, it would be kept as a document.
    outside = tmp_path / "outside.warc.gz"
    outside.write_bytes(page("http://secret/", b"<html><body>" + SECRET + b"</body></html>"))
    crawl = tmp_path / "crawl"
    write_crawl(crawl, {"good.warc.gz": page("http://good/", b"<html><body>good</body></html>")})
    (crawl / "crawl-data" / DUMP / "link.warc.gz").symlink_to(outside)
    good = f"crawl-data/{DUMP}/segments/1/warc/good.warc.gz"
    hostile = ["/etc/passwd", "../outside.warc.gz", "crawl-data/../../outside.warc.gz",
               str(outside), f"crawl-data/{DUMP}/link.warc.gz", "a/\x00/b.warc.gz"]
    (crawl / "crawl-data" / DUMP / "warc.paths.gz").write_bytes(
        gzip.compress("\n".join([good, *hostile]).encode()))

    opened = []
    real_open = CrawlSource.open
    monkeypatch.setattr(CrawlSource, "open", lambda self, rel: opened.append(rel) or real_open(self, rel))
    report, kept, removed = ingest(crawl, tmp_path / "corpus")
    assert [d["url"] for d in kept] == ["http://good/"]
    assert sorted(r["warc_path"] for r in removed) == sorted(hostile)
    assert {r["reason"] for r in removed} == {"path_outside_root"}
    assert opened == [f"crawl-data/{DUMP}/warc.paths.gz", good], "nothing outside the root is opened"
    for path in (tmp_path / "corpus").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert SECRET not in content and b"root:x:0:0" not in content, path
    manifest = CorpusStore(str(tmp_path / "corpus")).read_table(f"crawl_manifest/{DUMP}/manifest.parquet").to_pylist()
    assert all(row["bytes"] == -1 for row in manifest if row["warc_path"] in hostile), "not even stat'ed"


def test_a_path_the_filesystem_refuses_is_one_missing_file(tmp_path):
    long_name = "crawl-data/" + "a" * 5000 + ".warc.gz"
    crawl = write_crawl(tmp_path / "crawl", {"good.warc.gz": page("http://good/", b"<html>g</html>")})
    (crawl / "crawl-data" / DUMP / "warc.paths.gz").write_bytes(
        gzip.compress(f"crawl-data/{DUMP}/segments/1/warc/good.warc.gz\n{long_name}\n".encode()))
    report, kept, removed = ingest(crawl, tmp_path / "corpus")
    assert len(kept) == 1 and [r["detail"][:13] for r in removed] == ["missing_file:"]


def test_path_containment_per_kind(tmp_path):
    local = CrawlSource(str(tmp_path))
    assert local.outside_root("crawl-data/x/a.warc.gz") is None
    assert local.outside_root("crawl-data/./x/../x/a.warc.gz") is None
    for bad in ("/etc/passwd", "../x", "a/../../x", "", "a\x00b"):
        assert local.outside_root(bad), bad
    s3 = CrawlSource("s3://bucket/cc")
    assert s3.outside_root("crawl-data/x/a.warc.gz") is None
    for bad in ("../other/x", "crawl-data/../../x", "/crawl-data/x", "./x", "a\\..\\x"):
        assert s3.outside_root(bad), bad
    assert s3.outside_root("crawl-data/%2e%2e/x") is None, "S3 keys are literal: no traversal"
    web = CrawlSource("https://data.example.org/base")
    assert web.outside_root("crawl-data/x/a.warc.gz") is None
    for bad in ("../x", "crawl-data/%2E%2E/%2e%2e/x", "//evil.example/x", "a?b", "a#b", "a\\..\\..\\x"):
        assert web.outside_root(bad), bad


# -- 16. the demo against an S3 crawl source --------------------------------------------------

def test_demo_reads_an_s3_crawl_source(s3_client, s3_endpoint, tmp_path):
    # The demo as a user runs it (a subprocess, ~40 s: every asset of one tiny dump), since
    # the crash was in how its main() built the crawl source.
    bucket = f"crawl-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    crawl = write_crawl(tmp_path / "crawl", {"a.warc.gz": page("http://a.example/", b"<html>a</html>")})
    for path in crawl.rglob("*"):
        if path.is_file():
            s3_client.upload_file(str(path), bucket, f"cc/{path.relative_to(crawl)}")
    env = {**os.environ, "CORPUS_CRAWL_ROOT": f"s3://{bucket}/cc", "CORPUS_S3_ENDPOINT_URL": s3_endpoint,
           "DAGSTER_HOME": str(tmp_path / "home"), "CORPUS_ROOT": str(tmp_path / "corpus"),
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "CORPUS_NUM_SHARDS": "1"}
    done = subprocess.run([sys.executable, "-m", "corpus_assets.demo", "--workers", "1", "--through-dedup"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"dumps=['{DUMP}']" in done.stdout and f"crawl source=s3://{bucket}/cc" in done.stdout
    # The page was read from the bucket: raw_documents' row of the retention table has it.
    raw_row = next(line for line in done.stdout.splitlines() if line.startswith("raw_documents"))
    assert raw_row.split()[2:4] == ["1", "1"], raw_row


# -- issue 12: a file or record read twice ----------------------------------------------------

def _two_page_file(tag: str = "") -> bytes:
    return (page("http://p.example/1", b"<html><body>page one " + tag.encode() + b"</body></html>")
            + page("http://p.example/2", b"<html><body>page two</body></html>"))


def test_a_file_named_twice_in_the_manifest_is_read_once(tmp_path):
    crawl = write_crawl(tmp_path / "crawl", {"a.warc.gz": _two_page_file()})
    base = crawl / "crawl-data" / DUMP / "segments" / "1" / "warc"
    (base / "link.warc.gz").symlink_to("a.warc.gz")
    a = f"crawl-data/{DUMP}/segments/1/warc/a.warc.gz"
    spellings = [a, a, "./" + a, f"crawl-data/{DUMP}/segments/1/../1/warc/a.warc.gz",
                 f"crawl-data/{DUMP}/segments/1/warc/link.warc.gz", a + "\r", " \t" + a]
    raw = ("\ufeff" + "\n".join(spellings) + "\n").encode()
    (crawl / "crawl-data" / DUMP / "warc.paths.gz").write_bytes(gzip.compress(raw))
    report, kept, removed = ingest(crawl, tmp_path / "corpus")
    assert sorted(d["url"] for d in kept) == ["http://p.example/1", "http://p.example/2"]
    assert [r["reason"] for r in removed] == ["duplicate_manifest_entry"] * (len(spellings) - 1), removed
    assert all(a in r["detail"] for r in removed)


@pytest.mark.parametrize("suffix", ["\u00a0", "\u2028", "\u3000"])
def test_unicode_spaces_around_a_manifest_path_are_part_of_it(tmp_path, suffix):
    crawl = write_crawl(tmp_path / "crawl", {"a.warc.gz": _two_page_file()})
    a = f"crawl-data/{DUMP}/segments/1/warc/a.warc.gz"
    (crawl / "crawl-data" / DUMP / "warc.paths.gz").write_bytes(gzip.compress(f"{a}\n{a}{suffix}\n".encode()))
    report, kept, removed = ingest(crawl, tmp_path / "corpus")
    assert len(kept) == 2
    assert [r["detail"].split(":")[0] for r in removed] == ["not_a_file"] or \
        [r["detail"].split(":")[0] for r in removed] == ["missing_file"], removed


def test_two_files_with_the_same_record_ids_keep_distinct_doc_ids(tmp_path):
    # The same records (same WARC-Record-IDs) in two files: each physical record is a document.
    crawl = write_crawl(tmp_path / "crawl", {"a.warc.gz": _two_page_file(), "b.warc.gz": _two_page_file("b")})
    report, kept, removed = ingest(crawl, tmp_path / "corpus")
    assert len(kept) == 4 and len({d["doc_id"] for d in kept}) == 4
    assert len({d["warc_record_id"] for d in kept}) == 2
    # ...and the ids are stable: the same input gives the same ids.
    _, again, _ = ingest(crawl, tmp_path / "corpus2")
    assert [d["doc_id"] for d in again] == [d["doc_id"] for d in kept]


def test_minhash_signatures_refuse_a_partition_with_repeated_doc_ids(tmp_path):
    from corpus_assets import dedup_stages

    store = CorpusStore(str(tmp_path / "corpus"))
    rows = [{"doc_id": "same", "url": f"http://x/{i}", "text": "one two three four five six seven " * 5} for i in range(2)]
    class KeepAll(Step):
        name = "keep_all"

        def apply(self, doc):
            return None

    run_document_stage(store, "rw_filtered", DUMP, SHARD, iter(rows), [KeepAll()])
    with pytest.raises(ValueError, match="doc_id .*same.* more than once"):
        dedup_stages.build_minhash_signatures(store, DUMP, SHARD, PipelineConfig())
    assert not store.exists(dedup_stages.signatures_path(DUMP, SHARD)), "nothing published"


# -- issue 12: paths that are not plain files ------------------------------------------------

def test_a_symlink_loop_a_directory_and_a_fifo_are_named_for_what_they_are(tmp_path):
    crawl = write_crawl(tmp_path / "crawl", {"a.warc.gz": _two_page_file()})
    base = crawl / "crawl-data" / DUMP / "segments" / "1" / "warc"
    (base / "loop1").symlink_to("loop2")
    (base / "loop2").symlink_to("loop1")
    (base / "dir.warc.gz").mkdir()
    os.mkfifo(base / "fifo.warc.gz")
    rel = f"crawl-data/{DUMP}/segments/1/warc/"
    names = ["a.warc.gz", "loop1", "dir.warc.gz", "fifo.warc.gz"]
    (crawl / "crawl-data" / DUMP / "warc.paths.gz").write_bytes(gzip.compress("\n".join(rel + n for n in names).encode()))
    report, kept, removed = ingest(crawl, tmp_path / "corpus")
    assert len(kept) == 2
    by_path = {r["warc_path"].rsplit("/", 1)[1]: (r["reason"], r["detail"]) for r in removed}
    assert by_path["loop1"][1].startswith("unreadable_path: cannot be resolved: symlink loop"), by_path
    assert "RuntimeError" not in by_path["loop1"][1]
    assert by_path["dir.warc.gz"][1].startswith("not_a_file"), by_path
    assert by_path["fifo.warc.gz"][1].startswith("not_a_file"), by_path


def test_a_gzip_bomb_manifest_fails_clearly_in_bounded_memory(tmp_path):
    import tracemalloc

    dump_dir = tmp_path / "crawl" / "crawl-data" / DUMP
    dump_dir.mkdir(parents=True)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    line = b"crawl-data/x.warc.gz\n" * 50_000
    bomb = b"".join([c.compress(line) for _ in range(300)] + [c.flush()])  # ~300 MB of lines
    (dump_dir / "warc.paths.gz").write_bytes(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(CrawlSourceError, match="more than"):
            CrawlSource(str(tmp_path / "crawl")).read_manifest(DUMP)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 150 * 2**20, peak


def test_a_refused_spelling_listed_first_does_not_stop_the_file_being_read(tmp_path):
    # The absolute path names the same file but is refused (never opened): the relative
    # entry after it is the one read, not a "duplicate" of a refused entry.
    crawl = write_crawl(tmp_path / "crawl", {"a.warc.gz": _two_page_file()})
    a = f"crawl-data/{DUMP}/segments/1/warc/a.warc.gz"
    (crawl / "crawl-data" / DUMP / "warc.paths.gz").write_bytes(gzip.compress(f"{crawl / a}\n{a}\n{a}\n".encode()))
    report, kept, removed = ingest(crawl, tmp_path / "corpus")
    assert len(kept) == 2
    assert sorted(r["reason"] for r in removed) == ["duplicate_manifest_entry", "path_outside_root"]
    assert "manifest entry 2 " in next(r["detail"] for r in removed if r["reason"] == "duplicate_manifest_entry")

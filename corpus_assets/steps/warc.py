"""Reading WARC/ARC files into raw response documents, and decoding their HTML.

Reader: warcio (already a declared dependency), not FastWARC. Speed does not decide:
reading every response body of CC-MAIN-2024-10 (4 files, 759 responses) takes 0.30 s
with warcio (0.30 s through this module) and 0.13 s with FastWARC 2.0.1 (best of 5),
i.e. 0.4 ms against 0.17 ms a page, next to ~25 ms of trafilatura later. Robustness
decides, and FastWARC loses: it cannot read ARC (``example.arc.gz``: "Invalid WARC
header"; with ``quirks_mode``, 0 records and no error); on the ClueWeb09 WARC/0.18 file
it silently returns the wrong bytes (21 KB from mid-page instead of the 31 KB page, the
``<head>`` lost) or, with ``quirks_mode``, a gzip error on the first record; it keeps
wget's ``<...>`` around target URIs. warcio gets all of those right. Its weaknesses are
handled here: gzip members that do not line up with records (``example-bad*``,
``example-wrong-chunks``; warcio raises or returns an empty body) are re-read as one
continuous gzip stream, losing nothing; a truncated last member (the cut CC-MAIN-2024-18
file), which warcio, like FastWARC, ends silently, is found by comparing the bytes read
with Content-Length and by the gzip end-of-stream marker; a corrupt member, after which
warcio prints to stderr and reads on to the end of the file, is counted and skipped.
HTTP headers are parsed here, not by warcio, which skips them when the target URI is
not http(s) (one real page of the sample has ``xhttps://``).

``iter_warc_responses`` never raises on bad data: each failure point becomes one extra
document with ``read_error`` = ``"<code>: <detail>"``. Codes: ``truncated_file`` (a
record or gzip member cut off by the end of the file; reading stops), ``corrupt_gzip``
(compressed bytes that do not inflate), ``corrupt_record`` (bytes that are not a record
where one should start; a WARC record without WARC-Type or without a Content-Length of
ASCII digits, whose end cannot be known; header lines over 64 KB), ``not_warc`` (nothing
readable at the start of the file, an empty file, a file of blank lines, or text whose
first line only looks like an ARC header: warcio takes any line for one),
``unexpected_error`` (a bug in this module).
After a corrupt member or record, reading resumes at the next gzip member (or ``WARC/``
line) that parses, always after the place the failed try began, so no input loops. A
payload above the memory cap keeps its HTTP status and type (``body`` empty,
``body_length`` its size), so it is judged as oversized or not HTML. Exceptions raised by
the stream itself (disk, network), and ``MemoryError``, are not bad data and propagate,
so the orchestrator retries the partition rather than recording a healthy file as lost.
The stream is never seeked: a replay window of recent bytes gives the same behaviour on
a local file and on a non-seekable S3 or HTTP body.

``HtmlDecode`` is the ``raw_documents`` step: it keeps HTTP 200 HTML responses and turns
their bytes into text (BOM, HTTP charset, the page's own declaration, strict UTF-8,
charset-normalizer, then UTF-8 if few characters need replacing); ~0.1 ms a page.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, BinaryIO, Iterator, Optional

from pydantic import Field

from warcio.archiveiterator import ArchiveIterator

from corpus_assets.steps.base import Document, Step
from corpus_assets.steps.base import describe_exception as _short
from corpus_assets.steps.setting_types import Fraction, NonEmptyStr, NonNegativeInt, PositiveInt

try:  # brotli and zstandard are optional: without them such payloads stay encoded.
    import brotli  # type: ignore
except ImportError:  # pragma: no cover
    brotli = None
try:
    import zstandard  # type: ignore
except ImportError:  # pragma: no cover
    zstandard = None

# The columns every yielded document has, with their "missing" values.
RESPONSE_FIELDS = {
    "doc_id": "",
    "warc_record_id": "",
    "url": "",
    "warc_date": "",
    "warc_path": "",
    "warc_offset": -1,
    "http_status": -1,
    "content_type": "",
    "http_charset": "",
    "body": b"",
    "body_length": 0,
    "warc_truncated": "",
    "read_error": "",
}

# Payloads above this are not held in memory: body is b"" and body_length the real size,
# so HtmlDecode removes them as oversized. Common Crawl truncates payloads at 1 MiB.
DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
_READ_CHUNK = 1 << 20
_MAX_HTTP_HEADER = 64 * 1024
# A record's WARC (or ARC) header lines, together. Real ones are under 2 KB; warcio reads a
# header line whole, however long, so a line with no end would be held in memory entire.
_MAX_WARC_HEADER = 64 * 1024
# Content-Length as the WARC standard writes it: ASCII digits only (int() would also take
# "+12", "1_0" and other scripts' digits; warcio takes a negative one and steps backwards).
_CONTENT_LENGTH = re.compile(r"[0-9]{1,20}")
# How many bytes behind the current record the replay window keeps at most.
_MAX_WINDOW = 64 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b\x08"


def make_doc_id(key: str) -> str:
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()



# -- the input stream ---------------------------------------------------------------------


class _StreamError(Exception):
    """An exception raised by the caller's stream itself (not by bad data)."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


class _Replayable:
    """Forward-only reading of the caller's stream, with a window of recent bytes that
    can be re-read. Offsets are the stream's. The underlying stream is never seeked."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        try:
            start = int(raw.tell())
        except Exception:
            start = 0
        self._buf = bytearray()
        self._base = start  # stream offset of _buf[0]
        self._pos = start
        self.start = start
        self.source_eof = False
        self.retain = True

    def tell(self) -> int:
        return self._pos

    @property
    def window_start(self) -> int:
        return self._base

    def at_eof(self) -> bool:
        return self.source_eof and self._pos >= self._base + len(self._buf)

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0:
            raise OSError("only absolute seeks inside the replay window")
        self._pos = max(self._base, min(offset, self._base + len(self._buf)))
        return self._pos

    def release(self, offset: int) -> None:
        """Forget the bytes before ``offset``."""
        k = min(offset, self._pos) - self._base
        if k > 0:
            del self._buf[:k]
            self._base += k

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        out = b""
        end = self._base + len(self._buf)
        if self._pos < end:
            i = self._pos - self._base
            out = bytes(self._buf[i : i + size])
            self._pos += len(out)
            size -= len(out)
            if size <= 0:
                return out
        if self.source_eof:
            return out
        try:
            data = self._raw.read(min(size, _READ_CHUNK * 4))
        except Exception as exc:  # the source failed: not a data error
            raise _StreamError(exc) from exc
        if not data:
            self.source_eof = True
            return out
        if self.retain:
            self._buf += data
            if len(self._buf) > _MAX_WINDOW:
                self.release(self._pos - _MAX_WINDOW // 2)
        else:
            self._buf.clear()
            self._base = self._pos + len(data)
        self._pos += len(data)
        return out + data if out else data

    def readable(self) -> bool:
        return True

    def close(self) -> None:  # the caller owns the underlying stream
        pass


# -- HTTP -------------------------------------------------------------------------------

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_CHUNK_SIZE = re.compile(rb"[ \t]*([0-9A-Fa-f]+)[^\n]*\n")


def _parse_http(block: bytes):
    """Split an HTTP response block: (status, headers dict of the first occurrence of
    each lowercased name, payload). None when the block is not an HTTP response."""
    start = 0
    while start < len(block) and start < 16 and block[start] in b"\r\n \t":
        start += 1
    if not block.startswith(b"HTTP/", start):
        return None
    m = _HEADER_END.search(block, start, start + _MAX_HTTP_HEADER)
    if m:
        head, payload = block[start : m.start()], block[m.end() :]
    elif len(block) - start <= _MAX_HTTP_HEADER:
        head, payload = block[start:], b""  # headers only, no blank line (e.g. a redirect)
    else:
        return -1, {}, b""
    lines = head.split(b"\n")
    parts = lines[0].split(None, 2)
    status = -1
    if len(parts) >= 2 and len(parts[1]) == 3 and parts[1].isdigit():
        status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or line[:1] in (b" ", b"\t"):
            continue
        key = name.strip().lower().decode("latin-1")
        if key not in headers:
            headers[key] = value.strip().decode("latin-1")
    return status, headers, payload


def _split_content_type(value: str) -> tuple[str, str]:
    mime, _, params = value.partition(";")
    charset = ""
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset":
            charset = val.strip().strip("\"'").strip().lower()
            break
    return mime.strip().lower(), charset


def _dechunk(data: bytes) -> bytes:
    """Undo chunked transfer coding. Raises ValueError when the data is not chunked; a
    payload cut inside a chunk (WARC-Truncated) gives what is there."""
    out = []
    pos = 0
    n = len(data)
    while pos < n:
        m = _CHUNK_SIZE.match(data, pos)
        if not m or m.end() - pos > 1024:
            raise ValueError("not chunked")
        size = int(m.group(1), 16)
        pos = m.end()
        if size == 0:
            break
        out.append(data[pos : pos + size])
        pos += size
        if data.startswith(b"\r\n", pos):
            pos += 2
        elif data.startswith(b"\n", pos):
            pos += 1
        elif pos < n:
            raise ValueError("chunk not followed by a line end")
    return b"".join(out)


def _inflate(data: bytes, wbits: int, cap: int) -> bytes:
    # decompressobj, not gzip.decompress: a truncated payload gives its readable part.
    return zlib.decompressobj(wbits).decompress(data, cap + 1)


def _gunzip_members(data: bytes, cap: int) -> bytes:
    """Every gzip member of ``data`` in turn (a body may be several concatenated members,
    which gzip.decompress also reads), at most ``cap + 1`` bytes in all. A member that
    does not inflate after the first ends the body there."""
    out, total = [], 0
    first = True
    while data and total <= cap:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = d.decompress(data, cap + 1 - total)
        except zlib.error:
            if first:
                raise
            break
        out.append(chunk)
        total += len(chunk)
        first = False
        if not d.eof:
            break  # cut off, or over the cap
        data = d.unused_data.lstrip(b"\x00")  # some writers pad members with NULs
        if not data.startswith(b"\x1f\x8b"):
            break
    return b"".join(out)


def _decode_content(data: bytes, encoding: str, cap: int) -> bytes:
    """Undo one Content-Encoding; raises on failure (the caller keeps the input)."""
    if encoding in ("gzip", "x-gzip"):
        if not data.startswith(b"\x1f\x8b"):
            # Header kept but payload already decoded (ClueWeb09, some crawlers).
            raise ValueError("not gzip data")
        return _gunzip_members(data, cap)
    if encoding == "deflate":
        try:
            return _inflate(data, zlib.MAX_WBITS, cap)
        except zlib.error:
            return _inflate(data, -zlib.MAX_WBITS, cap)
    if encoding == "br" and brotli is not None:
        return brotli.decompress(data)
    if encoding == "zstd" and zstandard is not None:
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            return reader.read(cap + 1)
    raise ValueError(f"unsupported content encoding {encoding!r}")


def _decode_payload(payload: bytes, headers: dict, cap: int) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        try:
            payload = _dechunk(payload)
        except ValueError:
            pass  # labelled chunked but is not: keep it as it is
    encodings = [e.strip().lower() for e in headers.get("content-encoding", "").split(",")]
    for encoding in reversed([e for e in encodings if e and e != "identity"]):
        try:
            payload = _decode_content(payload, encoding, cap)
        except MemoryError:
            raise
        except Exception:
            break  # keep what we have; HtmlDecode judges it
    return payload


# -- records ----------------------------------------------------------------------------


def _arc_date(value: str) -> str:
    v = (value or "").strip()
    if len(v) >= 14 and v[:14].isdigit():
        return f"{v[0:4]}-{v[4:6]}-{v[6:8]}T{v[8:10]}:{v[10:12]}:{v[12:14]}Z"
    return v


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    if url.startswith("<") and url.endswith(">"):
        url = url[1:-1].strip()
    return url.replace(" ", "%20")


class _Failure(Exception):
    """A read failure with its code, the offset it is counted at and what is known."""

    def __init__(self, code: str, detail: str, offset: int, url: str = "",
                 record_id: str = "", date: str = ""):
        super().__init__(f"{code}: {detail}")
        self.code, self.detail, self.offset = code, detail, offset
        self.url, self.record_id, self.date = url, record_id, date


class _CorruptGzip(Exception):
    """Compressed bytes inside a gzip member that do not decompress."""


class _GzipTruncated(Exception):
    """GzipFile hit the end of the data inside a member (not an EOFError, which warcio
    would take for a clean end of file)."""


class _NoEOFError:
    def __init__(self, gz: gzip.GzipFile):
        self._gz = gz

    def tell(self) -> int:
        return self._gz.tell()

    def read(self, size: int = -1) -> bytes:
        try:
            return self._gz.read(size)
        except EOFError as exc:
            raise _GzipTruncated(_short(exc)) from None


def _watch_gzip(reader, seen: dict) -> None:
    """warcio, on a decompression error after the first block of a member, writes to
    stderr, returns b"" and reads on to the end of the file. Raise instead, so the loss
    is counted and reading resumes at the next member. Also remember the last gzip
    decompressor: warcio drops it at the end, and only it knows whether the last
    member was whole."""
    original = reader._decompress

    def _decompress(data):
        decomp = reader.decompressor
        if decomp is not None and data and reader.num_block_read > 0:
            try:
                out = decomp.decompress(data)
            except zlib.error as exc:
                raise _CorruptGzip(_short(exc)) from None
        else:
            out = original(data)  # the first block: warcio may decide it is not gzip
        seen["decomp"] = reader.decompressor
        return out

    reader._decompress = _decompress


def _blank_gzip(data: bytes) -> bool:
    """True when ``data`` is whole gzip members that inflate to whitespace only."""
    try:
        while data:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            if d.decompress(data, 4096).strip(b"\r\n\t \x00") or not d.eof:
                return False
            data = d.unused_data
        return True
    except zlib.error:
        return False


class _HeaderTooLong(Exception):
    """A record's header lines go on past ``_MAX_WARC_HEADER`` bytes."""


def _cap_header_lines(reader, state: dict) -> None:
    """warcio reads header lines with ``readline()`` and no length: one line with no end
    would be read whole (about three times its size in memory, a 2 MB .warc.gz takes
    3 GB), and millions of short lines pile up as header tuples. Bound both: the
    non-blank lines read since ``state["header_bytes"]`` was last reset (after each record
    is parsed) may not pass ``_MAX_WARC_HEADER``. Blocks are read with ``read()``, not
    counted; runs of blank lines between records are not counted either."""
    original = reader.readline

    def readline(length=None):
        budget = _MAX_WARC_HEADER + 1 - state["header_bytes"]
        line = original(budget if length is None else max(1, min(length, budget)))
        if line.strip():
            state["header_bytes"] += len(line)
            if state["header_bytes"] > _MAX_WARC_HEADER:
                raise _HeaderTooLong(f"record header longer than {_MAX_WARC_HEADER} bytes")
        return line

    reader.readline = readline


class _Framing(Exception):
    """gzip members do not line up with records: re-read from ``offset`` as one stream."""

    def __init__(self, offset: int, skip: int):
        super().__init__(f"gzip framing at {offset}")
        self.offset, self.skip = offset, skip


class _Reader:
    def __init__(self, stream: BinaryIO, warc_path: str, max_payload_bytes: int,
                 record_counts: Optional[Counter] = None):
        self.src = _Replayable(stream)
        self.path = warc_path
        self.cap = max_payload_bytes
        self.records_read = 0  # records of any type read whole, this file
        # Records read whole, by WARC-Type (ARC: "response", "arc_header"), for the caller.
        self.record_counts = record_counts if record_counts is not None else Counter()
        self._gzip_file = False

    # -- one document ---------------------------------------------------------------

    def _error_doc(self, f: _Failure, key: str) -> Document:
        doc = dict(RESPONSE_FIELDS)
        doc.update(
            doc_id=make_doc_id(key),
            warc_record_id=f.record_id,
            url=f.url,
            warc_date=f.date,
            warc_path=self.path,
            warc_offset=f.offset,
            read_error=f"{f.code}: {f.detail}",
        )
        return doc

    def _read_block(self, record) -> tuple[bytes, int]:
        """The record's block, capped: (bytes kept, total bytes). Reads to its end. Of a
        block above the cap only the first ``_MAX_HTTP_HEADER`` bytes are kept: enough
        for its HTTP status and Content-Type, so it is judged (oversized HTML, or not
        HTML at all) rather than counted as a response without a status."""
        stream = record.raw_stream
        limit = self.cap + _MAX_HTTP_HEADER
        parts, total, over = [], 0, False
        while True:
            chunk = stream.read(_READ_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if over:
                continue
            if total <= limit:
                parts.append(chunk)
            else:  # just went over the cap: keep the head only
                parts = [b"".join(parts + [chunk])[:_MAX_HTTP_HEADER]]
                over = True
        block = b"".join(parts)
        return block, max(total, len(block))

    def _record(self, it, record, offset: int, continuous: bool, base: int):
        """Turn one parsed record into a document (or None when it is not a response).
        Raises _Failure / _Framing when its bytes are cut off."""
        fmt = record.format
        rec_type = record.rec_type
        headers = record.rec_headers
        if fmt != "arc" and not headers.headers and not (headers.protocol or "").strip():
            # warcio's "record" of blank lines before the end of the data: no record at all.
            code = "not_warc" if offset == self.src.start and not self.records_read else "corrupt_record"
            raise _Failure(code, "blank lines where a record should start", offset)
        if fmt != "arc":
            self._check_warc_header(it, headers, offset, continuous)
            rec_type = rec_type.strip().lower()  # "Response": the standard's names, another case
        if fmt == "arc":
            self._check_arc_header(headers, offset)
            url = _clean_url(headers.get_header("uri") or "")
            if rec_type != "response" or url.startswith("filedesc:"):
                self._read_block(record)
                self._check_complete(it, record, offset, continuous, "", "", "")
                return None
            record_id, date, truncated = "", _arc_date(headers.get_header("archive-date")), ""
        else:
            if rec_type != "response":
                self._read_block(record)
                self._check_complete(it, record, offset, continuous, "", "", "")
                return None
            url = _clean_url(headers.get_header("WARC-Target-URI") or "")
            record_id = (headers.get_header("WARC-Record-ID") or "").strip()
            date = (headers.get_header("WARC-Date") or "").strip()
            truncated = (headers.get_header("WARC-Truncated") or "").strip()

        block, block_len = self._read_block(record)
        self._check_complete(it, record, offset, continuous, url, record_id, date)

        status, content_type, charset, body, body_length = -1, "", "", b"", 0
        if block_len > len(block):
            # Too large to hold: only the head was kept. body stays b"" with the real
            # length, and HtmlDecode removes it as oversized (or not_html).
            http = _parse_http(block)
            if http is None:
                content_type, charset = _split_content_type(headers.get_header("Content-Type") or "")
                body_length = block_len
            else:
                status, http_headers, payload = http
                content_type, charset = _split_content_type(http_headers.get("content-type", ""))
                body_length = block_len - (len(block) - len(payload))
        else:
            http = _parse_http(block)
            if http is None:
                body = block  # a response record without HTTP (dns:, ftp:, ...)
                content_type, charset = _split_content_type(
                    headers.get_header("Content-Type") or "")
            else:
                status, http_headers, payload = http
                content_type, charset = _split_content_type(http_headers.get("content-type", ""))
                body = _decode_payload(payload, http_headers, self.cap)
            body_length = len(body)
            if body_length > self.cap:
                body = b""
        # doc_id names the physical record: its place in its file, plus its WARC-Record-ID.
        # The id alone is the writer's promise, not a fact: two files (or a hostile record
        # reusing a victim's id) may share it, and dedup keys on doc_id.
        if continuous:
            key = f"{self.path}@gunzip:{base}+{offset}"
            warc_offset = -1
        else:
            key = f"{self.path}@{offset}"
            warc_offset = offset
        if record_id:
            key += f" {record_id}"
        return {
            "doc_id": make_doc_id(key),
            "warc_record_id": record_id,
            "url": url,
            "warc_date": date,
            "warc_path": self.path,
            "warc_offset": warc_offset,
            "http_status": status,
            "content_type": content_type,
            "http_charset": charset,
            "body": body,
            "body_length": body_length,
            "warc_truncated": truncated,
            "read_error": "",
        }

    def _check_warc_header(self, it, headers, offset: int, continuous: bool) -> None:
        """A WARC record needs a WARC-Type and a Content-Length of ASCII digits. Without a
        valid length the record's end is unknown: warcio reads a negative one backwards
        (its offsets go negative) and a missing one as zero, leaving the block to be
        misread as the next record. Either way the record is one ``corrupt_record`` and
        reading resumes at the next record; only headers cut off by the end of the file
        (nothing after them) are ``truncated_file``."""
        url = _clean_url(headers.get_header("WARC-Target-URI") or "")
        record_id = (headers.get_header("WARC-Record-ID") or "").strip()
        date = (headers.get_header("WARC-Date") or "").strip()
        declared = headers.get_header("Content-Length")
        if declared is None or not _CONTENT_LENGTH.fullmatch(declared.strip()):
            if declared is None and self._headers_cut_off(it, continuous):
                raise _Failure("truncated_file", "record headers cut off (no Content-Length)",
                               offset, url, record_id, date)
            detail = "no Content-Length" if declared is None else f"invalid Content-Length {declared[:40]!r}"
            raise _Failure("corrupt_record", detail, offset, url, record_id, date)
        if not (headers.get_header("WARC-Type") or "").strip():
            raise _Failure("corrupt_record", "no WARC-Type", offset, url, record_id, date)

    def _headers_cut_off(self, it, continuous: bool) -> bool:
        """The file ends right after these headers (or inside them)."""
        if not self.src.at_eof():
            return False
        reader = it.reader
        decomp = getattr(reader, "decompressor", None) if reader else None
        if decomp is not None and not continuous:
            return not decomp.eof  # the gzip member holding them is cut off
        return reader is None or reader.rem_length() == 0

    def _check_arc_header(self, headers, offset: int) -> None:
        """warcio takes any line that does not start with ``WARC/`` for an ARC header
        (``URL IP date content-type length``): twenty lines of prose become ten records.
        A real ARC header has a numeric archive date and length."""
        date = (headers.get_header("archive-date") or "").strip()
        length = (headers.get_header("length") or "").strip()
        if length.isdigit() and len(date) >= 8 and date.isdigit():
            return
        line = " ".join(value for _, value in headers.headers)
        code = "not_warc" if offset == self.src.start and not self.records_read else "corrupt_record"
        raise _Failure(code, f"not a WARC or ARC record header: {line[:80]!r}", offset)

    def _check_complete(self, it, record, offset, continuous, url, record_id, date):
        """A block shorter than its Content-Length: cut file, corrupt gzip, or gzip
        members that end inside records."""
        decomp = getattr(it.reader, "decompressor", None) if it.reader else None
        declared = record.rec_headers.get_header(
            "length" if record.format == "arc" else "Content-Length") or ""
        if not hasattr(record.raw_stream, "limit") or not declared.strip().isdigit():
            # No valid Content-Length: the record's headers were cut off by the end of the
            # file (a complete WARC record always has one). Otherwise be lenient.
            if self.src.at_eof() and (continuous or decomp is None or not decomp.eof):
                raise _Failure("truncated_file", "record headers cut off (no Content-Length)",
                               offset, url, record_id, date)
            return
        missing = record.raw_stream.limit
        if not missing:
            return
        expected = getattr(record.raw_stream, "_orig_limit", 0)
        detail = f"record ends after {expected - missing} of {expected} bytes"
        if continuous or decomp is None:
            code = "truncated_file" if self.src.at_eof() or continuous else "corrupt_record"
            raise _Failure(code, detail, offset, url, record_id, date)
        if getattr(decomp, "eof", False) and (decomp.unused_data or not self.src.at_eof()):
            raise _Framing(offset, 0)  # the gzip member ended cleanly inside the record
        if self.src.at_eof() and not decomp.unused_data:
            raise _Failure("truncated_file", detail, offset, url, record_id, date)
        raise _Failure("corrupt_gzip", detail, offset, url, record_id, date)

    # -- one pass over the members ---------------------------------------------------

    def _members(self, start: int, probing: bool):
        """Read record after record from ``start``. Returns None at the end of the file;
        raises _Failure or _Framing. With ``probing``, a first record that does not parse
        returns "no_record" instead (a resync candidate that was not one)."""
        self.src.seek(start)
        it = ArchiveIterator(self.src, no_record_parse=True, arc2warc=False)
        seen: dict = {"header_bytes": 0}
        _watch_gzip(it.reader, seen)
        _cap_header_lines(it.reader, seen)
        prev_offset = start
        first = True
        while True:
            try:
                record = next(it)
            except StopIteration:
                self._check_tail(it.offset, seen.get("decomp"))
                return None
            except (_StreamError, MemoryError):
                raise
            except Exception as exc:
                # warcio has moved its offset to the start of the record that failed.
                offset = it.offset
                if probing and first:
                    return "no_record"
                if "non-chunked gzip" in str(exc):
                    raise _Framing(prev_offset, 1) from None
                decomp = getattr(it.reader, "decompressor", None) if it.reader else None
                if isinstance(exc, _HeaderTooLong):
                    code = "corrupt_record"
                elif isinstance(exc, _CorruptGzip):
                    code = "corrupt_gzip"
                elif decomp is not None and not decomp.eof and self.src.at_eof():
                    code = "truncated_file"  # the last gzip member stops inside the header
                elif self._gzip_file and seen.get("decomp", 0) is None and self._peek(offset, 2) == b"\x1f\x8b":
                    code = "corrupt_gzip"  # a gzip member whose start does not inflate
                elif offset == self.src.start and not self.records_read:
                    code = "not_warc"
                else:
                    code = "corrupt_record"
                raise _Failure(code, str(exc) if isinstance(exc, _HeaderTooLong) else _short(exc), offset) from None
            offset = it.offset
            seen["header_bytes"] = 0
            self.src.release(min(prev_offset, offset))
            try:
                doc = self._record(it, record, offset, False, start)
            except (_Failure, _Framing, _StreamError, MemoryError):
                raise
            except _CorruptGzip as exc:
                raise _Failure("corrupt_gzip", str(exc), offset, *self._known(record)) from None
            except Exception as exc:
                raise _Failure("corrupt_record", _short(exc), offset, *self._known(record)) from None
            self.records_read += 1
            self.record_counts[record.rec_type or "unknown"] += 1
            first = False
            prev_offset = offset
            if doc is not None:
                yield doc

    def _check_tail(self, end: int, last_decomp) -> None:
        """warcio ends quietly when the file stops inside a gzip member at a record
        boundary or before a whole header line. Those are cut-off files too; other bytes
        left after the last record are trailing garbage."""
        if not self.src.at_eof():
            return
        # warcio sets up a gzip decompressor before it knows the data is not gzip (one
        # byte is not enough to tell): only a gzip file has a gzip member to cut.
        if self._gzip_file and last_decomp is not None and not last_decomp.eof:
            raise _Failure("truncated_file", "the last gzip member is cut off", end)
        self.src.seek(end)
        tail = self.src.read()
        if not tail.strip(b"\r\n\t \x00"):
            return
        if tail.startswith(b"\x1f\x8b") and _blank_gzip(tail):
            return  # empty gzip members after the last record (valid gzip, no record)
        if tail.startswith(b"\x1f\x8b") or tail.lstrip().startswith((b"WARC/", b"http")):
            raise _Failure("truncated_file", f"{len(tail)} bytes of a record cut off", end)
        code = "not_warc" if end == self.src.start and not self.records_read else "corrupt_record"
        raise _Failure(code, f"{len(tail)} unreadable bytes at the end", end)

    def _peek(self, offset: int, n: int) -> bytes:
        """Bytes at ``offset`` if the replay window still holds them (moves the stream)."""
        if offset < self.src.window_start:
            return b""
        self.src.seek(offset)
        return self.src.read(n)

    @staticmethod
    def _known(record) -> tuple[str, str, str]:
        """(url, record id, date) of a record whose block failed."""
        try:
            h = record.rec_headers
            if record.format == "arc":
                return _clean_url(h.get_header("uri") or ""), "", _arc_date(h.get_header("archive-date"))
            return (_clean_url(h.get_header("WARC-Target-URI") or ""),
                    (h.get_header("WARC-Record-ID") or "").strip(),
                    (h.get_header("WARC-Date") or "").strip())
        except Exception:
            return "", "", ""

    def _continuous(self, start: int, skip: int):
        """Re-read from ``start`` as one continuous (multi-member) gzip stream."""
        self.src.seek(start)
        self.src.retain = False
        gz = _NoEOFError(gzip.GzipFile(fileobj=self.src, mode="rb"))
        it = ArchiveIterator(gz, no_record_parse=True, arc2warc=False)
        state = {"header_bytes": 0}
        _cap_header_lines(it.reader, state)
        n = 0
        while True:
            offset = it.offset
            try:
                record = next(it)
                state["header_bytes"] = 0
                offset = it.offset
                if n < skip:
                    self._read_block(record)
                    doc = None
                else:
                    doc = self._record(it, record, offset, True, start)
                    self.record_counts[record.rec_type or "unknown"] += 1
            except StopIteration:
                return
            except (_StreamError, _Failure, MemoryError):
                raise
            except (_GzipTruncated, EOFError) as exc:
                raise _Failure("truncated_file", str(exc), -1) from None
            except (OSError, zlib.error) as exc:
                raise _Failure("corrupt_gzip", _short(exc), -1) from None
            except Exception as exc:
                raise _Failure("corrupt_record", _short(exc), -1) from None
            n += 1
            self.records_read += 1
            if doc is not None:
                yield doc

    def _resync(self, after: int) -> Optional[int]:
        """The next place after ``after`` where a record may start, or None."""
        self.src.seek(after + 1)
        compressed = self._gzip_file
        magic = _GZIP_MAGIC if compressed else b"\nWARC/"
        shift = 0 if compressed else 1
        pos = self.src.tell()
        carry = b""
        while True:
            chunk = self.src.read(_READ_CHUNK)
            if not chunk:
                return None
            data = carry + chunk
            data_start = pos - len(carry)
            i = data.find(magic)
            if i >= 0:
                return data_start + i + shift
            pos += len(chunk)
            carry = data[-(len(magic) - 1) :]
            self.src.release(pos - len(carry))

    def __iter__(self) -> Iterator[Document]:
        try:
            yielded = 0
            for doc in self._read_file():
                yielded += 1
                yield doc
            if not yielded and not self.records_read:
                # Blank lines, or an empty gzip member: nothing failed, but nothing was a
                # record either. A file that gives nothing must say why.
                yield self._error_doc(_Failure("not_warc", "no record in the file", self.src.start),
                                      f"{self.path}@{self.src.start}")
        except _StreamError as exc:
            raise exc.original from None
        except MemoryError:
            raise  # the machine, not the file: the orchestrator retries the partition
        except Exception as exc:  # a bug here must not lose the partition either
            f = _Failure("unexpected_error", _short(exc), self.src.tell())
            yield self._error_doc(f, f"{self.path}@unexpected:{self.src.tell()}")

    def _read_file(self) -> Iterator[Document]:
        src = self.src
        head = src.read(2)
        self._gzip_file = head == b"\x1f\x8b"
        src.seek(src.start)
        if not head:
            yield self._error_doc(_Failure("not_warc", "empty file", src.start),
                                  f"{self.path}@{src.start}")
            return
        start, probing = src.start, False
        while start is not None:
            try:
                outcome = yield from self._members(start, probing)
                if outcome is None:
                    return
                start = self._resync(start)  # "no_record": try the next candidate
            except _Framing as fr:
                try:
                    yield from self._continuous(fr.offset, fr.skip)
                except _Failure as f:
                    # Counted at the gzip member where continuous reading began.
                    f.offset = fr.offset
                    yield self._error_doc(f, f"{self.path}@gunzip:{fr.offset}")
                return
            except _Failure as f:
                # A failure is never placed before the try it ended: warcio's offsets go
                # negative after a negative length. Each resync then starts strictly after
                # the previous start, so no input can make reading loop.
                f.offset = max(f.offset, start)
                yield self._error_doc(f, f"{self.path}@{f.offset}")
                if f.code == "truncated_file":
                    return
                start = self._resync(f.offset)
            probing = True


def iter_warc_responses(
    stream: BinaryIO, warc_path: str, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    record_counts: Optional[Counter] = None,
) -> Iterator[Document]:
    """One document per HTTP response record of a WARC or ARC file (gzip or not).

    Request, metadata, warcinfo, resource, revisit and conversion records are skipped;
    ``record_counts``, when given, counts every record read whole by its type, so a WET
    file or a ``resource``-only WARC (no document at all) is visible to the caller.
    Every document has all of ``RESPONSE_FIELDS`` (no None). A failure to read is one
    extra document with ``read_error`` set (see the module docstring); it never raises
    for bad data. Exceptions from ``stream.read`` itself (I/O) propagate.
    """
    return iter(_Reader(stream, warc_path, max_payload_bytes, record_counts))


# -- HTML decoding ----------------------------------------------------------------------

# WHATWG encoding-label overrides: browsers decode these labels as the superset, and
# real pages labelled latin-1 use the cp1252 quotes and dashes in 0x80-0x9F.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "l1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252", "ansi_x3.4-1968": "cp1252",
    "iso-8859-9": "cp1254", "latin5": "cp1254", "iso-8859-11": "cp874", "tis-620": "cp874",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030",
    "euc-kr": "cp949", "ks_c_5601-1987": "cp949", "shift_jis": "cp932", "sjis": "cp932",
    "x-sjis": "cp932", "shift-jis": "cp932", "ms_kanji": "cp932", "big5": "big5hkscs",
    "utf8": "utf-8", "unicode-1-1-utf-8": "utf-8", "x-user-defined": "cp1252",
}
# A page that declares UTF-16 in an ASCII-readable <meta> is not UTF-16 (WHATWG).
_META_UTF16 = {"utf-16", "utf-16le", "utf-16be", "unicode", "ucs-2"}
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9._:+-]{1,40})""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:+-]{1,40})""")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
_codec_cache: dict[str, Optional[str]] = {}


# Python codecs that claim to be text encodings but are not charsets a page can be written
# in: they transform text (IDNA host labels, Python escapes) or always raise (``undefined``),
# and decoding a page with them raises UnicodeError rather than UnicodeDecodeError.
# UTF-7 is a charset but one WHATWG forbids (it hides markup from filters).
_NOT_CHARSETS = frozenset({"punycode", "idna", "undefined", "unicode-escape", "raw-unicode-escape",
                           "utf-7", "mbcs", "oem"})


def normalize_charset(label: str) -> Optional[str]:
    """A Python text codec name for a charset label, or None for unknown labels,
    non-text codecs (``base64``, ``rot13``) and the codecs of ``_NOT_CHARSETS``."""
    key = (label or "").strip().strip("\"'").lower()
    if key in _codec_cache:
        return _codec_cache[key]
    name = None
    if key:
        try:
            info = codecs.lookup(_CHARSET_ALIASES.get(key, key))
            # codecs.lookup normalizes "raw_unicode_escape" and "RAW-Unicode-Escape" alike.
            if getattr(info, "_is_text_encoding", True) and info.name.replace("_", "-") not in _NOT_CHARSETS:
                name = info.name
        except (LookupError, ValueError):  # ValueError: a label holding a NUL
            pass
    if len(_codec_cache) < 4096:
        _codec_cache[key] = name
    return name


def declared_charset(head: bytes) -> str:
    """The charset a page declares in its first bytes (``<meta charset>``,
    ``<meta http-equiv=Content-Type content="...; charset=...">`` or the XML
    declaration), or ""."""
    m = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    return m.group(1).decode("ascii").lower() if m else ""


def _try(body: bytes, codec: Optional[str], max_bad: float) -> Optional[str]:
    if codec is None:
        return None
    try:
        return body.decode(codec)
    except UnicodeError:  # UnicodeDecodeError, or a codec's own complaint
        pass
    except LookupError:
        return None
    try:
        text = body.decode(codec, errors="replace")
    except (UnicodeError, LookupError):
        return None
    bad = text.count("\ufffd")
    return text if bad <= max_bad * max(len(text), 1) else None


def decode_html(body: bytes, http_charset: str = "", max_replacement_share: float = 0.01,
                meta_scan_bytes: int = 4096) -> tuple[Optional[str], str]:
    """(text, codec used) or (None, reason). See HtmlDecode for the order. NUL characters
    are removed from the text: HTML allows none (WHATWG drops or replaces U+0000 in every
    tokenizer state), and lxml and C-string tools downstream stop at one."""
    text, codec = _decode_html(body, http_charset, max_replacement_share, meta_scan_bytes)
    if text is not None and "\x00" in text:
        text = text.replace("\x00", "")
    return text, codec


def _decode_html(body: bytes, http_charset: str, max_replacement_share: float,
                 meta_scan_bytes: int) -> tuple[Optional[str], str]:
    for bom, codec in _BOMS:
        if body.startswith(bom):
            text = _try(body[len(bom):], codec, max_replacement_share)
            if text is not None:
                return text, codec
    tried = set()
    codec = normalize_charset(http_charset)
    if codec:
        tried.add(codec)
        text = _try(body, codec, max_replacement_share)
        if text is not None:
            return text, codec
    meta = declared_charset(body[:meta_scan_bytes])
    if meta:
        codec = normalize_charset(meta)
        # Compared by codec, not by label: "utf16", "utf_16_be" and "UTF-32" are the same
        # impossibility as "utf-16" (a UTF-16/32 page's <meta> is not ASCII-readable).
        if meta in _META_UTF16 or (codec or "").startswith(("utf-16", "utf-32")):
            codec = "utf-8"
        if codec and codec not in tried:
            tried.add(codec)
            text = _try(body, codec, max_replacement_share)
            if text is not None:
                return text, codec
    if "utf-8" not in tried:
        try:
            return body.decode("utf-8"), "utf-8"  # valid UTF-8 is UTF-8 (and ASCII)
        except UnicodeDecodeError:
            pass
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(body).best()
    except MemoryError:
        raise
    except Exception:
        best = None
    if best is not None:
        codec = normalize_charset(best.encoding)
        text = _try(body, codec, max_replacement_share) if codec not in tried else None
        if text is not None:
            return text, codec
    text = body.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    if bad <= max_replacement_share * max(len(text), 1):
        return text, "utf-8"
    return None, f"{bad} of {len(text)} characters undecodable as utf-8"


@dataclass
class HtmlDecodeConfig:
    # 2 MB: Common Crawl cuts payloads at 1 MiB, and the largest real page of the shared
    # sample (trafilatura's evaluation set) is 1.6 MB, so no real article page is lost;
    # above this, bodies are feeds, data dumps and generated listings whose parse and
    # extraction time grows with size while their text is rarely prose.
    max_body_bytes: PositiveInt = 2_000_000
    # Non-empty: an empty list would remove every page as not_html.
    html_content_types: Annotated[tuple[NonEmptyStr, ...], Field(min_length=1)] = ("text/html", "application/xhtml+xml")
    # Accept a decoding when at most this share of characters are U+FFFD replacements.
    max_replacement_share: Fraction = 0.01
    # How far into the page to look for <meta charset> (WHATWG prescans 1024 bytes;
    # real pages put long scripts and styles before it).
    meta_scan_bytes: NonNegativeInt = 4096


# Read errors that are not about the file's bytes get their own removal reason rather
# than ``read_error``: a manifest path outside the crawl root (never opened) is a
# configuration or security problem a dashboard should show apart, and a manifest entry
# naming a file already listed is no loss at all (its records are read once, elsewhere).
READ_ERRORS_WITH_OWN_REASON = frozenset({"path_outside_root", "duplicate_manifest_entry"})


class HtmlDecode(Step):
    """Keep HTTP 200 HTML responses and decode their bytes into ``html``.

    Removes, in this order: ``read_error`` (or ``path_outside_root``,
    ``duplicate_manifest_entry``),
    ``http_status_not_200``, ``not_html``, ``empty_body``, ``oversized``,
    ``undecodable``. Decoding tries a byte-order mark,
    the HTTP charset, the page's own declaration in its first KB, strict UTF-8,
    charset-normalizer's guess, then UTF-8 with replacement characters if they are at
    most ``max_replacement_share`` of the text. Unknown charset labels fall through.
    Writes ``html`` and ``charset`` (the codec used) and drops ``body``.
    """

    name = "raw_documents"
    chars_in_field = "body"
    chars_out_field = "html"
    output_columns = {"html": str, "charset": str}
    dropped_columns = ("body",)

    def __init__(self, config: Optional[HtmlDecodeConfig] = None):
        self.config = config or HtmlDecodeConfig()
        self._types = frozenset(t.lower() for t in self.config.html_content_types)

    @staticmethod
    def looks_like_html(body: bytes) -> bool:
        head = body[:2048].lower()
        return b"<html" in head or b"<!doctype html" in head

    def apply(self, doc: Document):
        error = doc.get("read_error")
        if error:
            code, _, detail = str(error).partition(": ")
            if code in READ_ERRORS_WITH_OWN_REASON:
                return code, detail
            return "read_error", str(error)
        status = doc.get("http_status", -1)
        if status != 200:
            return "http_status_not_200", str(status)
        body = doc.get("body") or b""
        length = int(doc.get("body_length") or len(body))
        held = bool(body) or length <= 0  # False: the reader kept a large body out of memory
        content_type = (doc.get("content_type") or "").lower()
        if content_type:
            if content_type not in self._types:
                return "not_html", content_type
        elif held and not self.looks_like_html(body):
            return "not_html", "(no content type, no <html>)"
        if not body and length <= 0:
            return "empty_body"
        if length > self.config.max_body_bytes or not body:
            return "oversized", str(length)
        if not body.strip():
            return "empty_body"
        text, charset = decode_html(
            body, doc.get("http_charset") or "",
            self.config.max_replacement_share, self.config.meta_scan_bytes,
        )
        if text is None:
            return "undecodable", charset
        doc["html"] = text
        doc["charset"] = charset
        doc.pop("body", None)
        return None

"""URL normalization and URL dedup across dumps.

RefinedWeb (Penedo et al. 2023, Sec. 3.3, "URL deduplication") splits CommonCrawl into
parts and removes from a later part every URL already kept in an earlier one. We do the
same across dumps in crawl order: a document whose normalized URL is in the index of
earlier dumps' kept URLs is dropped, the earlier copy is kept.

``normalize_url`` maps URLs that name the same resource to one string. The rules (and
why) — each is a deliberate choice for deduplication, not for fetching:

1. Surrounding whitespace and a ``<...>`` wrapper (seen in wget WARCs) are stripped.
2. Scheme lower-cased; ``http`` becomes ``https``: sites moved to HTTPS between crawls
   serve the same page under both, and a re-crawl under the other scheme is a repeat.
   Other schemes are kept as they are. A URL without ``//host`` is returned lower-cased
   and stripped (nothing safe to normalize).
3. Host lower-cased, trailing dot dropped, IDNA (punycode) encoded, so "Bücher.de",
   "bücher.de." and "xn--bcher-kva.de" agree (``steps/hosts.py``, shared with the URL
   blocklist, also decodes percent-escapes and full-width dots and writes integer IPv4
   forms as dotted decimal). A leading ``www.`` label is dropped:
   "www.example.com" and "example.com" serve the same site in the overwhelming majority
   of cases, and fuzzy dedup catches the rare false merge's content anyway. Other
   labels ("www2.", "m.") are kept: they often serve different pages.
4. User info (``user:pass@``) dropped; default ports (80, 443) dropped, others kept.
5. Path: percent-escapes of unreserved characters decoded (``%7E`` -> ``~``), other
   escapes upper-cased (RFC 3986 Sec. 6.2.2); dot segments removed (Sec. 5.2.4); a
   ``;jsessionid=...`` path parameter dropped; a trailing slash stripped (empty path
   and "/" both become "/"). Case is kept (paths are case-sensitive).
6. Query: parameters split on ``&``; tracking and session parameters dropped (any key
   starting with ``utm_``; click ids ``fbclid gclid gclsrc dclid gbraid wbraid msclkid
   yclid twclid ttclid li_fat_id igshid``; mail/analytics ``mc_cid mc_eid _ga _gl
   _hsenc _hsmi mkt_tok``; sessions ``jsessionid phpsessid sessionid``; keys compared
   case-insensitively); empty parameters dropped; the rest sorted (by key, then value)
   with their escapes normalized as in the path. Empty query -> no ``?``.
7. Fragment (``#...``) dropped: it never reaches the server.

``url_hash`` is the stable 64-bit hash (BLAKE2b) of the normalized URL; the index of
earlier dumps is a ``SortedHashIndex`` of those hashes (8 bytes per URL, one Parquet
column), queried a batch at a time (``check_urls``) and grown with a dump's kept URLs
(``grow_url_index``) into a NEW index, so the snapshot a dump was deduplicated against
stays as it was.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional, Sequence
from urllib.parse import urlsplit

import numpy as np

from ..base import Step
from ..hosts import normalize_host as _normalize_host
from .hashing import SortedHashIndex, stable_hash64

TRACKING_PREFIXES = ("utm_",)
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid",
        "twclid", "ttclid", "li_fat_id", "igshid", "mc_cid", "mc_eid", "_ga", "_gl",
        "_hsenc", "_hsmi", "mkt_tok", "jsessionid", "phpsessid", "sessionid",
    }
)
DEFAULT_PORTS = {"http": 80, "https": 443}

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_JSESSION_RE = re.compile(r";jsessionid=[^/?#]*", re.IGNORECASE)


def _normalize_escapes(s: str) -> str:
    def repl(m: re.Match) -> str:
        ch = chr(int(m.group(1), 16))
        return ch if ch in _UNRESERVED else "%" + m.group(1).upper()

    return _PCT_RE.sub(repl, s)


def _remove_dot_segments(path: str) -> str:
    # RFC 3986, Sec. 5.2.4, on "/"-separated segments.
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
            continue
        if seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
            continue
        out.append(seg)
    result = "/".join(out)
    if path.startswith("/") and not result.startswith("/"):
        result = "/" + result
    return result


def normalize_path(path: str) -> str:
    """Escapes of unreserved characters decoded, the others upper-cased, and ``.`` and
    ``..`` segments removed (also used by the URL blocklist for its ``urls`` entries)."""
    return _remove_dot_segments(_normalize_escapes(path))


def _is_tracking(key: str) -> bool:
    k = _normalize_escapes(key).lower()
    return k in TRACKING_PARAMS or k.startswith(TRACKING_PREFIXES)


def normalize_url(url: str) -> str:
    """The dedup key of ``url`` (see the module docstring for every rule)."""
    raw = (url or "").strip()
    if raw.startswith("<") and raw.endswith(">"):
        raw = raw[1:-1].strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
        host = parts.hostname or ""
    except ValueError:  # malformed authority (bad IPv6 literal, non-numeric port)
        return raw.lower()
    if not parts.netloc or not host:
        return raw.lower()
    original_scheme = parts.scheme.lower()
    scheme = "https" if original_scheme == "http" else original_scheme
    host = _normalize_host(host)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host
    if port is not None and port != DEFAULT_PORTS.get(original_scheme):
        netloc = f"{host}:{port}"
    path = _JSESSION_RE.sub("", parts.path)
    path = normalize_path(path)
    path = path.rstrip("/") or "/"
    params = []
    for piece in parts.query.split("&"):
        if not piece:
            continue
        key = piece.split("=", 1)[0]
        if _is_tracking(key):
            continue
        params.append(_normalize_escapes(piece))
    params.sort(key=lambda p: (p.split("=", 1)[0], p))
    query = ("?" + "&".join(params)) if params else ""
    return f"{scheme}://{netloc}{path}{query}"


def url_hash(url: str, *, normalized: bool = False) -> int:
    """Stable 64-bit hash of the normalized URL (pass ``normalized=True`` if it is)."""
    return stable_hash64(url if normalized else normalize_url(url))


def url_hashes(urls: Iterable[str]) -> np.ndarray:
    return np.fromiter((url_hash(u) for u in urls), dtype=np.uint64)


def first_occurrence_mask(hashes: np.ndarray) -> np.ndarray:
    """``bool[n]``: True at the first occurrence of each hash within the batch (in the
    order given), False at later repeats."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    _, first_idx = np.unique(hashes, return_index=True)
    mask = np.zeros(hashes.size, dtype=bool)
    mask[first_idx] = True
    return mask


def check_urls(urls: Sequence[str], index: SortedHashIndex) -> tuple[np.ndarray, np.ndarray]:
    """``(hashes, seen_before)``: each URL's hash and whether an earlier dump kept it."""
    h = url_hashes(urls)
    return h, index.contains(h)


def grow_url_index(index: SortedHashIndex, kept_urls_or_hashes) -> SortedHashIndex:
    """A NEW index with a dump's kept URLs (strings or their ``url_hashes``) added."""
    arr = kept_urls_or_hashes
    if not isinstance(arr, np.ndarray):
        arr = url_hashes(arr)
    return index.union(arr)


class UrlDedupStep(Step):
    """Drops documents whose normalized URL an earlier dump already kept
    (``url_seen_in_earlier_dump``). With ``within_partition=True`` it also drops a
    repeat of a URL already seen earlier in the same stream (``url_repeated``): the
    first document in stream order stays, so feed rows in their stored order."""

    name = "url_dedup"

    def __init__(self, index: Optional[SortedHashIndex] = None, *, url_field: str = "url", within_partition: bool = False):
        self.index = index or SortedHashIndex()
        self.url_field = url_field
        self.within_partition = within_partition
        self._seen: set[int] = set()

    def apply(self, doc):
        url = doc.get(self.url_field) or ""
        norm = normalize_url(url)
        h = url_hash(norm, normalized=True)
        if len(self.index) and self.index.contains(np.array([h], dtype=np.uint64))[0]:
            return ("url_seen_in_earlier_dump", norm)
        if self.within_partition:
            if h in self._seen:
                return ("url_repeated", norm)
            self._seen.add(h)
        return None

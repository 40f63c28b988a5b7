"""A WebText-style URL allowlist: keep only pages whose URL is on a given list.

WebText (Radford et al. 2019, section 2.1) kept "all outbound links from Reddit ... which
received at least 3 karma": a crawl restricted to a list of URLs that people vouched
for, rather than filtered by blocklists. This step is that restriction: a production
list holds the URLs (say, Reddit outbound links with >= 3 karma from a Pushshift dump,
as OpenWebText rebuilt it); the list is a file, one entry a line (``#`` comments and
blank lines skipped).

``match: url`` compares URLs in the form URL dedup compares them (``normalize_url``:
scheme, ``www.``, default port, dot segments, escapes, trailing slash, tracking
parameters, query order, fragment), so ``http://www.example.com/a/?utm_source=x`` is
``https://example.com/a``. ``match: host`` keeps every page of a listed host (the hosts
are compared in the URL filter's normal form, ``normalize_host``: IDNA, no ``www.``),
and with ``include_subdomains`` every page below it too.

Removal reasons: ``url_not_allowlisted`` / ``host_not_allowlisted``, ``no_url``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

from urllib.parse import urlsplit

from pydantic import Field

from corpus_assets.steps.base import Document, Step
from corpus_assets.steps.dedup.urls import normalize_url
from corpus_assets.steps.hosts import normalize_host, url_host
from corpus_assets.steps.setting_types import ExistingFile

MatchMode = Annotated[str, Field(pattern=r"^(url|host)$")]


@dataclass(frozen=True)
class UrlAllowlistConfig:
    """path: the allowlist file; None switches the step off (every page passes on).
    match: ``url`` (the page's normalized URL must be listed) or ``host``.
    include_subdomains: with ``match: host``, a listed host also admits its subdomains.

    The file is read and checked when the settings load (``load_allowlist``): an entry that
    can never match is refused naming its line."""

    path: Optional[ExistingFile] = None
    match: MatchMode = "url"
    include_subdomains: bool = False

    def __post_init__(self):
        if self.path and Path(self.path).is_file():
            load_allowlist(self)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\s]")
_MAX_REPORTED = 5


def _entry_problem(entry: str, match: str) -> Optional[str]:
    """Why ``entry`` can never match a crawled page (None: it can)."""
    if _CONTROL.search(entry):
        return "a space or control character (a crawled URL has none; write a space as %20)"
    if match == "url":
        parts = urlsplit(entry)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            return "not an http(s) URL with a host (a crawled URL always has both: https://example.com/a)"
        return None
    if "*" in entry or entry.startswith("."):
        return ("a wildcard (write the bare host, example.com, and set include_subdomains: true for "
                "its subdomains)")
    if "//" not in entry and "@" in entry.split("/")[0]:
        return "user@host is not a host (write the host alone)"
    if not host_key(entry):
        return "no host"
    return None


def read_entries(path: str, match: str = "url") -> list[str]:
    """The entries of an allowlist file, one a line (``#`` comments, blank lines skipped).
    Raises ValueError naming the file and line for undecodable bytes or an entry that can
    never match in ``match`` mode."""
    entries, bad = [], []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                bad.append(f"line {number}: not UTF-8 text")
                continue
            if not line or line.startswith("#"):
                continue
            problem = _entry_problem(line, match)
            if problem:
                bad.append(f"line {number} ({line[:60]!r}): {problem}")
            else:
                entries.append(line)
    if bad:
        more = f" (and {len(bad) - _MAX_REPORTED} more)" if len(bad) > _MAX_REPORTED else ""
        raise ValueError(f"url_allowlist.path: {path}: {len(bad)} entr{'y' if len(bad) == 1 else 'ies'} can never "
                         f"match in match: {match}: " + "; ".join(bad[:_MAX_REPORTED]) + more)
    return entries


def allowlist_digest(path: str) -> str:
    """The SHA-256 of the allowlist file's content: part of rw_raw's code_version, so that
    adding or removing URLs (same path) marks rw_raw stale. Cached per (path, size, mtime)."""
    from corpus_assets.steps.lm.model import _file_digest

    return _file_digest(Path(path))


# One normalized set per (file content, mode) and process: rw_raw builds its steps per
# partition, and a WebText-sized list (tens of millions of links) is read once, not per shard.
_CACHE: dict[tuple, tuple[str, frozenset]] = {}
_CACHE_MAX = 4


def load_allowlist(config: UrlAllowlistConfig) -> frozenset:
    """The normalized entries of ``config.path`` (checked by ``read_entries``), cached per
    process by the file's content digest and the match mode."""
    stat = Path(config.path).stat()
    quick = (str(config.path), stat.st_mtime_ns, stat.st_size, config.match)
    hit = _CACHE.get(quick)
    if hit is not None:
        return hit[1]
    digest = allowlist_digest(config.path)
    for key, (known, allowed) in list(_CACHE.items()):
        if known == digest and key[3] == config.match:
            _CACHE[quick] = (digest, allowed)
            return allowed
    entries = read_entries(config.path, config.match)
    if not entries:
        raise ValueError(f"url_allowlist.path: {config.path} lists no URL (an empty allowlist would remove "
                         "every page; set the path to null to switch the step off)")
    if config.match == "url":
        allowed = frozenset(normalize_url(e) for e in entries)
    else:
        allowed = frozenset(h for h in (host_key(e) for e in entries) if h)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[quick] = (digest, allowed)
    return allowed


def host_key(entry: str) -> str:
    """The host of an entry written as a host or as a URL, normalized."""
    return normalize_host(url_host(entry) if "/" in entry or ":" in entry.split("]")[-1] else entry)


class UrlAllowlist(Step):
    name = "url_allowlist"
    chars_in_field = "html"
    chars_out_field = "html"

    def __init__(self, config: UrlAllowlistConfig):
        if not config.path:
            raise ValueError("url_allowlist.path: no allowlist file given (null switches the step off)")
        self.config = config
        self.allowed = load_allowlist(config)

    def _host_allowed(self, host: str) -> bool:
        if host in self.allowed:
            return True
        if self.config.include_subdomains:
            parts = host.split(".")
            return any(".".join(parts[i:]) in self.allowed for i in range(1, len(parts) - 1))
        return False

    def apply(self, doc: Document):
        url = (doc.get("url") or "").strip()
        if not url:
            return "no_url"
        if self.config.match == "url":
            if normalize_url(url) in self.allowed:
                return None
            return "url_not_allowlisted", normalize_url(url)[:300]
        host = normalize_host(url_host(url))
        if host and self._host_allowed(host):
            return None
        return "host_not_allowlisted", host[:300]

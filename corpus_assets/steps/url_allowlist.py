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

from dataclasses import dataclass
from typing import Annotated, Optional

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
    include_subdomains: with ``match: host``, a listed host also admits its subdomains."""

    path: Optional[ExistingFile] = None
    match: MatchMode = "url"
    include_subdomains: bool = False


def read_entries(path: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return [line.strip() for line in fh if line.strip() and not line.lstrip().startswith("#")]


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
        entries = read_entries(config.path)
        if not entries:
            raise ValueError(f"url_allowlist.path: {config.path} lists no URL (an empty allowlist would remove "
                             "every page; set the path to null to switch the step off)")
        self.config = config
        if config.match == "url":
            self.allowed = frozenset(normalize_url(e) for e in entries)
        else:
            self.allowed = frozenset(h for h in (host_key(e) for e in entries) if h)

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

"""URL filtering: a domain/URL blocklist plus URL word scoring.

RefinedWeb (Penedo et al. 2023, section 3.1 and Appendix G.1) removes adult and other
unwanted pages before any text is extracted, looking only at the URL:

* a blocklist of 4.6M domains built on the UT1 blocklists (Universite Toulouse 1
  Capitole), categories such as adult, gambling, dating, phishing;
* a score over words found in the URL, at three levels of severity:
  - strict words match as a substring anywhere in the URL, even inside a longer token;
  - hard words match as whole words (the URL split on non-alphanumerics), one is enough;
  - soft words match as whole words, and at least two different ones are needed.

The paper reports that this stage removes about 2% of documents.

UT1 layout: ``<root>/<category>/domains`` and ``<root>/<category>/urls``, one entry per
line. A ``domains`` entry blocks the host and every subdomain of it
(``example.com`` blocks ``a.b.example.com``); a ``urls`` entry (``host/path``) blocks that
URL and everything below it at a path-segment boundary, the way squidGuard reads UT1's
url lists. Hosts and entries are compared in one normal form, the one URL dedup uses
(``steps/hosts.py``: lower case, IDNA punycode, percent-escapes and full-width or
ideographic dots decoded, integer IPv4 forms as dotted decimal, no leading ``www.``), so
``bästcasino.eu``, ``b%C3%A4stcasino.eu`` and a listed ``xn--bstcasino-v2a.eu`` agree.

The word lists live in ``corpus_assets/defaults/url_words/`` as plain text so a
production run can point the config at its own lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import unquote

from corpus_assets.steps.base import Document, Step
from corpus_assets.steps.dedup.urls import normalize_path
from corpus_assets.steps.hosts import MAX_HOST_LENGTH, normalize_host, split_url
from corpus_assets.steps.setting_types import ExistingDir, ExistingFile, PositiveInt

_WORDS_DIR = Path(__file__).resolve().parent.parent / "defaults" / "url_words"

DEFAULT_STRICT_WORDS = str(_WORDS_DIR / "strict.txt")
DEFAULT_HARD_WORDS = str(_WORDS_DIR / "hard.txt")
DEFAULT_SOFT_WORDS = str(_WORDS_DIR / "soft.txt")

# The UT1 categories RefinedWeb's list is built from that concern content quality and
# safety. "agressif" is UT1's own (French) spelling of the hate/violence category.
DEFAULT_CATEGORIES = ("adult", "agressif", "dating", "gambling", "mixed_adult", "phishing")


@dataclass(frozen=True)
class UrlFilterConfig:
    """Settings of :class:`UrlFilter`.

    blocklist_dir: root of a UT1 blocklist tree; None means no blocklist (word scoring
        only). The sample's tree lacks UT1's multi-million-line ``adult/domains``;
        production points this at a full copy.
    blocklist_categories: category folders to read under ``blocklist_dir``. Each may hold
        ``domains`` and/or ``urls``; a missing file is fine, a missing folder is an error.
    strict_words_path / hard_words_path / soft_words_path: word list files (one word per
        line, ``#`` comments); None or "" switches that level off.
    soft_min_matches: distinct soft words needed to remove a URL (RefinedWeb: 2).
    allowlist_domains: domains (and their subdomains) that are never removed.
    """

    blocklist_dir: Optional[ExistingDir] = None
    blocklist_categories: tuple[str, ...] = DEFAULT_CATEGORIES
    strict_words_path: Optional[ExistingFile] = DEFAULT_STRICT_WORDS
    hard_words_path: Optional[ExistingFile] = DEFAULT_HARD_WORDS
    soft_words_path: Optional[ExistingFile] = DEFAULT_SOFT_WORDS
    soft_min_matches: PositiveInt = 2
    allowlist_domains: tuple[str, ...] = ()

    def __post_init__(self):
        # Checked here so that the settings loader reports it at load time, not rw_raw.
        if self.blocklist_dir and Path(self.blocklist_dir).is_dir():
            missing = [c for c in self.blocklist_categories if not (Path(self.blocklist_dir) / c).is_dir()]
            if missing:
                raise ValueError(
                    f"url_filter.blocklist_categories: no folder {', '.join(missing)}"
                    f" under blocklist_dir {self.blocklist_dir}"
                )


# Tokens for whole-word matching: runs of letters and digits (Unicode-aware).
_TOKEN_SPLIT = re.compile(r"[\W_]+")


_SLASHES = re.compile(r"/{2,}")


def _normalize_url_entry(entry: str) -> str:
    """A ``urls`` list entry or a page's URL -> ``host/path?query`` lower-cased, the host
    normalized, no scheme, no port, no fragment, no trailing slash, and the path in one
    form (``/%73k``, ``//sk``, ``/./sk`` and ``/x/../sk`` are all ``/sk``): the same
    function for both sides, so an entry matches every way of writing it."""
    host, rest = split_url(entry)
    path, sep, query = rest.partition("?")
    path = _SLASHES.sub("/", normalize_path(path)).rstrip("/")
    return normalize_host(host) + path + sep + query


def _normalize_domain_entry(entry: str) -> str:
    """A ``domains`` list entry -> the form :func:`normalize_host` gives a page's host;
    entries written as URLs, with a port, ``*.`` or a leading dot are read as their host."""
    entry = entry.strip().lower().lstrip("*.")
    if entry.count(":") >= 2 and "[" not in entry and "/" not in entry:
        return normalize_host(entry)  # a bare IPv6 address
    return normalize_host(split_url(entry)[0])


def _read_entries(path: Path) -> list[str]:
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        return [
            line.strip()
            for line in fh
            if line.strip() and not line.lstrip().startswith("#")
        ]


def load_word_list(path: Optional[str]) -> frozenset[str]:
    """Read a word list (one word per line, ``#`` comments). None/"" -> empty set."""
    if not path:
        return frozenset()
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"url_filter: word list file does not exist: {p}")
    return frozenset(w.lower() for w in _read_entries(p))


def load_blocklist(
    root: str, categories: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, str]]:
    """Read UT1 ``domains`` and ``urls`` files -> (domain -> category, url -> category).

    Plain dicts of strings: 60k entries load in a few tens of milliseconds, and lookups
    are O(1) per candidate (the host, its parent domains, the URL's path prefixes).
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise ValueError(f"url_filter: blocklist_dir does not exist or is not a folder: {root_path}")
    domains: dict[str, str] = {}
    urls: dict[str, str] = {}
    for category in categories:
        folder = root_path / category
        if not folder.is_dir():
            raise ValueError(
                f"url_filter: blocklist category folder does not exist: {folder}"
                f" (configured categories: {', '.join(categories)})"
            )
        domains_file = folder / "domains"
        if domains_file.is_file():
            for entry in _read_entries(domains_file):
                domains.setdefault(_normalize_domain_entry(entry), category)
        urls_file = folder / "urls"
        if urls_file.is_file():
            for entry in _read_entries(urls_file):
                normalized = _normalize_url_entry(entry)
                if normalized:
                    urls.setdefault(normalized, category)
    return domains, urls


def _host_candidates(host: str) -> list[str]:
    """``a.b.example.com`` -> [a.b.example.com, b.example.com, example.com, com].

    Only suffixes a blocklist entry can equal (a valid host name, at most 253 characters)
    are built, so a hostile host of 100,000 labels costs no more than a real one."""
    if not host:
        return []
    suffixes = []
    labels = host.split(".")
    length = -1
    for i in range(len(labels) - 1, -1, -1):
        length += len(labels[i]) + 1
        if length > MAX_HOST_LENGTH:
            break
        suffixes.append(".".join(labels[i:]))
    return suffixes[::-1]


def _url_candidates(normalized: str) -> list[str]:
    """Path-segment prefixes of a normalized URL, the full URL (with query) last.

    ``h/a/b.html?x=1`` -> [h, h/a, h/a/b.html, h/a/b.html?x=1]
    """
    without_query = normalized.split("?", 1)[0].rstrip("/")
    parts = without_query.split("/")
    out = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    if normalized != without_query and normalized not in out:
        out.append(normalized)
    return out


class UrlFilter(Step):
    """Remove documents whose URL is blocklisted or scores as adult/gambling/hate.

    Reasons (detail in brackets): ``blocklisted_domain`` ("category:domain"),
    ``blocklisted_url`` ("category:entry"), ``strict_word`` (the word), ``hard_word``
    (the word), ``soft_words`` (the matched words, comma-separated). Kept documents are
    not annotated.
    """

    name = "url_filter"
    chars_in_field = "html"
    chars_out_field = "html"

    def __init__(self, config: UrlFilterConfig = UrlFilterConfig()):
        self.config = config
        if config.blocklist_dir is not None:
            self.domains, self.urls = load_blocklist(
                config.blocklist_dir, tuple(config.blocklist_categories)
            )
        else:
            self.domains, self.urls = {}, {}
        self.strict_words = tuple(sorted(load_word_list(config.strict_words_path)))
        self.hard_words = load_word_list(config.hard_words_path)
        self.soft_words = load_word_list(config.soft_words_path)
        self.allowlist = frozenset(normalize_host(d) for d in config.allowlist_domains if d)
        if config.soft_min_matches < 1:
            raise ValueError("url_filter: soft_min_matches must be >= 1")

    def check_url(self, url: str):
        """The verdict for one URL: None (keep) or (reason, detail)."""
        raw = (url or "").strip()
        lowered = raw.lower()
        host = normalize_host(split_url(lowered)[0])
        hosts = _host_candidates(host)

        if self.allowlist and any(h in self.allowlist for h in hosts):
            return None

        for h in hosts:
            category = self.domains.get(h)
            if category is not None:
                return "blocklisted_domain", f"{category}:{h}"

        if self.urls:
            normalized = _normalize_url_entry(lowered)
            for candidate in _url_candidates(normalized):
                category = self.urls.get(candidate)
                if category is not None:
                    return "blocklisted_url", f"{category}:{candidate}"

        # Word scoring runs on the percent-decoded, lower-cased URL so that
        # "%70orn" cannot slip through.
        text = unquote(lowered)
        for word in self.strict_words:
            if word in text:
                return "strict_word", word
        tokens = set(t for t in _TOKEN_SPLIT.split(text) if t)
        hard = sorted(tokens & self.hard_words)
        if hard:
            return "hard_word", hard[0]
        soft = sorted(tokens & self.soft_words)
        if len(soft) >= self.config.soft_min_matches:
            return "soft_words", ",".join(soft)
        return None

    def apply(self, doc: Document):
        return self.check_url(doc.get("url") or "")

"""Main-text extraction from HTML with trafilatura, then URL removal.

RefinedWeb (Penedo et al. 2023, section 3.1) extracts the main content of each page with
trafilatura rather than using Common Crawl's WET files, which keep menus, footers and
other boilerplate; it then strips URLs from the extracted text. Extraction plus language
identification keep about 48% of documents in the paper's figures.

Determinism: trafilatura's ``deduplicate`` option keeps an LRU cache of text segments
seen earlier *in the same process*, so what a page yields would depend on which pages
were extracted before it (and on how a partition is split across workers). It is
therefore always off here and not a setting. Everything else trafilatura does on a
string input is local: ``extract`` never fetches anything.

The output is trafilatura's plain-text format: one block element (paragraph, heading,
list item, table row) per line, with no blank lines between them. Line breaks are kept
because later line-wise filters (RefinedWeb's line corrections, C4/FineWeb line rules)
work on lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import trafilatura

from corpus_assets.steps.base import Document, Step, html_of
from corpus_assets.steps.setting_types import PositiveInt


@dataclass(frozen=True)
class ExtractionConfig:
    """Settings of :class:`Extract` (all passed to ``trafilatura.extract``).

    favor_precision: prefer leaving out doubtful parts over keeping boilerplate. On by
        default, as in datatrove's Trafilatura step (used for FineWeb); it yields less text
        per page but less navigation/teaser noise, and it is also a little faster.
    favor_recall: the opposite trade-off; do not set both.
    include_comments: user comments under articles. Off: they are short, repetitive and
        of lower quality than the main text.
    include_tables: keep the text of HTML tables. On (trafilatura's default): tables often
        hold real content (specifications, results); the quality filters that follow
        remove pages where tables are mostly numbers.
    fast: skip trafilatura's fallback extractors (readability, jusText). Roughly 15-25%
        faster, at the price of missing the main text on some unusual layouts.
    max_tree_size: refuse pages whose HTML tree has more elements than this (trafilatura
        returns nothing for them -> ``no_main_text``); None = no limit. trafilatura checks
        it after parsing, so it bounds output size, not time: pages that would take
        seconds to parse are removed before extraction by the ``html_guard`` step.
    remove_urls: strip URLs (http(s):// and ftp:// URLs, and www. links with a path;
        not bare host names) from the extracted text (RefinedWeb, section 3.1; exactly
        what counts: :func:`remove_urls`).
    """

    favor_precision: bool = True
    favor_recall: bool = False
    include_comments: bool = False
    include_tables: bool = True
    fast: bool = False
    max_tree_size: Optional[PositiveInt] = None
    remove_urls: bool = True

    def __post_init__(self):
        if self.favor_precision and self.favor_recall:
            raise ValueError("extraction: favor_precision and favor_recall are exclusive")


# What counts as a URL (see remove_urls): a web scheme and "://" followed by anything up
# to white space or an obvious delimiter; or a "www." link with a path that starts a token
# (after white space, an opening bracket or quote, or at the start). Trailing sentence
# punctuation is given back by _strip_url below.
# The host of a "www." link stops at any character that may open another match, and
# nothing backtracks (possessive "++"), so text like "(www.(www.(www...." costs linear
# time, not quadratic.
# A URL also ends at "|", ";", curly quotes and guillemets, and at CJK text or full-width
# punctuation: CJK prose puts no space after a URL ("请访问https://example.com/a获取..."),
# and at zero-width spaces and joiners. A URL whose host is written in CJK
# (https://例子.测试/) is therefore not matched at all and stays.
_URL_END = (r"""\s<>"'`|;\u2018\u2019\u201c\u201d\u00ab\u00bb\u200b-\u200d\u2060\ufeff"""
            "\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef")
_URL_CHARS = rf"[^{_URL_END}]"
_OPENERS = r"""(\[{<"'«“‘"""
_URL_RE = re.compile(
    # The scheme may follow any character but an ASCII letter or digit (not \b: CJK
    # characters are word characters, so "访问https://" has no word boundary); its
    # letters may be full-width (ｈｔｔｐｓ://).
    rf"""(?i)(?<![A-Za-z0-9])(?:https?|ftp|ｈｔｔｐｓ?|ｆｔｐ)://{_URL_CHARS}++"""
    rf"""|(?<![^\s{_OPENERS}])www\.[^\s{_OPENERS}>`/)\]}}»”’]++/{_URL_CHARS}*+"""
)
_TRAILING_PUNCT = ".,;:!?)]}»”’"
# Horizontal white space (any Unicode space except the line break), collapsed to one space.
_HSPACE_RE = re.compile(r"[^\S\n]+")


def _strip_url(match: re.Match) -> str:
    """Replacement for one URL match: the sentence punctuation that followed the URL
    ("see www.x.org." keeps its full stop), without a ")" that closes a "(" inside the
    URL itself (".../wiki/Foo_(bar)")."""
    url = match.group(0)
    trimmed = url.rstrip(_TRAILING_PUNCT)
    suffix = url[len(trimmed):]
    while suffix.startswith(")") and trimmed.count("(") > trimmed.count(")"):
        trimmed += ")"
        suffix = suffix[1:]
    return suffix


def remove_urls(text: str) -> str:
    """Delete the URLs in ``text``.

    RefinedWeb says only "we also remove URLs" (Penedo et al. 2023, section 3.1). A URL
    here is what a reader sees as a link to follow:

    * an absolute web URL: ``http://``, ``https://`` or ``ftp://`` (any case, full-width
      letters too) and everything up to white space, ``<``, ``>``, a quote (straight or
      curly), a backtick, ``|``, ``;``, CJK text or full-width punctuation; wherever it
      stands, in prose, in code (``curl https://api.example.com/v1`` loses the URL) or
      straight after CJK text (``请访问https://example.com/a获取`` keeps ``请访问获取``);
    * a scheme-less ``www.`` link with a path (``www.example.org/about``) that starts a
      token: at the start of the text or after white space, an opening bracket or quote.

    Not URLs, so kept: host names without a path (``Host:www.google.com``, "visit
    www.example.org", ``"www.example.com"`` in a config line), ``www.`` inside a longer
    token (``/var/www.backup``, ``admin@www.example.com``, ``proxy=www.corp.example``),
    and host/path text without ``www.`` or a scheme (``docs.python.org/3/``): removing
    those would cut words out of sentences and code for no gain in quality.

    Sentence punctuation right after a URL stays (:func:`_strip_url`).
    """
    return _URL_RE.sub(_strip_url, text)


def normalize_whitespace(text: str) -> str:
    """Light clean-up that keeps line structure: unify line endings, collapse runs of
    spaces/tabs/non-breaking spaces within a line, strip each line, and drop lines left
    empty (e.g. a line that held only a URL)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = (_HSPACE_RE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


class Extract(Step):
    """HTML -> main text. Writes ``doc["text"]`` and deletes ``doc["html"]`` on kept
    documents (the HTML is not carried downstream). Removed documents keep their HTML so
    a removal sink may sample it for inspection.

    Reasons: ``no_main_text`` (trafilatura found nothing, or nothing is left after URL
    removal), ``extraction_error`` (trafilatura raised; detail = "Type: message").
    """

    name = "extraction"
    output_columns = {"text": str}
    dropped_columns = ("html",)
    chars_in_field = "html"
    chars_out_field = "text"

    def __init__(self, config: ExtractionConfig = ExtractionConfig()):
        self.config = config

    def extract_text(self, html: str) -> Optional[str]:
        """Extracted, URL-stripped, whitespace-normalized text, or None. May raise."""
        c = self.config
        text = trafilatura.extract(
            html,
            output_format="txt",
            fast=c.fast,
            favor_precision=c.favor_precision,
            favor_recall=c.favor_recall,
            include_comments=c.include_comments,
            include_tables=c.include_tables,
            include_images=False,
            include_links=False,
            include_formatting=False,
            # Never on: it makes output depend on earlier documents in the process.
            deduplicate=False,
            with_metadata=False,
            max_tree_size=c.max_tree_size,
        )
        if not text:
            return None
        if c.remove_urls:
            text = remove_urls(text)
        text = normalize_whitespace(text)
        return text or None

    def apply(self, doc: Document):
        html = html_of(doc)
        if not html.strip():
            return "no_main_text", "empty html"
        try:
            text = self.extract_text(html)
        except Exception as exc:  # noqa: BLE001 - a bad page must never crash a partition
            return "extraction_error", f"{type(exc).__name__}: {exc}"[:500]
        if text is None:
            return "no_main_text"
        doc["text"] = text
        doc.pop("html", None)
        return None

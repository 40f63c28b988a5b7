"""Optional language pre-screen: skip extraction for pages with no text in a kept language.

Extraction is about 90 % of rw_raw's time, and on Common Crawl most pages are then
removed by language ID (RefinedWeb keeps English only; in the sample crawl 83 % of the
extracted pages are not English). This step looks at the page's visible text *before*
trafilatura and removes a page only when none of it reads as a selected language, so
extraction is spent on pages that can survive language ID.

How it decides, and why it is conservative:

* the HTML is parsed (lexbor, a C HTML5 parser) and cut into its visible text nodes,
  after dropping scripts, styles and the head;
* consecutive text nodes are joined into chunks of at least ``chunk_words`` words, so a page
  of short English lines (a recipe's ingredient list) still forms English chunks;
* fastText (the same lid.176 model as language ID) scores every chunk; the words of the
  chunks whose probability for a selected language reaches ``min_chunk_score`` are
  counted;
* the page is removed only when that count is below ``min_selected_words``.

Judging chunks rather than the whole page matters: an English article on a German
site (German menus, footer and sidebar) reads as German as a whole page, but its
article paragraphs read as English. trafilatura's main text is a part of the page's
text, so a page whose text holds no English chunk cannot yield an English document;
what can differ is the chunking (a chunk that mixes two languages), which the small
``min_selected_words`` threshold and the audit below are there for.

Words: a block's whitespace tokens; when a selected language is written without spaces
(Chinese, Japanese, Thai, ...), its segmenter's tokens (``steps/segmentation``), so that a
Japanese paragraph counts its words and not its few spaces.

Audit: a deterministic share of the pages the pre-screen would remove (``audit_fraction``,
chosen by a hash of the doc id) is passed on instead, tagged ``prescreen_audit = True``,
and goes through extraction and language ID like any page. How many of those language ID
keeps is the measured loss rate of the pre-screen on this very crawl; rw_raw reports it.

On by default, since on the sample crawl it keeps exactly the documents full extraction
keeps at about twice the speed (``docs/performance.md``); it is not part of RefinedWeb's
definition, which extracts every page: ``language_prescreen.enabled: false`` restores that.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator

from selectolax.lexbor import LexborHTMLParser

from corpus_assets.steps.base import Document, Step, html_of
from corpus_assets.steps.langid import _LABEL_PREFIX, LanguageId, LanguageIdConfig
from corpus_assets.steps.setting_types import Fraction, NonNegativeInt, PositiveInt

# Elements whose content is never visible text. <head> goes too: its <title> is the one
# visible part, and one line of title changes nothing about a page's language.
_INVISIBLE = "script,style,noscript,template,svg,head,textarea"


def visible_blocks(html: str) -> list[str]:
    """The page's visible text nodes, in document order, white space collapsed.

    Parsed with lexbor (selectolax), an HTML5 parser in C: about 1 ms for a typical
    150 KB page, where lxml takes 3 ms and trafilatura's whole extraction 15-20 ms. Text
    nodes split at inline tags too (a link inside a sentence); :func:`chunks_of` joins
    them back into chunks long enough to identify a language."""
    tree = LexborHTMLParser(html)
    for node in tree.css(_INVISIBLE):
        node.decompose()
    root = tree.body or tree.root
    if root is None:
        return []
    blocks = []
    for block in root.text(separator="\n", strip=False).split("\n"):
        block = " ".join(block.split())
        if block:
            blocks.append(block)
    return blocks


def chunks_of(blocks: list[str], chunk_words: int, segmenter=None) -> Iterator[tuple[str, int]]:
    """Join consecutive blocks into chunks of at least ``chunk_words`` words; yields
    (text, word count). The last chunk may be shorter. Words are the block's whitespace
    tokens, or ``segmenter``'s tokens (at least one per block) when a selected language
    is written without spaces."""
    parts: list[str] = []
    words = 0
    for block in blocks:
        parts.append(block)
        if segmenter is None:
            words += block.count(" ") + 1
        else:
            words += max(1, len(segmenter.tokens(block)))
        if words >= chunk_words:
            yield " ".join(parts), words
            parts, words = [], 0
    if parts:
        yield " ".join(parts), words


@dataclass(frozen=True)
class LanguagePrescreenConfig:
    """Settings of :class:`LanguagePrescreen` (the ``language_prescreen`` section).

    enabled: rw_raw runs the step when this is on and language ID selects languages.
        Off = RefinedWeb's definition (every page extracted).
    chunk_words: consecutive text blocks are joined until a chunk holds this many words.
    min_chunk_score: a chunk counts as a selected language when fastText gives the
        selected languages together at least this probability.
    min_selected_words: remove the page when its selected-language chunks hold fewer
        words than this. On the sample crawl and the real WARC files of ../shared/data,
        every page that survives rw_filtered holds at least 66 such words
        (docs/performance.md, benchmarks/prescreen_quality.py).
    audit_fraction: share of would-be removals passed on to extraction and language ID,
        to measure the pre-screen's loss on the data itself; 0 turns the audit off.
    max_chars: only the first this many characters of visible text are scored (bounds
        the cost on huge pages; the language of a page shows in its first pages of text).
    """

    enabled: bool = True
    chunk_words: PositiveInt = 20
    min_chunk_score: Fraction = 0.5
    min_selected_words: NonNegativeInt = 10
    audit_fraction: Fraction = 0.02
    max_chars: PositiveInt = 100_000


def audit_pick(doc_id: str, fraction: float) -> bool:
    """Deterministic: the same doc id is picked, or not, in every run and on every worker."""
    if fraction <= 0.0:
        return False
    digest = hashlib.blake2b(doc_id.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2**64


class LanguagePrescreen(Step):
    """Remove pages whose visible text holds no chunk in a selected language, before
    extraction. Adds ``prescreen_words`` (selected-language words found; counting stops
    once ``min_selected_words`` is reached; -1 when the page could not be parsed, which
    then goes on to extraction) and ``prescreen_audit`` (True for a would-be removal
    passed on for the audit) to the documents it passes.

    Reason: ``few_selected_language_words`` (detail: the words found and the page's most
    frequent chunk language, e.g. "0 words; chunks mostly de"). Pages with no visible text
    at all pass, so that extraction names them (``no_main_text``).
    """

    name = "language_prescreen"
    output_columns = {"prescreen_audit": bool, "prescreen_words": int}
    chars_in_field = "html"
    chars_out_field = "html"

    def __init__(self, config: LanguagePrescreenConfig, language_id: LanguageIdConfig, segmenter=None):
        if not language_id.languages:
            raise ValueError("language_prescreen: language_id keeps every language; nothing to pre-screen")
        if not 0.0 <= config.audit_fraction <= 1.0:
            raise ValueError(f"language_prescreen: audit_fraction must be in [0, 1], got {config.audit_fraction}")
        self.config = config
        # Counts chunk words for the selected languages written without spaces (None:
        # whitespace words; see steps/segmentation).
        self.segmenter = segmenter
        # The same model (and per-process cache) as the language ID step that follows.
        self._language_id = LanguageId(language_id)
        self.labels = frozenset(_LABEL_PREFIX + code for code in language_id.languages)
        # Enough labels to sum every selected language's probability, and the top one.
        self._top_k = max(3, len(self.labels))
        # Would-be removals passed on for the audit, in this step's lifetime.
        self.audit_sampled = 0

    def selected_words(self, html: str, stop_early: bool = True) -> tuple[int, str]:
        """(words in chunks that read as a selected language, most frequent chunk label).
        With ``stop_early`` counting ends once ``min_selected_words`` is reached."""
        c = self.config
        # The whole page is cut into blocks (cutting the HTML short could leave a script
        # open and its code would read as text); only the scoring is bounded.
        blocks = visible_blocks(html)
        found = 0
        seen_chars = 0
        label_words: dict[str, int] = {}
        for text, words in chunks_of(blocks, c.chunk_words, self.segmenter):
            seen_chars += len(text)
            if seen_chars > c.max_chars:
                break
            predictions = self._language_id.predict_labels(text, self._top_k)
            if not predictions:
                continue
            top_label = predictions[0][1]
            label_words[top_label] = label_words.get(top_label, 0) + words
            if sum(p for p, label in predictions if label in self.labels) >= c.min_chunk_score:
                found += words
                if stop_early and found >= c.min_selected_words:
                    break  # enough to pass; the rest of the page cannot change that
        top = max(label_words, key=label_words.get) if label_words else ""
        return found, top[len(_LABEL_PREFIX):] if top.startswith(_LABEL_PREFIX) else top

    def apply(self, doc: Document):
        html = html_of(doc)
        doc["prescreen_audit"] = False
        if not html:
            doc["prescreen_words"] = 0
            return None  # extraction counts empty pages as no_main_text
        try:
            found, top = self.selected_words(html)
        except Exception:  # noqa: BLE001 - fail open: the page is extracted as without the step
            doc["prescreen_words"] = -1
            return None
        doc["prescreen_words"] = found
        # No visible text at all: extraction will find nothing either, and its reason
        # (no_main_text) says more than "no English" would.
        if found >= self.config.min_selected_words or not top:
            return None
        if audit_pick(str(doc.get("doc_id", "")), self.config.audit_fraction):
            doc["prescreen_audit"] = True
            self.audit_sampled += 1
            return None
        return "few_selected_language_words", f"{found} words; chunks mostly {top or 'none'}"

"""Tokenization shared by DSIR and decontamination: NLTK's ``WordPunctTokenizer`` rule
(``\\w+|[^\\w\\s]+``, runs of word characters or of punctuation) on lower-cased text,
written as one regular expression so no NLTK is needed."""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache

_WORD_PUNCT = re.compile(r"\w+|[^\w\s]+")
_WORDS = re.compile(r"\w+")


def word_punct_tokens(text: str) -> list[str]:
    return _WORD_PUNCT.findall(text.lower())


def normalized(text: str) -> str:
    """NFKC (fullwidth and other compatibility forms to their plain letters), format
    characters (category Cf: soft hyphen, zero-width space and joiners, BOM) removed,
    lower-cased. Turkish dotted capital I becomes "i", not "i" + combining dot, which
    ``\\w+`` would split into two tokens."""
    text = unicodedata.normalize("NFKC", text.replace("\u0130", "I"))
    if not text.isascii():
        text = text.translate(_format_characters())
    return text.lower()


@cache
def _format_characters() -> dict[int, None]:
    """Every code point of category Cf (about 170), for ``str.translate`` to delete; built
    once per process, on first use (a scan of all code points, ~0.3 s)."""
    return {cp: None for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Cf"}


def word_tokens(text: str) -> list[str]:
    """Runs of word characters of the normalized text (punctuation dropped):
    decontamination's unit, so a reformatted copy (other quotes, spacing, a soft hyphen
    inside a word, fullwidth letters) still matches."""
    return _WORDS.findall(normalized(text))

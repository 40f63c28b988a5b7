"""Tokenization shared by DSIR and decontamination: NLTK's ``WordPunctTokenizer`` rule
(``\\w+|[^\\w\\s]+``, runs of word characters or of punctuation) on lower-cased text,
written as one regular expression so no NLTK is needed."""

from __future__ import annotations

import re
import unicodedata

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
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return text.lower()


def word_tokens(text: str) -> list[str]:
    """Runs of word characters of the normalized text (punctuation dropped):
    decontamination's unit, so a reformatted copy (other quotes, spacing, a soft hyphen
    inside a word, fullwidth letters) still matches."""
    return _WORDS.findall(normalized(text))

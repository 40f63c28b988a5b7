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
_TURKISH_I = {0x0130: "I", 0x0131: "i"}


def word_punct_tokens(text: str) -> list[str]:
    return _WORD_PUNCT.findall(text.lower())


def normalized(text: str) -> str:
    """NFKC (fullwidth and other compatibility forms to their plain letters), format
    characters (category Cf: soft hyphen, zero-width space and joiners, BOM) removed,
    lower-cased. Turkish dotted capital I becomes "i", not "i" + combining dot, which
    ``\\w+`` would split into two tokens, and dotless "ı" becomes "i" (it is what
    "I" lower-cases to in Turkish, and Python lower-cases "I" to "i"): upper- and
    lower-case Turkish copies then give the same tokens."""
    text = unicodedata.normalize("NFKC", text.translate(_TURKISH_I))
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

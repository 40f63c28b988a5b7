"""Tokenization shared by DSIR and decontamination: NLTK's ``WordPunctTokenizer`` rule
(``\\w+|[^\\w\\s]+``, runs of word characters or of punctuation) on lower-cased text,
written as one regular expression so no NLTK is needed."""

from __future__ import annotations

import re

_WORD_PUNCT = re.compile(r"\w+|[^\w\s]+")
_WORDS = re.compile(r"\w+")


def word_punct_tokens(text: str) -> list[str]:
    return _WORD_PUNCT.findall(text.lower())


def word_tokens(text: str) -> list[str]:
    """Lower-cased runs of word characters (punctuation dropped): decontamination's unit,
    so a reformatted copy (other quotes, spacing) still matches."""
    return _WORDS.findall(text.lower())

"""Decontamination: drop pool documents that share a word n-gram with any target example
(GPT-3's rule, Brown et al. 2020 appendix C, with n = 13), so the examples that judge a
selection never sit in the pool it is selected from.

Tokens are lower-cased runs of word characters (punctuation dropped, so quoting or spacing
does not hide a copy). A target example shorter than ``n`` tokens contributes its whole
token sequence as one gram, as GPT-3 did, when it has at least ``min_tokens`` tokens;
shorter examples are too generic to test for ("return true").

Grams are kept as 64-bit BLAKE2b hashes: memory is 8 bytes per distinct target gram, and
the pool streams through. Nothing here imports Dagster.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Optional

from corpus_assets.steps.selection.text import word_tokens

REASON = "shares_ngram_with_target"


def _gram_hash(tokens: list[str]) -> int:
    return int.from_bytes(hashlib.blake2b(" ".join(tokens).encode("utf-8"), digest_size=8).digest(), "little")


class ContaminationIndex:
    def __init__(self, examples: Iterable[str], n: int = 13, min_tokens: int = 8):
        if n < 1 or min_tokens < 1:
            raise ValueError("decontamination n and min_tokens must be >= 1")
        self.n = n
        self.grams: set[int] = set()
        self.short_lengths: set[int] = set()  # lengths of whole short examples, < n
        self.examples = 0
        for text in examples:
            tokens = word_tokens(text or "")
            self.examples += 1
            if len(tokens) >= n:
                self.grams.update(_gram_hash(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
            elif len(tokens) >= min_tokens:
                self.grams.add(_gram_hash(tokens))
                self.short_lengths.add(len(tokens))

    def first_match(self, text: str) -> Optional[str]:
        """The first n-gram of ``text`` found in a target example, or None."""
        tokens = word_tokens(text or "")
        for size in (self.n, *sorted(self.short_lengths)):
            for i in range(len(tokens) - size + 1):
                gram = tokens[i:i + size]
                if _gram_hash(gram) in self.grams:
                    return " ".join(gram)
        return None

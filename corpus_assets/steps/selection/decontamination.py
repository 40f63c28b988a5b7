"""Decontamination: drop pool documents that share a word n-gram with any target example
(GPT-3's rule, Brown et al. 2020 appendix C, with n = 13), so the examples that judge a
selection never sit in the pool it is selected from.

Tokens are lower-cased runs of word characters (punctuation dropped, so quoting or spacing
does not hide a copy), after NFKC normalization with format characters (soft hyphens,
zero-width spaces) removed (see ``text.word_tokens``). A target example shorter than
``n`` tokens contributes its whole token sequence as one gram, as GPT-3 did, when it has at
least ``min_tokens`` tokens; shorter examples are too generic to test for as a part of a
document ("return true").

A document that IS a target example, whatever its length, is removed too (reason
``equals_target_example``): its normalized whole text (the tokens joined by spaces, or
the stripped lower-cased text when it has no word token) is compared with every
example's. Without this, a one-token example (one long string) is never tested for and
can be selected, then "predicted" by the model trained on the selection.

Grams and whole texts are kept as 64-bit BLAKE2b hashes: memory is 8 bytes per distinct
target gram or example, and the pool streams through. Nothing here imports Dagster.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Optional

from corpus_assets.steps.selection.text import normalized, word_tokens

REASON = "shares_ngram_with_target"
EXACT_REASON = "equals_target_example"
REASONS = (EXACT_REASON, REASON)


def _hash(text: str) -> int:
    # surrogatepass: JSON may carry lone surrogates ("\ud800"), which strict UTF-8 refuses
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def _gram_hash(tokens: list[str]) -> int:
    return _hash(" ".join(tokens))


def _whole_key(text: str, tokens: list[str]) -> str:
    return " ".join(tokens) if tokens else normalized(text).strip()


class ContaminationIndex:
    def __init__(self, examples: Iterable[str], n: int = 13, min_tokens: int = 8):
        if n < 1 or min_tokens < 1:
            raise ValueError("decontamination n and min_tokens must be >= 1")
        self.n = n
        self.grams: set[int] = set()
        self.whole_texts: set[int] = set()
        self.short_lengths: set[int] = set()  # lengths of whole short examples, < n
        self.examples = 0
        for text in examples:
            tokens = word_tokens(text or "")
            self.examples += 1
            key = _whole_key(text or "", tokens)
            if key:
                self.whole_texts.add(_hash(key))
            if len(tokens) >= n:
                self.grams.update(_gram_hash(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
            elif len(tokens) >= min_tokens:
                self.grams.add(_gram_hash(tokens))
                self.short_lengths.add(len(tokens))

    def match(self, text: str) -> Optional[tuple[str, str]]:
        """(reason, what matched) when ``text`` equals a target example or shares an
        n-gram with one, else None."""
        tokens = word_tokens(text or "")
        key = _whole_key(text or "", tokens)
        if key and _hash(key) in self.whole_texts:
            return EXACT_REASON, key
        gram = self._first_gram(tokens)
        return (REASON, gram) if gram is not None else None

    def first_match(self, text: str) -> Optional[str]:
        """The first n-gram of ``text`` found in a target example, or None."""
        return self._first_gram(word_tokens(text or ""))

    def _first_gram(self, tokens: list[str]) -> Optional[str]:
        for size in (self.n, *sorted(self.short_lengths)):
            for i in range(len(tokens) - size + 1):
                gram = tokens[i:i + size]
                if _gram_hash(gram) in self.grams:
                    return " ".join(gram)
        return None

"""Per-sample statistics, named as Data-Juicer's stats keys where it has them
(Chen et al. 2024, "Data-Juicer: A One-Stop Data Processing System for Large Language
Models"; the BetterMixture finalists filtered on these):

- ``text_len``: characters (``text_length_filter``).
- ``alnum_ratio``: alphanumeric characters / characters (``alphanumeric_filter``,
  character mode).
- ``char_rep_ratio``: of the text's character n-grams (n = 10), the share of occurrences
  taken by the ``floor(sqrt(distinct n-grams))`` most frequent of those that repeat
  (``character_repetition_filter``, from BigScience's ROOTS filters).
- ``word_rep_ratio``: of the word n-grams (n = 10; words lower-cased and stripped of
  special characters at both ends), the share of occurrences whose n-gram occurs more
  than once (``word_repetition_filter``).
- ``special_char_ratio``: characters that are punctuation, symbols (emoji included),
  digits or whitespace / characters (``special_characters_filter``; Data-Juicer lists
  ASCII punctuation, digits, whitespace, emoji and ~30 typographic symbols: the same on
  ASCII text, by Unicode category beyond it).
- ``lang``, ``lang_score``: lid.176's top label and its probability on the whole text,
  newlines as spaces (``language_id_score_filter``; the project's ``steps/langid.py``).
- ``perplexity``: CCNet's document perplexity under the project's shared 5-gram
  Kneser-Ney model (``steps/lm``; English Wikipedia by default), ``perplexity_filter``.
- ``token_count``: tokens of the mixture's tokenizer (cl100k_base, offline).
- ``ir_ratio``: characters of instruction + input over characters of output.
"""

from __future__ import annotations

import math
import string
import unicodedata
from collections import Counter
from typing import Sequence

COLUMNS = ("text_len", "alnum_ratio", "char_rep_ratio", "word_rep_ratio", "special_char_ratio", "lang",
           "lang_score", "perplexity", "token_count", "ir_ratio", "response_len")
_ASCII_SPECIAL = frozenset(string.punctuation + string.digits + string.whitespace)


def text_len(text: str) -> int:
    return len(text)


def alnum_ratio(text: str) -> float:
    return sum(c.isalnum() for c in text) / len(text) if text else 0.0


def _is_special(c: str) -> bool:
    if c in _ASCII_SPECIAL:
        return True
    if c.isascii():
        return False
    return unicodedata.category(c)[0] in "PSZNC"


def special_char_ratio(text: str) -> float:
    return sum(map(_is_special, text)) / len(text) if text else 0.0


def char_rep_ratio(text: str, n: int = 10) -> float:
    counts = Counter(text[i:i + n] for i in range(len(text) - n + 1))
    if not counts:
        return 0.0
    freqs = sorted(counts.values(), reverse=True)
    singles = sum(1 for f in freqs if f == 1)
    top = min(int(math.sqrt(len(freqs))), len(freqs) - singles)
    total = sum(freqs)
    return sum(freqs[:top]) / total if total else 0.0


def words_of(text: str) -> list[str]:
    """Data-Juicer's words for the repetition filter: whitespace split, lower-cased,
    special characters stripped at both ends, empty ones dropped."""
    out = []
    for word in text.lower().split():
        start, end = 0, len(word)
        while start < end and _is_special(word[start]):
            start += 1
        while end > start and _is_special(word[end - 1]):
            end -= 1
        if start < end:
            out.append(word[start:end])
    return out


def word_rep_ratio(text: str, n: int = 10) -> float:
    words = words_of(text)
    counts = Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    total = sum(counts.values())
    return sum(f for f in counts.values() if f > 1) / total if total else 0.0


def ir_ratio(instruction: str, input_: str, output: str) -> float:
    return (len(instruction) + len(input_)) / max(1, len(output))


class SampleStatistics:
    """Computes every column of ``COLUMNS`` for samples (dicts with instruction, input,
    output, text). The models are the project's: ``language_id`` (a ``LanguageId`` step),
    ``lm`` (an ``NgramLanguageModel``) and ``counter`` (a ``TokenCounter``); any of them
    None leaves its columns at a neutral value (tests of the plain statistics)."""

    def __init__(self, language_id=None, lm=None, counter=None, char_rep_len: int = 10, word_rep_len: int = 10):
        self.language_id, self.lm, self.counter = language_id, lm, counter
        self.char_rep_len, self.word_rep_len = char_rep_len, word_rep_len

    def row(self, sample: dict) -> dict:
        text = sample["text"]
        lang, score = ("", 0.0)
        if self.language_id is not None and text.strip():
            lang, score = self.language_id.predict(text)
        ppl = float(self.lm.document_perplexity(text)) if self.lm is not None else float("nan")
        return {
            "text_len": text_len(text), "alnum_ratio": alnum_ratio(text),
            "char_rep_ratio": char_rep_ratio(text, self.char_rep_len),
            "word_rep_ratio": word_rep_ratio(text, self.word_rep_len),
            "special_char_ratio": special_char_ratio(text), "lang": lang, "lang_score": float(score),
            "perplexity": ppl, "token_count": 0,
            "ir_ratio": ir_ratio(sample["instruction"], sample["input"], sample["output"]),
            "response_len": len(sample["output"]),
        }

    def rows(self, samples: Sequence[dict]) -> list[dict]:
        out = [self.row(s) for s in samples]
        if self.counter is not None:
            for r, n in zip(out, self.counter.count([s["text"] for s in samples])):
                r["token_count"] = int(n)
        return out

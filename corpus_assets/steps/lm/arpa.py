"""A small ARPA reader and backoff query, used when the ``kenlm`` package is not installed
(and to cross-check it). Pure Python: correct but ~50x slower than kenlm, which is the
floor (see benchmarks/bench_ccnet.py)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Sequence


class ArpaModel:
    def __init__(self, order: int, probs: dict, backoffs: dict):
        self.order = order
        self._probs = probs  # tuple of words -> log10 p
        self._backoffs = backoffs  # tuple of words -> log10 backoff

    @classmethod
    def load(cls, path) -> "ArpaModel":
        opener = gzip.open if str(path).endswith(".gz") else open
        probs, backoffs, order, section = {}, {}, 0, None
        with opener(Path(path), "rt", encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                if line.startswith("\\"):
                    if line.endswith("-grams:"):
                        section = int(line[1:].split("-")[0])
                        order = max(order, section)
                    elif line == "\\end\\":
                        break
                    continue
                if section is None:
                    continue  # the \data\ counts
                parts = line.split("\t")
                if len(parts) == 1:  # space separated ARPA
                    parts = line.split()
                    lp, words = float(parts[0]), tuple(parts[1:1 + section])
                    bo = float(parts[1 + section]) if len(parts) > 1 + section else 0.0
                else:
                    lp, words = float(parts[0]), tuple(parts[1].split())
                    bo = float(parts[2]) if len(parts) > 2 else 0.0
                probs[words] = lp
                if bo:
                    backoffs[words] = bo
        if ("<unk>",) not in probs:
            raise ValueError(f"{path}: an ARPA model needs <unk>")
        return cls(order, probs, backoffs)

    def log10_prob(self, history: Sequence[str], word: str) -> float:
        if (word,) not in self._probs:
            word = "<unk>"
        history = tuple(history)[-(self.order - 1):] if self.order > 1 else ()
        backoff = 0.0
        for start in range(len(history) + 1):
            gram = history[start:] + (word,)
            lp = self._probs.get(gram)
            if lp is not None:
                return lp + backoff
            backoff += self._backoffs.get(history[start:], 0.0)
        raise AssertionError("unreachable: the unigram is always found")

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True) -> list[float]:
        words = sentence.split()
        history = ["<s>"] if bos else []
        out = []
        for word in words + (["</s>"] if eos else []):
            out.append(self.log10_prob(history, word))
            history.append(word if (word,) in self._probs else "<unk>")
        return out

    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        return sum(self.full_scores(sentence, bos, eos))

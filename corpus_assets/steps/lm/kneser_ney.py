"""Interpolated modified Kneser-Ney n-gram estimation (Chen & Goodman 1998, section 3.5
and eq. 17-19), in the form KenLM's ``lmplz`` uses (Heafield et al. 2013, "Scalable
Modified Kneser-Ney Language Model Estimation"), written as an ARPA file.

For an order-N model over sentences ``<s> w1 .. wk </s>``:

- counts: the highest order uses raw counts; a lower-order n-gram uses its *adjusted*
  count, the number of distinct words seen before it (``N1+(. g)``), except an n-gram
  starting with ``<s>``, which nothing can precede, and keeps its raw count;
- discounts, per order, from the counts-of-counts t1..t4 of those counts:
  ``Y = t1 / (t1 + 2 t2)``, ``D1 = 1 - 2Y t2/t1``, ``D2 = 2 - 3Y t3/t2``,
  ``D3+ = 3 - 4Y t4/t3``. A tiny corpus can make them undefined or out of range; then
  the order uses ``discount_fallback`` (KenLM's ``--discount_fallback`` default 0.5, 1, 1.5);
- ``u(w|h) = (a(hw) - D(a(hw))) / sum_x a(hx)`` and the mass left,
  ``gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / sum_x a(hx)``;
- interpolation: ``p(w|h) = u(w|h) + gamma(h) p(w|h')``, ``h'`` the history without its
  oldest word; unigrams interpolate with the uniform distribution over the vocabulary
  (every word seen, plus ``<unk>``; ``<s>`` is never predicted).

In the ARPA file an n-gram's probability is the interpolated ``p(w|h)`` and its backoff
is ``gamma`` of the n-gram used as a history, so the usual backoff query
(``p(w|h) = b(h) p(w|h')`` for an unseen ``hw``) returns the interpolated model exactly.

Counting is vectorized: an n-gram is one uint64 (oldest word in the highest bits), so
``bits_per_token * order <= 64``. The same tables answer queries (``log10_probs``), so a
caller needs neither the ARPA file nor ``kenlm`` to score text. Nothing here imports
Dagster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

# KenLM's --discount_fallback default (lmplz): D1, D2, D3+ when the estimate is unusable.
DEFAULT_DISCOUNT_FALLBACK = (0.5, 1.0, 1.5)
# ARPA's "impossible": KenLM writes <s> with this log10 probability.
LOG10_IMPOSSIBLE = -99.0


def bits_for(vocab_size: int) -> int:
    return max(1, int(vocab_size - 1).bit_length())


def max_vocab_size(order: int) -> int:
    """The largest vocabulary whose n-grams of ``order`` pack into one uint64."""
    return 1 << (64 // order)


@dataclass
class OrderTable:
    """One order's n-grams: sorted packed ids, log10 p(w|h), log10 backoff (0 when the
    n-gram is never a history)."""

    ids: np.ndarray
    log10_prob: np.ndarray
    log10_backoff: np.ndarray
    discounts: tuple[float, float, float]
    discounts_fell_back: bool


def _lookup(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, found) of each query id in sorted ``keys``."""
    if len(keys) == 0:
        return np.zeros(len(query), np.int64), np.zeros(len(query), bool)
    idx = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return idx, keys[idx] == query


def discounts_from_counts(adjusted: np.ndarray, fallback: Sequence[float]) -> tuple[tuple[float, float, float], bool]:
    """Chen & Goodman's D1, D2, D3+ from counts-of-counts (eq. 26), or ``fallback`` when
    a count-of-count is zero or a discount leaves [0, k] (KenLM's rule)."""
    t = [int(np.count_nonzero(adjusted == k)) for k in (1, 2, 3, 4)]
    if min(t) == 0:
        return tuple(float(x) for x in fallback), True
    y = t[0] / (t[0] + 2 * t[1])
    d = (1 - 2 * y * t[1] / t[0], 2 - 3 * y * t[2] / t[1], 3 - 4 * y * t[3] / t[2])
    if any(not 0.0 <= dk <= k for k, dk in enumerate(d, start=1)):
        return tuple(float(x) for x in fallback), True
    return d, False


class _Stream:
    """Sentences as one array ``<s> w.. </s> <s> w.. </s>`` with, per position, how many
    tokens of the same sentence precede it."""

    def __init__(self, sentences: Iterable[Sequence[int]], bos: int, eos: int):
        parts, hist = [], []
        for sentence in sentences:
            arr = np.asarray(sentence, dtype=np.uint64)
            parts.append(np.concatenate([[np.uint64(bos)], arr, [np.uint64(eos)]]).astype(np.uint64))
            hist.append(np.arange(len(arr) + 2, dtype=np.int64))
        self.tokens = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
        self.history = np.concatenate(hist) if hist else np.zeros(0, np.int64)
        # every position but a sentence's <s> is a predicted word
        self.predicted = np.flatnonzero(self.history > 0)


def _gram_ids(tokens: np.ndarray, positions: np.ndarray, n: int, bits: int) -> np.ndarray:
    ids = np.zeros(len(positions), np.uint64)
    for j in range(n - 1, -1, -1):
        # a position with too short a history reads a clipped (masked) index
        ids = (ids << np.uint64(bits)) | tokens[np.maximum(positions - j, 0)]
    return ids


class KneserNeyModel:
    """An order-N interpolated modified Kneser-Ney model over integer token ids.

    ``bos``/``eos``/``unk`` are the ids of ``<s>``, ``</s>``, ``<unk>``; ``vocab_size``
    bounds the ids (they are packed with ``bits_for(vocab_size)`` bits each)."""

    def __init__(self, order: int, vocab_size: int, bos: int, eos: int, unk: int,
                 discount_fallback: Sequence[float] = DEFAULT_DISCOUNT_FALLBACK):
        if order < 1:
            raise ValueError("order must be >= 1")
        if vocab_size > max_vocab_size(order):
            raise ValueError(f"a vocabulary of {vocab_size} ids does not pack into 64 bits at order {order}"
                             f" (at most {max_vocab_size(order)})")
        if len({bos, eos, unk}) != 3 or not all(0 <= x < vocab_size for x in (bos, eos, unk)):
            raise ValueError("bos, eos and unk must be distinct ids below vocab_size")
        self.order, self.vocab_size = order, vocab_size
        self.bos, self.eos, self.unk = bos, eos, unk
        self.bits = bits_for(vocab_size)
        self.discount_fallback = tuple(discount_fallback)
        self.tables: list[OrderTable] = []
        self.vocabulary_size = 0  # words the unigram distribution spreads over
        self.training_tokens = 0

    # -- estimation ---------------------------------------------------------------

    def fit(self, sentences: Iterable[Sequence[int]]) -> "KneserNeyModel":
        bits, order = self.bits, self.order
        stream = _Stream(sentences, self.bos, self.eos)
        if len(stream.tokens) and int(stream.tokens.max()) >= self.vocab_size:
            raise ValueError(f"a token id >= vocab_size ({self.vocab_size})")
        self.training_tokens = len(stream.predicted)
        raw: list[tuple[np.ndarray, np.ndarray]] = []
        for n in range(1, order + 1):
            pos = stream.predicted[stream.history[stream.predicted] >= n - 1]
            raw.append(np.unique(_gram_ids(stream.tokens, pos, n, bits), return_counts=True))
        adjusted = []
        for n in range(1, order + 1):
            ids, counts = raw[n - 1]
            counts = counts.astype(np.int64)
            if n < order:
                # N1+(. g): distinct left extensions among the types one order up
                suffixes = raw[n][0] & np.uint64((1 << (bits * n)) - 1)
                ext_ids, ext_counts = np.unique(suffixes, return_counts=True)
                idx, found = _lookup(ext_ids, ids)
                starts_bos = (ids >> np.uint64(bits * (n - 1))) == np.uint64(self.bos)
                counts = np.where(starts_bos | ~found, counts, ext_counts[idx])
            adjusted.append(counts)

        self.tables = []
        lower_prob: Optional[np.ndarray] = None
        gammas: list[tuple[np.ndarray, np.ndarray]] = []  # per order n: (context ids, gamma)
        for n in range(1, order + 1):
            ids, a = raw[n - 1][0], adjusted[n - 1]
            (d1, d2, d3), fell_back = discounts_from_counts(a, self.discount_fallback)
            disc = np.where(a == 1, d1, np.where(a == 2, d2, d3))
            ctx = ids >> np.uint64(bits)
            ctx_ids, starts = np.unique(ctx, return_index=True)
            totals = np.add.reduceat(a, starts).astype(np.float64) if len(a) else np.zeros(0)
            n1 = np.add.reduceat((a == 1).astype(np.int64), starts) if len(a) else np.zeros(0)
            n2 = np.add.reduceat((a == 2).astype(np.int64), starts) if len(a) else np.zeros(0)
            n3 = np.add.reduceat((a >= 3).astype(np.int64), starts) if len(a) else np.zeros(0)
            gamma = (d1 * n1 + d2 * n2 + d3 * n3) / np.where(totals > 0, totals, 1.0)
            group = np.searchsorted(ctx_ids, ctx)
            u = (a - disc) / totals[group]
            if n == 1:
                # the uniform floor: every word seen (never <s>) plus <unk>
                has_unk = bool(np.any(ids == np.uint64(self.unk)))
                self.vocabulary_size = len(ids) + (0 if has_unk else 1)
                g0 = float(gamma[0]) if len(gamma) else 1.0
                prob = u + g0 / self.vocabulary_size
                if not has_unk:
                    ids = np.append(ids, np.uint64(self.unk))
                    prob = np.append(prob, g0 / self.vocabulary_size)
                # <s> is a history, never a prediction
                ids = np.append(ids, np.uint64(self.bos))
                log10_prob = np.append(np.log10(prob), LOG10_IMPOSSIBLE)
                sort = np.argsort(ids, kind="stable")
                ids, log10_prob = ids[sort], log10_prob[sort]
            else:
                suffix = ids & np.uint64((1 << (bits * (n - 1))) - 1)
                lower = self.tables[n - 2]
                idx, found = _lookup(lower.ids, suffix)
                if not found.all():  # cannot happen: every suffix was counted one order down
                    raise AssertionError(f"order {n}: {int((~found).sum())} n-grams without their suffix")
                prob = u + gamma[group] * np.power(10.0, lower.log10_prob[idx])
                log10_prob = np.log10(prob)
            self.tables.append(OrderTable(ids, log10_prob, np.zeros(len(ids)), (d1, d2, d3), fell_back))
            gammas.append((ctx_ids, gamma))
        # backoff of an order-n n-gram = gamma of it as a history one order up
        for n in range(1, order):
            ctx_ids, gamma = gammas[n]
            table = self.tables[n - 1]
            idx, found = _lookup(ctx_ids, table.ids)
            table.log10_backoff = np.where(found, np.log10(np.where(found, gamma[idx], 1.0)), 0.0)
        return self

    # -- queries --------------------------------------------------------------------

    def log10_probs(self, sentences: Iterable[Sequence[int]]) -> np.ndarray:
        """log10 p of every predicted token (each sentence's words, then ``</s>``), by the
        ARPA backoff rule; ids the model never saw are read as ``<unk>``."""
        stream = _Stream(sentences, self.bos, self.eos)
        tokens = stream.tokens.copy()
        known = _lookup(self.tables[0].ids, tokens)[1]
        tokens[~known] = np.uint64(self.unk)
        pos = stream.predicted
        avail = np.minimum(stream.history[pos], self.order - 1)
        result = np.zeros(len(pos))
        matched = np.zeros(len(pos), bool)
        backoff_sum = np.zeros(len(pos))
        # from the longest n-gram down: the first found gives the probability; every
        # history longer than the match multiplies in its backoff
        for n in range(self.order, 0, -1):
            usable = avail >= n - 1
            table = self.tables[n - 1]
            grams = _gram_ids(tokens, pos, n, self.bits)
            idx, found = _lookup(table.ids, grams)
            hit = usable & found & ~matched
            result = np.where(hit, table.log10_prob[idx] + backoff_sum, result)
            matched |= hit
            if n > 1:
                ctx_table = self.tables[n - 2]
                ctx_usable = avail >= n - 1
                ctx = grams >> np.uint64(self.bits)
                cidx, cfound = _lookup(ctx_table.ids, ctx)
                add = ctx_usable & cfound & ~matched
                backoff_sum = backoff_sum + np.where(add, ctx_table.log10_backoff[cidx], 0.0)
        return result

    def sentence_log10(self, sentence: Sequence[int]) -> float:
        return float(self.log10_probs([sentence]).sum())

    # -- ARPA -------------------------------------------------------------------------

    def unpack(self, gram_id: int, n: int) -> list[int]:
        mask = (1 << self.bits) - 1
        return [(gram_id >> (self.bits * (n - 1 - j))) & mask for j in range(n)]

    def write_arpa(self, path, words: Sequence[str]) -> None:
        """The model as an ARPA file; ``words[i]`` is the string of token id ``i``
        (no whitespace inside)."""
        bad = [w for w in words if not w or any(ch.isspace() for ch in w)]
        if bad:
            raise ValueError(f"ARPA words must be non-empty without whitespace: {bad[:5]}")
        with open(path, "w", encoding="utf-8") as out:
            out.write("\\data\\\n")
            for n, table in enumerate(self.tables, start=1):
                out.write(f"ngram {n}={len(table.ids)}\n")
            for n, table in enumerate(self.tables, start=1):
                out.write(f"\n\\{n}-grams:\n")
                with_backoff = n < self.order
                for gram, lp, bo in zip(table.ids.tolist(), table.log10_prob.tolist(), table.log10_backoff.tolist()):
                    text = " ".join(words[t] for t in self.unpack(gram, n))
                    if with_backoff and bo != 0.0:
                        out.write(f"{lp:.7g}\t{text}\t{bo:.7g}\n")
                    elif with_backoff and gram == self.bos and n == 1:
                        out.write(f"{lp:.7g}\t{text}\t0\n")
                    else:
                        out.write(f"{lp:.7g}\t{text}\n")
            out.write("\n\\end\\\n")


def perplexity(log10_total: float, length: int) -> float:
    """CCNet's ``pp``: 10 ** (-log10 total / length); inf for no length."""
    return 10.0 ** (-log10_total / length) if length > 0 else math.inf

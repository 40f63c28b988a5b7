"""A smoothed byte-level n-gram language model, for "how well does a selection predict
held-out target text": cross-entropy in bits per byte.

Tokens are UTF-8 bytes: the vocabulary (256) is the same for every training set, so no
out-of-vocabulary rule can favour one selection over another. Smoothing is interpolated
Witten-Bell (Witten & Bell 1991; the form in Chen & Goodman 1998, eq. 9):

    P(w | h) = (c(h w) + N1+(h .) P(w | h')) / (c(h) + N1+(h .))

with ``h'`` the history without its oldest byte, ``N1+(h .)`` the number of distinct bytes
seen after ``h``, a history never seen falling back to ``P(w | h')``, and the uniform
1/256 at the bottom. Each document starts with ``order - 1`` zero bytes of padding.

Counting is vectorized: an n-gram of up to 8 bytes is one uint64 (history in the high
bytes), counted with ``np.unique``; queries use ``np.searchsorted``. Nothing here imports
Dagster.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

MAX_ORDER = 8


def _padded(texts: Iterable[str], order: int, max_bytes: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """All documents' bytes (the first ``max_bytes`` when given), each after ``order - 1``
    zero bytes, and a mask of the positions that are real bytes (the ones predicted)."""
    pad = bytes(order - 1)
    chunks, real, total = [], [], 0
    for t in texts:
        # Zero bytes mark the start of a document: one inside a text becomes a space.
        data = (t if isinstance(t, bytes) else (t or "").encode("utf-8", "surrogatepass")).replace(b"\0", b" ")
        if max_bytes is not None and total + len(data) > max_bytes:
            data = data[: max(0, max_bytes - total)]
        if not data:
            continue
        chunks.append(pad + data)
        real.append(np.concatenate([np.zeros(order - 1, bool), np.ones(len(data), bool)]))
        total += len(data)
        if max_bytes is not None and total >= max_bytes:
            break
    if not chunks:
        return np.zeros(0, np.uint8), np.zeros(0, bool)
    return np.frombuffer(b"".join(chunks), dtype=np.uint8), np.concatenate(real)


def _gram_ids(data: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """uint64 id of the n-gram ending at each position: oldest byte highest."""
    ids = np.zeros(len(positions), dtype=np.uint64)
    for j in range(n - 1, -1, -1):
        ids = (ids << np.uint64(8)) | data[positions - j].astype(np.uint64)
    return ids


class ByteNgramLM:
    def __init__(self, order: int = 5):
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"n-gram order must be 1..{MAX_ORDER}")
        self.order = order
        self.train_bytes = 0
        # per n (1..order): sorted gram ids + counts; sorted history ids + c(h) + N1+(h .)
        self.tables: list[tuple] = []

    def fit(self, texts: Iterable[str], max_bytes: Optional[int] = None) -> "ByteNgramLM":
        data, real = _padded(texts, self.order, max_bytes)
        positions = np.flatnonzero(real)
        self.train_bytes = len(positions)
        self.tables = []
        for n in range(1, self.order + 1):
            grams, counts = np.unique(_gram_ids(data, positions, n), return_counts=True)
            hist = grams >> np.uint64(8)
            hist_ids, starts, distinct = np.unique(hist, return_index=True, return_counts=True)
            hist_totals = np.add.reduceat(counts, starts) if len(counts) else counts
            self.tables.append((grams, counts, hist_ids, hist_totals, distinct))
        return self

    @staticmethod
    def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
        if len(keys) == 0:
            return np.zeros(len(query), dtype=np.float64)
        idx = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        return np.where(keys[idx] == query, values[idx], 0).astype(np.float64)

    def log2_probs(self, texts: Iterable[str]) -> np.ndarray:
        """log2 P of every byte of the texts (each text scored from a fresh history)."""
        data, real = _padded(texts, self.order)
        positions = np.flatnonzero(real)
        prob = np.full(len(positions), 1.0 / 256)
        for n, (grams, counts, hist_ids, hist_totals, distinct) in enumerate(self.tables, start=1):
            ids = _gram_ids(data, positions, n)
            c_hw = self._lookup(grams, counts, ids)
            hist = ids >> np.uint64(8)
            c_h = self._lookup(hist_ids, hist_totals, hist)
            n1 = self._lookup(hist_ids, distinct, hist)
            seen = c_h > 0
            prob = np.where(seen, (c_hw + n1 * prob) / np.where(seen, c_h + n1, 1.0), prob)
        return np.log2(prob)

    def bits_per_byte(self, texts: Iterable[str]) -> float:
        logp = self.log2_probs(texts)
        return float(-logp.mean()) if len(logp) else float("nan")

"""DSIR (Xie et al. 2023, "Data Selection for Language Models via Importance Resampling").

Features: lower-cased word-punct tokens, their unigrams and bigrams hashed into
``num_buckets`` buckets (10,000 in the paper). Two bag-of-hashed-n-gram distributions are
fitted, one on the target examples and one on the raw pool, with add-``alpha`` smoothing
(``p = (count + alpha) / (total + alpha * buckets)``; the reference package adds 1e-8 to
the probabilities instead, which lets one unseen bucket swing a weight by ~18 nats). A
candidate's log importance weight is ``counts(x) . (log p_target - log p_raw)``. Selection
samples ``k`` candidates without replacement in proportion to ``exp(weight)`` with the
Gumbel top-k trick (Kool et al. 2019): add independent Gumbel(0, 1) noise under a seed and
keep the ``k`` largest.

Deviation, stated: buckets are ``crc32(ngram) mod num_buckets`` rather than the reference's
SHA-256; both are fixed hash functions (stable across processes and runs), crc32 is ~10x
cheaper. The n-gram order and bucket count are the configured ones everywhere (the
reference's estimator does not honour them).

Nothing here imports Dagster.
"""

from __future__ import annotations

import zlib
from typing import Iterable, Optional

import numpy as np

from corpus_assets.steps.selection.text import word_punct_tokens

DEFAULT_BUCKETS = 10_000


def hashed_ngrams(text: str, num_buckets: int = DEFAULT_BUCKETS, order: int = 2) -> list[int]:
    """Bucket ids of every n-gram (n = 1..order) of the text, with repeats."""
    tokens = word_punct_tokens(text)
    ids = [zlib.crc32(t.encode("utf-8", "surrogatepass")) % num_buckets for t in tokens]
    for n in range(2, order + 1):
        ids.extend(zlib.crc32(" ".join(tokens[i:i + n]).encode("utf-8", "surrogatepass")) % num_buckets
                   for i in range(len(tokens) - n + 1))
    return ids


def ngram_counts(text: str, num_buckets: int = DEFAULT_BUCKETS, order: int = 2) -> np.ndarray:
    return np.bincount(np.asarray(hashed_ngrams(text, num_buckets, order), dtype=np.int64),
                       minlength=num_buckets)


def fit_distribution(texts: Iterable[str], num_buckets: int = DEFAULT_BUCKETS, order: int = 2,
                     alpha: float = 1.0) -> np.ndarray:
    """Smoothed bag-of-hashed-n-grams distribution of a corpus."""
    counts = np.zeros(num_buckets, dtype=np.float64)
    for t in texts:
        ids = hashed_ngrams(t or "", num_buckets, order)
        if ids:
            counts += np.bincount(np.asarray(ids, dtype=np.int64), minlength=num_buckets)
    return (counts + alpha) / (counts.sum() + alpha * num_buckets)


class ImportanceEstimator:
    """``log p_target - log p_raw`` per bucket, and the log weight of a text."""

    def __init__(self, target_probs: np.ndarray, raw_probs: np.ndarray, order: int = 2):
        if target_probs.shape != raw_probs.shape:
            raise ValueError("target and raw distributions need the same number of buckets")
        self.log_ratio = np.log(target_probs) - np.log(raw_probs)
        self.num_buckets = len(target_probs)
        self.order = order

    def log_weight(self, text: str) -> float:
        ids = hashed_ngrams(text or "", self.num_buckets, self.order)
        return float(self.log_ratio[np.asarray(ids, dtype=np.int64)].sum()) if ids else 0.0

    def log_weights(self, texts: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.log_weight(t) for t in texts), dtype=np.float64)


def gumbel_top_k(log_weights: np.ndarray, k: int, seed: int, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Indices of ``k`` items sampled without replacement with probability proportional to
    ``exp(log_weights)``, in the order drawn (largest perturbed key first)."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    k = max(0, min(k, len(log_weights)))
    rng = rng or np.random.default_rng(seed)
    keys = log_weights + rng.gumbel(size=len(log_weights))
    return np.lexsort((np.arange(len(keys)), -keys))[:k]

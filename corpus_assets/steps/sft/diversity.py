"""Selection under a token budget and the diversity figures it is judged by.

``k_center_greedy`` (Gonzalez 1985's 2-approximation of the k-center problem; Sener &
Savarese 2018 used it as "core-set" selection over embeddings): start from the best-quality
sample, then repeatedly add the sample farthest (Euclidean distance of the embeddings; on
L2-normalized embeddings a monotone function of cosine distance) from every sample chosen
so far, among those whose tokens still fit the budget; stop when none fits. Ties go to the
better quality score, then to the earlier sample.

Diversity of a selection S within a pool P (both as embedding rows):

- ``mean_nearest_distance``: the mean over P of the distance to the nearest member of S
  (how well S covers the pool on average; lower is better);
- ``max_nearest_distance``: the largest such distance (the covering radius, which k-center
  greedy minimizes within a factor 2; lower is better);
- ``cluster_entropy``: the entropy of S's distribution over k-means clusters of P,
  divided by ln(k) (1 = spread evenly over all clusters).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def distances_to(x: np.ndarray, c: np.ndarray, x_sq: Optional[np.ndarray] = None) -> np.ndarray:
    """Euclidean distance of every row of ``x`` to the vector ``c``."""
    x_sq = _sq_norms(x) if x_sq is None else x_sq
    return np.sqrt(np.maximum(x_sq + float(c @ c) - 2.0 * (x @ c), 0.0))


def k_center_greedy(embeddings: np.ndarray, tokens: Sequence[int], budget: int,
                    quality: Optional[Sequence[float]] = None) -> list[int]:
    """Indices chosen, in order; their tokens sum to at most ``budget``."""
    if budget < 0:
        raise ValueError(f"token budget must be >= 0, got {budget}")
    x = np.asarray(embeddings, dtype=np.float64)
    n = x.shape[0]
    tok = np.asarray(tokens, dtype=np.int64)
    if tok.shape != (n,):
        raise ValueError(f"{n} embeddings but {tok.size} token counts")
    q = np.zeros(n) if quality is None else np.asarray(quality, dtype=np.float64)
    if n == 0:
        return []
    x_sq = _sq_norms(x)
    nearest = np.full(n, np.inf)
    available = tok <= budget
    left = budget
    chosen: list[int] = []
    # tie-break keys: quality descending, then index ascending
    tie = np.lexsort((np.arange(n), -q))
    rank = np.empty(n, dtype=np.int64)
    rank[tie] = np.arange(n)
    current = int(tie[available[tie]][0]) if available.any() else -1
    while current >= 0:
        chosen.append(current)
        left -= int(tok[current])
        available[current] = False
        nearest = np.minimum(nearest, distances_to(x, x[current], x_sq))
        available &= tok <= left
        if not available.any():
            break
        cand = np.flatnonzero(available)
        d = nearest[cand]
        best = cand[d == d.max()]
        current = int(best[np.argmin(rank[best])])
    return chosen


def cluster_round_robin(labels: Sequence[int], tokens: Sequence[int], budget: int,
                        quality: Sequence[float]) -> list[int]:
    """Per-cluster caps in their simplest form: clusters take turns (in label order), each
    adding its best-quality sample that still fits, until no cluster can add one; every
    cluster gets the same number of samples until it runs out."""
    if budget < 0:
        raise ValueError(f"token budget must be >= 0, got {budget}")
    labels = np.asarray(labels, dtype=np.int64)
    tok = np.asarray(tokens, dtype=np.int64)
    order = np.lexsort((np.arange(tok.size), -np.asarray(quality, dtype=np.float64)))
    queues = {int(c): [int(i) for i in order if labels[i] == c] for c in np.unique(labels)}
    chosen, left = [], budget
    while True:
        added = False
        for c in sorted(queues):
            queue = queues[c]
            while queue and tok[queue[0]] > left:
                queue.pop(0)  # the budget only shrinks: it will never fit
            if queue:
                i = queue.pop(0)
                chosen.append(i)
                left -= int(tok[i])
                added = True
        if not added:
            return chosen


def by_quality(tokens: Sequence[int], budget: int, quality: Sequence[float]) -> list[int]:
    """Best quality first, every sample that still fits (no diversity term)."""
    if budget < 0:
        raise ValueError(f"token budget must be >= 0, got {budget}")
    tok = np.asarray(tokens, dtype=np.int64)
    order = np.lexsort((np.arange(tok.size), -np.asarray(quality, dtype=np.float64)))
    return _fill(order, tok, budget, budget)


def random_same_tokens(tokens: Sequence[int], target: int, seed: int) -> list[int]:
    """A seeded random selection of about ``target`` tokens (the baseline of the same
    size): samples in a random order, each taken while it fits under ``target``."""
    tok = np.asarray(tokens, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(tok.size)
    return _fill(order, tok, target, target)


def _fill(order: np.ndarray, tok: np.ndarray, budget: int, target: int) -> list[int]:
    chosen, used = [], 0
    for i in order:
        if used + tok[i] <= budget:
            chosen.append(int(i))
            used += int(tok[i])
            if used >= target:
                break
    return chosen


def mean_nearest_distance(pool: np.ndarray, selected: np.ndarray, block: int = 4096) -> float:
    d = nearest_distances(pool, selected, block)
    return float(d.mean()) if d.size else float("nan")


def nearest_distances(pool: np.ndarray, selected: np.ndarray, block: int = 4096) -> np.ndarray:
    """Per pool row, the distance to its nearest selected row (empty if either is empty);
    the max of these is the covering radius, k-center's objective."""
    pool = np.asarray(pool, dtype=np.float32)
    sel = np.asarray(selected, dtype=np.float32)
    if pool.shape[0] == 0 or sel.shape[0] == 0:
        return np.zeros(0, np.float32)
    s_sq = _sq_norms(sel)
    out = []
    for start in range(0, pool.shape[0], block):
        p = pool[start:start + block]
        d2 = _sq_norms(p)[:, None] + s_sq[None, :] - 2.0 * (p @ sel.T)
        out.append(np.sqrt(np.maximum(d2.min(axis=1), 0.0)))
    return np.concatenate(out)


def kmeans_labels(pool: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels of the pool, centroids): scikit-learn's k-means, seeded."""
    from sklearn.cluster import KMeans

    k = max(1, min(k, pool.shape[0]))
    km = KMeans(n_clusters=k, random_state=seed, n_init=3).fit(np.asarray(pool, dtype=np.float64))
    return km.labels_.astype(np.int64), km.cluster_centers_


def cluster_entropy(labels: Sequence[int], k: int) -> float:
    """Entropy of the label distribution / ln(k), in [0, 1]; NaN for no labels."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        return float("nan")
    if k <= 1:
        return 0.0
    p = np.bincount(labels, minlength=k).astype(np.float64) / labels.size
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(k))

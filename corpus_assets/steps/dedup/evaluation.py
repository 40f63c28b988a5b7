"""How good is fuzzy dedup? Precision and recall of MinHash LSH against exact Jaccard
similarity of word 5-gram shingle sets, computed by brute force (all pairs) on a
collection small enough for it (the sample: a few hundred documents).

Two views:

- pairs: a pair is predicted when the two documents share at least one LSH band (a
  candidate pair); it is a true duplicate pair when the exact Jaccard similarity of their
  shingle sets is >= ``threshold``.
- documents: a document is predicted removed when union-find over the candidate pairs
  puts it in a cluster whose first member (collection order) is another document; it is
  truly redundant when the same holds for the components of the true pairs. This is the
  number that matters for a corpus: which documents the stage drops.

Shingles are the ones MinHash runs over (``MinHasher.shingles32``: the preset's
normalization, word n-grams, 32-bit values), so the ground truth and the estimate see
the same sets. No Dagster here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .clusters import UnionFind, resolve_clusters
from .minhash import get_minhasher, get_preset


def exact_jaccard_matrix(shingle_sets: Sequence[np.ndarray]) -> np.ndarray:
    """``float[n, n]`` exact Jaccard similarity of every pair (diagonal 1)."""
    n = len(shingle_sets)
    sims = np.eye(n)
    sets = [np.unique(np.asarray(s)) for s in shingle_sets]
    for i in range(n):
        a = sets[i]
        for j in range(i + 1, n):
            b = sets[j]
            inter = np.intersect1d(a, b, assume_unique=True).size
            union = a.size + b.size - inter
            sims[i, j] = sims[j, i] = inter / union if union else 1.0
    return sims


def candidate_matrix(band_keys: np.ndarray) -> np.ndarray:
    """``bool[n, n]``: the pairs that share at least one band (all pairs, not stars)."""
    n = band_keys.shape[0]
    out = np.zeros((n, n), dtype=bool)
    for j in range(band_keys.shape[1]):
        column = band_keys[:, j]
        out |= column[:, None] == column[None, :]
    np.fill_diagonal(out, False)
    return out


def _redundant(pairs_mask: np.ndarray) -> np.ndarray:
    """Documents that are not the first member of their component."""
    n = pairs_mask.shape[0]
    uf = UnionFind(n)
    i, j = np.nonzero(np.triu(pairs_mask, 1))
    uf.union_pairs(np.stack([i, j], axis=1))
    clusters = resolve_clusters(uf)
    removed = np.zeros(n, dtype=bool)
    removed[clusters.doc_index[~clusters.keep]] = True
    return removed


def _pr(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float, int, int, int]:
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


@dataclass
class PresetQuality:
    preset: str
    lsh_threshold: float
    jaccard_threshold: float
    pair_precision: float
    pair_recall: float
    true_pairs: int
    candidate_pairs: int
    doc_precision: float
    doc_recall: float
    truly_redundant_docs: int
    removed_docs: int


def evaluate_presets(texts: Sequence[str], presets: Sequence[str], thresholds: Sequence[float]) -> list[PresetQuality]:
    """Precision and recall of each preset at each Jaccard threshold, on ``texts``
    (in collection order: earlier documents are the ones kept)."""
    results = []
    truth_cache: dict = {}
    for name in presets:
        preset = get_preset(name)
        hasher = get_minhasher(preset)
        key = (preset.ngram, preset.numbers)
        if key not in truth_cache:
            truth_cache[key] = exact_jaccard_matrix([hasher.shingles32(t) for t in texts])
        sims = truth_cache[key]
        candidates = candidate_matrix(hasher.band_keys(hasher.signatures(list(texts))))
        upper = np.triu(np.ones_like(candidates), 1)
        for t in thresholds:
            truth = (sims >= t) & upper
            predicted = candidates & upper
            pp, pr, _, _, _ = _pr(predicted, truth)
            truth_docs = _redundant(sims >= t)
            removed_docs = _redundant(candidates)
            dp, dr, _, _, _ = _pr(removed_docs, truth_docs)
            results.append(PresetQuality(
                preset=name, lsh_threshold=round(preset.threshold, 3), jaccard_threshold=t,
                pair_precision=round(pp, 4), pair_recall=round(pr, 4),
                true_pairs=int(truth.sum()), candidate_pairs=int(predicted.sum()),
                doc_precision=round(dp, 4), doc_recall=round(dr, 4),
                truly_redundant_docs=int(truth_docs.sum()), removed_docs=int(removed_docs.sum()),
            ))
    return results

"""The quality score: a weighted mean of five terms in [0, 1], each from the statistics
(no trained classifier, so the score is explainable sample by sample):

- ``lang``: ``lang_score`` (lid.176's confidence in the language);
- ``perplexity``: 1 - the sample's perplexity percentile among the scored samples (more
  fluent under the reference LM = higher; a rank, so the scale of the LM does not matter);
- ``repetition``: 1 - max(``char_rep_ratio``, ``word_rep_ratio``);
- ``response``: ``min(1, ln(1 + response chars) / ln(1 + response_chars))``: a longer,
  fuller answer scores higher, saturating at ``response_chars`` (600) characters;
- ``alnum``: ``alnum_ratio``.

Weights are the recipe's ``quality.weight_*`` (all 1 by default).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from corpus_assets.steps.sft.config import SftQuality

TERMS = ("lang", "perplexity", "repetition", "response", "alnum")


def percentile_rank(values: Sequence[float]) -> np.ndarray:
    """Rank / (n - 1) in [0, 1] (ties share their mean rank; one value: 0.5)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return arr
    if arr.size == 1:
        return np.array([0.5])
    arr = np.where(np.isfinite(arr), arr, np.inf)
    order = np.argsort(arr, kind="stable")
    ranks = np.empty(arr.size, dtype=np.float64)
    ranks[order] = np.arange(arr.size, dtype=np.float64)
    # ties: mean rank of the tie group
    uniq, inverse = np.unique(arr, return_inverse=True)
    if uniq.size < arr.size:
        sums = np.bincount(inverse, weights=ranks)
        counts = np.bincount(inverse)
        ranks = (sums / counts)[inverse]
    return ranks / (arr.size - 1)


def quality_terms(stats: Sequence[dict], cfg: SftQuality) -> dict[str, np.ndarray]:
    if not stats:
        return {t: np.zeros(0) for t in TERMS}
    scale = math.log1p(cfg.response_chars)
    return {
        "lang": np.array([s["lang_score"] for s in stats], dtype=np.float64),
        "perplexity": 1.0 - percentile_rank([s["perplexity"] for s in stats]),
        "repetition": 1.0 - np.array([max(s["char_rep_ratio"], s["word_rep_ratio"]) for s in stats]),
        "response": np.minimum(1.0, np.array([math.log1p(s["response_len"]) for s in stats]) / scale),
        "alnum": np.array([s["alnum_ratio"] for s in stats], dtype=np.float64),
    }


def quality_scores(stats: Sequence[dict], cfg: SftQuality) -> np.ndarray:
    terms = quality_terms(stats, cfg)
    weights = {"lang": cfg.weight_lang, "perplexity": cfg.weight_perplexity, "repetition": cfg.weight_repetition,
               "response": cfg.weight_response, "alnum": cfg.weight_alnum}
    total = sum(weights.values())
    score = sum(weights[t] * terms[t] for t in TERMS) / total
    return np.clip(np.asarray(score, dtype=np.float64), 0.0, 1.0)


def top_fraction(quality: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the best ``ceil(fraction * n)`` samples (ties: earlier first), best first."""
    n = len(quality)
    keep = min(n, math.ceil(fraction * n))
    order = np.lexsort((np.arange(n), -np.asarray(quality)))
    return order[:keep]

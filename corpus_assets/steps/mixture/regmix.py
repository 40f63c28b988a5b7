"""A RegMix-style mixture search (Liu et al. 2024, "RegMix: Data Mixture as Regression for
Language Model Pre-training"), scaled down to a CPU.

1. Candidates: N mixtures drawn from a Dirichlet centred on the natural token shares
   (concentration ``alpha * natural``); as RegMix does, a weight above ``max_ratio`` (15) x
   its natural share is rejected (the draw is repeated) and weights under ``min_weight`` are
   zeroed before renormalizing.
2. Proxy per candidate: instead of a 1M-parameter transformer, the byte-level interpolated
   Witten-Bell n-gram LM (``steps/selection/ngram_lm.py``) trained on a FIXED number of
   training bytes drawn from the sources in the candidate's proportions; its loss is bits
   per byte on each validation set.
3. Regression: per validation set, ridge regression from weights to loss. RegMix fits
   LightGBM with hundreds of proxies; with tens of candidates and a handful of sources a
   regularised linear model is the one that does not overfit, needs no new dependency,
   and its coefficients read directly (RegMix reports its linear model close behind
   LightGBM at small scale). Quality: Spearman's rho between predicted and measured loss
   on held-out candidates (trained on the rest).
4. Proposal: the mean of the ``top_k`` of many fresh Dirichlet draws ranked by predicted
   objective (RegMix averages its top 100, which is steadier than the single argmin).

Nothing here imports Dagster; ``measure`` is pluggable so a synthetic problem with a
known optimum tests the regression and the proposal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from corpus_assets.steps.selection.ngram_lm import ByteNgramLM


def dirichlet_candidates(natural: np.ndarray, n: int, rng: np.random.Generator, alpha: float = 1.0,
                         max_ratio: float = 15.0, min_weight: float = 1e-3) -> np.ndarray:
    natural = np.asarray(natural, dtype=np.float64)
    natural = natural / natural.sum()
    concentration = np.maximum(alpha * natural * len(natural), 1e-3)
    out = []
    while len(out) < n:
        w = rng.dirichlet(concentration)
        if np.any(w > max_ratio * natural):
            continue
        w = np.where(w < min_weight, 0.0, w)
        if w.sum() <= 0:
            continue
        out.append(w / w.sum())
    return np.array(out)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    def ranks(x):
        x = np.asarray(x, dtype=np.float64)
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        # ties: average rank
        for value in np.unique(x):
            idx = np.where(x == value)[0]
            if len(idx) > 1:
                r[idx] = r[idx].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclass
class RidgeFit:
    coef: np.ndarray
    intercept: float

    def predict(self, weights: np.ndarray) -> np.ndarray:
        return np.asarray(weights) @ self.coef + self.intercept


def ridge(weights: np.ndarray, losses: np.ndarray, lam: float = 1e-3) -> RidgeFit:
    x_mean, y_mean = weights.mean(axis=0), losses.mean()
    xc, yc = weights - x_mean, losses - y_mean
    coef = np.linalg.solve(xc.T @ xc + lam * np.eye(weights.shape[1]), xc.T @ yc)
    return RidgeFit(coef, float(y_mean - x_mean @ coef))


def byte_sample(texts_by_source: Sequence[Sequence[str]], weights: np.ndarray, train_bytes: int) -> list[str]:
    """``weights[i] * train_bytes`` bytes of source i's texts (in the order given, cycling
    when a source is short): the fixed-size proxy training set of one candidate."""
    out = []
    for texts, w in zip(texts_by_source, weights):
        want = int(w * train_bytes)
        if want <= 0 or not texts:
            continue
        i = 0
        while want > 0:
            text = texts[i % len(texts)]
            piece = text.encode("utf-8")[:want].decode("utf-8", "ignore")
            out.append(piece)
            want -= len(piece.encode("utf-8")) or want
            i += 1
    return out


def ngram_measure(texts_by_source: Sequence[Sequence[str]], validation: dict[str, Sequence[str]],
                  train_bytes: int, order: int = 4) -> Callable[[np.ndarray], dict[str, float]]:
    def measure(weights: np.ndarray) -> dict[str, float]:
        lm = ByteNgramLM(order).fit(byte_sample(texts_by_source, weights, train_bytes))
        return {name: lm.bits_per_byte(texts) for name, texts in validation.items()}

    return measure


# Held-out candidates below which a rank correlation says nothing (2 points: always +-1).
MIN_SPEARMAN_CANDIDATES = 5


def _heldout_count(n_candidates: int, heldout_fraction: float) -> int:
    return max(2, int(round(heldout_fraction * n_candidates)))


def _candidates_for(n_test: int, heldout_fraction: float) -> int:
    """The fewest candidates whose held-out part has ``n_test`` (Python rounds half to even)."""
    n = n_test
    while _heldout_count(n, heldout_fraction) < n_test:
        n += 1
    return n


def search(sources: Sequence[str], natural: np.ndarray, measure: Callable[[np.ndarray], dict[str, float]],
           objective: Sequence[str], n_candidates: int = 32, heldout_fraction: float = 0.25, seed: int = 0,
           alpha: float = 1.0, n_proposal_draws: int = 20_000, top_k: int = 100,
           objective_weights: Optional[Sequence[float]] = None) -> dict:
    if not objective:
        raise ValueError("mixture search: the objective names no validation set")
    rng = np.random.default_rng(seed)
    cands = dirichlet_candidates(natural, n_candidates, rng, alpha)
    measured = [measure(w) for w in cands]
    names = sorted(measured[0])
    absent = [o for o in objective if o not in names]
    if absent:
        raise ValueError(f"mixture search: objective {absent} not among the measured validation sets {names}")
    losses = {name: np.array([m[name] for m in measured]) for name in names}
    n_test = _heldout_count(n_candidates, heldout_fraction)
    order = rng.permutation(n_candidates)
    test, train = order[:n_test], order[n_test:]
    fits, quality = {}, {}
    for name in names:
        held = ridge(cands[train], losses[name][train])
        # Spearman over 2-4 points is +-1 or a few coarse values whatever the fit: undefined
        # (None) below MIN_SPEARMAN_CANDIDATES, with the reason, rather than a perfect-looking 1.0.
        rho = round(spearman(held.predict(cands[test]), losses[name][test]), 4) if n_test >= MIN_SPEARMAN_CANDIDATES \
            else None
        quality[name] = {"spearman_heldout": rho, "heldout_candidates": int(n_test)}
        if rho is None:
            quality[name]["spearman_note"] = (
                f"undefined: {n_test} held-out candidates, {MIN_SPEARMAN_CANDIDATES} needed (mixture.search_candidates "
                f">= {_candidates_for(MIN_SPEARMAN_CANDIDATES, heldout_fraction)})")
        fits[name] = ridge(cands, losses[name])
    ow = np.asarray(objective_weights if objective_weights is not None else [1.0] * len(objective), dtype=np.float64)
    ow = ow / ow.sum()

    def predicted(weights: np.ndarray) -> np.ndarray:
        return sum(w * fits[name].predict(weights) for w, name in zip(ow, objective))

    draws = dirichlet_candidates(natural, n_proposal_draws, rng, alpha)
    best = draws[np.argsort(predicted(draws), kind="mergesort")[:top_k]]
    proposal = best.mean(axis=0)
    proposal = proposal / proposal.sum()
    obj_measured = sum(w * losses[name] for w, name in zip(ow, objective))
    return {
        "sources": list(sources), "natural": [round(float(x), 6) for x in natural / natural.sum()],
        "proposal": [round(float(x), 6) for x in proposal],
        "predicted_objective": {"natural": float(predicted(natural[None, :] / natural.sum())[0]),
                                "proposal": float(predicted(proposal[None, :])[0]),
                                "best_candidate_measured": float(obj_measured.min())},
        "fit": {name: {**quality[name], "coef": [round(float(c), 5) for c in fits[name].coef],
                       "intercept": round(fits[name].intercept, 5)} for name in names},
        "objective": list(objective), "candidates": [[round(float(x), 6) for x in w] for w in cands],
        "losses": {name: [round(float(x), 5) for x in losses[name]] for name in names},
        "regression": "ridge (linear), lambda 1e-3",
    }


def proposal_spec(result: dict, base_spec: dict, name: str) -> dict:
    """The proposal as a mixture spec ``training_mixture`` can materialize: the base spec's
    sources with the proposed weights (rounded; normalize: true absorbs the rounding)."""
    weights = dict(zip(result["sources"], result["proposal"]))
    sources = [{**s, "weight": round(weights.get(s["name"], 0.0), 4)} for s in base_spec["sources"]]
    return {**base_spec, "name": name, "sources": sources, "normalize": True, "temperature": None}

"""FineFineWeb's iterations: coarse recall retrained each round on the seeds plus what the
fine classifier recalled (positives) and dropped (negatives); the fine head stays frozen;
no new seed labels. Every round's model and labels are returned for the caller to keep.

Bookkeeping per round and domain: documents gained and lost against the previous round,
and precision/recall of the whole cascade on the held-out seed labels (seeds that never
entered any training set, coarse or fine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .classifiers import CoarseSettings, Decision, FineHead, coarse_scores, fine_decisions, train_coarse, train_fine
from .seeds import NONE_LABEL


@dataclass
class RoundResult:
    round: int
    coarse_model: object
    train_size: int
    decisions: list[Decision]
    coarse_positive_share: float
    per_domain: dict = field(default_factory=dict)  # domain -> {docs, gained, lost, precision, recall, ...}


def precision_recall(predicted: Sequence[Optional[str]], truth: Sequence[Optional[str]], domains: Sequence[str]) -> dict:
    """Per domain on labelled pairs: truth None = no seed (skipped); ``none`` = DoNI for all."""
    out = {}
    pairs = [(p, t) for p, t in zip(predicted, truth) if t is not None]
    for d in domains:
        tp = sum(1 for p, t in pairs if p == d and t == d)
        pred = sum(1 for p, _ in pairs if p == d)
        true = sum(1 for _, t in pairs if t == d)
        out[d] = {"tp": tp, "predicted": pred, "support": true,
                  "precision": round(tp / pred, 4) if pred else None,
                  "recall": round(tp / true, 4) if true else None}
    return out


def cascade(model, head: FineHead, texts: Sequence[str], embeddings: np.ndarray, coarse_threshold: float,
            fine_threshold: float, word_ngrams: int = 1) -> tuple[list[Decision], int]:
    coarse = coarse_scores(model, texts, coarse_threshold, word_ngrams)
    positive = np.array([bool(c) for c in coarse], dtype=bool)
    decisions = fine_decisions(head, coarse, embeddings[positive] if len(embeddings) else embeddings, fine_threshold)
    return decisions, int(positive.sum())


def run_rounds(texts: Sequence[str], embeddings: np.ndarray, seeds: Sequence[Optional[str]],
               is_heldout: Sequence[bool], domains: Sequence[str], rounds: int, coarse: CoarseSettings,
               coarse_threshold: float, fine_threshold: float, fine_l2: float = 1e-3,
               fine_epochs: int = 300) -> tuple[FineHead, list[RoundResult]]:
    """``seeds[i]``: a domain, ``none`` (DoNI for all) or None (no seed)."""
    n = len(texts)
    train_idx = [i for i in range(n) if seeds[i] is not None and not is_heldout[i]]
    if not train_idx or not any(seeds[i] != NONE_LABEL for i in train_idx):
        raise ValueError("no DoI seed labels outside the held-out split: nothing to train on")
    head = train_fine(embeddings[train_idx], [seeds[i] for i in train_idx], l2=fine_l2, epochs=fine_epochs)
    heldout_truth = [seeds[i] if is_heldout[i] else None for i in range(n)]
    labels: dict[int, str] = {i: seeds[i] for i in train_idx}
    results: list[RoundResult] = []
    previous: Optional[list[Optional[str]]] = None
    for k in range(1, rounds + 1):
        order = sorted(labels)
        model = train_coarse([texts[i] for i in order], [labels[i] for i in order], coarse)
        decisions, positives = cascade(model, head, texts, embeddings, coarse_threshold, fine_threshold,
                                       coarse.word_ngrams)
        predicted = [d.domain for d in decisions]
        metrics = precision_recall(predicted, heldout_truth, domains)
        per_domain = {}
        for d in domains:
            now = {i for i, p in enumerate(predicted) if p == d}
            before = {i for i, p in enumerate(previous) if p == d} if previous is not None else set()
            per_domain[d] = {"docs": len(now), "gained": len(now - before), "lost": len(before - now), **metrics[d]}
        results.append(RoundResult(k, model, len(order), decisions, round(positives / n, 4) if n else 0.0, per_domain))
        previous = predicted
        # Next round's coarse training set: the seeds, plus recalled (+) and dropped (-)
        # documents that are neither seeds nor held out.
        labels = {i: seeds[i] for i in train_idx}
        for i, dec in enumerate(decisions):
            if i in labels or is_heldout[i]:
                continue
            if dec.domain is not None:
                labels[i] = dec.domain
            elif dec.coarse_domains:
                labels[i] = NONE_LABEL
    return head, results

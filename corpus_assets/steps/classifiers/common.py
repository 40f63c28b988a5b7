"""What both classifiers share: folds by document id, the reference corpus, the
training sample, and the held-out figures.

Cross-fitting: a document's fold is a seeded hash of its id. The model of fold k is
trained on every training document outside fold k, and a document is always scored by
the model of its own fold, so no document is scored by a model that saw it, whether or
not it was in the training sample. The same out-of-fold scores on the training documents
give the held-out precision, recall and F1.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from corpus_assets.steps.classifiers.config import ReferenceCorpus
# the same data folder as the language model's references ($CORPUS_LM_DATA, else ../shared/data)
from corpus_assets.steps.lm.model import _file_digest, default_data_dir

WORD_RE = re.compile(r"\w+", re.UNICODE)


def doc_hash(doc_id: str, seed: int, salt: str = "") -> int:
    """A 64-bit hash of ``doc_id`` under ``seed`` (stable across processes and runs)."""
    key = f"{seed}|{salt}|{doc_id}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def fold_of(doc_id: str, folds: int, seed: int) -> int:
    return doc_hash(doc_id, seed, "fold") % folds


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (runs of letters, digits and ``_``)."""
    return WORD_RE.findall((text or "").lower())


def reference_path(reference: ReferenceCorpus) -> Path:
    path = Path(reference.path).expanduser()
    return path if path.is_absolute() else default_data_dir() / path


def file_digest(path: Path) -> str:
    return _file_digest(path)


class ReferenceMissing(FileNotFoundError):
    """The reference corpus a classifier needs is not there."""


def iter_reference(reference: ReferenceCorpus, setting: str) -> Iterator[tuple[str, str]]:
    """(id, text) of each record of the reference corpus; a record that is not a JSON
    object or has no text in ``fields`` is skipped."""
    path = reference_path(reference)
    if not path.is_file():
        raise ReferenceMissing(f"{setting}.reference.path: no such file {path} (a JSONL(.gz) of "
                               f"{{{', '.join(reference.fields)}}} records; relative paths are under {default_data_dir()})")
    from corpus_assets.selection_stages import iter_jsonl  # the project's one JSONL reader

    for number, record in iter_jsonl(path):
        if record is None:
            continue
        text = "\n".join(v for v in (record.get(f) for f in reference.fields) if isinstance(v, str) and v.strip())
        if text:
            yield f"ref:{record.get('id', number)}", text


def lowest_hashes(items: Iterable[tuple[str, str]], count: int, seed: int) -> list[tuple[str, str]]:
    """The ``count`` items with the lowest seeded hash of their id: a sample that does not
    depend on the order items arrive in. Memory: about 2 x ``count`` items."""
    kept: list[tuple[int, str, str]] = []
    for doc_id, text in items:
        kept.append((doc_hash(doc_id, seed, "sample"), doc_id, text))
        if len(kept) > 2 * count:
            kept.sort()
            del kept[count:]
    kept.sort()
    return [(doc_id, text) for _, doc_id, text in kept[:count]]


@dataclass
class TrainingSet:
    ids: list[str]
    texts: list[str]
    labels: np.ndarray  # 1 = reference (positive), 0 = crawl
    folds: np.ndarray

    @property
    def positives(self) -> int:
        return int(self.labels.sum())

    @property
    def negatives(self) -> int:
        return int(len(self.labels) - self.labels.sum())


def training_set(crawl: Iterable[tuple[str, str]], reference: Iterable[tuple[str, str]], folds: int, seed: int,
                 max_crawl_docs: int, positives_per_negative: float) -> TrainingSet:
    """Crawl documents (negatives, at most ``max_crawl_docs``) and reference documents
    (positives, ``positives_per_negative`` per negative), each with its fold."""
    negatives = lowest_hashes(((i, t) for i, t in crawl if t and t.strip()), max_crawl_docs, seed)
    wanted = max(1, int(round(len(negatives) * positives_per_negative)))
    positives = lowest_hashes(reference, wanted, seed)
    rows = [(i, t, 1) for i, t in positives] + [(i, t, 0) for i, t in negatives]
    return TrainingSet(
        ids=[r[0] for r in rows], texts=[r[1] for r in rows],
        labels=np.array([r[2] for r in rows], dtype=np.int8),
        folds=np.array([fold_of(r[0], folds, seed) for r in rows], dtype=np.int32),
    )


class Untrainable:
    """Stands in for a model a dump could not train (fewer crawl documents than folds): the
    classifier steps remove every document of that dump as ``classifier_untrainable`` with
    ``reason`` as the detail, counted like any removal, instead of failing the recipe."""

    def __init__(self, config, reason: str):
        self.config = config
        self.reason = reason

    def score(self, doc_id: str, text: str) -> float:
        return float("nan")


def untrainable_reason(data: TrainingSet, folds: int, reference, where: str) -> str | None:
    """Why ``data`` cannot train ``folds`` cross-fitted models. The reference side short is a
    setting to fix (ValueError naming the file and ``fields``); the crawl side short (a tiny or
    non-English dump) is data: the reason string, for ``Untrainable``. None: trainable."""
    def reference_short(why: str) -> ValueError:
        return ValueError(f"{where}.reference: {data.positives} reference document(s) read from "
                          f"{reference_path(reference)} (fields {list(reference.fields)}), {why}: check "
                          f"reference.path (a JSONL(.gz) file), reference.fields and positives_per_negative")

    if data.positives == 0:
        raise reference_short("none usable")
    if data.negatives < folds:
        return (f"{data.negatives} crawl document(s) in this dump, fewer than {where}.folds = {folds}: "
                "no model trained")
    if data.positives < folds:
        raise reference_short(f"fewer than {where}.folds = {folds}")
    return None


def check_trainable(data: TrainingSet, folds: int, where: str) -> None:
    """Every fold model needs both classes outside its fold."""
    for k in range(folds):
        outside = data.labels[data.folds != k]
        if outside.size == 0 or outside.min() == outside.max():
            raise ValueError(f"{where}: fold {k} would train on one class only ({data.positives} reference and "
                             f"{data.negatives} crawl documents in all): too few documents for {folds} folds")


def held_out_figures(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict:
    """Precision, recall and F1 of the positive class at ``threshold`` (out-of-fold scores)."""
    predicted = scores >= threshold
    actual = labels.astype(bool)
    tp = int(np.sum(predicted & actual))
    fp = int(np.sum(predicted & ~actual))
    fn = int(np.sum(~predicted & actual))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "threshold": threshold, "positives": int(actual.sum()), "negatives": int((~actual).sum()),
            "accuracy": round(float(np.mean(predicted == actual)), 4) if len(actual) else 0.0,
            # the threshold is a decision setting (no retraining when it changes): F1 on a grid of
            # thresholds, so the figure shown beside a new threshold is computed at it
            "f1_at": {f"{t / 100:.2f}": _f1(labels, scores, t / 100) for t in range(5, 100, 5)}}


def _f1(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    predicted, actual = scores >= threshold, labels.astype(bool)
    tp = int(np.sum(predicted & actual))
    denominator = 2 * tp + int(np.sum(predicted & ~actual)) + int(np.sum(~predicted & actual))
    return round(2 * tp / denominator, 4) if denominator else 0.0


def f1_at(held_out: dict, threshold: float) -> tuple[float, float]:
    """(F1, the threshold it was computed at) for ``threshold``: from the training report's
    grid when ``threshold`` is on it, else the figure at the training threshold."""
    grid = held_out.get("f1_at") or {}
    key = f"{threshold:.2f}"
    if key in grid and abs(float(key) - threshold) < 1e-9:
        return grid[key], threshold
    return held_out["f1"], held_out.get("threshold", 0.5)


def fold_scores(ids: Sequence[str], texts: Sequence[str], score_fold, folds: int, seed: int) -> np.ndarray:
    """Each document scored by the model of its own fold: ``score_fold(k, texts)``."""
    fold = np.array([fold_of(i, folds, seed) for i in ids], dtype=np.int32)
    out = np.zeros(len(ids), dtype=np.float64)
    for k in range(folds):
        where = np.flatnonzero(fold == k)
        if where.size:
            out[where] = score_fold(k, [texts[i] for i in where])
    return out


def optional_text(value: Optional[str]) -> str:
    return value if isinstance(value, str) else ""

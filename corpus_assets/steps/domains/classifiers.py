"""Coarse recall (fastText) and fine recall (encoder + softmax head), and their cascade.

**Coarse: one multi-label fastText model with the one-vs-all loss** (``loss="ova"``),
rather than one binary model per domain. ova trains an independent sigmoid per label, so
each domain keeps its own yes/no decision and threshold as a binary model would, but one
``predict`` call scores all 67 domains at once: the coarse pass over a whole dump reads and
tokenises each document once instead of 67 times, and one model file is versioned instead
of 67. Documents with no domain (DoNI for every domain) carry the label ``none``.

**Fine: a softmax-regression head on sentence-encoder embeddings** (FineFineWeb fine-tunes
a BERT classifier; a frozen encoder plus a trained linear head is the CPU-friendly
version of that, and swapping in a larger local encoder needs no code change). It only
sees the coarse positives, and it is trained once and frozen across rounds, as in the paper.

Cascade for one document: coarse domains C = {d : p_coarse(d) >= coarse_threshold}; empty
-> ``not_recalled``. Otherwise the fine head's most probable domain within C is the label
when its probability >= fine_threshold, else ``fine_rejected``.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .seeds import NONE_LABEL

LABEL_PREFIX = "__label__"
_WS = re.compile(r"\s+")
REASON_NOT_RECALLED = "not_recalled"
REASON_FINE_REJECTED = "fine_rejected"
REASON_EMPTY = "empty_text"


@dataclass(frozen=True)
class CoarseSettings:
    epochs: int = 25
    lr: float = 0.5
    word_ngrams: int = 2
    dim: int = 32
    min_count: int = 1
    seed: int = 0
    # Lines of a domain with fewer training examples are repeated up to this many, so a
    # domain with a handful of seeds is not drowned by `none` and the big domains.
    min_examples: int = 20


def balanced(pairs: list[tuple[str, str]], min_examples: int) -> list[tuple[str, str]]:
    """Deterministic oversampling: every label's lines repeated (whole passes, in order)
    until it has at least ``min_examples`` lines."""
    by_label: dict[str, list[tuple[str, str]]] = {}
    for line, label in pairs:
        by_label.setdefault(label, []).append((line, label))
    out = list(pairs)
    for label in sorted(by_label):
        rows = by_label[label]
        repeats = -(-min_examples // len(rows)) - 1  # extra whole passes
        out.extend(rows * max(0, repeats))
    return out


def fasttext_line(text: str, word_ngrams: int = 1) -> str:
    """One document as fastText input: lower case, one line, no label markers; with
    ``word_ngrams`` >= 2, the word n-grams appended as tokens (``a_b``), see ``train_coarse``."""
    words = _WS.sub(" ", (text or "").replace(LABEL_PREFIX, " ")).strip().lower().split()
    grams = ["_".join(words[i:i + n]) for n in range(2, word_ngrams + 1) for i in range(len(words) - n + 1)]
    return " ".join(words + grams)


def _initial_vectors(lines: Sequence[str], settings: CoarseSettings, path: str) -> None:
    """Seeded uniform(-1/dim, 1/dim) vectors for every dictionary token (fastText's own
    initialisation, but complete and reproducible)."""
    counts: dict[str, int] = {}
    for line in lines:
        for w in line.split():
            counts[w] = counts.get(w, 0) + 1
    tokens = sorted(w for w, c in counts.items() if c >= settings.min_count) + ["</s>"]
    vectors = np.random.default_rng(settings.seed).uniform(-1 / settings.dim, 1 / settings.dim, (len(tokens), settings.dim))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"{len(tokens)} {settings.dim}\n")
        for token, row in zip(tokens, vectors):
            fh.write(token + " " + " ".join(f"{x:.6f}" for x in row) + "\n")


def train_coarse(texts: Sequence[str], labels: Sequence[str], settings: CoarseSettings):
    """A fastText ova model on (text, label) pairs; label = a domain or ``none``.

    Why the detours: fastText 0.9.x initialises its input matrix in 10 blocks, one per
    training thread (``DenseMatrix::uniform``), so with fewer than 10 threads most rows are
    left as uninitialised memory: runs differ and small models end in "Encountered NaN".
    More threads would fix that but make training non-deterministic (Hogwild). So training
    runs on one thread with ``pretrainedVectors`` that give EVERY row a seeded value, and
    word n-grams are tokens in the text (``fasttext_line``) rather than fastText's hashed
    buckets, whose rows no vector file can reach. Same data -> same model bytes."""
    import fasttext

    lines = [fasttext_line(t, settings.word_ngrams) for t in texts]
    pairs = balanced([(line, label) for line, label in zip(lines, labels) if line], settings.min_examples)
    fd, path = tempfile.mkstemp(suffix=".txt", prefix="coarse-train-")
    vec_path = path[:-4] + ".vec"
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for line, label in pairs:
                fh.write(f"{LABEL_PREFIX}{label} {line}\n")
        _initial_vectors([ln for ln in lines if ln], settings, vec_path)
        return fasttext.train_supervised(
            input=path, loss="ova", epoch=settings.epochs, lr=settings.lr, wordNgrams=1, dim=settings.dim,
            minCount=settings.min_count, thread=1, seed=settings.seed, pretrainedVectors=vec_path, verbose=0,
        )
    finally:
        for p in (path, vec_path):
            if os.path.exists(p):
                os.unlink(p)


def model_bytes(model) -> bytes:
    fd, path = tempfile.mkstemp(suffix=".bin", prefix="coarse-")
    os.close(fd)
    try:
        model.save_model(path)
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(path)


def load_coarse(data: bytes):
    import fasttext

    fd, path = tempfile.mkstemp(suffix=".bin", prefix="coarse-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return fasttext.load_model(path)
    finally:
        os.unlink(path)


def coarse_scores(model, texts: Sequence[str], threshold: float, word_ngrams: int = 1) -> list[dict[str, float]]:
    """Per document: domain -> probability for the domains at or above ``threshold``.
    ``word_ngrams`` must be the training setting (the n-gram tokens are in the text)."""
    lines = [fasttext_line(t, word_ngrams) for t in texts]
    out: list[dict[str, float]] = []
    if not lines:
        return out
    labels, probs = model.predict(lines, k=-1, threshold=threshold)
    for labs, ps in zip(labels, probs):
        out.append({lab[len(LABEL_PREFIX):]: float(p) for lab, p in zip(labs, ps)
                    if lab[len(LABEL_PREFIX):] != NONE_LABEL})
    return out


# -- fine ----------------------------------------------------------------------------------

@dataclass
class FineHead:
    classes: list[str]   # domains (and ``none``) seen in training
    weights: np.ndarray  # (dim, classes)
    bias: np.ndarray     # (classes,)
    # Unit-norm embeddings times this before the linear layer (a logit scale, as CLIP's
    # temperature): without it gradient descent leaves the softmax near uniform over ~50
    # classes (max probability ~0.07 on DBpedia-14), below any useful threshold.
    scale: float = 1.0

    def proba(self, embeddings: np.ndarray) -> np.ndarray:
        logits = (embeddings * self.scale) @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict:
        return {"classes": self.classes, "weights": self.weights.round(6).tolist(), "bias": self.bias.round(6).tolist(),
                "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> "FineHead":
        return cls(list(d["classes"]), np.asarray(d["weights"], np.float32), np.asarray(d["bias"], np.float32),
                   float(d.get("scale", 1.0)))


def train_fine(embeddings: np.ndarray, labels: Sequence[str], l2: float = 1e-3, epochs: int = 300,
               lr: float = 0.5, scale: float = 10.0) -> FineHead:
    """Multinomial logistic regression by full-batch gradient descent (deterministic).
    Classes are weighted by inverse frequency so rare domains are not drowned."""
    classes = sorted(set(labels))
    if not classes:
        raise ValueError("no labelled documents to train the fine head on")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[l] for l in labels])
    x = np.asarray(embeddings, np.float64) * scale
    n, dim = x.shape
    k = len(classes)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    counts = onehot.sum(axis=0)
    sample_w = (n / (k * counts))[y][:, None]
    w = np.zeros((dim, k))
    b = np.zeros(k)
    for _ in range(epochs):
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * sample_w / n
        w -= lr * (x.T @ g + l2 * w)
        b -= lr * g.sum(axis=0)
    return FineHead(classes, w.astype(np.float32), b.astype(np.float32), scale)


# -- the cascade ---------------------------------------------------------------------------

@dataclass
class Decision:
    domain: Optional[str]  # None = unclassified
    score: float
    runner_up: str
    runner_up_score: float
    reason: str            # "" when classified, else why not
    coarse_domains: int    # how many domains coarse recall proposed


def fine_decisions(head: FineHead, coarse: Sequence[dict[str, float]], embeddings: np.ndarray,
                   fine_threshold: float) -> list[Decision]:
    """``embeddings`` holds rows for the coarse positives only, in order."""
    probs = head.proba(embeddings) if len(embeddings) else np.zeros((0, len(head.classes)))
    domain_cols = [i for i, c in enumerate(head.classes) if c != NONE_LABEL]
    out, row = [], 0
    for cands in coarse:
        if not cands:
            out.append(Decision(None, 0.0, "", 0.0, REASON_NOT_RECALLED, 0))
            continue
        p = probs[row]
        row += 1
        ranked = sorted(domain_cols, key=lambda i: (-p[i], head.classes[i]))
        allowed = [i for i in ranked if head.classes[i] in cands]
        best = allowed[0] if allowed else None
        others = [i for i in ranked if i != best]
        ru = others[0] if others else None
        ru_name, ru_score = (head.classes[ru], float(p[ru])) if ru is not None else ("", 0.0)
        if best is not None and p[best] >= fine_threshold:
            out.append(Decision(head.classes[best], float(p[best]), ru_name, ru_score, "", len(cands)))
        else:
            score = float(p[best]) if best is not None else 0.0
            top = head.classes[ranked[0]] if ranked else ""
            out.append(Decision(None, score, top, float(p[ranked[0]]) if ranked else 0.0, REASON_FINE_REJECTED, len(cands)))
    return out

"""GPT-3's quality classifier (Brown et al. 2020, appendix A).

"we trained a logistic regression classifier using Spark's standard tokenizer and
HashingTF": features are word counts hashed into ``2^hash_bits`` buckets (Spark's default
2^18), here with scikit-learn's ``HashingVectorizer`` (lower-cased word tokens, counts,
L2-normalized rows) and ``LogisticRegression`` (L2, ``regularization_c``). Positives: a
curated reference corpus (GPT-3: WebText, Wikipedia and books; offline here: the
shared Wikipedia sample); negatives: unfiltered Common Crawl (here the dump's
``rw_raw``). A document is kept when ``np.random.pareto(alpha) > 1 - score`` with
alpha = 9, "to take mostly documents the classifier scored highly, but still include
some documents that were out of distribution".

The draw is per document: a generator seeded by ``seed`` and a hash of the doc_id
(``numpy.random.Generator.pareto``, the same Lomax distribution as the legacy
``np.random.pareto``), so a document's fate does not depend on the order documents
arrive in or on the shard it is in. P(keep | score s) = (2 - s)^-alpha: 1 at s = 1,
1.5^-9 = 2.6% at s = 0.5, 2^-9 = 0.2% at s = 0.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pyarrow as pa

from corpus_assets.steps.classifiers.common import (TrainingSet, check_trainable, doc_hash, fold_of, fold_scores,
                                                    held_out_figures)
from corpus_assets.steps.classifiers.config import ClassifierTraining

MODEL_SCHEMA = pa.schema([("fold", pa.int32()), ("intercept", pa.float64()), ("coef", pa.list_(pa.float32()))])


def keep_probability(score: float, alpha: float) -> float:
    """P(pareto(alpha) > 1 - score) = (2 - score)^-alpha (Lomax survival at 1 - score)."""
    return float((2.0 - score) ** -alpha)


def pareto_draw(doc_id: str, alpha: float, seed: int) -> float:
    return float(np.random.default_rng(doc_hash(doc_id, seed, "pareto")).pareto(alpha))


def pareto_keep(score: float, doc_id: str, alpha: float, seed: int) -> tuple[bool, float]:
    """GPT-3's rule for one document: (kept, the draw)."""
    draw = pareto_draw(doc_id, alpha, seed)
    return draw > 1.0 - score, draw


def _vectorizer(hash_bits: int, ngrams: int = 1):
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=1 << hash_bits, alternate_sign=False, norm="l2", lowercase=True,
                             token_pattern=r"(?u)\b\w+\b", ngram_range=(1, ngrams), dtype=np.float32)


class HashedLogisticRegression:
    """One logistic regression on hashed word n-gram counts per fold; a document is scored
    by its own fold's model. GPT-3's classifier (unigrams), and the default engine of
    LLaMA's reference classifier (``ngrams`` = its ``word_ngrams``: a linear model over
    words and bigrams, fastText's model class). ``config`` needs ``folds``, ``seed``,
    ``hash_bits``, ``regularization_c`` and, as ``threshold``, the held-out figures' cut."""

    def __init__(self, config: ClassifierTraining, coef: np.ndarray, intercept: np.ndarray, ngrams: int = 1):
        if coef.shape != (config.folds, 1 << config.hash_bits) or intercept.shape != (config.folds,):
            raise ValueError(f"classifiers: stored model has shape {coef.shape}, the settings say "
                             f"{config.folds} folds of 2^{config.hash_bits} features: re-train it")
        self.config = config
        self.ngrams = ngrams
        self.coef = coef.astype(np.float32)
        self.intercept = intercept.astype(np.float64)
        self.vectorizer = _vectorizer(config.hash_bits, ngrams)

    @classmethod
    def train(cls, data: TrainingSet, config: ClassifierTraining, ngrams: int = 1,
              setting: str = "classifiers.gpt3") -> tuple["HashedLogisticRegression", dict]:
        from sklearn.linear_model import LogisticRegression

        check_trainable(data, config.folds, setting)
        started = time.perf_counter()
        vectorizer = _vectorizer(config.hash_bits, ngrams)
        features = vectorizer.transform(data.texts)
        coef = np.zeros((config.folds, 1 << config.hash_bits), dtype=np.float32)
        intercept = np.zeros(config.folds)
        held_out = np.zeros(len(data.labels))
        for k in range(config.folds):
            train = data.folds != k
            model = LogisticRegression(C=config.regularization_c, max_iter=1000, solver="liblinear",
                                       random_state=config.seed)
            model.fit(features[train], data.labels[train])
            coef[k] = model.coef_[0]
            intercept[k] = model.intercept_[0]
            test = np.flatnonzero(~train)
            if test.size:
                held_out[test] = model.predict_proba(features[test])[:, 1]
        report = {"train_seconds": round(time.perf_counter() - started, 3),
                  "held_out": held_out_figures(data.labels, held_out, getattr(config, "threshold", 0.5)),
                  "folds": config.folds, "features": 1 << config.hash_bits}
        return cls(config, coef, intercept, ngrams), report

    def _fold_scores(self, k: int, texts: Sequence[str]) -> np.ndarray:
        logits = self.vectorizer.transform(texts) @ self.coef[k] + self.intercept[k]
        return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64).ravel()))

    def scores(self, ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        return fold_scores(ids, texts, self._fold_scores, self.config.folds, self.config.seed)

    def score(self, doc_id: str, text: str) -> float:
        return float(self._fold_scores(fold_of(doc_id, self.config.folds, self.config.seed), [text or ""])[0])

    def to_table(self) -> pa.Table:
        return pa.table({"fold": pa.array(range(self.config.folds), pa.int32()),
                         "intercept": pa.array(self.intercept, pa.float64()),
                         "coef": pa.array(list(self.coef), pa.list_(pa.float32()))}, schema=MODEL_SCHEMA)

    @classmethod
    def from_table(cls, table: pa.Table, config: ClassifierTraining, ngrams: int = 1) -> "HashedLogisticRegression":
        rows = table.sort_by("fold")
        coef = np.array(rows.column("coef").to_pylist(), dtype=np.float32)
        return cls(config, coef, rows.column("intercept").to_numpy(), ngrams)


# GPT-3's classifier: the hashed logistic regression over single words.
Gpt3Classifier = HashedLogisticRegression

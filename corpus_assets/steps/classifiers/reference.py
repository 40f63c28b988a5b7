"""LLaMA's reference classifier (Touvron et al. 2023, section 2.1, "English CommonCrawl"):
"we trained a linear model to classify pages used as references in Wikipedia v.s.
randomly sampled pages, and discarded pages not classified as references".

A fastText supervised model (bag of words, softmax over two labels; the linear model
cc_net and LLaMA's pipeline use) per fold, trained on reference pages (positives) and
the dump's crawl documents (negatives). Production positives are the pages that
Wikipedia articles cite, fetched and matched against the crawl; offline the positives
are the shared Wikipedia sample itself, an approximation: the classifier then learns
"reads like Wikipedia", not "is cited by Wikipedia". A page is kept when the model's
probability of ``__label__reference`` reaches ``threshold``.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Sequence

import numpy as np
import pyarrow as pa

from corpus_assets.steps.classifiers.common import (TrainingSet, check_trainable, fold_of, fold_scores,
                                                    held_out_figures, tokens)
from corpus_assets.steps.classifiers.config import ReferenceClassifierConfig

POSITIVE, NEGATIVE = "__label__reference", "__label__crawl"
MODEL_SCHEMA = pa.schema([("fold", pa.int32()), ("model", pa.binary())])
NAN_RETRIES = 20


def fasttext_line(text: str) -> str:
    """One line of lower-cased word tokens (fastText reads a document per line)."""
    return " ".join(tokens(text))


class ReferenceClassifier:
    def __init__(self, config: ReferenceClassifierConfig, models: list):
        if len(models) != config.folds:
            raise ValueError(f"classifiers.llama: {len(models)} stored fold models, the settings say "
                             f"{config.folds}: re-train it")
        self.config = config
        self.models = models

    @staticmethod
    def _fit(path: str, config: ReferenceClassifierConfig):
        """fastText 0.9.3 sometimes aborts a short training with "Encountered NaN" at random
        (the same file and seed train on the next try, to identical weights: the success
        is deterministic, the abort is not), so a failed try is repeated."""
        for attempt in range(NAN_RETRIES):
            try:
                return ReferenceClassifier._fit_once(path, config)
            except RuntimeError as exc:
                if "NaN" not in str(exc) or attempt == NAN_RETRIES - 1:
                    raise

    @staticmethod
    def _fit_once(path: str, config: ReferenceClassifierConfig):
        import fasttext

        return fasttext.train_supervised(
            input=path, dim=config.dim, epoch=config.epoch, lr=config.learning_rate,
            wordNgrams=config.word_ngrams, bucket=config.buckets,  # bucket=0 trains NaN in fastText 0.9.3
            minCount=1, minn=0, maxn=0, loss="softmax", thread=1, seed=config.seed, verbose=0)

    @classmethod
    def train(cls, data: TrainingSet, config: ReferenceClassifierConfig) -> tuple["ReferenceClassifier", dict]:
        check_trainable(data, config.folds, "classifiers.llama")
        started = time.perf_counter()
        lines = [fasttext_line(t) for t in data.texts]
        models = []
        held_out = np.zeros(len(data.labels))
        with tempfile.TemporaryDirectory(prefix="reference-clf-") as tmp:
            for k in range(config.folds):
                path = os.path.join(tmp, f"fold{k}.txt")
                # a fixed, seeded order: fastText's SGD sees the lines as written
                order = np.random.default_rng(config.seed + k).permutation(len(lines))
                with open(path, "w", encoding="utf-8") as fh:
                    for i in order:
                        if data.folds[i] != k:
                            fh.write(f"{POSITIVE if data.labels[i] else NEGATIVE} {lines[i]}\n")
                try:
                    model = cls._fit(path, config)
                except RuntimeError as exc:  # fastText: "Encountered NaN."
                    raise RuntimeError(f"classifiers.llama: fastText training of fold {k} failed ({exc}); with few "
                                       "documents try a lower learning_rate or the default dim and buckets") from exc
                models.append(model)
                test = np.flatnonzero(data.folds == k)
                held_out[test] = [_positive_probability(model, lines[i]) for i in test]
        report = {"train_seconds": round(time.perf_counter() - started, 3),
                  "held_out": held_out_figures(data.labels, held_out, config.threshold), "folds": config.folds}
        return cls(config, models), report

    def _fold_scores(self, k: int, texts: Sequence[str]) -> np.ndarray:
        return np.array([_positive_probability(self.models[k], fasttext_line(t)) for t in texts])

    def scores(self, ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        return fold_scores(ids, texts, self._fold_scores, self.config.folds, self.config.seed)

    def score(self, doc_id: str, text: str) -> float:
        k = fold_of(doc_id, self.config.folds, self.config.seed)
        return _positive_probability(self.models[k], fasttext_line(text))

    def to_table(self) -> pa.Table:
        blobs = []
        with tempfile.TemporaryDirectory(prefix="reference-clf-") as tmp:
            for k, model in enumerate(self.models):
                path = os.path.join(tmp, f"fold{k}.bin")
                model.save_model(path)
                with open(path, "rb") as fh:
                    blobs.append(fh.read())
        return pa.table({"fold": pa.array(range(len(blobs)), pa.int32()), "model": pa.array(blobs, pa.binary())},
                        schema=MODEL_SCHEMA)

    @classmethod
    def from_table(cls, table: pa.Table, config: ReferenceClassifierConfig) -> "ReferenceClassifier":
        import fasttext

        models = []
        with tempfile.TemporaryDirectory(prefix="reference-clf-") as tmp:
            for row in table.sort_by("fold").to_pylist():
                path = os.path.join(tmp, f"fold{row['fold']}.bin")
                with open(path, "wb") as fh:
                    fh.write(row["model"])
                models.append(fasttext.load_model(path))
        return cls(config, models)


def _positive_probability(model, line: str) -> float:
    # the low-level binding: fastText's Python predict() breaks under numpy 2 (see langid)
    for probability, label in model.f.predict(line, 2, 0.0, "strict"):
        if label == POSITIVE:
            return min(1.0, max(0.0, float(probability)))
    return 0.0

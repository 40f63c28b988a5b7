"""The quality classifiers as stages (no Dagster): train per dump, then decide per shard.

- ``build_gpt3_model(store, dump, shards, config)``: GPT-3's classifier, trained on the
  dump's ``rw_raw`` documents (negatives) and the reference corpus (positives), one model
  per fold; the held-out figures in its report. ``gpt3_decision_steps`` gives the step
  ``rw_filtered`` runs after the quality presets (GPT-3 filtered before its fuzzy dedup);
- ``build_llama_model(store, dump, shards, config)`` and ``build_llama_filtered(store,
  dump, shard, config)``: LLaMA's reference classifier, trained on and applied to
  ``classifiers.llama.upstream`` (CCNet's buckets in the ``llama`` recipe).

A model is stored as one Parquet table per dump (``<asset>/<dump>/model.parquet``) plus
``report.json``; a stage that loads a model built with other settings refuses it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterator

from corpus_assets.config import PipelineConfig, fingerprint
from corpus_assets.stages import StageReport, documents_path, load_report, run_document_stage
from corpus_assets.steps.base import Step
from corpus_assets.steps.classifiers.common import (Untrainable, file_digest, iter_reference, reference_path,
                                                    training_set, untrainable_reason)
from corpus_assets.steps.classifiers.gpt3 import Gpt3Classifier, HashedLogisticRegression
from corpus_assets.steps.classifiers.reference import ReferenceClassifier
from corpus_assets.steps.classifiers.steps import Gpt3QualityFilter, ReferenceFilter
from corpus_assets.storage import CorpusStore, publishes

GPT3_MODEL = "gpt3_quality_model"
GPT3_UPSTREAM = "rw_raw"
LLAMA_MODEL = "llama_reference_model"
LLAMA_FILTERED = "llama_reference_filtered"
# Settings that only decide (applied after scoring): not part of a model's identity.
_DECISION_ONLY = {"gpt3": ("pareto_alpha", "enabled"), "llama": ("threshold", "enabled")}


def model_path(asset: str, dump: str) -> str:
    return f"{asset}/{dump}/model.parquet"


def report_path(asset: str, dump: str) -> str:
    return f"{asset}/{dump}/report.json"


def model_settings(config: PipelineConfig, kind: str) -> dict:
    section = getattr(config.classifiers, kind)
    settings = dataclasses.asdict(section)
    for name in _DECISION_ONLY[kind]:
        settings.pop(name)
    return settings


def reference_digest(config: PipelineConfig, kind: str) -> str:
    """The SHA-256 of the classifier's reference corpus ("missing" when it is absent: the
    training then fails naming the file)."""
    path = reference_path(getattr(config.classifiers, kind).reference)
    return file_digest(path) if path.is_file() else "missing"


def model_version(config: PipelineConfig, kind: str) -> str:
    """The model's identity: its settings and its reference corpus's content, so that a
    replaced reference file (same path) marks the model stale and is refused by ``_load``."""
    return fingerprint(model_settings(config, kind), reference_digest(config, kind))


def _crawl_documents(store: CorpusStore, upstream: str, dump: str, shards: list[str]) -> Iterator[tuple[str, str]]:
    for shard in sorted(shards):
        load_report(store, upstream, dump, shard)  # a clear error when a shard is missing
        for row in store.iter_rows(documents_path(upstream, dump, shard), ["doc_id", "text"]):
            yield row["doc_id"] or "", row["text"] or ""


def _train(store: CorpusStore, asset: str, dump: str, shards: list[str], config: PipelineConfig,
           kind: str, upstream: str) -> dict:
    section = getattr(config.classifiers, kind)
    setting = f"classifiers.{kind}"
    started = time.perf_counter()
    data = training_set(_crawl_documents(store, upstream, dump, shards), iter_reference(section.reference, setting),
                        section.folds, section.seed, section.max_train_docs, section.positives_per_negative)
    untrainable = untrainable_reason(data, section.folds, section.reference, setting)
    if untrainable:
        # A tiny or non-English dump: no model, a counted reason downstream, not a failed recipe.
        report = {"untrainable": untrainable, "folds": section.folds, "train_seconds": 0.0,
                  "held_out": {"f1": None, "precision": None, "recall": None}}
    elif kind == "gpt3":
        model, report = Gpt3Classifier.train(data, section)
    elif section.engine == "linear":
        model, report = HashedLogisticRegression.train(data, section, section.word_ngrams, setting)
    else:
        model, report = ReferenceClassifier.train(data, section)
    report["engine"] = "linear" if kind == "gpt3" else section.engine
    if not untrainable:
        with store.table_writer(model_path(asset, dump)) as writer:
            writer.write_table(model.to_table())
    report.update({
        "dump": dump, "upstream": upstream, "kind": kind, "model_version": model_version(config, kind),
        "training_docs": {"reference": data.positives, "crawl": data.negatives},
        "reference_file": str(reference_path(section.reference)),
        "reference_sha256": file_digest(reference_path(section.reference)),
        "seconds": round(time.perf_counter() - started, 3),
    })
    store.write_json(report_path(asset, dump), report)
    return report


@publishes(GPT3_MODEL + "/{dump}")
def build_gpt3_model(store: CorpusStore, dump: str, shards: list[str], config: PipelineConfig) -> dict:
    return _train(store, GPT3_MODEL, dump, shards, config, "gpt3", GPT3_UPSTREAM)


@publishes(LLAMA_MODEL + "/{dump}")
def build_llama_model(store: CorpusStore, dump: str, shards: list[str], config: PipelineConfig) -> dict:
    return _train(store, LLAMA_MODEL, dump, shards, config, "llama", config.classifiers.llama.upstream)


def _load(store: CorpusStore, asset: str, dump: str, config: PipelineConfig, kind: str):
    rel = report_path(asset, dump)
    if not store.exists(rel):
        raise FileNotFoundError(f"{asset} has not been materialized for {dump} ({store.uri(rel)} is missing)")
    report = store.read_json(rel)
    if report.get("model_version") != model_version(config, kind):
        trained_on = report.get("reference_sha256")
        if trained_on and trained_on != reference_digest(config, kind):
            raise RuntimeError(f"{asset} {dump} was trained on another reference corpus (sha256 {trained_on[:12]}; "
                               f"{report.get('reference_file')} now {reference_digest(config, kind)[:12]}): "
                               "re-materialize it")
        raise RuntimeError(f"{asset} {dump} was trained with other classifiers.{kind} settings: re-materialize it")
    section = getattr(config.classifiers, kind)
    if report.get("untrainable"):
        return Untrainable(section, report["untrainable"])
    table = store.read_table(model_path(asset, dump))
    if kind == "gpt3":
        return Gpt3Classifier.from_table(table, section)
    if section.engine == "linear":
        return HashedLogisticRegression.from_table(table, section, section.word_ngrams)
    return ReferenceClassifier.from_table(table, section)


def gpt3_decision_steps(store: CorpusStore, dump: str, config: PipelineConfig) -> list[Step]:
    """GPT-3's Pareto rule for ``rw_filtered`` (none unless ``classifiers.gpt3.enabled``)."""
    if not config.classifiers.gpt3.enabled:
        return []
    return [Gpt3QualityFilter(_load(store, GPT3_MODEL, dump, config, "gpt3"))]


def build_llama_filtered(store: CorpusStore, dump: str, shard: str, config: PipelineConfig) -> StageReport:
    upstream = config.classifiers.llama.upstream
    upstream_report = load_report(store, upstream, dump, shard)
    classifier = _load(store, LLAMA_MODEL, dump, config, "llama")
    return run_document_stage(
        store, LLAMA_FILTERED, dump, shard,
        store.iter_rows(documents_path(upstream, dump, shard)),
        [ReferenceFilter(classifier)],
        baseline_docs=upstream_report.baseline_docs,
        step_errors=config.step_errors,
    )


def model_report(store: CorpusStore, asset: str, dump: str) -> dict:
    return store.read_json(report_path(asset, dump))

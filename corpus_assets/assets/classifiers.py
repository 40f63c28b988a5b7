"""The quality classifiers as assets (thin wiring of ``corpus_assets.classifier_stages``).

Built only when switched on in the settings (the ``gpt3`` and ``llama`` recipes do):

- ``gpt3_quality_model`` (dump): GPT-3's classifier trained on the dump's ``rw_raw``;
  ``rw_filtered`` then applies its Pareto rule (assets/refinedweb.py);
- ``llama_reference_model`` (dump) and ``llama_reference_filtered`` (dump x shard):
  LLaMA's reference classifier on ``classifiers.llama.upstream``.

Not automated: a model trains when asked (a recipe run, a job, the UI).
"""

from functools import partial

import dagster as dg

from corpus_assets import classifier_stages
from corpus_assets.assets.documents import shard_document_asset
from corpus_assets.config import PipelineConfig, fingerprint
from corpus_assets.partitions import dump_partitions, shard_keys, shard_partitions_def, shard_to_dump, validate_dump_name
from corpus_assets.resources import CorpusStoreResource

CLASSIFIER_GROUP = "classifiers"
CODE_REVISION = {classifier_stages.GPT3_MODEL: "1", classifier_stages.LLAMA_MODEL: "1",
                 classifier_stages.LLAMA_FILTERED: "1"}


def _model_asset(name: str, kind: str, upstream: str, train, config: PipelineConfig, description: str):
    shards = shard_keys(config.num_shards)

    @dg.asset(
        name=name,
        partitions_def=dump_partitions,
        deps=[dg.AssetDep(upstream, partition_mapping=shard_to_dump)],
        code_version=f"{CODE_REVISION[name]}-{classifier_stages.model_version(config, kind)}",
        group_name=CLASSIFIER_GROUP,
        kinds={"parquet", "fasttext" if kind == "llama" and config.classifiers.llama.engine == "fasttext"
               else "scikitlearn"},
        description=description,
    )
    def _asset(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        dump = validate_dump_name(context.partition_key)
        report = train(corpus_store.get_store(), dump, shards, config)
        held = report["held_out"]
        if report.get("untrainable"):  # no model: the filter removes the dump's documents, counted
            return dg.MaterializeResult(metadata={
                "untrainable": report["untrainable"],
                "training_reference_docs": report["training_docs"]["reference"],
                "training_crawl_docs": report["training_docs"]["crawl"],
                "reference_file": dg.MetadataValue.path(report["reference_file"]),
            })
        return dg.MaterializeResult(metadata={
            "held_out_f1": held["f1"], "held_out_precision": held["precision"], "held_out_recall": held["recall"],
            "training_reference_docs": report["training_docs"]["reference"],
            "training_crawl_docs": report["training_docs"]["crawl"],
            "folds": report["folds"], "train_seconds": report["train_seconds"],
            "reference_file": dg.MetadataValue.path(report["reference_file"]),
        })

    return _asset


def build_classifier_assets(config: PipelineConfig) -> list[dg.AssetsDefinition]:
    assets = []
    if config.classifiers.gpt3.enabled:
        assets.append(_model_asset(
            classifier_stages.GPT3_MODEL, "gpt3", classifier_stages.GPT3_UPSTREAM, classifier_stages.build_gpt3_model,
            config, "GPT-3's quality classifier (Brown et al. 2020, app. A): logistic regression on hashed "
            "tokens, reference corpus vs this dump's rw_raw, one model per fold (cross-fitted); rw_filtered keeps "
            "a document when np.random.pareto(alpha) > 1 - score."))
    llama = config.classifiers.llama
    if llama.enabled:
        assets.append(_model_asset(
            classifier_stages.LLAMA_MODEL, "llama", llama.upstream, classifier_stages.build_llama_model, config,
            f"LLaMA's reference classifier (Touvron et al. 2023): a linear model on words and bigrams "
            f"({llama.engine}), reference pages vs this dump's "
            f"{llama.upstream} documents, one model per fold (cross-fitted)."))
        assets.append(shard_document_asset(
            name=classifier_stages.LLAMA_FILTERED,
            stage=partial(classifier_stages.build_llama_filtered, config=config),
            upstream=llama.upstream,
            partitions_def=shard_partitions_def(config.num_shards),
            code_version=f"{CODE_REVISION[classifier_stages.LLAMA_FILTERED]}-{fingerprint(llama, classifier_stages.reference_digest(config, 'llama'))}",
            deps=[llama.upstream, dg.AssetDep(classifier_stages.LLAMA_MODEL, partition_mapping=shard_to_dump)],
            group_name=CLASSIFIER_GROUP,
            automation_condition=None,
            description=f"{llama.upstream} documents with llama_reference_score; pages below "
            "classifiers.llama.threshold removed (not_reference_like).",
        ))
    return assets

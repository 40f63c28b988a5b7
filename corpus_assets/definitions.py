"""The single wiring point of the code location: assets, checks, jobs, sensors, resources.

Settings come from ``$CORPUS_CONFIG`` (default: the bundled ``defaults/pipeline.yaml``);
where data lives comes from the environment:

- ``CORPUS_ROOT``: the corpus store, a folder (default ``.corpus``) or ``s3://bucket/prefix``;
- ``CORPUS_CRAWL_ROOT``: the crawl source, a folder holding ``crawl-data/`` (default
  ``../shared/data`` when present), ``s3://commoncrawl`` or ``https://data.commoncrawl.org``;
- ``CORPUS_CRAWL_DUMPS``: for HTTPS sources, comma-separated dumps to pick up;
- ``CORPUS_S3_ENDPOINT_URL``: an S3-compatible endpoint other than AWS (MinIO, moto).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import dagster as dg

from corpus_assets.assets.ccnet import build_ccnet_assets
from corpus_assets.assets.classifiers import build_classifier_assets
from corpus_assets.assets.dedup import build_dedup_assets
from corpus_assets.assets.domains import build_domain_assets
from corpus_assets.assets.mixture import build_mixture_assets
from corpus_assets.assets.refinedweb import build_assets
from corpus_assets.assets.report import build_report_assets
from corpus_assets.assets.sft import build_sft_assets
from corpus_assets.assets.selection import SELECTION_ASSETS, build_selection_assets, target_partitions_def
from corpus_assets.config import PipelineConfig, load_config
from corpus_assets.executors import shard_executor
from corpus_assets.partitions import dump_partitions, shard_partitions_def
from corpus_assets.resources import (CorpusStoreResource, CrawlSourceResource, LlmAnnotatorResource,
                                     SentenceEncoderResource, TokenizerResource)
from corpus_assets.sensors import build_crawl_sensor, build_dedup_order_sensor

REPO_ROOT = Path(__file__).resolve().parent.parent
# One run per (dump, shard) takes a shard from the WARC files to its signatures.
SHARD_ASSETS = ["raw_documents", "rw_raw", "rw_quality_signals", "rw_filtered", "minhash_signatures"]
# One run per dump, in crawl order: the dump-level half of dedup.
DUMP_DEDUP_ASSETS = ["minhash_buckets", "duplicate_clusters", "exact_substring_spans"]
# Runs of the dump-level jobs carry this tag; dagster.yaml's run queue admits one at a time.
# (The assets themselves are in the pool DUMP_DEDUP_POOL, which also holds for the UI's
# Materialize button; docs/operations.md.)
DUMP_SCOPE_TAGS = {"corpus_assets/scope": "dump"}
# Named jobs for every other run the demo launches, so the Runs page says what ran (an
# ad-hoc selection shows as __ephemeral_asset_job__). Partitions are inferred from the
# selected assets, which share one definition per job.
NAMED_JOBS = {
    "domain_training_job": (["domain_seed_labels", "domain_classifiers"],
                            "Seed labels and the coarse/fine classifiers of one dump."),
    "domain_labels_job": (["domain_labels"], "Label one (dump, shard) with the trained classifiers."),
    "domain_subsets_job": (["domain_subsets"], "One domain subset of one dump."),
    "domain_analyses_job": (["domain_benchmark_similarity", "domain_url_overlap"],
                            "Benchmark similarity and URL overlap of the domain subsets."),
    "corpus_report_job": (["corpus_report"], "The corpus report of one dump."),
    "corpus_overview_job": (["corpus_overview"], "One row per dump."),
    "training_mixture_job": (["training_mixture"], "Training shards and manifest of one mixture spec."),
    "mixture_search_job": (["mixture_search"], "RegMix-style search over one spec's sources."),
    "sft_statistics_job": (["sft_samples", "sft_statistics"], "Samples and statistics of one sft dataset."),
    "sft_selection_job": (["sft_selection"], "The fine-tuning selection of one sft recipe."),
}


def default_crawl_root() -> str:
    return os.environ.get("CORPUS_CRAWL_ROOT") or str((REPO_ROOT.parent / "shared" / "data").resolve())


def default_corpus_root() -> str:
    """``.corpus``, or with ``$CORPUS_RECIPE`` the recipe's own store (``recipes.recipe_homes``:
    where ``demo --recipe`` wrote it)."""
    name = os.environ.get("CORPUS_RECIPE")
    if name:
        from corpus_assets.recipes import recipe_homes, recipe_path

        recipe_path(name)  # a bad name is refused (load_config names the setting too)
        return str(recipe_homes(name, REPO_ROOT)[0])
    return str(REPO_ROOT / ".corpus")


def build_definitions(
    config: Optional[PipelineConfig] = None,
    corpus_root: Optional[str] = None,
    crawl_root: Optional[str] = None,
) -> dg.Definitions:
    config = config or load_config()
    endpoint = os.environ.get("CORPUS_S3_ENDPOINT_URL") or None
    # Both fall back to the settings' `domains` section; set fields here to override
    # (the overrides go into the domain assets' code versions).
    sentence_encoder, llm = SentenceEncoderResource(), LlmAnnotatorResource()
    assets = (build_assets(config) + build_dedup_assets(config)
              + build_domain_assets(config, sentence_encoder=sentence_encoder, llm=llm) + build_selection_assets(config))
    assets += build_mixture_assets(config)
    # Fine-tuning pool selection (docs/sft.md): datasets -> samples -> statistics -> selection per recipe.
    assets += build_sft_assets(config, sentence_encoder=sentence_encoder)
    manifest_job = dg.define_asset_job(
        "crawl_manifest_job", selection=["crawl_manifest"], partitions_def=dump_partitions
    )
    shard_job = dg.define_asset_job(
        "shard_pipeline_job",
        selection=SHARD_ASSETS,
        partitions_def=shard_partitions_def(config.num_shards),
        description="Raw dump -> RW-RAW -> quality signals -> RW-Filtered -> MinHash "
        "signatures for one (dump, shard).",
        # A Dask cluster's workers when $CORPUS_DASK_SCHEDULER is set (corpus_assets/executors.py).
        executor_def=shard_executor(),
    )
    dedup_job = dg.define_asset_job(
        "dump_dedup_job", selection=DUMP_DEDUP_ASSETS, partitions_def=dump_partitions,
        description="MinHash buckets -> duplicate clusters -> exact substring spans for one dump.",
        tags=DUMP_SCOPE_TAGS,
    )
    deduped_job = dg.define_asset_job(
        "rw_deduped_job", selection=["rw_deduped"], partitions_def=shard_partitions_def(config.num_shards),
        description="Apply the dump's dedup decisions to one (dump, shard).",
        executor_def=shard_executor(),
    )
    index_job = dg.define_asset_job(
        "dedup_index_job", selection=["dedup_index"], partitions_def=dump_partitions,
        description="Grow the cross-dump index with one dump's kept documents.",
        tags=DUMP_SCOPE_TAGS,
    )
    selection_jobs = [dg.define_asset_job(
        "selection_job", selection=SELECTION_ASSETS, partitions_def=target_partitions_def(config),
        description="Pool, ZIP-FIT and DSIR selections and their comparison for one target.",
    )] if config.selection.targets else []
    automation = dg.AutomationConditionSensorDefinition(
        "corpus_automation_sensor",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
    )
    dumps_env = os.environ.get("CORPUS_CRAWL_DUMPS", "")
    # CCNet's branch (docs/ccnet.md); none when the recipe builds CCNet's stages itself.
    assets += build_ccnet_assets(config)
    # GPT-3's and LLaMA's classifiers, when the settings (a recipe) switch them on.
    assets += build_classifier_assets(config)
    # The per-dump corpus report and the overview of all dumps (issue 16).
    assets += build_report_assets(config)
    names = {key.to_user_string() for a in assets for key in (a.keys if hasattr(a, "keys") else [a.key])}
    named_jobs = [dg.define_asset_job(name, selection=selection, description=description)
                  for name, (selection, description) in NAMED_JOBS.items() if set(selection) <= names]
    return dg.Definitions(
        assets=assets,
        jobs=[manifest_job, shard_job, dedup_job, deduped_job, index_job, *selection_jobs, *named_jobs],
        sensors=[build_crawl_sensor(manifest_job), build_dedup_order_sensor(dedup_job, config.num_shards, deduped_job, index_job), automation],
        resources={
            "corpus_store": CorpusStoreResource(
                root=corpus_root or os.environ.get("CORPUS_ROOT") or default_corpus_root(),
                s3_endpoint_url=endpoint,
            ),
            "crawl_source": CrawlSourceResource(
                root=crawl_root or default_crawl_root(),
                dumps=[d.strip() for d in dumps_env.split(",") if d.strip()],
                s3_endpoint_url=endpoint,
            ),
            "sentence_encoder": sentence_encoder,
            "llm": llm,
            # Falls back to the settings' `mixture` section (cl100k_base, offline).
            "tokenizer": TokenizerResource(),
        },
    )


defs = build_definitions()

"""CCNet (Wenzek et al. 2020) as stages, in its order: text -> line dedup over groups of
shards -> language ID (fastText, 0.5) -> perplexity (a 5-gram LM per language) ->
head / middle / tail buckets at per-language percentiles. docs/ccnet.md has the
definitions and what differs from cc_net's code.

Stage functions (what the Dagster assets call; a recipe or script can call them too):

- ``build_ccnet_text(store, dump, shard, config)``: raw_documents -> HTML guard ->
  extraction. CCNet reads Common Crawl's WET text; here the same extractor as RW-RAW,
  without RefinedWeb's URL filter and without language ID (it comes after dedup);
- ``build_ccnet_line_duplicates(store, dump, shards, config)``: per group of
  ``ccnet.line_dedup_group_shards`` shards, the hashes of lines seen more than once;
- ``build_ccnet_deduped(store, dump, shard, config)``: ``ccnet_dedup_steps`` then language
  ID (asset ``ccnet_line_dedup``);
- ``build_ccnet_perplexity(store, dump, shard, config)``: the perplexity signal column;
- ``build_ccnet_cutoffs(store, dump, shards, config)``: per-language percentile cut-offs;
- ``build_ccnet_buckets(store, dump, shard, config)``: the bucket column and the subset
  ``ccnet.keep_buckets``.

The step lists (``ccnet_dedup_steps``, ``ccnet_language_steps``, ``ccnet_perplexity_steps``,
``ccnet_bucket_steps``) are exported for recipes that run them on another stream.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from typing import Callable, Optional

import numpy as np
import pyarrow as pa

from corpus_assets.config import PipelineConfig
from corpus_assets.stages import StageReport, documents_path, load_report, run_document_stage, stats_path
from corpus_assets.steps.base import Step
from corpus_assets.steps.ccnet.line_dedup import CCNetLineDedup, GroupLineCounter
from corpus_assets.steps.ccnet.perplexity import BUCKETS as BUCKET_NAMES
from corpus_assets.steps.ccnet.perplexity import PerplexityBucket, PerplexityScore, percentile_cutoffs
from corpus_assets.steps.extraction import Extract
from corpus_assets.steps.html_guard import HtmlGuard
from corpus_assets.steps.langid import LanguageId, LanguageIdConfig
from corpus_assets.steps.lm.config import LmConfig
from corpus_assets.steps.lm.model import (NgramLanguageModel, content_sha256, load_or_train, model_folder,
                                          model_identity)
from corpus_assets.storage import CorpusStore, publishes

TEXT = "ccnet_text"
DUPLICATES = "ccnet_line_duplicates"
DEDUPED = "ccnet_line_dedup"
PERPLEXITY = "ccnet_perplexity"
CUTOFFS = "ccnet_cutoffs"
BUCKETS = "ccnet_buckets"
HASH_BATCH = 1024
HASH_SCHEMA = pa.schema([("hash", pa.uint64())])


# -- groups of shards -------------------------------------------------------------------

def shard_groups(shards: list[str], group_size: int) -> list[list[str]]:
    """Consecutive shards in groups of ``group_size`` (cc_net's ``grouper`` over its
    hash files): line duplicates are found within a group, never across groups."""
    ordered = sorted(shards)
    return [ordered[i:i + group_size] for i in range(0, len(ordered), group_size)]


def group_index(shard: str, shards: list[str], group_size: int) -> int:
    for index, group in enumerate(shard_groups(shards, group_size)):
        if shard in group:
            return index
    raise KeyError(f"shard {shard!r} is not one of the dump's shards {sorted(shards)[:5]}...")


def duplicates_path(dump: str, group: int) -> str:
    return f"{DUPLICATES}/{dump}/group_{group:05d}.parquet"


def cutoffs_path(dump: str) -> str:
    return f"{CUTOFFS}/{dump}/cutoffs.json"


# -- the steps, for recipes ---------------------------------------------------------------

def ccnet_dedup_steps(duplicates: np.ndarray, config: PipelineConfig) -> list[Step]:
    """Line dedup against the group's duplicated hashes, then the minimum length."""
    return [CCNetLineDedup(duplicates, config.ccnet.min_chars)]


def ccnet_language_steps(config: PipelineConfig) -> list[Step]:
    """fastText language ID at CCNet's threshold (0.5), keeping ``ccnet.languages``."""
    return [LanguageId(LanguageIdConfig(
        model_path=config.ccnet.language_model_path or config.language_id.model_path,
        languages=config.ccnet.languages, min_score=config.ccnet.language_min_score))]


# One loaded model per folder and process: kenlm reads the ARPA file once (seconds).
_LOADED: dict[str, NgramLanguageModel] = {}


def language_models(lm_config: LmConfig) -> Callable[[str], Optional[NgramLanguageModel]]:
    """language -> its model (trained into the cache on first use), None without a reference."""

    # per language: the folder's key hashes the reference file, once, not per document
    resolved: dict[str, Optional[NgramLanguageModel]] = {}

    def get(language: str) -> Optional[NgramLanguageModel]:
        if language in resolved:
            return resolved[language]
        model = None
        if lm_config.reference(language) is not None:
            key = f"{model_folder(lm_config, language)}|{lm_config.backend}"
            if key not in _LOADED:
                _LOADED[key] = load_or_train(lm_config, language)
            model = _LOADED[key]
        resolved[language] = model
        return model

    return get


def perplexity_identity(config: PipelineConfig) -> dict:
    """What ``ccnet_perplexity`` depends on beyond its input documents: per language the
    model's cache key (lm settings, the reference file's SHA-256, the estimator's revision)
    and the engine that queries it, and how documents are cut into sentences. Stored with
    the perplexities and the cut-offs, compared before they are used (and fingerprinted
    into the assets' code versions), so an LM change never meets stale cut-offs."""
    return {"models": model_identity(config.lm), "split_lines": config.ccnet.perplexity_split_lines}


def shard_version(store: CorpusStore, asset: str, dump: str, shard: str) -> Optional[str]:
    """The data version of a document partition: its pointer's version (a digest of its
    stats.json in a store without pointers), None when it is not materialized. Tables
    computed over a dump's shards (line duplicates, cut-offs) record the versions they
    read; their users compare them with the versions there now."""
    version = store.partition_version(f"{asset}/{dump}/{shard}")
    if version:
        return version
    rel = stats_path(asset, dump, shard)
    if not store.exists(rel):
        return None
    return hashlib.sha256(json.dumps(store.read_json(rel), sort_keys=True).encode()).hexdigest()[:16]


def _check_versions(store: CorpusStore, recorded: Optional[dict], asset: str, dump: str, what: str) -> None:
    """Every shard version ``what`` recorded for ``asset`` still the one there: a table
    built from older upstream documents is refused (re-materialize ``what``)."""
    if not isinstance(recorded, dict) or not recorded:
        raise RuntimeError(f"{what} does not record which {asset} versions it was computed from (built by an older "
                           "code): re-materialize it")
    for shard, version in sorted(recorded.items()):
        now = shard_version(store, asset, dump, shard)
        if now != version:
            raise RuntimeError(f"{what} was computed from {asset} {dump}|{shard} version {version}, which is now "
                               f"{now}: its upstream data changed; re-materialize {what.split()[0]}")


def _read_pinned(store: CorpusStore, asset: str, dump: str, shard: str) -> str:
    version = shard_version(store, asset, dump, shard)
    if version is None:
        load_report(store, asset, dump, shard)  # the clear "not materialized" error
    return version


def _check_identity(found, expected: dict, what: str) -> None:
    if found != expected:
        raise RuntimeError(f"{what} was computed with another language model or perplexity setting"
                           f" ({found} here, the settings give {expected}): re-materialize it")


def ccnet_perplexity_steps(config: PipelineConfig, models=None) -> list[Step]:
    return [PerplexityScore(models or language_models(config.lm), config.ccnet.perplexity_split_lines)]


def ccnet_bucket_steps(cutoffs: dict, config: PipelineConfig) -> list[Step]:
    return [PerplexityBucket(cutoffs, config.ccnet.keep_buckets)]


# -- stages -------------------------------------------------------------------------------

def build_ccnet_text(store: CorpusStore, dump: str, shard: str, config: PipelineConfig) -> StageReport:
    raw = load_report(store, "raw_documents", dump, shard)
    return run_document_stage(
        store, TEXT, dump, shard,
        store.iter_rows(documents_path("raw_documents", dump, shard)),
        [HtmlGuard(config.html_guard), Extract(config.extraction)],
        baseline_docs=raw.docs_out,
        # the HTML served extraction; the text is what CCNet keeps
        drop_columns=("html",),
        step_errors=config.step_errors,
    )


@publishes(DUPLICATES + "/{dump}")
def build_ccnet_line_duplicates(store: CorpusStore, dump: str, shards: list[str], config: PipelineConfig,
                                upstream: str = TEXT) -> dict:
    """One table of duplicated line hashes per group, from the ``upstream`` documents
    (``ccnet_text``; under a recipe, ``rw_raw``); memory: one group's hashes."""
    started = time.perf_counter()
    group_size = config.ccnet.line_dedup_group_shards
    groups = []
    for index, group in enumerate(shard_groups(shards, group_size)):
        counter = GroupLineCounter()
        docs = 0
        versions = {}
        for shard in group:
            load_report(store, upstream, dump, shard)  # fails clearly when a shard is missing
            versions[shard] = _read_pinned(store, upstream, dump, shard)
            for batch in store.iter_batches(documents_path(upstream, dump, shard), ["text"], HASH_BATCH):
                for text in batch.column("text").to_pylist():
                    counter.add_text(text or "")
                    docs += 1
            # re-published while counted: the hashes would mix two versions
            _check_versions(store, {shard: versions[shard]}, upstream, dump, f"{DUPLICATES} {dump} (being built)")
        duplicates = counter.duplicates()
        with store.table_writer(duplicates_path(dump, index), HASH_SCHEMA) as writer:
            writer.write_table(pa.table({"hash": pa.array(duplicates, pa.uint64())}, schema=HASH_SCHEMA))
        groups.append({"group": index, "shards": group, "versions": versions, "docs": docs, "lines": counter.lines,
                       "distinct_lines": counter.distinct, "duplicated_hashes": int(len(duplicates))})
        del counter
    report = {"dump": dump, "upstream": upstream, "group_shards": group_size, "groups": groups,
              "lines": sum(g["lines"] for g in groups), "seconds": round(time.perf_counter() - started, 3)}
    store.write_json(f"{DUPLICATES}/{dump}/stats.json", report)
    return report


def load_group_duplicates(store: CorpusStore, dump: str, shard: str, config: PipelineConfig,
                          upstream: str = TEXT) -> np.ndarray:
    stats = store.read_json(f"{DUPLICATES}/{dump}/stats.json")
    if stats.get("upstream", TEXT) != upstream:
        raise RuntimeError(f"{DUPLICATES} {dump} counted the lines of {stats.get('upstream')}, this stage reads"
                           f" {upstream}: re-materialize it")
    if stats.get("group_shards") != config.ccnet.line_dedup_group_shards:
        raise RuntimeError(f"{DUPLICATES} {dump} was built with groups of {stats.get('group_shards')} shards, "
                           f"the settings say {config.ccnet.line_dedup_group_shards}: re-materialize it")
    for group in stats["groups"]:
        if shard in group["shards"]:
            # duplicates counted over other documents than the group's now
            _check_versions(store, group.get("versions"), upstream, dump, f"{DUPLICATES} {dump}")
            table = store.read_table(duplicates_path(dump, group["group"]))
            return table.column("hash").to_numpy().astype(np.uint64)
    raise KeyError(f"shard {shard} is in no group of {DUPLICATES} {dump}: re-materialize it")


def build_ccnet_deduped(store: CorpusStore, dump: str, shard: str, config: PipelineConfig,
                        upstream: str = TEXT,
                        steps_after: Callable[[PipelineConfig], list[Step]] = ccnet_language_steps) -> StageReport:
    """Line dedup of the ``upstream`` shard against its group's duplicates, then
    ``steps_after(config)`` (CCNet: language ID at 0.5; a recipe passes its own)."""
    upstream_report = load_report(store, upstream, dump, shard)
    duplicates = load_group_duplicates(store, dump, shard, config, upstream)
    steps = ccnet_dedup_steps(duplicates, config) + list(steps_after(config))
    dedup = steps[0]
    return run_document_stage(
        store, DEDUPED, dump, shard,
        store.iter_rows(documents_path(upstream, dump, shard)),
        steps,
        baseline_docs=upstream_report.baseline_docs,
        extra={"group_duplicated_hashes": int(len(duplicates))},
        extra_after_run=lambda stats: {"lines_in": dedup.lines_in, "lines_removed": dedup.lines_removed},
        step_errors=config.step_errors,
    )


def build_ccnet_perplexity(store: CorpusStore, dump: str, shard: str, config: PipelineConfig,
                           models=None) -> StageReport:
    """Adds ``ccnet_perplexity``; removes nothing (buckets are decided downstream)."""
    upstream = load_report(store, DEDUPED, dump, shard)
    identity = perplexity_identity(config)
    models = models or language_models(config.lm)
    # Trained or loaded before the first document: a broken reference fails the partition
    # once, here, rather than being retried (minutes each) as every document's step error.
    content = {}
    for reference in config.lm.references:
        model = models(reference.language)
        if isinstance(model, NgramLanguageModel):
            # the bytes scored with (the identity names the settings): two caches of one key
            # that differ (one bit-rotted, another build's) are told apart downstream
            content[reference.language] = content_sha256(model.folder)
    return run_document_stage(
        store, PERPLEXITY, dump, shard,
        store.iter_rows(documents_path(DEDUPED, dump, shard)),
        ccnet_perplexity_steps(config, models),
        baseline_docs=upstream.baseline_docs,
        extra={"lm": identity, "lm_content": content},
        step_errors=config.step_errors,
    )


def _sample_key(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b((doc_id or "").encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "little")


@publishes(CUTOFFS + "/{dump}")
def build_ccnet_cutoffs(store: CorpusStore, dump: str, shards: list[str], config: PipelineConfig) -> dict:
    """Per language, the head and tail cut-offs: the ``head_percentile`` and
    ``tail_percentile`` of the perplexities of a sample (the ``cutoff_sample_docs``
    documents with the lowest hash of their doc_id: independent of shard order)."""
    per_language: dict[str, list[tuple[int, float]]] = {}
    identity = perplexity_identity(config)
    versions, contents = {}, {}
    for shard in sorted(shards):
        extra = load_report(store, PERPLEXITY, dump, shard).extra
        _check_identity(extra.get("lm"), identity, f"{PERPLEXITY} {dump}|{shard}")
        contents[shard] = extra.get("lm_content")
        versions[shard] = _read_pinned(store, PERPLEXITY, dump, shard)
        for batch in store.iter_batches(documents_path(PERPLEXITY, dump, shard),
                                        ["doc_id", "language", "ccnet_perplexity"], HASH_BATCH):
            for doc_id, language, value in zip(*(batch.column(c).to_pylist() for c in
                                                   ("doc_id", "language", "ccnet_perplexity"))):
                if value is None or value < 0:
                    continue
                rows = per_language.setdefault(language or "", [])
                rows.append((_sample_key(doc_id), float(value)))
                if len(rows) > 2 * config.ccnet.cutoff_sample_docs:  # bounded memory
                    rows.sort()
                    del rows[config.ccnet.cutoff_sample_docs:]
        _check_versions(store, {shard: versions[shard]}, PERPLEXITY, dump, f"{CUTOFFS} {dump} (being built)")
    if len({json.dumps(c, sort_keys=True) for c in contents.values()}) > 1:
        raise RuntimeError(f"{PERPLEXITY} {dump}: shards were scored by language models of different content under "
                           f"one identity ({contents}): re-materialize {PERPLEXITY} of every shard")
    cutoffs, samples = {}, {}
    for language, rows in sorted(per_language.items()):
        rows.sort()
        sample = [v for _, v in rows[:config.ccnet.cutoff_sample_docs]]
        found = percentile_cutoffs(sample, config.ccnet.head_percentile, config.ccnet.tail_percentile)
        if found is not None:
            cutoffs[language] = list(found)
            samples[language] = len(sample)
    report = {"dump": dump, "cutoffs": cutoffs, "sample_docs": samples, **config.ccnet.cutoff_settings(),
              "lm": identity, "lm_content": next(iter(contents.values()), None), "perplexity_versions": versions}
    store.write_json(cutoffs_path(dump), report)
    return report


def build_ccnet_buckets(store: CorpusStore, dump: str, shard: str, config: PipelineConfig) -> StageReport:
    """``ccnet_bucket`` from the stored perplexity and the dump's cut-offs; keeps
    ``ccnet.keep_buckets``. Only decisions: no perplexity is recomputed."""
    upstream = load_report(store, PERPLEXITY, dump, shard)
    stored = store.read_json(cutoffs_path(dump))
    if {k: stored.get(k) for k in config.ccnet.cutoff_settings()} != config.ccnet.cutoff_settings():
        raise RuntimeError(f"{CUTOFFS} {dump} was computed with other percentile settings: re-materialize it")
    # cut-offs of another model's perplexities would bucket these ones at random
    identity = perplexity_identity(config)
    _check_identity(upstream.extra.get("lm"), identity, f"{PERPLEXITY} {dump}|{shard}")
    _check_identity(stored.get("lm"), identity, f"{CUTOFFS} {dump}")
    # cut-offs of other documents' perplexities (an upstream data change: min_chars, the
    # extraction, new raw documents) are not these documents' percentiles
    if upstream.extra.get("lm_content") != stored.get("lm_content"):
        raise RuntimeError(f"{PERPLEXITY} {dump}|{shard} was scored by a language model of other content "
                           f"({upstream.extra.get('lm_content')}) than the cut-offs' ({stored.get('lm_content')}): "
                           f"re-materialize {PERPLEXITY} and {CUTOFFS}")
    recorded = stored.get("perplexity_versions")
    _check_versions(store, recorded, PERPLEXITY, dump, f"{CUTOFFS} {dump}")
    if shard not in recorded:
        raise RuntimeError(f"{CUTOFFS} {dump} was computed without shard {shard} (from {sorted(recorded)}): "
                           f"re-materialize {CUTOFFS}")
    sizes: Counter = Counter()
    steps = ccnet_bucket_steps(stored["cutoffs"], config)

    def count(stats) -> dict:
        removed = {s.replace("bucket_", ""): n for st in stats for s, n in st.removed_by_reason.items()
                   if s.startswith("bucket_")}
        return {"bucket_docs": {b: sizes[b] + removed.get(b, 0) for b in BUCKET_NAMES},
                "kept_buckets": list(config.ccnet.keep_buckets), "cutoffs": stored["cutoffs"]}

    return run_document_stage(
        store, BUCKETS, dump, shard,
        store.iter_rows(documents_path(PERPLEXITY, dump, shard)),
        steps,
        baseline_docs=upstream.baseline_docs,
        on_kept=lambda doc: sizes.update([doc["ccnet_bucket"]]),
        extra_after_run=count,
        step_errors=config.step_errors,
    )


def bucket_sizes(store: CorpusStore, dump: str, shards: list[str]) -> dict[str, int]:
    """Documents per bucket over the dump (from the partitions' stats)."""
    total: Counter = Counter()
    for shard in shards:
        total.update(load_report(store, BUCKETS, dump, shard).extra.get("bucket_docs", {}))
    return {b: total.get(b, 0) for b in BUCKET_NAMES}


def stats_of(store: CorpusStore, asset: str, dump: str, shard: str) -> dict:
    return store.read_json(stats_path(asset, dump, shard))


# -- for the recipe mechanism (corpus_assets/recipes.py, where it exists) ---------------

def recipe_steps_after_line_dedup(config: PipelineConfig) -> list[Step]:
    """The document steps the recipe names right after ``ccnet_line_dedup`` (CCNet's:
    language ID), built from its settings."""
    from corpus_assets.recipes import steps_after

    return steps_after(config, "ccnet_line_dedup")


def build_line_dedup_assets(config: PipelineConfig) -> list:
    """The recipe builder of stage ``ccnet_line_dedup``: ``ccnet_line_duplicates`` and
    ``ccnet_line_dedup`` reading the recipe's ``rw_raw``. Dagster is imported here, on call."""
    from corpus_assets.assets.ccnet import line_dedup_assets

    return line_dedup_assets(config, upstream="rw_raw", steps_after=recipe_steps_after_line_dedup)


def build_perplexity_assets(config: PipelineConfig) -> list:
    """The recipe builder of stage ``ccnet_perplexity``: ``ccnet_perplexity``,
    ``ccnet_cutoffs`` and ``ccnet_buckets`` (the documents the recipe's next stage reads)."""
    from corpus_assets.assets.ccnet import perplexity_assets

    return perplexity_assets(config)


def demo_summary(store: CorpusStore, dumps: list[str], shards: list[str], config: PipelineConfig) -> None:
    """The demo's CCNet block: per dump, the lines line dedup removed, the cut-offs and
    the buckets' sizes (skipped for a dump whose buckets are not materialized)."""
    for dump in dumps:
        if not all(store.exists(stats_path(BUCKETS, dump, s)) for s in shards):
            print(f"\n== {dump} CCNet buckets: not materialized")
            continue
        lines_in = lines_removed = 0
        for s in shards:
            extra = load_report(store, DEDUPED, dump, s).extra
            lines_in += extra.get("lines_in", 0)
            lines_removed += extra.get("lines_removed", 0)
        sizes = bucket_sizes(store, dump, shards)
        total = sum(sizes.values())
        cut = store.read_json(cutoffs_path(dump))
        shown = ", ".join(f"{b} {n} ({n / total:.0%})" for b, n in sizes.items() if n) if total else "empty"
        print(f"\n== {dump} CCNet: line dedup removed {lines_removed:,} of {lines_in:,} lines"
              f" ({lines_removed / max(lines_in, 1):.1%}); perplexity cut-offs"
              f" (p{config.ccnet.head_percentile:g} / p{config.ccnet.tail_percentile:g})"
              f" {({k: [round(x, 1) for x in v] for k, v in cut['cutoffs'].items()})}; buckets: {shown}")

"""Fine-tuning pool selection as stage functions (docs/sft.md); no Dagster here.

    dataset file ──> sft_samples (dataset) ──> sft_statistics (dataset) ──> sft_selection (recipe)

- ``build_sft_samples``: read one dataset's JSONL into ``samples.parquet`` (every line that
  is not a usable sample is a counted reason).
- ``build_sft_statistics``: the per-sample statistics (``steps/sft/statistics.py``) into
  ``statistics.parquet``, keyed by sample id.
- ``build_sft_selection``: for one recipe, filters -> quality score -> exact and near dedup
  -> top quality fraction -> diversity selection under the token budget; writes
  ``selection.jsonl`` (one schema: ``OUTPUT_FIELDS``), ``selected.parquet`` (ids, scores,
  tokens, order of choice), ``baselines.parquet`` (the comparison selections' ids) and ``manifest.json`` (funnel, removals by reason, counts and
  tokens per source, thresholds, seed, diversity against a random selection of the same
  tokens and against a quality-only one).

Samples in = kept + removed-with-reason at every step.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np
import pyarrow as pa

from corpus_assets.config import PipelineConfig
from corpus_assets.steps.base import file_sha256
from corpus_assets.steps.sft import diversity as div
from corpus_assets.steps.sft.config import SftRecipe
from corpus_assets.steps.sft.dedup import deduplicate
from corpus_assets.steps.sft.filters import FILTER_REASONS, apply_filters
from corpus_assets.steps.sft.quality import TERMS, quality_scores, quality_terms, top_fraction
from corpus_assets.steps.sft.samples import READ_REASONS, read_samples, sample_text
from corpus_assets.steps.sft.statistics import COLUMNS, SampleStatistics
from corpus_assets.storage import CorpusStore

SAMPLES, STATISTICS, SELECTION = "sft_samples", "sft_statistics", "sft_selection"
SAMPLE_FIELDS = ("sample_id", "dataset", "source", "instruction", "input", "output")
SAMPLES_SCHEMA = pa.schema([(f, pa.string()) for f in SAMPLE_FIELDS])
STAT_TYPES = {"lang": pa.string(), "token_count": pa.int64(), "text_len": pa.int64(), "response_len": pa.int64()}
STATISTICS_SCHEMA = pa.schema([("sample_id", pa.string())] + [(c, STAT_TYPES.get(c, pa.float64())) for c in COLUMNS])
BASELINES_SCHEMA = pa.schema([("selection", pa.string()), ("sample_id", pa.string()), ("order", pa.int64()),
                              ("token_count", pa.int64())])
SELECTED_SCHEMA = pa.schema([("sample_id", pa.string()), ("dataset", pa.string()), ("source", pa.string()),
                             ("order", pa.int64()), ("quality", pa.float64()), ("token_count", pa.int64())])
STEPS = ("read", "filters", "dedup", "quality_gate", "selection")


def samples_path(dataset: str, name: str = "samples.parquet") -> str:
    return f"{SAMPLES}/{dataset}/{name}"


def statistics_path(dataset: str, name: str = "statistics.parquet") -> str:
    return f"{STATISTICS}/{dataset}/{name}"


def selection_path(recipe: str, name: str = "manifest.json") -> str:
    return f"{SELECTION}/{recipe}/{name}"


def json_safe(obj):
    """``obj`` with every NaN/infinite float as None: written JSON stays strict JSON (null),
    which JavaScript, Go and serde readers accept (a bare NaN they refuse; issue 15 f11)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.floating):
        return json_safe(float(obj))
    return obj


def _file_sha(path: Path) -> str:
    return file_sha256(path)[:16]


# --------------------------------------------------------------------------- samples


def build_sft_samples(store: CorpusStore, dataset_name: str, config: PipelineConfig) -> dict:
    started = time.perf_counter()
    cfg = config.sft
    dataset = cfg.dataset(dataset_name)
    path = cfg.dataset_file(dataset)
    removed: Counter = Counter()
    rows = list(read_samples(path, dataset, cfg.max_record_chars, removed))
    lines = len(rows) + sum(removed.values())
    report = {
        "dataset": dataset_name, "path": str(path), "file_sha256": _file_sha(path), "lines": lines,
        "samples": len(rows), "removed_by_reason": {r: removed[r] for r in READ_REASONS if removed[r]},
        "by_source": dict(sorted(Counter(r["source"] for r in rows).items())),
        "fields": {"instruction": dataset.instruction_field, "input": dataset.input_field,
                   "output": dataset.output_field, "source": dataset.source_field},
    }
    with store.publish_partition(f"{SAMPLES}/{dataset_name}"):
        with store.table_writer(samples_path(dataset_name), SAMPLES_SCHEMA) as writer:
            writer.write_many(rows)
        report["seconds"] = round(time.perf_counter() - started, 3)
        store.write_json(samples_path(dataset_name, "stats.json"), json_safe(report))
    return report


def read_dataset_samples(store: CorpusStore, dataset_name: str) -> list[dict]:
    if not store.exists(samples_path(dataset_name, "stats.json")):
        raise FileNotFoundError(f"{SAMPLES} has no partition {dataset_name!r} in {store.uri(SAMPLES)}: "
                                f"materialize {SAMPLES}[{dataset_name}] first")
    rows = list(store.iter_rows(samples_path(dataset_name), list(SAMPLE_FIELDS)))
    for r in rows:
        r["text"] = sample_text(r["instruction"], r["input"], r["output"])
    return rows


# --------------------------------------------------------------------------- statistics


def statistics_models(config: PipelineConfig, counter=None):
    """The models the statistics use: lid.176, the shared n-gram LM (trained into its cache
    on first use) and the mixture's tokenizer."""
    from corpus_assets.steps.langid import LanguageId, LanguageIdConfig
    from corpus_assets.steps.lm.model import load_or_train
    from corpus_assets.steps.mixture.tokens import TokenCounter

    langid = LanguageId(LanguageIdConfig(model_path=config.language_id.model_path, languages=(), min_score=0.0))
    lm = load_or_train(config.lm, config.sft.perplexity_language)
    counter = counter or TokenCounter(config.mixture.tokenizer, config.mixture.tokenizer_file)
    return langid, lm, counter


def build_sft_statistics(store: CorpusStore, dataset_name: str, config: PipelineConfig, counter=None,
                         models=None) -> dict:
    started = time.perf_counter()
    samples = read_dataset_samples(store, dataset_name)
    langid, lm, counter = models or statistics_models(config, counter)
    computer = SampleStatistics(langid, lm, counter, config.sft.char_rep_len, config.sft.word_rep_len)
    loaded = time.perf_counter()
    stats = computer.rows(samples)
    for s, row in zip(stats, samples):
        s["sample_id"] = row["sample_id"]
    samples_stats = store.read_json(samples_path(dataset_name, "stats.json")) or {}
    report = {
        "dataset": dataset_name, "samples": len(samples), "tokenizer": counter.name,
        # what these statistics were computed from: sft_selection refuses them for other samples
        "samples_version": store.partition_version(f"{SAMPLES}/{dataset_name}"),
        "samples_file_sha256": samples_stats.get("file_sha256"),
        "lm": {"folder": str(lm.folder), "backend": lm.backend, "language": config.sft.perplexity_language,
               "reference": lm.info.get("reference", "")},
        "tokens": int(sum(s["token_count"] for s in stats)),
        "medians": {c: float(np.median([s[c] for s in stats])) if stats else float("nan")
                    for c in COLUMNS if c != "lang"},
        "languages": dict(Counter(s["lang"] for s in stats).most_common(10)),
        "model_load_seconds": round(loaded - started, 3),
        "samples_per_second": round(len(samples) / max(time.perf_counter() - loaded, 1e-9), 1),
    }
    with store.publish_partition(f"{STATISTICS}/{dataset_name}"):
        with store.table_writer(statistics_path(dataset_name), STATISTICS_SCHEMA) as writer:
            writer.write_many(stats)
        report["seconds"] = round(time.perf_counter() - started, 3)
        store.write_json(statistics_path(dataset_name, "stats.json"), json_safe(report))
    return report


def read_dataset_statistics(store: CorpusStore, dataset_name: str) -> dict[str, dict]:
    if not store.exists(statistics_path(dataset_name, "stats.json")):
        raise FileNotFoundError(f"{STATISTICS} has no partition {dataset_name!r} in {store.uri(STATISTICS)}: "
                                f"materialize {STATISTICS}[{dataset_name}] first")
    return {r["sample_id"]: r for r in store.iter_rows(statistics_path(dataset_name))}


# --------------------------------------------------------------------------- selection


def _tokens(stats: list[dict], idx) -> int:
    return int(sum(stats[i]["token_count"] for i in idx))


def _composition(samples: list[dict], stats: list[dict], idx) -> dict:
    out: dict = {}
    for i in idx:
        key = samples[i]["source"]
        entry = out.setdefault(key, {"dataset": samples[i]["dataset"], "samples": 0, "tokens": 0})
        entry["samples"] += 1
        entry["tokens"] += int(stats[i]["token_count"])
    total = sum(e["tokens"] for e in out.values())
    for e in out.values():
        e["share_tokens"] = round(e["tokens"] / total, 6) if total else 0.0
    return dict(sorted(out.items()))


def select(samples: list[dict], stats: list[dict], recipe: SftRecipe, embed) -> dict:
    """The recipe over joined samples and statistics (same order); ``embed(texts) ->
    L2-normalized rows``. Returns the selection and every figure the manifest reports."""
    timings = {}
    t0 = time.perf_counter()
    n = len(samples)
    funnel = [{"step": "read", "samples_in": n, "samples_out": n, "tokens_out": _tokens(stats, range(n))}]
    removed_by_step: dict[str, dict] = {}

    filtered = apply_filters(stats, recipe.filters)
    idx = np.flatnonzero(filtered.keep)
    removed_by_step["filters"] = {r: filtered.removed[r] for r in FILTER_REASONS if filtered.removed[r]}
    funnel.append({"step": "filters", "samples_in": n, "samples_out": len(idx), "tokens_out": _tokens(stats, idx)})
    timings["filters"] = time.perf_counter() - t0

    t = time.perf_counter()
    cand_stats = [stats[i] for i in idx]
    quality = quality_scores(cand_stats, recipe.quality)
    terms = quality_terms(cand_stats, recipe.quality)
    timings["quality"] = time.perf_counter() - t

    t = time.perf_counter()
    dedup = deduplicate([samples[i]["text"] for i in idx], quality, recipe.dedup)
    removed_by_step["dedup"] = dict(dedup.removed)
    idx, quality = idx[dedup.keep], quality[dedup.keep]
    terms = {k: v[dedup.keep] for k, v in terms.items()}
    funnel.append({"step": "dedup", "samples_in": funnel[-1]["samples_out"], "samples_out": len(idx),
                   "tokens_out": _tokens(stats, idx)})
    timings["dedup"] = time.perf_counter() - t

    gate = np.sort(top_fraction(quality, recipe.quality.keep_fraction))
    removed_by_step["quality_gate"] = {"below_quality_fraction": int(len(idx) - len(gate))} if len(idx) > len(gate) else {}
    threshold = float(quality[gate].min()) if len(gate) else float("nan")
    pool_idx, pool_quality = idx, quality  # the deduplicated pool: what the baselines draw from
    gate_idx, gate_quality = idx[gate], quality[gate]
    funnel.append({"step": "quality_gate", "samples_in": len(idx), "samples_out": len(gate_idx),
                   "tokens_out": _tokens(stats, gate_idx)})

    t = time.perf_counter()
    pool_emb = (np.asarray(embed([samples[i]["text"] for i in pool_idx]), dtype=np.float32) if len(pool_idx)
                else np.zeros((0, 1), np.float32))  # nothing left to embed: no encoder call
    if pool_emb.ndim != 2 or pool_emb.shape[0] != len(pool_idx):
        raise ValueError(f"the encoder returned {pool_emb.shape[0]} embeddings for {len(pool_idx)} texts")
    timings["embed"] = time.perf_counter() - t
    position = {int(i): k for k, i in enumerate(pool_idx)}
    gate_emb = pool_emb[[position[int(i)] for i in gate_idx]] if len(gate_idx) else pool_emb[:0]
    gate_tokens = [stats[i]["token_count"] for i in gate_idx]

    t = time.perf_counter()
    budget = recipe.token_budget
    k = recipe.diversity.clusters

    def run_method(method: str) -> list[int]:
        if method == "k_center":
            return div.k_center_greedy(gate_emb, gate_tokens, budget, gate_quality)
        if method == "cluster_caps":
            labels = div.kmeans_labels(gate_emb, k, recipe.seed)[0] if len(gate_idx) else []
            return div.cluster_round_robin(labels, gate_tokens, budget, gate_quality)
        return div.by_quality(gate_tokens, budget, gate_quality)

    method = recipe.diversity.method
    chosen = [int(gate_idx[j]) for j in run_method(method)]
    timings["select"] = time.perf_counter() - t
    # the other diversity method, on the same candidates and budget, for comparison
    other_method = "cluster_caps" if method == "k_center" else "k_center"
    other = [int(gate_idx[j]) for j in run_method(other_method)] if len(gate_idx) else []
    used = _tokens(stats, chosen)
    removed_by_step["selection"] = {"over_budget_or_not_chosen": int(len(gate_idx) - len(chosen))} \
        if len(gate_idx) > len(chosen) else {}
    funnel.append({"step": "selection", "samples_in": len(gate_idx), "samples_out": len(chosen), "tokens_out": used})
    for f in funnel:
        f["retention"] = round(f["samples_out"] / f["samples_in"], 6) if f["samples_in"] else 0.0
        f["cumulative_retention"] = round(f["samples_out"] / n, 6) if n else 0.0

    # diversity against baselines of the same tokens, over the deduplicated pool
    t = time.perf_counter()
    pool_tokens = [stats[i]["token_count"] for i in pool_idx]
    random_pos = div.random_same_tokens(pool_tokens, used, recipe.seed)
    quality_pos = div.by_quality(pool_tokens, used, pool_quality)
    chosen_pos = [position[i] for i in chosen]
    labels = div.kmeans_labels(pool_emb, k, recipe.seed)[0] if len(pool_idx) else np.zeros(0, np.int64)
    k_eff = int(labels.max()) + 1 if labels.size else 0

    def figures(pos: list[int]) -> dict:
        pos = list(pos)
        near = div.nearest_distances(pool_emb, pool_emb[pos])
        return {"samples": len(pos), "tokens": int(sum(pool_tokens[p] for p in pos)),
                "mean_nearest_distance": round(float(near.mean()), 6) if near.size else float("nan"),
                "max_nearest_distance": round(float(near.max()), 6) if near.size else float("nan"),
                "cluster_entropy": round(div.cluster_entropy(labels[pos], k_eff), 6),
                "clusters_covered": int(len(set(labels[pos].tolist()))),
                "mean_quality": round(float(np.mean(pool_quality[pos])), 6) if pos else float("nan")}

    diversity = {"selection": {"method": method, **figures(chosen_pos)}, "random": figures(random_pos),
                 "quality_only": figures(quality_pos),
                 "other_method": {"method": other_method, **figures([position[i] for i in other])},
                 "pool": {"samples": len(pool_idx), "clusters": k_eff, "embedding_dim": int(pool_emb.shape[1]) if pool_emb.ndim == 2 else 0,
                          "cluster_entropy": round(div.cluster_entropy(labels, k_eff), 6)}}
    timings["diversity_figures"] = time.perf_counter() - t

    gate_terms = {name: round(float(np.mean(v[gate])), 6) if len(gate) else float("nan") for name, v in terms.items()}
    quality_of = {int(i): float(q) for i, q in zip(pool_idx, pool_quality)}
    return {
        "chosen": chosen, "quality_of": quality_of, "tokens_used": used, "token_budget": budget,
        "baselines": {"random": [int(pool_idx[p]) for p in random_pos],
                      "quality_only": [int(pool_idx[p]) for p in quality_pos], other_method: other},
        "funnel": funnel, "removed_by_step": removed_by_step, "perplexity_bounds": filtered.perplexity,
        "dedup_facts": dedup.facts, "quality_threshold": threshold, "quality_terms_mean": gate_terms,
        "composition": {"pool": _composition(samples, stats, range(n)),
                        "after_dedup": _composition(samples, stats, pool_idx),
                        "selection": _composition(samples, stats, chosen),
                        "random": _composition(samples, stats, [int(pool_idx[p]) for p in random_pos])},
        "diversity": diversity, "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def _embedder(config: PipelineConfig, encoder=None):
    """The domain classifier's encoder (``domains`` settings, or the resource's), each text
    cut to ``sft.encoder_max_chars``."""
    if encoder is None:
        from corpus_assets.steps.domains.encoder import encoder_from_config

        encoder = encoder_from_config(config.domains)
    from corpus_assets.steps.sft.embeddings import EmbeddingCache, model_content_key

    limit = config.sft.encoder_max_chars
    model_path = getattr(encoder, "model_path", "encoder")
    content = model_content_key(model_path)  # the model's bytes, not only its folder (issue 15 f04)
    name = f"{model_path}{f' sha256:{content}' if content else ''} (first {limit} characters)"
    if not config.sft.embedding_cache:
        return (lambda texts: encoder.encode([t[:limit] for t in texts])), name

    cache = EmbeddingCache(config.sft.embedding_cache_dir, f"{name}|{getattr(encoder, 'device', '')}")

    def embed(texts):
        return cache.embed([t[:limit] for t in texts], encoder.encode)

    return embed, name


def check_statistics_current(store: CorpusStore, name: str) -> dict:
    """The statistics' report, after checking they were computed from the current samples
    partition (ids are line numbers: statistics of an older file would be joined to the new
    texts silently, issue 15 f03)."""
    stats_report = store.read_json(statistics_path(name, "stats.json")) or {}
    current = store.partition_version(f"{SAMPLES}/{name}")
    made_from = stats_report.get("samples_version")
    if made_from != current:
        raise ValueError(f"{STATISTICS}[{name}] was computed from {SAMPLES}[{name}] version {made_from!r}, but "
                         f"the current version is {current!r}: rematerialize {STATISTICS}[{name}]")
    return stats_report


def build_sft_selection(store: CorpusStore, recipe: SftRecipe, config: PipelineConfig, encoder=None) -> dict:
    started = time.perf_counter()
    samples, stats = [], []
    versions = {}
    tokenizers = {}
    read_lines, read_removed = 0, Counter()
    # sorted by name, not by the recipe's list: which of two cross-dataset duplicates is kept
    # (ties go to the first sample) must not depend on how `datasets:` is ordered (issue 15 f09)
    for name in sorted(recipe.datasets):
        rows = read_dataset_samples(store, name)
        read_report = store.read_json(samples_path(name, "stats.json")) or {}
        read_lines += int(read_report.get("lines", len(rows)))
        read_removed.update(read_report.get("removed_by_reason", {}))
        tokenizers[name] = check_statistics_current(store, name).get("tokenizer", "")
        by_id = read_dataset_statistics(store, name)
        missing = [r["sample_id"] for r in rows if r["sample_id"] not in by_id]
        if missing:
            raise ValueError(f"{STATISTICS}[{name}] lacks {len(missing)} sample(s) of {SAMPLES}[{name}] (e.g. "
                             f"{missing[0]}): rematerialize {STATISTICS}[{name}]")
        samples.extend(rows)
        stats.extend(by_id[r["sample_id"]] for r in rows)
        versions[name] = {"samples": store.partition_version(f"{SAMPLES}/{name}"),
                          "statistics": store.partition_version(f"{STATISTICS}/{name}")}
    if len(set(tokenizers.values())) > 1:
        raise ValueError(f"recipe {recipe.name}: the datasets' statistics count tokens with different tokenizers "
                         f"{tokenizers}: rematerialize {STATISTICS} for them with one mixture.tokenizer")
    embed, encoder_name = _embedder(config, encoder)
    result = select(samples, stats, recipe, embed)
    chosen = result["chosen"]
    # the read step accounts for every line of the files, read-time removals included (f12)
    read = result["funnel"][0]
    read["samples_in"] = read_lines
    read["retention"] = round(read["samples_out"] / read_lines, 6) if read_lines else 0.0
    result["removed_by_step"] = {"read": {r: read_removed[r] for r in READ_REASONS if read_removed[r]},
                                 **result["removed_by_step"]}
    warnings = []
    if not chosen:
        warnings.append(f"the selection is empty: {len(samples)} samples read, "
                        f"{result['funnel'][-1]['samples_in']} reached the selection, none fits the token budget "
                        f"{recipe.token_budget}" if result["funnel"][-1]["samples_in"] else
                        f"the selection is empty: no sample of {len(samples)} passed filters, dedup and gate")
    manifest = {
        "recipe": recipe.name, "version": recipe.version, "config_hash": recipe.config_hash(),
        "recipe_settings": recipe.as_dict(), "seed": recipe.seed, "datasets": versions,
        "tokenizer": _tokenizer_name(store, recipe), "encoder": encoder_name,
        "token_budget": recipe.token_budget, "tokens_used": result["tokens_used"],
        "budget_used": round(result["tokens_used"] / recipe.token_budget, 6), "samples": len(chosen),
        "samples_in": len(samples), "lines_in": read_lines, "warnings": warnings,
        "thresholds": {"filters": recipe.as_dict()["filters"], "perplexity_bounds": result["perplexity_bounds"],
                       "quality_threshold": result["quality_threshold"], "dedup": recipe.as_dict()["dedup"]},
        **{k: result[k] for k in ("funnel", "removed_by_step", "dedup_facts", "quality_terms_mean", "composition",
                                  "diversity", "timings")},
    }
    with store.publish_partition(f"{SELECTION}/{recipe.name}"):
        with store.file_writer(selection_path(recipe.name, "selection.jsonl"), ".jsonl") as (tmp, _):
            with open(tmp, "w", encoding="utf-8") as fh:
                for i in chosen:
                    fh.write(selection_record(samples[i]) + "\n")
        with store.table_writer(selection_path(recipe.name, "selected.parquet"), SELECTED_SCHEMA) as writer:
            writer.write_many({"sample_id": samples[i]["sample_id"], "dataset": samples[i]["dataset"],
                               "source": samples[i]["source"], "order": k, "quality": result["quality_of"][i],
                               "token_count": int(stats[i]["token_count"])} for k, i in enumerate(chosen))
        # the comparison selections' ids, so that a fine-tune can be run on each (docs/sft.md)
        with store.table_writer(selection_path(recipe.name, "baselines.parquet"), BASELINES_SCHEMA) as writer:
            writer.write_many({"selection": name, "sample_id": samples[i]["sample_id"], "order": k,
                               "token_count": int(stats[i]["token_count"])}
                              for name, ids in result["baselines"].items() for k, i in enumerate(ids))
        manifest["seconds"] = round(time.perf_counter() - started, 3)
        store.write_json(selection_path(recipe.name), json_safe(manifest))
    return manifest


OUTPUT_FIELDS = ("instruction", "input", "output", "source", "dataset")


def selection_record(sample: dict) -> str:
    """One selection.jsonl line. Every line has the same fields, OUTPUT_FIELDS, whatever
    each dataset's own field names (issue 15 f06): ``input`` is "" when the record had none,
    ``source`` the dataset's name when the record had none (as in the composition), and
    ``dataset`` the pool dataset it came from. U+2028/U+2029 are escaped (f14): JSON allows
    them raw, but JavaScript and ``str.splitlines`` line readers split a record on them."""
    line = json.dumps({f: sample[f] for f in OUTPUT_FIELDS}, ensure_ascii=False)
    return line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def selection_tokens(store: CorpusStore, recipe_name: str, counter) -> tuple[int, int]:
    """(records, tokens) of the written selection.jsonl, recounted with ``counter`` from the
    file itself (the text a fine-tune gets), not from the statistics."""
    texts = []
    # the published object, checked against the partition's pointer (as read_json does)
    with store._open_copy(selection_path(recipe_name, "selection.jsonl"), verify=True) as (path, _):
        with open(path, encoding="utf-8") as fh:
            for line in fh:  # file lines split on "\n" only (U+2028 is escaped in the file)
                if line.strip():
                    r = json.loads(line)
                    texts.append(sample_text(r["instruction"], r["input"], r["output"]))
    return len(texts), int(sum(counter.count(texts)))


def _tokenizer_name(store: CorpusStore, recipe: SftRecipe) -> str:
    names = {store.read_json(statistics_path(d, "stats.json")).get("tokenizer", "") for d in recipe.datasets}
    return ", ".join(sorted(names))


def budget_respected(manifest: dict, written: Optional[tuple[int, int]] = None) -> tuple[bool, dict]:
    """The asset check: tokens used <= budget, recounted from the manifest's composition and,
    given ``written`` = ``selection_tokens(...)``, from the written selection.jsonl itself
    (so statistics that do not describe the written texts fail it, issue 15 f03)."""
    recount = sum(e["tokens"] for e in manifest["composition"]["selection"].values())
    ok = manifest["tokens_used"] <= manifest["token_budget"] and recount == manifest["tokens_used"]
    facts = {"tokens_used": manifest["tokens_used"], "token_budget": manifest["token_budget"], "recount": recount}
    if written is not None:
        records, tokens = written
        ok = ok and tokens <= manifest["token_budget"] and tokens == manifest["tokens_used"] \
            and records == manifest["samples"]
        facts.update({"written_records": records, "written_tokens": tokens})
    return ok, facts


def conservation(manifest: dict) -> tuple[bool, dict]:
    """Every step, the read step included (lines in == samples + read reasons): samples in ==
    out + removed by reason."""
    gaps = {}
    for f in manifest["funnel"]:
        removed = sum(manifest["removed_by_step"].get(f["step"], {}).values())
        gaps[f["step"]] = f["samples_in"] - f["samples_out"] - removed
    return all(g == 0 for g in gaps.values()), {"gaps": gaps}

"""FineFineWeb's domain classification as stage functions: what the domain assets call;
no Dagster here. FineFineWeb: m-a-p, "FineFineWeb: A Comprehensive Study on Fine-Grained
Domain Web Corpus" (2024/2025), which splits FineWeb into 67 domains with seed labels ->
fastText coarse recall -> BERT fine recall, iterated three times.

Stages and what each writes (under ``<asset>/<dump>/...``):

1. ``build_domain_seed_labels`` (dump): DoI/DoNI seed labels with confidence for the first
   ``train_max_docs`` rw_deduped documents of the dump (dump order), and their embeddings
   (computed once; the classifiers and the fine stage reuse them).
2. ``build_domain_classifiers`` (dump): the fine head (trained once, frozen) and, per round,
   the fastText coarse model and the labels it led to, with per-domain bookkeeping.
3. ``build_domain_labels`` (dump x shard): the final round's cascade on every document of
   the shard: ``doc_id -> domain, score, runner-up, score, round, reason, chars``. Every
   rw_deduped document gets exactly one row (``unclassified`` with its reason when no
   domain claimed it); the text is not copied.
4. ``build_domain_subset`` (dump x domain): the doc_ids of one domain of one dump.
5. ``build_domain_benchmark_similarity`` and ``build_domain_url_overlap`` (unpartitioned).
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus_assets.config import PipelineConfig
from corpus_assets.stages import documents_path, load_report
from corpus_assets.steps.domains import analysis
from corpus_assets.steps.domains.annotator import LlmAnnotator
from corpus_assets.steps.domains.classifiers import (
    REASON_EMPTY,
    CoarseSettings,
    FineHead,
    coarse_scores,
    fine_decisions,
    load_coarse,
    model_bytes,
)
from corpus_assets.steps.domains.rounds import run_rounds
from corpus_assets.steps.domains.seeds import NONE_LABEL, SOURCE_LLM, SOURCE_LLM_ROOT, SeedLabeller, heldout, seed_sets
from corpus_assets.steps.domains.taxonomy import UNCLASSIFIED, Taxonomy, root_of
from corpus_assets.steps.progress import progress_for
from corpus_assets.storage import CorpusStore

UPSTREAM = "rw_deduped"
SEEDS = "domain_seed_labels"
CLASSIFIERS = "domain_classifiers"
LABELS = "domain_labels"
SUBSETS = "domain_subsets"
SIMILARITY = "domain_benchmark_similarity"
URL_OVERLAP = "domain_url_overlap"
LLM_CACHE = "domain_llm_cache"
EMBED_BATCH = 256
REASON_NO_SEEDS = "no_seed_labels"  # the dump's classifiers could not be trained
REPO_ROOT = Path(__file__).resolve().parent.parent

SEEDS_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("shard", pa.string()), ("label", pa.string()), ("confidence", pa.float32()),
    ("source", pa.string()), ("similarity", pa.float32()), ("runner_up", pa.string()), ("heldout", pa.bool_()),
])
ROUND_LABELS_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("shard", pa.string()), ("domain", pa.string()), ("score", pa.float32()),
    ("reason", pa.string()),
])
LABELS_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("domain", pa.string()), ("score", pa.float32()), ("runner_up", pa.string()),
    ("runner_up_score", pa.float32()), ("round", pa.int32()), ("reason", pa.string()), ("chars", pa.int64()),
])
SUBSET_SCHEMA = pa.schema([("doc_id", pa.string()), ("shard", pa.string()), ("score", pa.float32()),
                           ("chars", pa.int64())])
BLOB_SCHEMA = pa.schema([("name", pa.string()), ("data", pa.binary())])


def _file(asset: str, *parts: str) -> str:
    return "/".join((asset,) + parts)


def labels_path(dump: str, shard: str) -> str:
    return _file(LABELS, dump, shard, "labels.parquet")


def subset_path(dump: str, domain: str) -> str:
    return _file(SUBSETS, dump, domain, "docs.parquet")


def _write_blob(store: CorpusStore, rel: str, name: str, data: bytes) -> None:
    # A model file as a one-row table: the store's atomic table writes work on S3 too.
    with store.table_writer(rel, BLOB_SCHEMA) as writer:
        writer.write_table(pa.table({"name": [name], "data": [data]}, schema=BLOB_SCHEMA))


def _read_blob(store: CorpusStore, rel: str) -> bytes:
    return store.read_table(rel).column("data")[0].as_py()


def _iter_dump_docs(store: CorpusStore, dump: str, shards: list[str], columns: list[str]) -> Iterator[dict]:
    for shard in shards:
        load_report(store, UPSTREAM, dump, shard)  # fails clearly when upstream is missing
        for row in store.iter_rows(documents_path(UPSTREAM, dump, shard), columns=columns):
            row["shard"] = shard
            yield row


def coarse_settings(config: PipelineConfig) -> CoarseSettings:
    c = config.domains
    return CoarseSettings(epochs=c.coarse_epochs, lr=c.coarse_lr, word_ngrams=c.coarse_word_ngrams,
                          dim=c.coarse_dim, min_count=c.coarse_min_count, min_examples=c.coarse_min_examples)


# -- 1. seed labels ----------------------------------------------------------------------

def load_llm_cache(store: CorpusStore, model: str, prompt_version: str) -> dict[str, str]:
    cache: dict[str, str] = {}
    prefix = _file(LLM_CACHE, model.replace("/", "_"), prompt_version)
    for rel in store.list(prefix):
        if rel.endswith(".parquet") and "/.tmp-" not in rel:
            for row in store.iter_rows(rel):
                cache[row["key"]] = row["answer"]
    return cache


def save_llm_answers(store: CorpusStore, model: str, prompt_version: str, answers: dict[str, str], tag: str) -> None:
    """Answers go to a new file per run (append-only): parallel runs never overwrite each other."""
    if not answers:
        return
    rel = _file(LLM_CACHE, model.replace("/", "_"), prompt_version, f"{tag}-{time.time_ns()}.parquet")
    with store.table_writer(rel, pa.schema([("key", pa.string()), ("answer", pa.string())])) as writer:
        writer.write_many({"key": k, "answer": v} for k, v in sorted(answers.items()))


def build_domain_seed_labels(store: CorpusStore, dump: str, shards: list[str], config: PipelineConfig,
                             taxonomy: Taxonomy, encoder, annotator: Optional[LlmAnnotator] = None) -> dict:
    cfg = config.domains
    started = time.perf_counter()
    labeller = SeedLabeller(taxonomy, encoder, cfg.seed_min_similarity, cfg.seed_margin,
                            cfg.seed_negative_max_similarity)
    rows, vectors, decisions_all = [], [], []
    sources: Counter = Counter()
    batch: list[dict] = []
    docs_seen = 0

    def flush() -> None:
        texts = [r["text"] for r in batch]
        emb = encoder.encode(texts)
        decisions = labeller.decide([r["url"] for r in batch], emb)
        if annotator is not None:
            # FineFineWeb's order: an LLM labels root URLs; a root judged of no domain makes
            # its documents DoNI seeds; documents of the other roots (a domain, or no valid
            # answer) are labelled one by one by the LLM.
            root_labels = annotator.label_roots(sorted({root_of(r["url"]) for r in batch} - {""}))
            pending = [i for i, r in enumerate(batch) if root_labels.get(root_of(r["url"])) != NONE_LABEL]
            by_index = dict(zip(pending, annotator.label_documents([batch[i]["text"] for i in pending])))
            for i, d in enumerate(decisions):
                if i in by_index:
                    label, source = by_index[i], SOURCE_LLM
                else:
                    label, source = NONE_LABEL, SOURCE_LLM_ROOT
                d.domain, d.confidence, d.source = (label, 1.0, source) if label else (None, 0.0, "llm_no_answer")
        for r, d, v in zip(batch, decisions, emb):
            sources[d.source] += 1
            decisions_all.append(d)
            rows.append({"doc_id": r["doc_id"], "shard": r["shard"], "label": d.domain, "confidence": d.confidence,
                         "source": d.source, "similarity": d.similarity, "runner_up": d.runner_up,
                         "heldout": heldout(r["doc_id"], cfg.heldout_fraction) if d.domain else False})
            vectors.append(v)
        batch.clear()

    def persist_answers() -> None:
        # Paid-for answers reach the store after every batch, and in the finally below
        # when the annotator gives up or anything else stops the stage.
        if annotator is not None and annotator.new_answers:
            save_llm_answers(store, annotator.model, annotator.prompt_version, annotator.new_answers, dump)
            annotator.new_answers.clear()

    empty = 0
    try:
        for row in _iter_dump_docs(store, dump, shards, ["doc_id", "url", "text"]):
            if docs_seen >= cfg.train_max_docs:
                break
            docs_seen += 1
            if not (row.get("text") or "").strip():
                empty += 1  # nothing to label: counted, no seed
                continue
            batch.append(row)
            if len(batch) >= EMBED_BATCH:
                flush()
                persist_answers()
        if batch:
            flush()
    finally:
        persist_answers()
    with store.table_writer(_file(SEEDS, dump, "seeds.parquet"), SEEDS_SCHEMA) as writer:
        writer.write_many(rows)
    dim = len(vectors[0]) if vectors else 0
    emb_schema = pa.schema([("doc_id", pa.string()), ("shard", pa.string()),
                            ("embedding", pa.list_(pa.float32(), dim) if dim else pa.list_(pa.float32()))])
    with store.table_writer(_file(SEEDS, dump, "embeddings.parquet"), emb_schema) as writer:
        if vectors:
            flat = pa.array(np.asarray(vectors, np.float32).ravel(), pa.float32())
            writer.write_table(pa.table({
                "doc_id": [r["doc_id"] for r in rows], "shard": [r["shard"] for r in rows],
                "embedding": pa.FixedSizeListArray.from_arrays(flat, dim)}, schema=emb_schema))
    labelled = [d for d in decisions_all if d.domain is not None]
    present = sorted({d.domain for d in labelled} - {NONE_LABEL})
    report = {
        "dump": dump, "docs_read": docs_seen, "docs_embedded": len(rows), "empty_text": empty,
        "doi_seeds": sum(1 for d in labelled if d.domain != NONE_LABEL),
        "doni_all_seeds": sum(1 for d in labelled if d.domain == NONE_LABEL),
        "abstained": len(rows) - len(labelled), "heldout": sum(r["heldout"] for r in rows),
        "sources": dict(sources), "domains_with_seeds": present,
        "per_domain": {k: v for k, v in seed_sets(decisions_all, taxonomy.names).items() if v["doi"]},
        "annotator": "llm" if annotator is not None else "embedded",
        "annotator_stats": annotator.stats.to_dict() if annotator is not None else {},
        "taxonomy": taxonomy.name, "taxonomy_hash": taxonomy.content_hash,
        "seconds": round(time.perf_counter() - started, 3),
    }
    store.write_json(_file(SEEDS, dump, "stats.json"), report)
    return report


def _read_embeddings(store: CorpusStore, dump: str, shard: Optional[str] = None) -> tuple[list[str], np.ndarray]:
    rel = _file(SEEDS, dump, "embeddings.parquet")
    table = store.read_table(rel, filters=[("shard", "=", shard)] if shard else None)
    ids = table.column("doc_id").to_pylist()
    if not ids:
        return [], np.zeros((0, 0), np.float32)
    flat = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return ids, flat.reshape(len(ids), -1).astype(np.float32)


# -- 2. classifiers ------------------------------------------------------------------------

def build_domain_classifiers(store: CorpusStore, dump: str, shards: list[str], config: PipelineConfig,
                             taxonomy: Taxonomy) -> dict:
    cfg = config.domains
    started = time.perf_counter()
    seeds = store.read_table(_file(SEEDS, dump, "seeds.parquet")).to_pylist()
    ids, emb = _read_embeddings(store, dump)
    by_id = {r["doc_id"]: r for r in seeds}
    texts: dict[str, str] = {}
    wanted = set(ids)
    for row in _iter_dump_docs(store, dump, shards, ["doc_id", "text"]):
        if row["doc_id"] in wanted:
            texts[row["doc_id"]] = row["text"] or ""
    labels = [by_id[i]["label"] for i in ids]
    held = [by_id[i]["heldout"] for i in ids]
    if not any(label not in (None, NONE_LABEL) and not h for label, h in zip(labels, held)):
        # Nothing to learn from (an empty dump, or no confident seed): no model, and every
        # document of the dump will be `unclassified` with reason `no_seed_labels`.
        report = {"dump": dump, "train_docs": len(ids), "rounds": [], "final_round": 0, "fine_classes": [],
                  "trained": False, "taxonomy_hash": taxonomy.content_hash,
                  "seconds": round(time.perf_counter() - started, 3)}
        store.write_json(_file(CLASSIFIERS, dump, "stats.json"), report)
        return report
    head, results = run_rounds(
        [texts[i] for i in ids], emb, labels, held, taxonomy.names, cfg.rounds, coarse_settings(config),
        cfg.coarse_threshold, cfg.fine_threshold, cfg.fine_l2, cfg.fine_epochs)
    store.write_json(_file(CLASSIFIERS, dump, "fine_head.json"), head.to_dict())
    rounds = []
    for res in results:
        base = _file(CLASSIFIERS, dump, f"round_{res.round}")
        _write_blob(store, f"{base}/coarse.parquet", "coarse.bin", model_bytes(res.coarse_model))
        with store.table_writer(f"{base}/labels.parquet", ROUND_LABELS_SCHEMA) as writer:
            writer.write_many({"doc_id": i, "shard": by_id[i]["shard"], "domain": d.domain or UNCLASSIFIED,
                               "score": d.score, "reason": d.reason} for i, d in zip(ids, res.decisions))
        rounds.append({"round": res.round, "coarse_train_docs": res.train_size,
                       "coarse_positive_share": res.coarse_positive_share,
                       "classified": sum(1 for d in res.decisions if d.domain),
                       "per_domain": {k: v for k, v in res.per_domain.items()
                                      if v["docs"] or v["lost"] or v["support"]}})
    report = {"dump": dump, "train_docs": len(ids), "rounds": rounds, "final_round": results[-1].round,
              "fine_classes": head.classes, "trained": True, "taxonomy_hash": taxonomy.content_hash,
              "seconds": round(time.perf_counter() - started, 3)}
    store.write_json(_file(CLASSIFIERS, dump, "stats.json"), report)
    return report


def load_final_models(store: CorpusStore, dump: str) -> tuple[int, object, Optional[FineHead]]:
    """(final round, fastText model, fine head), or (0, None, None) when nothing was trained."""
    stats = store.read_json(_file(CLASSIFIERS, dump, "stats.json"))
    k = stats["final_round"]
    if not stats.get("trained", True):
        return 0, None, None
    model = load_coarse(_read_blob(store, _file(CLASSIFIERS, dump, f"round_{k}", "coarse.parquet")))
    head = FineHead.from_dict(store.read_json(_file(CLASSIFIERS, dump, "fine_head.json")))
    return k, model, head


def _first_round_of_label(store: CorpusStore, dump: str, shard: str, final_round: int) -> dict[str, dict[int, str]]:
    """doc_id -> {round: domain} for the shard's training documents (for the ``round`` column)."""
    out: dict[str, dict[int, str]] = {}
    for k in range(1, final_round + 1):
        table = store.read_table(_file(CLASSIFIERS, dump, f"round_{k}", "labels.parquet"),
                                 columns=["doc_id", "domain"], filters=[("shard", "=", shard)])
        for doc_id, domain in zip(table.column("doc_id").to_pylist(), table.column("domain").to_pylist()):
            out.setdefault(doc_id, {})[k] = domain
    return out


# -- 3. labels -----------------------------------------------------------------------------

def build_domain_labels(store: CorpusStore, dump: str, shard: str, config: PipelineConfig, encoder,
                        log=None) -> dict:
    """``log``: where progress lines go (documents labelled, rate; "kept" = classified)."""
    cfg = config.domains
    started = time.perf_counter()
    progress = progress_for(log, f"{LABELS} {dump}|{shard}", config.progress)
    upstream = load_report(store, UPSTREAM, dump, shard)
    final_round, model, head = load_final_models(store, dump)
    history = _first_round_of_label(store, dump, shard, final_round)
    cached_ids, cached_emb = _read_embeddings(store, dump, shard)
    cached = {d: i for i, d in enumerate(cached_ids)}
    counts: Counter = Counter()
    reasons: Counter = Counter()
    docs = fine_docs = 0
    coarse_seconds = fine_seconds = 0.0
    with store.table_writer(labels_path(dump, shard), LABELS_SCHEMA) as writer:
        for batch in store.iter_batches(documents_path(UPSTREAM, dump, shard), ["doc_id", "text"], EMBED_BATCH):
            ids = batch.column("doc_id").to_pylist()
            texts = [t or "" for t in batch.column("text").to_pylist()]
            if not ids:
                continue
            docs += len(ids)
            if model is None:
                for doc_id, text in zip(ids, texts):
                    reason = REASON_EMPTY if not text.strip() else REASON_NO_SEEDS
                    counts[UNCLASSIFIED] += 1
                    reasons[reason] += 1
                    writer.write({"doc_id": doc_id, "domain": UNCLASSIFIED, "score": 0.0, "runner_up": "",
                                  "runner_up_score": 0.0, "round": 0, "reason": reason, "chars": len(text)})
                progress.advance(len(ids), 0)
                continue
            t0 = time.perf_counter()
            coarse = coarse_scores(model, texts, cfg.coarse_threshold, cfg.coarse_word_ngrams)
            coarse = [c if t.strip() else {} for c, t in zip(coarse, texts)]
            t1 = time.perf_counter()
            positive = [i for i, c in enumerate(coarse) if c]
            fine_docs += len(positive)
            missing = [i for i in positive if ids[i] not in cached]
            fresh = dict(zip(missing, encoder.encode([texts[i] for i in missing]))) if missing else {}
            emb = np.zeros((len(positive), head.weights.shape[0]), np.float32)
            for row, i in enumerate(positive):
                emb[row] = fresh[i] if i in fresh else cached_emb[cached[ids[i]]]
            decisions = fine_decisions(head, coarse, emb, cfg.fine_threshold)
            coarse_seconds += t1 - t0
            fine_seconds += time.perf_counter() - t1
            for doc_id, text, dec in zip(ids, texts, decisions):
                domain = dec.domain or UNCLASSIFIED
                reason = "" if dec.domain else (REASON_EMPTY if not text.strip() else dec.reason)
                seen = history.get(doc_id, {})
                # The round since which the document has held its final domain without a break.
                rnd = final_round
                while rnd > 1 and seen.get(rnd - 1) == domain:
                    rnd -= 1
                counts[domain] += 1
                if reason:
                    reasons[reason] += 1
                writer.write({"doc_id": doc_id, "domain": domain, "score": dec.score, "runner_up": dec.runner_up,
                              "runner_up_score": dec.runner_up_score, "round": rnd, "reason": reason,
                              "chars": len(text)})
            progress.advance(len(ids), sum(1 for d in decisions if d.domain))
    report = {"dump": dump, "shard": shard, "docs": docs, "classified": docs - counts.get(UNCLASSIFIED, 0),
              "fine_stage_docs": fine_docs, "fine_stage_share": round(fine_docs / docs, 4) if docs else 0.0,
              "by_domain": dict(sorted(counts.items())), "unclassified_reasons": dict(reasons),
              "final_round": final_round, "baseline_docs": upstream.baseline_docs,
              "coarse_seconds": round(coarse_seconds, 4), "fine_seconds": round(fine_seconds, 4),
              "seconds": round(time.perf_counter() - started, 3)}
    store.write_json(_file(LABELS, dump, shard, "stats.json"), report)
    progress.finish()
    return report


def verify_labels(store: CorpusStore, dump: str, shard: str) -> tuple[bool, dict]:
    """Every rw_deduped document of the shard has exactly one label row, and nothing else does."""
    upstream_ids = []
    for batch in store.iter_batches(documents_path(UPSTREAM, dump, shard), ["doc_id"]):
        upstream_ids.extend(batch.column("doc_id").to_pylist())
    labelled = store.read_table(labels_path(dump, shard), columns=["doc_id", "domain"])
    label_ids = labelled.column("doc_id").to_pylist()
    facts = {"docs_in": len(upstream_ids), "label_rows": len(label_ids),
             "distinct_labelled": len(set(label_ids)),
             "missing": len(set(upstream_ids) - set(label_ids)), "unknown": len(set(label_ids) - set(upstream_ids))}
    passed = (facts["docs_in"] == facts["label_rows"] == facts["distinct_labelled"]
              and facts["missing"] == 0 and facts["unknown"] == 0)
    return passed, facts


# -- 4. subsets ----------------------------------------------------------------------------

def build_domain_subset(store: CorpusStore, dump: str, domain: str, shards: list[str]) -> dict:
    started = time.perf_counter()
    docs = chars = dump_docs = baseline = 0
    with store.table_writer(subset_path(dump, domain), SUBSET_SCHEMA) as writer:
        for shard in shards:
            stats = store.read_json(_file(LABELS, dump, shard, "stats.json"))
            dump_docs += stats["docs"]
            baseline += stats["baseline_docs"]
            table = store.read_table(labels_path(dump, shard), columns=["doc_id", "domain", "score", "chars"],
                                     filters=[("domain", "=", domain)])
            docs += table.num_rows
            chars += int(pc.sum(table.column("chars")).as_py() or 0) if table.num_rows else 0
            writer.write_table(pa.table({"doc_id": table.column("doc_id"),
                                         "shard": pa.array([shard] * table.num_rows, pa.string()),
                                         "score": table.column("score"), "chars": table.column("chars")},
                                        schema=SUBSET_SCHEMA))
    report = {"dump": dump, "domain": domain, "docs": docs, "chars": chars, "dump_docs": dump_docs,
              "share_of_dump": round(docs / dump_docs, 6) if dump_docs else 0.0,
              "cumulative_retention": round(docs / baseline, 6) if baseline else 0.0,
              "seconds": round(time.perf_counter() - started, 3)}
    store.write_json(_file(SUBSETS, dump, domain, "stats.json"), report)
    return report


def verify_subset(store: CorpusStore, dump: str, domain: str, shards: list[str],
                  partitions: Sequence[str]) -> tuple[bool, dict]:
    """The subset holds exactly the documents labelled ``domain``; and over the dump, every
    rw_deduped document has exactly one label, and every label's domain is one of the
    subset partitions (``partitions``: the current taxonomy's names + unclassified), so
    documents in = the sum over subsets. Labels made with another taxonomy fail it."""
    subset_ids = store.read_table(subset_path(dump, domain), columns=["doc_id"]).column("doc_id").to_pylist()
    expected: list[str] = []
    upstream = labelled = 0
    shards_ok = True
    label_domains: set = set()
    for shard in shards:
        ok, facts = verify_labels(store, dump, shard)
        shards_ok &= ok
        upstream += facts["docs_in"]
        labelled += facts["label_rows"]
        table = store.read_table(labels_path(dump, shard), columns=["doc_id", "domain"])
        label_domains.update(pc.unique(table.column("domain")).to_pylist())
        mask = pc.fill_null(pc.equal(table.column("domain"), domain), False)
        expected.extend(table.filter(mask).column("doc_id").to_pylist())
    orphans = sorted(str(d) for d in label_domains - set(partitions))
    facts = {"subset_docs": len(subset_ids), "labelled_as_domain": len(expected), "dump_docs_in": upstream,
             "dump_label_rows": labelled, "every_doc_in_one_subset": bool(shards_ok) and not orphans,
             "domains_without_partition": orphans[:50], "domains_without_partition_count": len(orphans)}
    passed = shards_ok and not orphans and sorted(subset_ids) == sorted(expected) and upstream == labelled
    return passed, facts


# -- 5. analyses ---------------------------------------------------------------------------

def _benchmark_texts(path: Path) -> tuple[list[str], int]:
    """The texts of a JSONL benchmark, and the count of lines skipped (not JSON, not an
    object, or no question/prompt/text string)."""
    opener = gzip.open if path.suffix == ".gz" else open
    texts, skipped = [], 0
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            text = (row.get("question") or row.get("prompt") or row.get("text")) if isinstance(row, dict) else None
            if isinstance(text, str) and text.strip():
                texts.append(text)
            else:
                skipped += 1
    return texts, skipped


def _benchmark_names(files: Sequence[str]) -> dict[str, str]:
    """file -> the benchmark's name: the stem before the first dot, or the whole file name
    where two files share that stem (one would overwrite the other)."""
    stems = Counter(name.split(".")[0] for name in files)
    return {name: name.split(".")[0] if stems[name.split(".")[0]] == 1 else name for name in files}


def benchmark_dir(config: PipelineConfig) -> Path:
    return Path(config.domains.benchmark_dir) if config.domains.benchmark_dir else REPO_ROOT.parent / "shared" / "data" / "benchmarks"


def _sample_evenly(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def build_domain_benchmark_similarity(store: CorpusStore, dumps: list[str], shards: list[str],
                                      config: PipelineConfig, encoder) -> dict:
    cfg = config.domains
    started = time.perf_counter()
    per_domain: dict[str, list[tuple[str, str, str]]] = {}
    for dump in dumps:
        for shard in shards:
            rel = labels_path(dump, shard)
            if not store.exists(rel):
                continue
            t = store.read_table(rel, columns=["doc_id", "domain"])
            for doc_id, domain in zip(t.column("doc_id").to_pylist(), t.column("domain").to_pylist()):
                if domain != UNCLASSIFIED:
                    per_domain.setdefault(domain, []).append((dump, shard, doc_id))
    eligible = {d: v for d, v in per_domain.items() if len(v) >= cfg.similarity_min_docs}
    benches = {}
    bdir = benchmark_dir(config)
    missing_benchmarks = []
    skipped_lines = {}
    bench_names = _benchmark_names(cfg.benchmark_files)
    for name in cfg.benchmark_files:
        p = bdir / name
        if p.exists():
            benches[bench_names[name]], skipped_lines[name] = _benchmark_texts(p)
        else:
            missing_benchmarks.append(str(p))
    # Equal-size samples of n documents; a domain smaller than n (but >= similarity_min_docs)
    # enters with all its documents, and its row says so (sample_docs).
    n = min([cfg.similarity_sample_size] + [len(v) for v in benches.values()])
    report = {"sample_size": n, "domains": sorted(eligible), "benchmarks": sorted(benches),
              "skipped_domains": {d: len(v) for d, v in per_domain.items() if d not in eligible},
              "missing_benchmarks": missing_benchmarks, "benchmark_skipped_lines": skipped_lines, "rows": [], "bandwidth": None,
              "kernel": "rbf, sigma = median pairwise distance of the pooled samples",
              "wasserstein": f"sliced W1, {cfg.sliced_projections} projections, seed 0"}
    if not eligible or not benches or n < 2:
        store.write_json(_file(SIMILARITY, "stats.json"), report)
        return report
    wanted: dict[tuple[str, str], set] = {}
    samples_ids = {d: _sample_evenly(sorted(v), n) for d, v in eligible.items()}
    for d, picks in samples_ids.items():
        for dump, shard, doc_id in picks:
            wanted.setdefault((dump, shard), set()).add(doc_id)
    texts: dict[str, str] = {}
    for (dump, shard), ids in wanted.items():
        for row in store.iter_rows(documents_path(UPSTREAM, dump, shard), columns=["doc_id", "text"]):
            if row["doc_id"] in ids:
                texts[row["doc_id"]] = row["text"] or ""
    emb = {d: encoder.encode([texts[i] for _, _, i in picks]) for d, picks in samples_ids.items()}
    bemb = {b: encoder.encode(_sample_evenly(v, n)) for b, v in benches.items()}
    sigma = analysis.median_bandwidth(list(emb.values()) + list(bemb.values()))
    domains, bnames = sorted(emb), sorted(bemb)
    mmd = np.zeros((len(domains), len(bnames)))
    sw = np.zeros_like(mmd)
    for i, d in enumerate(domains):
        for j, b in enumerate(bnames):
            mmd[i, j] = analysis.mmd_rbf(emb[d], bemb[b], sigma)
            sw[i, j] = analysis.sliced_wasserstein(emb[d], bemb[b], cfg.sliced_projections)
            report["rows"].append({"domain": d, "benchmark": b, "sample_docs": len(emb[d]),
                                   "mmd": round(float(mmd[i, j]), 5),
                                   "sliced_wasserstein": round(float(sw[i, j]), 5)})
    report["bandwidth"] = round(sigma, 5)
    png = analysis.heatmap_png(mmd, domains, bnames, f"MMD (RBF, sigma={sigma:.3f}), up to {n} docs per sample")
    with store.table_writer(_file(SIMILARITY, "heatmap.parquet"), BLOB_SCHEMA) as writer:
        writer.write_table(pa.table({"name": ["mmd_heatmap.png"], "data": [png]}, schema=BLOB_SCHEMA))
    report["heatmap_markdown"] = analysis.png_markdown(png, "MMD heatmap: domains x benchmarks")
    report["seconds"] = round(time.perf_counter() - started, 3)
    store.write_json(_file(SIMILARITY, "stats.json"), report)
    return report


def build_domain_url_overlap(store: CorpusStore, dumps: list[str], shards: list[str], config: PipelineConfig) -> dict:
    """URL TF-IDF over each domain's top-k URLs. A "URL" here is the host: the documents
    of the sample are distinct pages, so page URLs would never repeat."""
    counts: dict[str, Counter] = {}
    for dump in dumps:
        for shard in shards:
            rel = labels_path(dump, shard)
            if not store.exists(rel):
                continue
            labels = {r["doc_id"]: r["domain"] for r in store.iter_rows(rel, columns=["doc_id", "domain"])}
            for row in store.iter_rows(documents_path(UPSTREAM, dump, shard), columns=["doc_id", "url"]):
                domain = labels.get(row["doc_id"])
                if domain and domain != UNCLASSIFIED:
                    counts.setdefault(domain, Counter())[root_of(row["url"]) or "(no host)"] += 1
    top = {d: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[: config.domains.url_top_k] for d, c in counts.items()}
    rows = analysis.url_tfidf(top)
    pairs = analysis.url_overlap_pairs(top)
    report = {"domains": len(top), "top_k": config.domains.url_top_k, "rows": rows, "overlaps": pairs,
              "pooled_occurrences": sum(c for r in top.values() for _, c in r)}
    store.write_json(_file(URL_OVERLAP, "stats.json"), report)
    return report

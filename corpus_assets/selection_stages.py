"""Targeted selection as stage functions, one target at a time: what the selection assets
call; no Dagster here.

1. ``build_selection_pool``: the target's examples split into the ones selection looks at
   and a held-out share, and the candidate pool: a deterministic sample of each external
   source plus ``rw_deduped``, minus every document that shares a 13-gram with any target
   example (held-out ones included), each removal with its reason.
2. ``build_zipfit_selection`` / ``build_dsir_selection``: score the pool, keep the same
   ``k`` documents, write them with their score and rank.
3. ``build_selection_comparison``: CPU seconds, overlap, composition by source, and the
   held-out examples' bits per byte under a byte n-gram LM trained on each selection and
   on a random selection of the same size.

Files, under ``<asset>/<target>/``: ``documents.parquet`` (the documents: doc_id, source,
domain, lineage_id, url, text, and score + rank for a selection), ``removed.parquet`` (the
pool's removals), ``target_examples.parquet`` (the pool's: example_id, split, text) and
``stats.json``, written last. The pool streams through in batches: memory holds one batch
of text plus one float per pool document.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import json
import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa

from corpus_assets.config import PipelineConfig
from corpus_assets.steps.selection import dsir, zipfit
from corpus_assets.steps.selection.config import SelectionConfig, SelectionSource, SelectionTarget
from corpus_assets.steps.selection.decontamination import REASONS as DECONTAMINATION_REASONS, ContaminationIndex
from corpus_assets.steps.selection.ngram_lm import ByteNgramLM
from corpus_assets.storage import CorpusStore

POOL = "selection_pool"
ZIPFIT = "zipfit_selection"
DSIR = "dsir_selection"
COMPARISON = "selection_comparison"
RW_SOURCE = "rw_deduped"
SELECT, HELDOUT = "select", "heldout"
READ_BATCH = 256

POOL_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("source", pa.string()), ("domain", pa.string()),
    ("lineage_id", pa.string()), ("url", pa.string()), ("text", pa.string()),
])
SELECTION_SCHEMA = pa.schema(list(POOL_SCHEMA) + [("score", pa.float64()), ("rank", pa.int64())])
POOL_REMOVED_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("source", pa.string()), ("lineage_id", pa.string()),
    ("reason", pa.string()), ("detail", pa.string()),
])
EXAMPLES_SCHEMA = pa.schema([("example_id", pa.string()), ("split", pa.string()), ("text", pa.string())])


def table_path(asset: str, target: str, name: str = "documents.parquet") -> str:
    return f"{asset}/{target}/{name}"


def stats_path(asset: str, target: str) -> str:
    return table_path(asset, target, "stats.json")


def data_dir(cfg: SelectionConfig) -> Path:
    """Where relative source and target paths live: ``data_dir``, else ``$CORPUS_SELECTION_DATA``,
    else ``../shared/data`` beside the checkout."""
    if cfg.data_dir:
        return Path(cfg.data_dir)
    env = os.environ.get("CORPUS_SELECTION_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def resolve_path(cfg: SelectionConfig, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else data_dir(cfg) / p


def _unit_hash(*parts) -> float:
    """A seeded, order-independent uniform number in [0, 1) for sampling and splits."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def _field_text(value) -> str:
    """A field as text: strings as they are, other JSON values (numbers, booleans, lists,
    objects) as JSON text, so ``true`` stays ``true`` rather than Python's ``True``."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _joined(record: dict, fields: tuple[str, ...]) -> str:
    text = "\n".join(_field_text(record[f]) for f in fields if record.get(f) not in (None, ""))
    # JSON may escape lone surrogates ("\ud800"), which no UTF-8 writer accepts.
    return text.encode("utf-8", "replace").decode("utf-8")


def iter_jsonl(path: Path) -> Iterator[tuple[int, Optional[dict]]]:
    """(line number, record or None when the line is not a JSON object); blank lines skipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    # utf-8-sig: a byte order mark would otherwise make the first line unreadable JSON.
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as fh:
        for i, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            yield i, record if isinstance(record, dict) else None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list) -> dict:
    record = dict(pairs)
    if len(record) != len(pairs):
        raise _DuplicateKey
    return record


NOT_UTF8, DUPLICATE_KEY, NOT_AN_OBJECT = "not_utf8", "duplicate_json_key", "not_a_json_object"


def iter_jsonl_checked(path: Path) -> Iterator[tuple[int, Optional[dict], str]]:
    """(line number, record, "") or (line number, None, why it is not a record): bytes that
    are not UTF-8 (``not_utf8``: never decoded into U+FFFD text), an object with a key twice
    (``duplicate_json_key``: which value was meant is unknown), anything else that is not a
    JSON object. Lines are split on ``\n`` only; blank lines skipped; a leading byte order
    mark ignored."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for i, raw in enumerate(fh):
            if i == 0 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield i, None, NOT_UTF8
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=_unique_keys)
            except _DuplicateKey:
                yield i, None, DUPLICATE_KEY
                continue
            except ValueError:
                record = None
            yield (i, record, "") if isinstance(record, dict) else (i, None, NOT_AN_OBJECT)


# -- targets -----------------------------------------------------------------------------------

def load_target_examples(cfg: SelectionConfig, target: SelectionTarget) -> tuple[list[dict], dict]:
    """Every usable example of the target with its split; the held-out ones are the
    ``heldout_fraction`` with the lowest seeded hash of their line number."""
    path = resolve_path(cfg, target.path)
    if not path.is_file():
        raise FileNotFoundError(f"selection target {target.name}: no such file {path}")
    examples, unusable = [], Counter()
    # The checked reader, as for the pool's sources: bytes that are not UTF-8 and records
    # with a key twice are counted, never decoded into U+FFFD text or a guessed value.
    for line, record, problem in iter_jsonl_checked(path):
        if record is None:
            unusable[problem] += 1
            continue
        text = _joined(record, target.fields)
        if not text.strip():
            unusable["no_text_in_fields"] += 1
            continue
        examples.append({"example_id": f"{target.name}:{line}", "text": text})
    if len(examples) < 2:
        # One example to select with and one held out to judge with, at the least; with
        # none, ZIP-FIT scores 0 everywhere and DSIR's target is uniform: nothing to select.
        raise ValueError(f"selection target {target.name}: {len(examples)} usable example(s) in {path} "
                         f"(fields {list(target.fields)}; unusable lines: {dict(unusable) or 'none'}); "
                         "at least 2 are needed, one to select with and one held out")
    order = sorted(range(len(examples)), key=lambda i: _unit_hash(cfg.seed, target.name, examples[i]["example_id"]))
    n_heldout = min(len(examples) - 1, max(1, round(target.heldout_fraction * len(examples))))
    heldout = set(order[:n_heldout])
    for i, ex in enumerate(examples):
        ex["split"] = HELDOUT if i in heldout else SELECT
    facts = {"path": str(path), "examples": len(examples), "heldout": n_heldout,
             "select": len(examples) - n_heldout, "unusable": dict(unusable)}
    return examples, facts


def scoring_examples(cfg: SelectionConfig, examples: list[dict]) -> list[str]:
    """The target examples both methods score against: the non-held-out ones, a seeded
    sample of ``max_target_examples`` when there are more."""
    chosen = [e for e in examples if e["split"] == SELECT]
    if 0 < cfg.max_target_examples < len(chosen):
        chosen = sorted(chosen, key=lambda e: _unit_hash(cfg.seed, "score", e["example_id"]))[: cfg.max_target_examples]
        chosen.sort(key=lambda e: e["example_id"])
    return [e["text"] for e in chosen]


# -- the pool -----------------------------------------------------------------------------------

def _source_documents(cfg: SelectionConfig, source: SelectionSource, counts: Counter) -> Iterator[dict]:
    seen: set[bytes] = set()  # 8-byte hashes of the doc ids read so far
    for line, record, problem in iter_jsonl_checked(resolve_path(cfg, source.path)):
        counts["available"] += 1
        if record is None:
            counts[problem] += 1
            continue
        text = _joined(record, source.fields)
        if not text.strip():
            counts["empty_text"] += 1
            continue
        value = record.get(source.id_field) if source.id_field else None
        if value is None or value == "":
            # The line number, under '#': a source name has no '#', so these doc ids cannot
            # collide with a record whose own id reads "line:3" (doc id "<source>/line:3").
            lineage, doc_id = f"line:{line}", f"{source.name}#line:{line}"
        else:
            # 0 is an id like any other; a lone surrogate cannot be written as UTF-8
            lineage = _field_text(value).encode("utf-8", "replace").decode("utf-8")
            doc_id = f"{source.name}/{lineage}"
        key = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        if key in seen:
            counts["duplicate_lineage_id"] += 1  # the first record with an id is kept
            continue
        seen.add(key)
        yield {"doc_id": doc_id, "source": source.name, "domain": source.domain_of(record),
               "lineage_id": lineage, "url": None, "text": text}


def _rw_documents(store: CorpusStore, counts: Counter, num_shards: Optional[int] = None) -> Iterator[dict]:
    """The documents of the complete rw_deduped partitions; with ``num_shards``, of its
    shards only (a shard folder left by a run with another ``num_shards`` is not read)."""
    from corpus_assets.crawl import shard_key

    current = {shard_key(i, num_shards) for i in range(num_shards)} if num_shards else None
    for rel in store.list(f"{RW_SOURCE}/"):
        if not rel.endswith("/documents.parquet") or not store.exists(rel.rsplit("/", 1)[0] + "/stats.json"):
            continue  # a partition is complete once its stats.json is written
        parts = rel.split("/")
        if current is not None and (len(parts) != 4 or parts[2] not in current):
            continue
        for row in store.iter_rows(rel, ["doc_id", "url", "text"]):
            counts["available"] += 1
            if not (row.get("text") or "").strip():
                counts["empty_text"] += 1
                continue
            yield {"doc_id": f"{RW_SOURCE}/{row['doc_id']}", "source": RW_SOURCE, "domain": "web",
                   "lineage_id": row["doc_id"], "url": row.get("url"), "text": row["text"]}


def _sample(docs: Iterator[dict], cap: int, seed: int, counts: Counter) -> list[dict]:
    """The ``cap`` documents with the lowest seeded hash of their lineage id (all when
    ``cap <= 0``), in their original order; ``heapq.nsmallest`` holds ``cap`` at a time."""
    if cap <= 0:
        kept = list(docs)
    else:
        keyed = ((_unit_hash(seed, d["source"], d["lineage_id"]), i, d) for i, d in enumerate(docs))
        kept = [d for _, _, d in sorted(heapq.nsmallest(cap, keyed, key=lambda t: (t[0], t[1])), key=lambda t: t[1])]
    counts["sampled"] = len(kept)
    return kept


def build_selection_pool(store: CorpusStore, target_name: str, config: PipelineConfig) -> dict:
    cfg = config.selection
    target = cfg.target(target_name)
    started = time.perf_counter()
    examples, target_facts = load_target_examples(cfg, target)
    # Every example, held-out ones included: none of them may sit in the pool.
    index = ContaminationIndex((e["text"] for e in examples), cfg.decontamination_n, cfg.decontamination_min_tokens)
    with store.table_writer(table_path(POOL, target_name, "target_examples.parquet"), EXAMPLES_SCHEMA) as writer:
        writer.write_many({"example_id": e["example_id"], "split": e["split"], "text": e["text"]} for e in examples)

    per_source: dict[str, dict] = {}
    removed_by_reason: Counter = Counter()
    docs_in = docs_out = chars_in = chars_out = 0
    # (name, domain, where it is read from, or None when that file is missing, and a
    # function counts -> the source's sampled documents)
    sources = []
    for source in cfg.sources:
        cap = source.max_docs if source.max_docs >= 0 else cfg.max_docs_per_source
        path = resolve_path(cfg, source.path)
        sources.append((source.name, source.domain, str(path), path.is_file(),
                        lambda c, s=source, cap=cap: _sample(_source_documents(cfg, s, c), cap, cfg.seed, c)))
    if cfg.include_rw_deduped:
        sources.append((RW_SOURCE, "web", store.uri(RW_SOURCE), True,
                        lambda c: _sample(_rw_documents(store, c, config.num_shards), cfg.max_docs_per_source,
                                          cfg.seed, c)))

    with store.table_writer(table_path(POOL, target_name), POOL_SCHEMA) as kept, \
            store.table_writer(table_path(POOL, target_name, "removed.parquet"), POOL_REMOVED_SCHEMA) as removed:
        for name, domain, source_path, present, read in sources:
            counts: Counter = Counter()
            if not present:
                # An absent source is reported, not fatal: the pool is built from the others.
                per_source[name] = {"domain": domain, "path": source_path, "missing": True}
                continue
            for doc in read(counts):
                docs_in += 1
                chars_in += len(doc["text"])
                match = index.match(doc["text"])
                if match is not None:
                    reason, detail = match
                    counts[reason] += 1
                    removed_by_reason[reason] += 1
                    removed.write({"doc_id": doc["doc_id"], "source": name, "lineage_id": doc["lineage_id"],
                                   "reason": reason, "detail": detail[:200]})
                    continue
                kept.write(doc)
                counts["kept"] += 1
                docs_out += 1
                chars_out += len(doc["text"])
            per_source[name] = {"domain": domain, "path": source_path, **counts}
    report = {
        "target": target_name, "target_facts": target_facts, "docs_in": docs_in, "docs_out": docs_out,
        "chars_in": chars_in, "chars_out": chars_out, "removed_by_reason": dict(removed_by_reason),
        "per_source": per_source, "decontamination": {"n": cfg.decontamination_n,
                                                      "min_tokens": cfg.decontamination_min_tokens,
                                                      "target_grams": len(index.grams),
                                                      "target_whole_texts": len(index.whole_texts)},
        "seconds": round(time.perf_counter() - started, 3),
    }
    store.write_json(stats_path(POOL, target_name), report)
    return report


def load_pool_report(store: CorpusStore, target: str) -> dict:
    rel = stats_path(POOL, target)
    if not store.exists(rel):
        raise FileNotFoundError(f"{POOL} has not been materialized for target {target}")
    return store.read_json(rel)


def _pool_texts(store: CorpusStore, target: str) -> Iterator[str]:
    for row in store.iter_rows(table_path(POOL, target), ["text"]):
        yield row["text"] or ""


def _target_examples(store: CorpusStore, target: str) -> list[dict]:
    return list(store.iter_rows(table_path(POOL, target, "target_examples.parquet")))


# -- selections -------------------------------------------------------------------------------

def selection_size(cfg: SelectionConfig, pool_docs: int) -> int:
    k = cfg.k if cfg.k > 0 else math.ceil(cfg.top_fraction * pool_docs)
    return min(k, pool_docs)


class _CpuClock:
    """CPU seconds of this process and of its finished (reaped) child processes, plus what
    workers report (``add_worker_cpu``) for processes we do not reap (a forkserver's)."""

    def __enter__(self):
        t = os.times()
        self._start = (t.user + t.system, t.children_user + t.children_system, time.perf_counter())
        return self

    def __exit__(self, *exc):
        t = os.times()
        self.cpu_self = t.user + t.system - self._start[0]
        self.cpu_children = t.children_user + t.children_system - self._start[1]
        self.cpu_seconds = round(self.cpu_self + self.cpu_children, 3)
        self.wall_seconds = round(time.perf_counter() - self._start[2], 3)
        return False

    def add_worker_cpu(self, seconds: float) -> None:
        """CPU time that worker processes reported themselves (not reaped by us)."""
        self.cpu_seconds = round(self.cpu_seconds + seconds, 3)


def histogram(scores: np.ndarray, chosen: np.ndarray, bins: int) -> list[dict]:
    """Pool and selected documents per score bin (equal-width bins over the pool's range)."""
    if len(scores) == 0:
        return []
    lo, hi = float(scores.min()), float(scores.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-9, bins + 1)
    pool_counts, _ = np.histogram(scores, edges)
    selected_counts, _ = np.histogram(scores[chosen], edges)
    return [{"bin_low": round(float(edges[i]), 6), "bin_high": round(float(edges[i + 1]), 6),
             "pool_docs": int(pool_counts[i]), "selected_docs": int(selected_counts[i])} for i in range(bins)]


def _write_selection(store: CorpusStore, asset: str, target: str, scores: np.ndarray, chosen: np.ndarray) -> dict:
    """Second pass over the pool: write the chosen documents with score and rank, best (or
    first drawn) first. Holds the k chosen rows (the selection is a top share of the pool)."""
    rank_of = {int(i): r for r, i in enumerate(chosen)}
    rows = []
    for position, row in enumerate(store.iter_rows(table_path(POOL, target), list(POOL_SCHEMA.names))):
        if position in rank_of:
            row.update(score=float(scores[position]), rank=rank_of[position])
            rows.append(row)
    rows.sort(key=lambda r: r["rank"])
    with store.table_writer(table_path(asset, target), SELECTION_SCHEMA) as writer:
        writer.write_many(rows)
    return {"selected_docs": len(rows), "selected_chars": sum(len(r["text"]) for r in rows),
            "composition": composition(rows, "source"), "composition_by_domain": composition(rows, "domain")}


def _finish_selection(store, asset, target, cfg, pool, scores, chosen, clock, extra) -> dict:
    written = _write_selection(store, asset, target, scores, chosen)
    report = {
        "target": target, "method": asset, "k": len(chosen), "pool_docs": pool["docs_out"],
        "pool_chars": pool["chars_out"], **written,
        "retention": round(written["selected_docs"] / pool["docs_out"], 6) if pool["docs_out"] else 0.0,
        "cpu_seconds": clock.cpu_seconds, "wall_seconds": clock.wall_seconds,
        "histogram": histogram(scores, chosen, cfg.histogram_bins),
        "score_min": float(scores.min()) if len(scores) else None,
        "score_max": float(scores.max()) if len(scores) else None, **extra,
    }
    store.write_json(stats_path(asset, target), report)
    return report


def build_zipfit_selection(store: CorpusStore, target: str, config: PipelineConfig) -> dict:
    cfg = config.selection
    pool = load_pool_report(store, target)
    examples = scoring_examples(cfg, _target_examples(store, target))
    workers = cfg.workers or zipfit.default_workers()
    k = selection_size(cfg, pool["docs_out"])
    worker_stats: dict = {}
    with _CpuClock() as clock:
        scores = (zipfit.score_candidates(_pool_texts(store, target), examples, cfg.compression_level, workers,
                                          stats=worker_stats)
                  if examples else np.zeros(pool["docs_out"]))
        chosen = zipfit.top_k(scores, k)
    clock.add_worker_cpu(worker_stats.get("worker_cpu_seconds", 0.0))
    pairs = len(scores) * len(examples)
    return _finish_selection(store, ZIPFIT, target, cfg, pool, scores, chosen, clock, {
        "score": "mean over target examples of 1 - NCD (gzip)", "compression_level": cfg.compression_level,
        "target_examples": len(examples), "pairs": pairs, "workers": workers,
        "pairs_per_cpu_second": round(pairs / clock.cpu_seconds, 1) if clock.cpu_seconds else None,
    })


def build_dsir_selection(store: CorpusStore, target: str, config: PipelineConfig) -> dict:
    cfg = config.selection
    pool = load_pool_report(store, target)
    examples = scoring_examples(cfg, _target_examples(store, target))
    k = selection_size(cfg, pool["docs_out"])
    with _CpuClock() as clock:
        target_probs = dsir.fit_distribution(examples, cfg.dsir_buckets, cfg.dsir_order, cfg.dsir_alpha)
        raw_probs = dsir.fit_distribution(_pool_texts(store, target), cfg.dsir_buckets, cfg.dsir_order, cfg.dsir_alpha)
        estimator = dsir.ImportanceEstimator(target_probs, raw_probs, cfg.dsir_order)
        scores = estimator.log_weights(_pool_texts(store, target))
        chosen = dsir.gumbel_top_k(scores, k, seed=cfg.seed)
    return _finish_selection(store, DSIR, target, cfg, pool, scores, chosen, clock, {
        "score": "log importance weight (hashed n-grams)", "buckets": cfg.dsir_buckets, "order": cfg.dsir_order,
        "alpha": cfg.dsir_alpha, "seed": cfg.seed, "target_examples": len(examples),
        "pairs": len(scores) * len(examples),
    })


# -- comparison -------------------------------------------------------------------------------

def _selection_rows(store: CorpusStore, asset: str, target: str) -> list[dict]:
    rel = table_path(asset, target)
    if not store.exists(stats_path(asset, target)):
        raise FileNotFoundError(f"{asset} has not been materialized for target {target}")
    return list(store.iter_rows(rel, ["doc_id", "source", "domain", "text"]))


def composition(rows: list[dict], key: str) -> dict:
    """Documents, characters and the share of documents per value of ``key``."""
    docs, chars = Counter(), Counter()
    for r in rows:
        docs[r[key]] += 1
        chars[r[key]] += len(r["text"] or "")
    return {s: {"docs": docs[s], "chars": chars[s], "share_docs": round(docs[s] / len(rows), 4)} for s in sorted(docs)}


def _bits_per_byte(cfg: SelectionConfig, rows: list[dict], heldout: list[str],
                   budget: Optional[int]) -> tuple[Optional[float], int]:
    lm = ByteNgramLM(cfg.lm_order).fit((r["text"] for r in rows), max_bytes=budget)
    bits = lm.bits_per_byte(heldout)
    return (round(bits, 4) if math.isfinite(bits) else None), lm.train_bytes


def build_selection_comparison(store: CorpusStore, target: str, config: PipelineConfig) -> dict:
    """Same pool, same k. The held-out measure is taken twice: on each selection whole
    (same number of documents) and on the same number of training bytes for every method
    (each selection's text in rank order, cut at the smallest selection's size): an n-gram
    LM improves with data, so "same size" in documents favours whichever picks longer ones."""
    cfg = config.selection
    pool = load_pool_report(store, target)
    heldout = [e["text"] for e in _target_examples(store, target) if e["split"] == HELDOUT]
    if not heldout:
        # The pool refuses such a target; a pool written before that rule would otherwise
        # give a comparison with null bits per byte that reads like a result.
        raise ValueError(f"selection target {target}: no held-out example to compare the selections on;"
                         f" rematerialize {POOL}")
    selections = {ZIPFIT: _selection_rows(store, ZIPFIT, target), DSIR: _selection_rows(store, DSIR, target)}
    k = len(selections[ZIPFIT])
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(pool["docs_out"])[:k]
    rank_of = {int(p): r for r, p in enumerate(order)}
    picked = [(rank_of[i], r) for i, r in enumerate(store.iter_rows(table_path(POOL, target), ["doc_id", "source", "domain", "text"]))
              if i in rank_of]
    selections["random"] = [r for _, r in sorted(picked, key=lambda t: t[0])]
    sizes = {name: sum(len((r["text"] or "").encode("utf-8")) for r in rows) for name, rows in selections.items()}
    cap = cfg.lm_max_train_bytes if cfg.lm_max_train_bytes > 0 else None
    equal_budget = min([*sizes.values(), *([cap] if cap else [])])
    methods = {}
    for name, rows in selections.items():
        stats = store.read_json(stats_path(name, target)) if name != "random" else {}
        whole, whole_bytes = _bits_per_byte(cfg, rows, heldout, cap)
        equal, _ = _bits_per_byte(cfg, rows, heldout, equal_budget)
        methods[name] = {
            "selected_docs": len(rows), "selected_chars": sum(len(r["text"] or "") for r in rows),
            "selected_bytes": sizes[name], "lm_train_bytes": whole_bytes,
            "heldout_bits_per_byte": whole, "heldout_bits_per_byte_equal_bytes": equal,
            "composition": composition(rows, "source"), "composition_by_domain": composition(rows, "domain"),
            "cpu_seconds": stats.get("cpu_seconds"), "wall_seconds": stats.get("wall_seconds"),
        }
    a = {r["doc_id"] for r in selections[ZIPFIT]}
    b = {r["doc_id"] for r in selections[DSIR]}
    report = {
        "target": target, "k": k, "pool_docs": pool["docs_out"], "pool_chars": pool["chars_out"],
        "decontamination_removed": sum(pool["removed_by_reason"].get(r, 0) for r in DECONTAMINATION_REASONS),
        "heldout_examples": len(heldout), "heldout_bytes": sum(len(h.encode("utf-8")) for h in heldout),
        "lm": f"byte-level {cfg.lm_order}-gram, interpolated Witten-Bell, uniform 1/256 base",
        "equal_train_bytes": equal_budget,
        "overlap_docs": len(a & b), "overlap_jaccard": round(len(a & b) / len(a | b), 4) if a | b else 0.0,
        "methods": methods,
    }
    store.write_json(stats_path(COMPARISON, target), report)
    return report

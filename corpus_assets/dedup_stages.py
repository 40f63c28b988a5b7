"""RefinedWeb's deduplication as stage functions: fuzzy (MinHash LSH), exact substring and
URL dedup, incremental across dumps. What the dedup assets call; no Dagster here.

Stages, in the order they run for one dump (datatrove's split of MinHash into
signatures -> buckets -> clusters -> filter, so no step holds a dump's signatures at once):

1. ``build_minhash_signatures`` (dump x shard): the LSH band keys of every ``rw_filtered``
   document, one ``uint64`` column per band, so a later stage reads one range of bands.
2. ``build_minhash_buckets`` (dump): for one band range at a time, the keys of that range
   for every document of the dump (shard by shard) -> candidate pairs, written per range;
   and which documents share a band with a document an earlier dump kept.
3. ``build_duplicate_clusters`` (dump): optionally verifies each candidate pair (exact
   Jaccard of the shingles >= ``dedup.verify_min_jaccard``), then union-find over the
   pairs (A~B and B~C put A, B, C in one cluster), then one survivor per cluster: the
   first document in dump order (shards in order, rows in order). A cluster touching an
   earlier dump's kept document keeps none of this dump's members: the earlier copy is
   the survivor, and the removals name it (doc_id and dump).
4. ``build_exact_substring_spans`` (dump): Lee et al.'s exact substring search over the
   fuzzy survivors of the dump, in dump order; per document, token spans to treat.
5. ``build_rw_deduped`` (dump x shard): applies 3 and 4 and drops URLs an earlier dump kept.
6. ``build_dedup_index`` (dump): the earlier dumps' index plus this dump's kept documents
   (band keys and URL hashes): what the next dump is deduplicated against.

Versions: the signatures' report carries a version (a digest of the documents read and
the band keys written); buckets, clusters and spans record the versions they were built
from, and each later stage records the report of the one before it. Every stage refuses
inputs built from other signatures (``StaleDedupError``), and ``dedup_state`` tells the
crawl-order sensor which stage of which dump to redo (after a threshold change, say).

Crawl order: dumps are deduplicated in ``dump_sort_key`` order (crawl date). Dump D uses
the index snapshot of the dump just before it, which must exist (``DedupOrderError``
otherwise). Every snapshot has an id; D records the id it used. Re-materializing an
older dump writes a NEW snapshot for it and never touches a newer dump's output; the newer
dump's ``index_chain`` check then fails (the snapshot it used is no longer current) and
building its own index refuses until its dedup is re-run. So what a newer dump kept never
changes silently; it changes when someone re-runs it, and the UI shows that it must be.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np
import pyarrow as pa

from corpus_assets.config import PipelineConfig
from corpus_assets.crawl import dump_sort_key
from corpus_assets.stages import StageReport, documents_path, load_report, run_document_stage, stats_path
from corpus_assets.steps.dedup import (
    ExactSubstringStep,
    MinHashDedupStep,
    OwnedHashIndex,
    SortedHashIndex,
    UnionFind,
    UrlDedupStep,
    band_ranges,
    candidate_pairs,
    composite_band_keys,
    earlier_matches,
    get_minhasher,
    get_preset,
    resolve_clusters,
    shingle_hashes64,
    url_hashes,
    verify_pairs,
)
from corpus_assets.steps.dedup.exact_substring import find_duplicate_token_spans
from corpus_assets.steps.progress import progress_for
from corpus_assets.steps.quality.line_corrections import normalize_language
from corpus_assets.steps.segmentation.profiles import profiles_for
from corpus_assets.storage import CorpusStore, publishes

UPSTREAM = "rw_filtered"
SIGNATURES = "minhash_signatures"
BUCKETS = "minhash_buckets"
CLUSTERS = "duplicate_clusters"
SPANS = "exact_substring_spans"
DEDUPED = "rw_deduped"
INDEX = "dedup_index"
CLUSTER_SIZE_FIELD = "minhash_cluster_size"
SIGNATURE_BATCH = 512


class DedupOrderError(RuntimeError):
    """A dump's dedup was asked for before an earlier dump's (crawl order), or against an
    earlier index that has changed since."""


class StaleDedupError(DedupOrderError):
    """A dedup stage was asked to use the output of an earlier stage that was built from
    other signatures (or other rw_filtered documents) than the current ones: after a
    threshold change, rw_filtered and the signatures re-run while the clusters still hold
    the old documents' decisions. Re-run the dump's dedup from minhash_buckets."""


def band_column(j: int) -> str:
    return f"band_{j:04d}"


def signatures_path(dump: str, shard: str) -> str:
    return f"{SIGNATURES}/{dump}/{shard}/band_keys.parquet"


def _dump_file(asset: str, dump: str, name: str) -> str:
    return f"{asset}/{dump}/{name}"


# -- 1. signatures ---------------------------------------------------------------------

def _digest_docs(digest, ids, texts) -> None:
    # Length-prefixed, so that no two different (id, text) sequences feed the same bytes.
    for doc_id, text in zip(ids, texts):
        for value in (doc_id, text):
            data = (value or "").encode("utf-8", "surrogatepass")
            digest.update(b"%d:" % len(data))
            digest.update(data)


def _json_digest(store: CorpusStore, rel: str) -> Optional[str]:
    """Identity of one materialization of a stage: a digest of its report (stats.json
    holds the run's timing, so every run has its own), None when there is none."""
    if not store.exists(rel):
        return None
    return hashlib.sha256(json.dumps(store.read_json(rel), sort_keys=True).encode()).hexdigest()[:16]


def _report_digest(store: CorpusStore, asset: str, dump: str, shard: str) -> Optional[str]:
    return _json_digest(store, stats_path(asset, dump, shard))


def signature_versions(store: CorpusStore, dump: str, shards: list[str]) -> dict:
    """shard -> version of its current signatures (None when missing or written before
    signatures had versions)."""
    versions = {}
    for shard in shards:
        rel = stats_path(SIGNATURES, dump, shard)
        versions[shard] = store.read_json(rel).get("version") if store.exists(rel) else None
    return versions


def _segmenters(config: PipelineConfig):
    """language -> segmenter for the profiled languages written without spaces (empty
    for English-only settings: whitespace words everywhere, as before)."""
    profiles = profiles_for(config)
    return {lang: p.segmenter for lang, p in profiles.profiles.items() if p.segmenter_name != "whitespace"}


def _segmenter_of_language(segmenters: dict, language) -> Optional[object]:
    if not segmenters:
        return None
    return segmenters.get(normalize_language(language))


def dedup_segmenter_identities(config: PipelineConfig) -> dict:
    """Segmenter identities of the languages dedup segments (part of its code versions)."""
    return profiles_for(config).segmenter_identities()


def index_segmenter_identities(config: PipelineConfig) -> dict:
    """language -> segmenter identity of every profiled language, whitespace ones included
    (recorded in the dedup index: band keys of different segmenters never match)."""
    return {lang: p.segmenter.identity for lang, p in profiles_for(config).profiles.items()}


@publishes(SIGNATURES + "/{dump}/{shard}")
def build_minhash_signatures(store: CorpusStore, dump: str, shard: str, config: PipelineConfig, log=None) -> dict:
    """Band keys of every rw_filtered document of the shard, in row order.

    The report carries ``version``: a digest of the preset, the documents read (ids and
    texts) and the band keys written. Buckets, clusters and spans record the versions
    they were built from, so a stage downstream can tell decisions about these
    signatures from decisions about older ones."""
    load_report(store, UPSTREAM, dump, shard)  # fails clearly when upstream is missing
    upstream_identity = _report_digest(store, UPSTREAM, dump, shard)
    preset = get_preset(config.dedup.minhash_preset)
    hasher = get_minhasher(preset)
    names = [band_column(j) for j in range(preset.num_bands)]
    schema = pa.schema([("doc_id", pa.string())] + [(n, pa.uint64()) for n in names])
    started = time.perf_counter()
    docs = 0
    input_digest = hashlib.sha256()
    keys_digest = hashlib.sha256(json.dumps(preset.describe(), sort_keys=True).encode())
    segmenters = _segmenters(config)
    if segmenters:
        keys_digest.update(json.dumps(dedup_segmenter_identities(config), sort_keys=True).encode())
    columns_read = ["doc_id", "text", "language"] if segmenters else ["doc_id", "text"]
    batches = store.iter_batches(documents_path(UPSTREAM, dump, shard), columns_read, SIGNATURE_BATCH)
    id_hashes = []  # 8 bytes a document, not a set of strings: a shard may hold millions
    progress = progress_for(log, f"{SIGNATURES} {dump}|{shard}", config.progress)
    with store.table_writer(signatures_path(dump, shard), schema) as writer:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            id_hashes.append(np.fromiter((_id_hash(d) for d in batch.column("doc_id").to_pylist()),
                                         np.uint64, batch.num_rows))
            texts = [t or "" for t in batch.column("text").to_pylist()]
            _digest_docs(input_digest, batch.column("doc_id").to_pylist(), texts)
            if segmenters:
                segs = [_segmenter_of_language(segmenters, lang) for lang in batch.column("language").to_pylist()]
                keys = hasher.band_keys(hasher.signatures(texts, segs))
            else:
                keys = hasher.band_keys(hasher.signatures(texts))
            keys_digest.update(np.ascontiguousarray(keys).tobytes())
            columns = {"doc_id": batch.column("doc_id")}
            columns.update({n: pa.array(keys[:, j], pa.uint64()) for j, n in enumerate(names)})
            writer.write_table(pa.table(columns))
            docs += batch.num_rows
            progress.advance(batch.num_rows, batch.num_rows)
        _refuse_repeated_doc_ids(store, dump, shard, id_hashes)  # before anything is published
    seconds = time.perf_counter() - started
    input_version = input_digest.hexdigest()[:16]
    keys_digest.update(input_version.encode())
    report = {"dump": dump, "shard": shard, "docs": docs, "seconds": round(seconds, 3),
              "preset": preset.describe(), "version": keys_digest.hexdigest()[:16],
              "input_digest": input_version, "rw_filtered_report": upstream_identity}
    store.write_json(stats_path(SIGNATURES, dump, shard), report)
    progress.finish()
    return report


def _id_hash(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b((doc_id or "").encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def _refuse_repeated_doc_ids(store: CorpusStore, dump: str, shard: str, id_hashes: list) -> None:
    """Keep and drop decisions are keyed by doc_id: two rows sharing one would be removed
    together, the keeper included. Refuse the partition rather than lose both."""
    hashes = np.sort(np.concatenate(id_hashes)) if id_hashes else np.empty(0, np.uint64)
    repeated = set(hashes[1:][hashes[1:] == hashes[:-1]].tolist())
    if not repeated:
        return
    seen, twice = set(), []  # confirm on the ids themselves (a 64-bit hash may collide)
    for batch in store.iter_batches(documents_path(UPSTREAM, dump, shard), ["doc_id"], SIGNATURE_BATCH):
        for doc_id in batch.column("doc_id").to_pylist():
            if _id_hash(doc_id) in repeated:
                if doc_id in seen:
                    twice.append(doc_id)
                seen.add(doc_id)
    if twice:
        raise ValueError(f"{UPSTREAM} {dump}/{shard} holds doc_id {twice[0]!r} more than once "
                         f"({len(twice)} repeats); dedup decides by doc_id and would remove every copy")


def _read_band_range(store: CorpusStore, dump: str, shard: str, start: int, stop: int) -> np.ndarray:
    cols = [band_column(j) for j in range(start, stop)]
    parts = []
    for batch in store.iter_batches(signatures_path(dump, shard), cols, 8192):
        parts.append(np.stack([batch.column(c).to_numpy() for c in cols], axis=1).astype(np.uint64, copy=False))
    if not parts:
        return np.empty((0, stop - start), np.uint64)
    return np.concatenate(parts)


# -- the cross-dump index ----------------------------------------------------------------

@dataclass
class IndexSnapshot:
    """The index after a dump: every kept document of that dump and of all earlier ones."""

    store: CorpusStore
    manifest: dict

    @property
    def dump(self) -> str:
        return self.manifest["dump"]

    @property
    def snapshot_id(self) -> str:
        return self.manifest["snapshot"]

    def band_index(self, start: int, stop: int) -> OwnedHashIndex:
        """Composite band keys of the bands ``[start, stop)`` (files overlapping it), each
        with the reference of the kept document it belongs to (see ``documents``)."""
        parts = [
            OwnedHashIndex.from_arrow(self.store.read_table(_dump_file(INDEX, self.dump, f["file"])))
            for f in self.manifest["band_files"]
            if f["start"] < stop and start < f["stop"]
        ]
        index = OwnedHashIndex()
        for p in parts:
            index = index.union(p.hashes, p.refs)
        return index

    def documents(self, refs: Optional[list[int]] = None) -> dict[int, dict]:
        """ref -> {doc_id, dump, shard} of the kept documents the index holds (all of
        them, or the ``refs`` asked for). Empty for an index written before it recorded
        them."""
        rel = _dump_file(INDEX, self.dump, DOCS_FILE)
        if not self.store.exists(rel):
            return {}
        filters = None if refs is None else [("ref", "in", sorted({int(r) for r in refs}))]
        if refs is not None and not refs:
            return {}
        table = self.store.read_table(rel, filters=filters)
        return {row["ref"]: {"doc_id": row["doc_id"], "dump": row["dump"], "shard": row["shard"]}
                for row in table.to_pylist()}

    def url_index(self) -> SortedHashIndex:
        return SortedHashIndex.from_arrow(self.store.read_table(_dump_file(INDEX, self.dump, "urls.parquet")))


def load_snapshot(store: CorpusStore, dump: str) -> Optional[IndexSnapshot]:
    rel = _dump_file(INDEX, dump, "manifest.json")
    if not store.exists(rel):
        return None
    return IndexSnapshot(store, store.read_json(rel))


def previous_dump(dump: str, known_dumps: list[str]) -> Optional[str]:
    """The dump just before ``dump`` in crawl order, among the known ones."""
    earlier = [d for d in known_dumps if dump_sort_key(d) < dump_sort_key(dump)]
    return max(earlier, key=dump_sort_key) if earlier else None


def earlier_snapshot(store: CorpusStore, dump: str, known_dumps: list[str], preset_name: str,
                     segmenters: Optional[dict] = None) -> Optional[IndexSnapshot]:
    """The index ``dump`` is deduplicated against, or None for the first dump.

    ``segmenters`` (:func:`index_segmenter_identities` of the settings): refused when a
    language both the index and the settings profile was segmented otherwise for the
    index (another segmenter, library or dictionary version): its word shingles, hence
    its band keys, never match. An index written before it recorded them is not checked."""
    prev = previous_dump(dump, known_dumps)
    if prev is None:
        return None
    snap = load_snapshot(store, prev)
    if snap is None:
        raise DedupOrderError(
            f"{prev} comes before {dump} in crawl order and has no {INDEX} yet: "
            f"deduplicate {prev} first (dumps are deduplicated in crawl order)"
        )
    if snap.manifest["preset"] != preset_name:
        raise DedupOrderError(
            f"the {INDEX} of {prev} holds {snap.manifest['preset']!r} band keys but the settings ask "
            f"for {preset_name!r}: band keys of different presets never match; re-run earlier dumps"
        )
    recorded = snap.manifest.get("segmenters")
    if segmenters is not None and recorded is not None:
        changed = {lang: (recorded[lang], segmenters[lang]) for lang in sorted(set(recorded) & set(segmenters))
                   if recorded[lang] != segmenters[lang]}
        if changed:
            said = "; ".join(f"{lang}: {old!r} -> {new!r}" for lang, (old, new) in changed.items())
            raise DedupOrderError(
                f"the {INDEX} of {prev} was built with other word segmenters than the settings use ({said}): "
                f"band keys of different segmenters never match, so duplicates of earlier dumps would be "
                f"missed; re-run earlier dumps' dedup with these settings, or set "
                f"languages.<lang>.segmenter back")
    return snap


# -- 2. buckets ----------------------------------------------------------------------------

def _layout(store: CorpusStore, dump: str, shards: list[str]) -> list[dict]:
    rows, offset = [], 0
    for shard in shards:
        if not store.exists(signatures_path(dump, shard)):
            raise FileNotFoundError(f"{SIGNATURES} has not been materialized for {dump}|{shard}")
        n = store.row_count(signatures_path(dump, shard))
        rows.append({"shard": shard, "docs": n, "offset": offset})
        offset += n
    return rows


PAIRS_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64())])
# (doc of this dump, reference of an earlier dump's kept document sharing a band with it)
EARLIER_PAIRS_SCHEMA = pa.schema([("doc_index", pa.int64()), ("earlier_ref", pa.int64())])
DOCS_FILE = "documents.parquet"
DOCS_SCHEMA = pa.schema([("ref", pa.int64()), ("doc_id", pa.string()), ("dump", pa.string()), ("shard", pa.string())])


@publishes(BUCKETS + "/{dump}")
def build_minhash_buckets(store: CorpusStore, dump: str, shards: list[str], config: PipelineConfig,
                          earlier: Optional[IndexSnapshot]) -> dict:
    """Candidate pairs, one band range at a time, and the match against earlier dumps.

    Memory: one range's keys for the dump (docs x bands_per_range x 8 bytes) plus the
    pairs found, never the whole signature matrix."""
    started = time.perf_counter()
    preset = get_preset(config.dedup.minhash_preset)
    layout = _layout(store, dump, shards)
    versions = signature_versions(store, dump, shards)
    num_docs = sum(r["docs"] for r in layout)
    earlier_found = []
    ranges = band_ranges(preset.num_bands, config.dedup.bands_per_range)
    pair_files, total_pairs = [], 0
    for start, stop in ranges:
        chunks = [
            (np.arange(r["offset"], r["offset"] + r["docs"], dtype=np.int64), _read_band_range(store, dump, r["shard"], start, stop))
            for r in layout
        ]
        pairs = candidate_pairs(chunks)
        name = f"pairs_{start:04d}_{stop:04d}.parquet"
        with store.table_writer(_dump_file(BUCKETS, dump, name), PAIRS_SCHEMA) as writer:
            writer.write_table(pa.table({"a": pairs[:, 0], "b": pairs[:, 1]}, schema=PAIRS_SCHEMA))
        pair_files.append(name)
        total_pairs += int(pairs.shape[0])
        if earlier is not None:
            index = earlier.band_index(start, stop)
            for doc_idx, keys in chunks:
                found = earlier_matches(index, doc_idx, keys, start)
                if found.size:
                    earlier_found.append(found)
            del index
        del chunks, pairs
    earlier_pairs = np.unique(np.concatenate(earlier_found), axis=0) if earlier_found else np.empty((0, 2), np.int64)
    with store.table_writer(_dump_file(BUCKETS, dump, "anchored.parquet"), EARLIER_PAIRS_SCHEMA) as writer:
        writer.write_table(pa.table({"doc_index": earlier_pairs[:, 0], "earlier_ref": earlier_pairs[:, 1]},
                                    schema=EARLIER_PAIRS_SCHEMA))
    report = {
        "dump": dump, "shards": layout, "num_docs": num_docs, "preset": preset.describe(),
        "band_ranges": [list(r) for r in ranges], "pair_files": pair_files, "band_range_pairs": total_pairs,  # summed over ranges: a pair found in two ranges counts twice
        "docs_matching_earlier_dumps": int(np.unique(earlier_pairs[:, 0]).size),
        "earlier_band_pairs": int(earlier_pairs.shape[0]),
        "signatures": versions,
        "earlier_snapshot": earlier.snapshot_id if earlier else None,
        "earlier_dump": earlier.dump if earlier else None,
        "seconds": round(time.perf_counter() - started, 3),
    }
    store.write_json(_dump_file(BUCKETS, dump, "stats.json"), report)
    return report


# -- 3. clusters ---------------------------------------------------------------------------

CLUSTERS_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("shard", pa.string()), ("doc_index", pa.int64()),
    ("cluster_id", pa.int64()), ("cluster_size", pa.int64()), ("keeper_doc_id", pa.string()),
    ("keeper_dump", pa.string()), ("keep", pa.bool_()), ("matches_earlier_dump", pa.bool_()),
])
_NO_REF = np.iinfo(np.int64).max  # component without an earlier dump's match
_UNKNOWN_REF = _NO_REF - 1  # matched, but the index did not record which document


def check_signatures_current(store: CorpusStore, dump: str, shards: list[str], recorded: dict, what: str) -> None:
    """Refuse (``StaleDedupError``) unless every shard's signatures are (1) the ones
    ``what`` was built from (``recorded``: shard -> version) and (2) computed from the
    current rw_filtered materialization. This is the guard that keeps a threshold change
    from applying old clusters to new documents."""
    current = signature_versions(store, dump, shards)
    changed = [s for s in shards if recorded.get(s) is None or current[s] != recorded[s]]
    if changed:
        raise StaleDedupError(
            f"{what} of {dump} was built from other {SIGNATURES} than the current ones (shards {changed}; "
            f"rw_filtered or the MinHash settings changed since): re-run {dump}'s dedup from {BUCKETS} "
            f"(dedup_order_sensor requests it)"
        )
    behind = [s for s in shards
              if store.read_json(stats_path(SIGNATURES, dump, s)).get("rw_filtered_report") != _report_digest(store, UPSTREAM, dump, s)]
    if behind:
        raise StaleDedupError(
            f"{UPSTREAM} of {dump} was re-materialized after its {SIGNATURES} (shards {behind}): "
            f"re-run {SIGNATURES} for them, then {dump}'s dedup from {BUCKETS}"
        )


def _shingles_of_dump(store: CorpusStore, dump: str, layout: list[dict], wanted: np.ndarray, preset,
                      segmenters: Optional[dict] = None) -> dict:
    """doc index -> shingle hashes, for the ``wanted`` doc indices of the dump (read
    from rw_filtered, whose row order is the signatures' order)."""
    if segmenters:
        return _shingles_of_dump_segmented(store, dump, layout, wanted, preset, segmenters)
    out: dict = {}
    for r in layout:
        lo, hi = np.searchsorted(wanted, [r["offset"], r["offset"] + r["docs"]])
        if lo == hi:
            continue
        rows = set((wanted[lo:hi] - r["offset"]).tolist())
        row = 0
        for batch in store.iter_batches(documents_path(UPSTREAM, dump, r["shard"]), ["text"], SIGNATURE_BATCH):
            for text in batch.column("text").to_pylist():
                if row in rows:
                    out[r["offset"] + row] = shingle_hashes64(text or "", preset)
                row += 1
    return out


def _shingles_of_dump_segmented(store, dump, layout, wanted, preset, segmenters) -> dict:
    out: dict = {}
    for r in layout:
        lo, hi = np.searchsorted(wanted, [r["offset"], r["offset"] + r["docs"]])
        if lo == hi:
            continue
        rows = set((wanted[lo:hi] - r["offset"]).tolist())
        row = 0
        for batch in store.iter_batches(documents_path(UPSTREAM, dump, r["shard"]), ["text", "language"], SIGNATURE_BATCH):
            for text, lang in zip(batch.column("text").to_pylist(), batch.column("language").to_pylist()):
                if row in rows:
                    out[r["offset"] + row] = shingle_hashes64(
                        text or "", preset, segmenter=_segmenter_of_language(segmenters, lang))
                row += 1
    return out


def _shingles_of_earlier(store: CorpusStore, owners: dict, preset, segmenters: Optional[dict] = None) -> dict:
    """ref -> shingle hashes of earlier dumps' kept documents (``owners``: ref ->
    {doc_id, dump, shard}), read from their rw_filtered text (what their band keys were
    computed from). A document no longer found there is left out."""
    by_partition: dict = {}
    for ref, doc in owners.items():
        by_partition.setdefault((doc["dump"], doc["shard"]), {})[doc["doc_id"]] = ref
    out: dict = {}
    for (dump, shard), refs in by_partition.items():
        rel = documents_path(UPSTREAM, dump, shard)
        if not store.exists(rel):
            continue
        columns = ["doc_id", "text", "language"] if segmenters else ["doc_id", "text"]
        table = store.read_table(rel, columns=columns, filters=[("doc_id", "in", sorted(refs))])
        languages = table.column("language").to_pylist() if segmenters else [None] * table.num_rows
        for doc_id, text, lang in zip(table.column("doc_id").to_pylist(), table.column("text").to_pylist(), languages):
            out[refs[doc_id]] = shingle_hashes64(text or "", preset,
                                                 segmenter=_segmenter_of_language(segmenters, lang))
    return out


@publishes(CLUSTERS + "/{dump}")
def build_duplicate_clusters(store: CorpusStore, dump: str, config: Optional[PipelineConfig] = None) -> dict:
    """Connected components over the bucket pairs and one survivor per cluster.

    With candidate verification on (``dedup.verify_min_jaccard``, on for gpt3), a pair
    joins the union-find only when the exact Jaccard similarity of the two documents'
    shingles reaches the threshold, within the dump and against earlier dumps' kept
    documents alike. Memory for it: the shingle hashes (8 bytes per word n-gram) of the
    documents that appear in candidate pairs."""
    started = time.perf_counter()
    buckets = store.read_json(_dump_file(BUCKETS, dump, "stats.json"))
    layout = buckets["shards"]
    check_signatures_current(store, dump, [r["shard"] for r in layout], buckets.get("signatures") or {}, BUCKETS)
    preset = get_preset(buckets["preset"]["name"])
    min_jaccard = config.dedup.candidate_min_jaccard if config is not None else 0.0
    earlier = load_snapshot(store, buckets["earlier_dump"]) if buckets["earlier_dump"] else None
    if buckets["earlier_dump"] and (earlier is None or earlier.snapshot_id != buckets["earlier_snapshot"]):
        raise DedupOrderError(
            f"{BUCKETS} of {dump} matched index snapshot {buckets['earlier_snapshot']} of {buckets['earlier_dump']}, "
            f"which is no longer current: re-run {dump}'s dedup from {BUCKETS}"
        )
    num_docs = buckets["num_docs"]
    parts = []
    for name in buckets["pair_files"]:
        table = store.read_table(_dump_file(BUCKETS, dump, name))
        parts.append(np.stack([table.column("a").to_numpy(), table.column("b").to_numpy()], axis=1))
    pairs = np.unique(np.concatenate(parts), axis=0) if parts else np.empty((0, 2), np.int64)
    anchored_table = store.read_table(_dump_file(BUCKETS, dump, "anchored.parquet"))
    earlier_pairs = np.stack([
        anchored_table.column("doc_index").to_numpy(),
        anchored_table.column("earlier_ref").to_numpy() if "earlier_ref" in anchored_table.column_names
        else np.full(anchored_table.num_rows, -1, np.int64),
    ], axis=1).astype(np.int64).reshape(-1, 2)
    candidates, earlier_candidates = int(pairs.shape[0]), int(earlier_pairs.shape[0])
    owners = earlier.documents(earlier_pairs[:, 1][earlier_pairs[:, 1] >= 0].tolist()) if earlier else {}
    unverifiable = 0
    if min_jaccard > 0:
        wanted = np.unique(np.concatenate([pairs.ravel(), earlier_pairs[:, 0]]))
        segmenters = _segmenters(config) if config is not None else {}
        shingles = _shingles_of_dump(store, dump, layout, wanted, preset, segmenters)
        pairs = pairs[verify_pairs(pairs, shingles, shingles, min_jaccard)]
        if earlier_candidates:
            earlier_shingles = _shingles_of_earlier(store, owners, preset, segmenters)
            # An earlier document whose text cannot be read back (an index without owners,
            # or its rw_filtered re-run since) is not verified: the match stands, as it
            # would without verification, and is counted.
            checkable = np.array([ref in earlier_shingles for ref in earlier_pairs[:, 1].tolist()], dtype=bool)
            unverifiable = int((~checkable).sum())
            keep = ~checkable
            keep[checkable] = verify_pairs(earlier_pairs[checkable], shingles, earlier_shingles, min_jaccard)
            earlier_pairs = earlier_pairs[keep]
    uf = UnionFind(num_docs)
    uf.union_pairs(pairs)
    labels = uf.labels()
    anchored = np.zeros(num_docs, dtype=bool)
    anchored[earlier_pairs[:, 0]] = True
    # The earlier copy a cluster duplicates: the earliest kept document (smallest index
    # reference) matched by any member; a match without a recorded owner comes last.
    component_ref = np.full(num_docs, _NO_REF, dtype=np.int64)
    np.minimum.at(component_ref, labels[earlier_pairs[:, 0]],
                  np.where(earlier_pairs[:, 1] >= 0, earlier_pairs[:, 1], _UNKNOWN_REF))
    clusters = resolve_clusters(labels, anchored=anchored)
    sizes = np.bincount(labels, minlength=num_docs)
    # doc_id of every cluster member, read one shard's doc_id column at a time.
    member_ids = np.empty(clusters.doc_index.size, dtype=object)
    member_shards = np.empty(clusters.doc_index.size, dtype=object)
    for r in layout:
        lo, hi = np.searchsorted(clusters.doc_index, [r["offset"], r["offset"] + r["docs"]])
        if lo == hi:
            continue
        ids = store.read_table(signatures_path(dump, r["shard"]), columns=["doc_id"]).column("doc_id").to_numpy(zero_copy_only=False)
        member_ids[lo:hi] = ids[clusters.doc_index[lo:hi] - r["offset"]]
        member_shards[lo:hi] = r["shard"]
    # Keepers in this dump are members of their own cluster, so their ids are among
    # member_ids; a cluster kept by an earlier dump names that dump's document.
    keeper_ids = np.full(clusters.doc_index.size, "", dtype=object)
    keeper_dumps = np.full(clusters.doc_index.size, dump, dtype=object)
    in_dump = clusters.keeper >= 0
    keeper_ids[in_dump] = member_ids[np.searchsorted(clusters.doc_index, clusters.keeper[in_dump])]
    refs = component_ref[clusters.cluster_id]
    for i in np.flatnonzero(~in_dump).tolist():
        owner = owners.get(int(refs[i]))
        keeper_ids[i] = owner["doc_id"] if owner else ""
        keeper_dumps[i] = owner["dump"] if owner else (buckets["earlier_dump"] or "")
    table = pa.table({
        "doc_id": pa.array(member_ids.tolist(), pa.string()),
        "shard": pa.array(member_shards.tolist(), pa.string()),
        "doc_index": clusters.doc_index,
        "cluster_id": clusters.cluster_id,
        "cluster_size": sizes[clusters.cluster_id].astype(np.int64),
        "keeper_doc_id": pa.array([str(k) for k in keeper_ids.tolist()], pa.string()),
        "keeper_dump": pa.array([str(k) for k in keeper_dumps.tolist()], pa.string()),
        "keep": clusters.keep,
        "matches_earlier_dump": anchored[clusters.doc_index],
    }, schema=CLUSTERS_SCHEMA)
    with store.table_writer(_dump_file(CLUSTERS, dump, "clusters.parquet"), CLUSTERS_SCHEMA) as writer:
        writer.write_table(table)
    size_hist: dict[int, int] = {}
    for cid in np.unique(clusters.cluster_id[in_dump]):
        s = int(sizes[cid])
        size_hist[s] = size_hist.get(s, 0) + 1
    report = {
        "dump": dump, "num_docs": num_docs, "band_range_pairs": buckets["band_range_pairs"],
        "candidate_pairs": candidates, "earlier_candidate_pairs": earlier_candidates,
        "verify_min_jaccard": min_jaccard,
        "candidate_pairs_rejected": candidates - int(pairs.shape[0]),
        "earlier_candidate_pairs_rejected": earlier_candidates - int(earlier_pairs.shape[0]),
        "earlier_candidate_pairs_unverifiable": unverifiable,
        "clusters": clusters.num_clusters, "docs_in_clusters": int(clusters.doc_index.size),
        "docs_to_remove": clusters.num_removed,
        "docs_to_remove_within_dump": int((~clusters.keep & in_dump).sum()),
        "docs_to_remove_earlier_dumps": int((~in_dump).sum()),
        "largest_cluster": int(sizes.max()) if num_docs else 0,
        "cluster_sizes": {str(k): v for k, v in sorted(size_hist.items())},
        "preset": buckets["preset"], "earlier_snapshot": buckets["earlier_snapshot"],
        "earlier_dump": buckets["earlier_dump"], "signatures": buckets.get("signatures") or {},
        "seconds": round(time.perf_counter() - started, 3),
    }
    store.write_json(_dump_file(CLUSTERS, dump, "stats.json"), report)
    return report


def _clusters_of_shard(store: CorpusStore, dump: str, shard: str) -> tuple[dict, dict]:
    """(removed: doc_id -> (cluster, keeper's doc_id, keeper's dump, kept by an earlier
    dump), sizes: doc_id -> size of kept members)."""
    table = store.read_table(_dump_file(CLUSTERS, dump, "clusters.parquet"), filters=[("shard", "=", shard)])
    removed, sizes = {}, {}
    for row in table.to_pylist():
        if row["keep"]:
            sizes[row["doc_id"]] = row["cluster_size"]
        else:
            keeper_dump = row.get("keeper_dump")
            if keeper_dump is None:  # written before clusters named the keeper's dump
                keeper_dump = dump if row["keeper_doc_id"] else ""
            removed[row["doc_id"]] = (row["cluster_id"], row["keeper_doc_id"], keeper_dump, keeper_dump != dump)
    return removed, sizes


# -- 4. exact substring --------------------------------------------------------------------

SPANS_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("shard", pa.string()), ("span_starts", pa.list_(pa.int64())),
    ("span_stops", pa.list_(pa.int64())), ("dup_tokens", pa.int64()),
])


def _iter_fuzzy_survivors(store: CorpusStore, dump: str, shards: list[str], columns: list[str]) -> Iterator[dict]:
    for shard in shards:
        removed, _ = _clusters_of_shard(store, dump, shard)
        for row in store.iter_rows(documents_path(UPSTREAM, dump, shard), columns=columns):
            if row["doc_id"] not in removed:
                row["shard"] = shard
                yield row


@publishes(SPANS + "/{dump}")
def build_exact_substring_spans(store: CorpusStore, dump: str, shards: list[str], config: PipelineConfig) -> dict:
    """Duplicated spans (>= exact_min_tokens tokens) across the fuzzy survivors of the dump."""
    started = time.perf_counter()
    clusters_stats = store.read_json(_dump_file(CLUSTERS, dump, "stats.json"))
    check_signatures_current(store, dump, shards, clusters_stats.get("signatures") or {}, CLUSTERS)
    cfg = config.dedup
    by_doc: dict = {}
    num_docs = num_tokens = 0
    segmenters = _segmenters(config)
    if cfg.exact_substring and segmenters:
        # (text, segmenter) per document: the tokens of a language written without spaces
        open_texts: Callable = lambda: (  # noqa: E731
            (r.get("text") or "", _segmenter_of_language(segmenters, r.get("language")))
            for r in _iter_fuzzy_survivors(store, dump, shards, ["doc_id", "text", "language"]))
    elif cfg.exact_substring:
        open_texts = lambda: (r.get("text") or "" for r in _iter_fuzzy_survivors(store, dump, shards, ["doc_id", "text"]))  # noqa: E731
    if cfg.exact_substring:
        by_doc, num_docs, num_tokens = find_duplicate_token_spans(
            open_texts, min_tokens=cfg.exact_min_tokens, method=cfg.exact_method,
            keep_first=cfg.exact_keep_first, hash_parts=cfg.exact_hash_parts,
        )
    rows = []
    if by_doc:
        for i, row in enumerate(_iter_fuzzy_survivors(store, dump, shards, ["doc_id"])):
            spans = by_doc.get(i)
            if spans:
                rows.append({"doc_id": row["doc_id"], "shard": row["shard"],
                             "span_starts": [a for a, _ in spans], "span_stops": [b for _, b in spans],
                             "dup_tokens": sum(b - a for a, b in spans)})
    with store.table_writer(_dump_file(SPANS, dump, "spans.parquet"), SPANS_SCHEMA) as writer:
        writer.write_many(rows)
    dup_tokens = sum(r["dup_tokens"] for r in rows)
    report = {
        "dump": dump, "enabled": cfg.exact_substring, "method": cfg.exact_method, "mode": cfg.exact_mode,
        "min_tokens": cfg.exact_min_tokens, "docs_scanned": num_docs, "tokens_scanned": num_tokens,
        "docs_with_spans": len(rows), "spans": sum(len(r["span_starts"]) for r in rows),
        "dup_tokens": dup_tokens, "dup_token_fraction": round(dup_tokens / num_tokens, 6) if num_tokens else 0.0,
        "clusters_report": _json_digest(store, _dump_file(CLUSTERS, dump, "stats.json")),
        "seconds": round(time.perf_counter() - started, 3),
    }
    store.write_json(_dump_file(SPANS, dump, "stats.json"), report)
    return report


def _spans_of_shard(store: CorpusStore, dump: str, shard: str) -> dict:
    table = store.read_table(_dump_file(SPANS, dump, "spans.parquet"), filters=[("shard", "=", shard)])
    return {r["doc_id"]: list(zip(r["span_starts"], r["span_stops"])) for r in table.to_pylist()}


# -- 5. rw_deduped ---------------------------------------------------------------------------

def build_rw_deduped(store: CorpusStore, dump: str, shard: str, config: PipelineConfig,
                     known_dumps: list[str], log=None) -> StageReport:
    """Fuzzy dedup -> exact substring dedup -> URL dedup for one shard."""
    cfg = config.dedup
    upstream = load_report(store, UPSTREAM, dump, shard)
    clusters_stats = store.read_json(_dump_file(CLUSTERS, dump, "stats.json"))
    earlier = earlier_snapshot(store, dump, known_dumps, cfg.minhash_preset, index_segmenter_identities(config))
    used = earlier.snapshot_id if earlier else None
    if used != clusters_stats["earlier_snapshot"]:
        raise DedupOrderError(
            f"{CLUSTERS} of {dump} ran against index snapshot {clusters_stats['earlier_snapshot']} "
            f"but the earlier dumps' index is now {used}: re-run {dump}'s dedup from {BUCKETS}"
        )
    # The clusters and spans must be about the documents this shard holds now.
    check_signatures_current(store, dump, [shard], clusters_stats.get("signatures") or {}, CLUSTERS)
    clusters_report = _json_digest(store, _dump_file(CLUSTERS, dump, "stats.json"))
    if cfg.exact_substring and store.read_json(_dump_file(SPANS, dump, "stats.json")).get("clusters_report") != clusters_report:
        raise StaleDedupError(
            f"{SPANS} of {dump} was built before the current {CLUSTERS}: re-run it (and {dump}'s dedup from "
            f"{BUCKETS} if the signatures changed)"
        )
    removed, sizes = _clusters_of_shard(store, dump, shard)
    steps = [MinHashDedupStep.from_removed(removed, cluster_sizes=sizes, size_field=CLUSTER_SIZE_FIELD)]
    if cfg.exact_substring:
        steps.append(ExactSubstringStep(
            _spans_of_shard(store, dump, shard), cfg.exact_mode, drop_fraction=cfg.exact_drop_fraction,
            spans_in_tokens=True,
            segmenter_of=(lambda doc, _s=_segmenters(config): _segmenter_of_language(_s, doc.get("language")))
            if _segmenters(config) else None,
        ))
    if cfg.url_dedup:
        steps.append(UrlDedupStep(earlier.url_index() if earlier else None, within_partition=True))
    return run_document_stage(
        store, DEDUPED, dump, shard,
        store.iter_rows(documents_path(UPSTREAM, dump, shard)),
        steps,
        baseline_docs=upstream.baseline_docs,
        extra={"earlier_snapshot": used or "", "earlier_dump": earlier.dump if earlier else "",
               "clusters_report": clusters_report},
        step_errors=config.step_errors,
        progress=progress_for(log, f"{DEDUPED} {dump}|{shard}", config.progress),
    )


# -- 6. the index for the next dump ----------------------------------------------------------

@publishes(INDEX + "/{dump}")
def build_dedup_index(store: CorpusStore, dump: str, shards: list[str], config: PipelineConfig,
                      known_dumps: list[str]) -> dict:
    """Snapshot = the previous dump's snapshot + the band keys and URLs this dump kept."""
    started = time.perf_counter()
    cfg = config.dedup
    preset = get_preset(cfg.minhash_preset)
    earlier = earlier_snapshot(store, dump, known_dumps, preset.name, index_segmenter_identities(config))
    used = earlier.snapshot_id if earlier else None
    for shard in shards:
        report = load_report(store, DEDUPED, dump, shard)
        if (report.extra.get("earlier_snapshot") or None) != used:
            raise DedupOrderError(
                f"{DEDUPED} {dump}|{shard} was deduplicated against index snapshot "
                f"{report.extra.get('earlier_snapshot') or None}, but the earlier dumps' index is now {used}: "
                f"re-run {dump}'s dedup before indexing it"
            )
    # The index holds what rw_deduped kept under the current clusters only.
    clusters_stats = store.read_json(_dump_file(CLUSTERS, dump, "stats.json"))
    check_signatures_current(store, dump, shards, clusters_stats.get("signatures") or {}, CLUSTERS)
    clusters_report = _json_digest(store, _dump_file(CLUSTERS, dump, "stats.json"))
    behind = [s for s in shards if load_report(store, DEDUPED, dump, s).extra.get("clusters_report") != clusters_report]
    if behind:
        raise StaleDedupError(f"{DEDUPED} {dump}|{behind} was built before the current {CLUSTERS}: re-run it before indexing")
    digest = hashlib.sha256(f"{used}|{dump}|{preset.name}".encode())
    kept_urls, kept_keys, kept_docs = [], [], []
    for shard in shards:
        kept_ids, urls = set(), []
        for batch in store.iter_batches(documents_path(DEDUPED, dump, shard), ["doc_id", "url"]):
            kept_ids.update(batch.column("doc_id").to_pylist())
            urls.extend(batch.column("url").to_pylist())
        if not kept_ids:
            continue
        kept_urls.append(url_hashes(urls))
        for batch in store.iter_batches(signatures_path(dump, shard), None, 8192):
            ids = batch.column("doc_id").to_pylist()
            mask = np.fromiter((d in kept_ids for d in ids), dtype=bool, count=batch.num_rows)
            if mask.any():
                keys = np.stack([batch.column(band_column(j)).to_numpy() for j in range(preset.num_bands)], axis=1)
                kept_keys.append(keys[mask])
                kept_docs.extend((d, shard) for d, m in zip(ids, mask.tolist()) if m)
    new_urls = np.concatenate(kept_urls) if kept_urls else np.empty(0, np.uint64)
    new_keys = np.concatenate(kept_keys) if kept_keys else np.empty((0, preset.num_bands), np.uint64)
    digest.update(np.sort(new_urls).tobytes())
    digest.update(np.ascontiguousarray(new_keys).tobytes())
    digest.update("\n".join(d for d, _ in kept_docs).encode("utf-8", "surrogatepass"))
    # Every kept document gets a reference (its row in the cumulative document table) that
    # the band keys point to, so a later dump's removal names the copy it duplicates.
    base = int(earlier.manifest.get("documents", 0)) if earlier else 0
    new_refs = np.arange(base, base + len(kept_docs), dtype=np.int64)
    with store.table_writer(_dump_file(INDEX, dump, DOCS_FILE), DOCS_SCHEMA) as writer:
        if earlier is not None and store.exists(_dump_file(INDEX, earlier.dump, DOCS_FILE)):
            for batch in store.iter_batches(_dump_file(INDEX, earlier.dump, DOCS_FILE), [f.name for f in DOCS_SCHEMA]):
                writer.write_table(pa.Table.from_batches([batch]).cast(DOCS_SCHEMA))
        writer.write_table(pa.table({
            "ref": new_refs, "doc_id": [d for d, _ in kept_docs], "dump": [dump] * len(kept_docs),
            "shard": [s for _, s in kept_docs],
        }, schema=DOCS_SCHEMA))
    urls = (earlier.url_index() if earlier else SortedHashIndex()).union(new_urls)
    with store.table_writer(_dump_file(INDEX, dump, "urls.parquet")) as writer:
        writer.write_table(urls.to_arrow())
    band_files = []
    band_keys_total = 0
    for start, stop in band_ranges(preset.num_bands, cfg.bands_per_range):
        composite = composite_band_keys(new_keys[:, start:stop], start)
        index = (earlier.band_index(start, stop) if earlier else OwnedHashIndex()).union(
            composite.ravel(), np.repeat(new_refs, composite.shape[1]))
        name = f"bands_{start:04d}_{stop:04d}.parquet"
        with store.table_writer(_dump_file(INDEX, dump, name)) as writer:
            writer.write_table(index.to_arrow())
        band_files.append({"file": name, "start": start, "stop": stop})
        band_keys_total += len(index)
    manifest = {
        "dump": dump, "snapshot": digest.hexdigest()[:16], "previous_dump": earlier.dump if earlier else None,
        "previous_snapshot": used, "dumps": (earlier.manifest["dumps"] if earlier else []) + [dump],
        "preset": preset.name, "segmenters": index_segmenter_identities(config), "band_files": band_files, "urls": len(urls), "band_keys": band_keys_total,
        "docs_added": int(new_urls.size), "documents": base + len(kept_docs),
        "signatures": clusters_stats.get("signatures") or {}, "clusters_report": clusters_report,
        "seconds": round(time.perf_counter() - started, 3),
    }
    # The manifest is written last: a snapshot exists once its manifest does.
    store.write_json(_dump_file(INDEX, dump, "manifest.json"), manifest)
    return manifest


def dumps_built_on_an_older_snapshot(store: CorpusStore, dump: str, known_dumps: list[str]) -> list[str]:
    """The dumps right after ``dump`` whose index was built on a snapshot of ``dump``
    other than its current one (they need their dedup re-run)."""
    current = load_snapshot(store, dump)
    stale = []
    for later in known_dumps:
        if previous_dump(later, known_dumps) != dump:
            continue
        snap = load_snapshot(store, later)
        if snap is not None and current is not None and snap.manifest["previous_snapshot"] != current.snapshot_id:
            stale.append(later)
    return stale


def index_chain_status(store: CorpusStore, dump: str, known_dumps: list[str]) -> tuple[bool, dict]:
    """Is ``dump``'s dedup still based on the current snapshot of the dump before it?"""
    snap = load_snapshot(store, dump)
    prev = previous_dump(dump, known_dumps)
    current = load_snapshot(store, prev) if prev else None
    facts = {
        "previous_dump": prev or "",
        "snapshot_used": (snap.manifest["previous_snapshot"] if snap else None) or "",
        "previous_snapshot_now": current.snapshot_id if current else "",
    }
    if snap is None:
        return False, {**facts, "problem": f"{dump} has no {INDEX}"}
    passed = facts["snapshot_used"] == facts["previous_snapshot_now"]
    if not passed:
        facts["problem"] = (f"{prev}'s index changed after {dump} was deduplicated against it: "
                            f"re-run {dump}'s dedup (from {BUCKETS}) to deduplicate against the new one")
    return passed, facts


@dataclass
class DedupState:
    """Where a dump's dedup stands, for the crawl-order sensor (``dedup_state``).

    ``step``: ``indexed`` (done: ``snapshot`` is its current index snapshot, the next
    dump may go), ``wait`` (nothing to launch; ``reason`` says why; later dumps wait
    too), ``dedup`` (run buckets -> clusters -> spans), ``deduped`` (run rw_deduped for
    ``shards``), ``index`` (run dedup_index). ``key`` identifies the state the request
    is for (its run key): a request is made once per state, and again after a change.
    """

    step: str
    reason: str = ""
    snapshot: str = ""
    shards: tuple = ()
    key: str = ""


def dedup_state(store: CorpusStore, dump: str, shards: list[str], previous_snapshot: Optional[str]) -> DedupState:
    """Where ``dump``'s dedup stands, given the current snapshot id of the dump before it
    in crawl order (None for the first dump). Each stage is redone when what it was built
    from changed: buckets when the signatures changed (a threshold change re-ran
    rw_filtered, hence the signatures) or the previous dump was re-indexed; rw_deduped
    when the clusters changed; the index when rw_deduped did. Nothing here trusts Dagster's
    materialization history: it compares the versions the stages recorded."""
    versions = signature_versions(store, dump, shards)
    missing = [s for s, v in versions.items() if v is None]
    if missing:
        return DedupState("wait", f"{dump} is next in crawl order; waiting for current {SIGNATURES} of shards {missing}")
    behind = [s for s in shards
              if store.read_json(stats_path(SIGNATURES, dump, s)).get("rw_filtered_report") != _report_digest(store, UPSTREAM, dump, s)]
    if behind:
        return DedupState("wait", f"{dump} is next in crawl order; waiting for {SIGNATURES} of shards {behind} "
                                  f"to catch up with {UPSTREAM}")
    rel = _dump_file(CLUSTERS, dump, "stats.json")
    clusters = store.read_json(rel) if store.exists(rel) else None
    clusters_report = _json_digest(store, rel)
    if clusters is None or clusters.get("signatures") != versions or clusters.get("earlier_snapshot") != previous_snapshot:
        key = json.dumps([versions, clusters_report, previous_snapshot], sort_keys=True)
        return DedupState("dedup", f"{dump}'s clusters are missing or built on other signatures or another index",
                          key=hashlib.sha256(key.encode()).hexdigest()[:12])
    spans_rel = _dump_file(SPANS, dump, "stats.json")
    if not store.exists(spans_rel) or store.read_json(spans_rel).get("clusters_report") != clusters_report:
        # The dedup run that wrote these clusters did not finish its spans: a failed run,
        # which a re-request would repeat. Shown, not retried.
        return DedupState("wait", f"{SPANS} of {dump} is behind its {CLUSTERS} (did the dedup run fail?); "
                                  f"re-run {dump}'s dedup from {BUCKETS}")
    pending = tuple(s for s in shards if not store.exists(stats_path(DEDUPED, dump, s))
                    or load_report(store, DEDUPED, dump, s).extra.get("clusters_report") != clusters_report)
    if pending:
        return DedupState("deduped", f"{DEDUPED} of shards {list(pending)} is behind {dump}'s clusters",
                          shards=pending, key=clusters_report)
    snapshot = load_snapshot(store, dump)
    if (snapshot is not None and snapshot.manifest.get("previous_snapshot") == previous_snapshot
            and snapshot.manifest.get("clusters_report") == clusters_report):
        return DedupState("indexed", snapshot=snapshot.snapshot_id)
    deduped = json.dumps([_report_digest(store, DEDUPED, dump, s) for s in shards])
    return DedupState("index", f"{dump}'s {INDEX} is missing or older than its {DEDUPED}",
                      key=hashlib.sha256(deduped.encode()).hexdigest()[:12])

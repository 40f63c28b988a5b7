"""LSH bucketing, connected components and deterministic survivors, in bounded memory.

Stages (each a thin call for one asset):

1. signatures per shard: ``MinHasher.band_keys_for_texts`` -> ``(n, num_bands)`` uint64,
   stored with the shard's global doc indices.
2. band buckets: ``candidate_pairs(chunks, ...)`` takes the band keys of ONE RANGE of
   bands for every document of the dump (streamed shard by shard) and returns the
   candidate duplicate pairs found in those bands. Memory: the range's keys
   (``num_docs * range_width * 8`` bytes) plus a few per-band work arrays, never all
   bands of the dump at once. Call it once per range (``band_ranges``).
3. clusters per dump: ``UnionFind.union_pairs`` merges each range's pairs into one
   ``int64[num_docs]`` parent array (connected components: A~B and B~C put A, B, C in
   one cluster even when A and C share no band); ``resolve_clusters`` picks survivors.
4. per-shard filter: ``DuplicateClusters.lookup`` (or ``MinHashDedupStep``) tells, for
   a shard's documents, which are removed, their cluster and their keeper.

Buckets: within one band, documents with equal keys form a bucket. Every member is
paired with the bucket's smallest doc index (a star, not all pairs): a bucket of k
documents yields k-1 pairs, which is enough for connected components (as datatrove does).

Survivor rule: documents are identified by integer indices that the caller assigns in
priority order (dumps in crawl order, then shards in order, then rows in order); within
a cluster the document with the smallest ``priority`` is kept (default: the smallest
index, i.e. the earliest), ties broken by the smallest index. The choice depends only on
cluster membership, never on band-range order, thread scheduling or hash-map iteration:
re-running gives the same survivors. A cluster that contains a document already in an
earlier dump's index (``anchored``) keeps NONE of this dump's members: the earlier copy
is the survivor (RefinedWeb keeps the earlier copy across its parts; so do we).

Union-find is vectorized (NumPy): roots are hooked larger -> smaller with
``np.minimum.at`` and paths are compressed by pointer jumping (Shiloach & Vishkin 1982
style), so the root of every component is its smallest doc index and no Python loop
runs per pair. Memory: 8 bytes per document of the dump.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, Optional, Union

import numpy as np

from ..base import Step
from .hashing import OwnedHashIndex, SortedHashIndex, fmix64
from .minhash import jaccard

U64 = np.uint64


# --------------------------------------------------------------------------- ranges


def band_ranges(num_bands: int, bands_per_range: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(num_bands)`` in steps."""
    if bands_per_range < 1:
        raise ValueError("bands_per_range must be >= 1")
    return [(s, min(num_bands, s + bands_per_range)) for s in range(0, num_bands, bands_per_range)]


# --------------------------------------------------------------------------- buckets -> pairs


def _collect_chunks(chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Concatenated doc indices and the list of per-chunk key blocks (not concatenated:
    each band's column is assembled on its own, so the range is held only once)."""
    idx_parts, key_parts = [], []
    width = None
    for doc_idx, keys in chunks:
        doc_idx = np.asarray(doc_idx, dtype=np.int64).ravel()
        keys = np.asarray(keys, dtype=np.uint64)
        if keys.ndim == 1:
            keys = keys[:, None]
        if keys.shape[0] != doc_idx.size:
            raise ValueError(f"{doc_idx.size} doc indices but {keys.shape[0]} rows of band keys")
        if width is None:
            width = keys.shape[1]
        elif keys.shape[1] != width:
            raise ValueError("all chunks must hold the same band range")
        idx_parts.append(doc_idx)
        key_parts.append(keys)
    if not idx_parts:
        return np.empty(0, np.int64), []
    return np.concatenate(idx_parts), key_parts


def _pairs_one_band(doc_idx: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Star pairs ``(bucket_min_doc, other_doc)`` of one band. Work arrays beyond the
    sort permutation are sized by the documents in shared buckets, not by all documents."""
    n = keys.size
    if n < 2:
        return np.empty((0, 2), np.int64)
    # Any sort order works: only bucket membership and the bucket's minimum doc index
    # are used, both independent of how ties are ordered.
    order = np.argsort(keys)
    ks = keys[order]
    same = ks[1:] == ks[:-1]  # sorted neighbours in one bucket
    del ks
    if not same.any():
        return np.empty((0, 2), np.int64)
    member = np.zeros(n, dtype=bool)
    member[:-1] |= same
    member[1:] |= same
    pos = np.flatnonzero(member)  # sorted positions inside buckets of >= 2 documents
    del member
    new_bucket = np.ones(pos.size, dtype=bool)
    new_bucket[1:] = ~same[pos[1:] - 1]
    ds = doc_idx[order[pos]]
    del order
    starts = np.flatnonzero(new_bucket)
    sizes = np.diff(np.append(starts, pos.size))
    anchor = np.repeat(np.minimum.reduceat(ds, starts), sizes)
    sel = ds != anchor
    return np.stack((anchor[sel], ds[sel]), axis=1)


def _unique_pairs(pairs: np.ndarray) -> np.ndarray:
    if pairs.shape[0] == 0:
        return pairs.reshape(0, 2).astype(np.int64)
    hi = int(pairs.max())
    if hi < (1 << 31):
        code = (pairs[:, 0].astype(np.uint64) << U64(32)) | pairs[:, 1].astype(np.uint64)
        code = np.unique(code)
        return np.stack(((code >> U64(32)).astype(np.int64), (code & U64(0xFFFFFFFF)).astype(np.int64)), axis=1)
    return np.unique(pairs, axis=0)


def candidate_pairs(chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Candidate duplicate pairs from one range of bands.

    ``chunks`` yields ``(doc_idx, keys)`` per shard: ``doc_idx`` int64 ``(n,)`` global
    doc indices, ``keys`` uint64 ``(n, w)``: the same ``w`` bands for every chunk (one
    band range). Returns unique ``int64 (m, 2)`` rows ``(a, b)`` with ``a < b``, sorted.
    """
    doc_idx, key_parts = _collect_chunks(chunks)
    if doc_idx.size == 0:
        return np.empty((0, 2), np.int64)
    found = []
    for j in range(key_parts[0].shape[1]):
        column = np.concatenate([k[:, j] for k in key_parts])
        p = _pairs_one_band(doc_idx, column)
        del column
        if p.size:
            # Dedup as we go so the pair list never grows to (bands x duplicates).
            found.append(p)
            if len(found) >= 8:
                found = [_unique_pairs(np.concatenate(found))]
    if not found:
        return np.empty((0, 2), np.int64)
    return _unique_pairs(np.concatenate(found))


# --------------------------------------------------------------------------- union-find


class UnionFind:
    """Vectorized disjoint sets over doc indices ``0..n-1``.

    Invariant: ``parent[x] <= x``; roots satisfy ``parent[x] == x``. Hence every
    component's root is its smallest index, whatever order pairs arrive in.
    """

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.parent.size)

    def find(self, x: np.ndarray) -> np.ndarray:
        """Roots of ``x`` (vectorized pointer chasing)."""
        parent = self.parent
        r = parent[np.asarray(x, dtype=np.int64)]
        while True:
            rr = parent[r]
            if np.array_equal(rr, r):
                return r
            r = rr

    def compress(self) -> None:
        """Point every element straight at its root (pointer jumping)."""
        parent = self.parent
        while True:
            pp = parent[parent]
            if np.array_equal(pp, parent):
                break
            parent = pp
        self.parent = parent

    def union_pairs(self, pairs: np.ndarray) -> int:
        """Merge the components of every ``(u, v)`` row. Returns the merge rounds run."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        u, v = pairs[:, 0], pairs[:, 1]
        rounds = 0
        while u.size:
            ru, rv = self.find(u), self.find(v)
            differ = ru != rv
            if not differ.any():
                break
            u, v, ru, rv = u[differ], v[differ], ru[differ], rv[differ]
            hi = np.maximum(ru, rv)
            lo = np.minimum(ru, rv)
            # Several pairs may hook the same root; the smallest target wins now and the
            # others are retried next round (their roots still differ).
            np.minimum.at(self.parent, hi, lo)
            rounds += 1
            if rounds % 4 == 0:
                self.compress()
        self.compress()
        return rounds

    def labels(self) -> np.ndarray:
        """``int64[n]``: each element's component label (= its smallest member)."""
        self.compress()
        return self.parent


# --------------------------------------------------------------------------- survivors


@dataclass
class DuplicateClusters:
    """Every document that belongs to a cluster of size >= 2, sorted by doc index.

    ``cluster_id`` is the smallest doc index of the cluster (stable, order-free);
    ``keeper`` is the surviving doc index, or -1 when the cluster is anchored to an
    earlier dump (then every member here is removed); ``keep`` marks the keeper itself.
    """

    doc_index: np.ndarray
    cluster_id: np.ndarray
    keeper: np.ndarray
    keep: np.ndarray

    @property
    def num_clusters(self) -> int:
        return int(np.unique(self.cluster_id).size)

    @property
    def num_removed(self) -> int:
        return int((~self.keep).sum())

    def removed(self) -> "DuplicateClusters":
        m = ~self.keep
        return DuplicateClusters(self.doc_index[m], self.cluster_id[m], self.keeper[m], self.keep[m])

    def lookup(self, doc_index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For a shard's doc indices: ``(removed_mask, cluster_id, keeper)``; cluster_id
        and keeper are -1 where the document is in no cluster."""
        q = np.asarray(doc_index, dtype=np.int64)
        n = self.doc_index.size
        if n == 0:
            minus = np.full(q.shape, -1, dtype=np.int64)
            return np.zeros(q.shape, dtype=bool), minus, minus.copy()
        pos = np.minimum(np.searchsorted(self.doc_index, q), n - 1)
        found = self.doc_index[pos] == q
        cid = np.where(found, self.cluster_id[pos], -1)
        keeper = np.where(found, self.keeper[pos], -1)
        removed = found & ~self.keep[pos]
        return removed, cid, keeper

    def to_arrow(self):
        import pyarrow as pa

        return pa.table(
            {
                "doc_index": pa.array(self.doc_index, pa.int64()),
                "cluster_id": pa.array(self.cluster_id, pa.int64()),
                "keeper": pa.array(self.keeper, pa.int64()),
                "keep": pa.array(self.keep, pa.bool_()),
            }
        )

    @classmethod
    def from_arrow(cls, table) -> "DuplicateClusters":
        col = lambda name: table.column(name).to_numpy()  # noqa: E731
        return cls(col("doc_index"), col("cluster_id"), col("keeper"), col("keep"))


def resolve_clusters(
    labels: Union[UnionFind, np.ndarray],
    *,
    priority: Optional[np.ndarray] = None,
    anchored: Optional[np.ndarray] = None,
) -> DuplicateClusters:
    """Choose one survivor per cluster (see the module docstring for the rule).

    ``labels``: a ``UnionFind`` or its ``labels()``. ``priority``: optional sortable
    array (int or float) per doc, smaller = preferred; default the doc index.
    ``anchored``: optional bool per doc: matches an earlier dump's index.
    """
    lab = labels.labels() if isinstance(labels, UnionFind) else np.asarray(labels, dtype=np.int64)
    n = lab.size
    counts = np.bincount(lab, minlength=n)
    anchored_comp = None
    if anchored is not None:
        anchored = np.asarray(anchored, dtype=bool)
        anchored_comp = np.zeros(n, dtype=bool)
        anchored_comp[lab[anchored]] = True
        in_cluster = (counts[lab] > 1) | anchored_comp[lab]
    else:
        in_cluster = counts[lab] > 1
    members = np.flatnonzero(in_cluster)
    if members.size == 0:
        e = np.empty(0, np.int64)
        return DuplicateClusters(e, e.copy(), e.copy(), np.empty(0, bool))
    cid = lab[members]
    if priority is None:
        # Labels are component minima, so the default keeper IS the cluster id.
        keeper = cid.copy()
    else:
        pr = np.asarray(priority)[members]
        order = np.lexsort((members, pr, cid))  # by cluster, then priority, then index
        cid_sorted = cid[order]
        first = np.concatenate(([True], cid_sorted[1:] != cid_sorted[:-1]))
        cluster_ids = cid_sorted[first]  # ascending
        best = members[order][first]
        keeper = best[np.searchsorted(cluster_ids, cid)]
    if anchored_comp is not None:
        keeper[anchored_comp[cid]] = -1
    keep = keeper == members
    return DuplicateClusters(members, cid, keeper, keep)


def cluster_band_ranges(
    num_docs: int,
    ranges: Iterable[Iterable[tuple[np.ndarray, np.ndarray]]],
    *,
    priority: Optional[np.ndarray] = None,
    anchored: Optional[np.ndarray] = None,
    stats: Optional[dict] = None,
) -> DuplicateClusters:
    """Convenience: ``ranges`` yields, per band range, an iterable of ``(doc_idx, keys)``
    chunks; pairs are merged range by range. ``stats`` (if given) receives counts."""
    uf = UnionFind(num_docs)
    total_pairs = 0
    n_ranges = 0
    for chunks in ranges:
        pairs = candidate_pairs(chunks)
        total_pairs += int(pairs.shape[0])
        uf.union_pairs(pairs)
        n_ranges += 1
    clusters = resolve_clusters(uf, priority=priority, anchored=anchored)
    if stats is not None:
        stats.update(
            band_ranges=n_ranges,
            candidate_pairs=total_pairs,
            clusters=clusters.num_clusters,
            docs_in_clusters=int(clusters.doc_index.size),
            docs_removed=clusters.num_removed,
        )
    return clusters


# --------------------------------------------------------------------------- cross-dump index


_C_BAND_SALT = U64(0x8CB92BA72F3D8DD7)


def composite_band_keys(keys: np.ndarray, band_start: int = 0) -> np.ndarray:
    """Mix each band key with its band number so that keys of all bands live in one
    ``SortedHashIndex`` (a key only matches the same band of an earlier document)."""
    keys = np.asarray(keys, dtype=np.uint64)
    if keys.ndim == 1:
        keys = keys[None, :]
    band = np.arange(band_start, band_start + keys.shape[1], dtype=np.uint64)
    salt = fmix64(band * _C_BAND_SALT + U64(1))
    return fmix64(keys ^ salt[None, :])


def match_earlier_dumps(index: SortedHashIndex, keys: np.ndarray, band_start: int = 0) -> np.ndarray:
    """``bool[n]``: documents sharing at least one band (of this range) with a document
    already kept by an earlier dump. OR the result over all band ranges to get
    ``anchored`` for ``resolve_clusters``."""
    if len(index) == 0:
        return np.zeros(np.asarray(keys).shape[0], dtype=bool)
    return index.contains(composite_band_keys(keys, band_start)).any(axis=1)


def earlier_matches(index: OwnedHashIndex, doc_idx: np.ndarray, keys: np.ndarray, band_start: int = 0) -> np.ndarray:
    """Unique ``int64 (m, 2)`` rows ``(doc_index, owner)``: a document of this chunk that
    shares a band of this range with a document an earlier dump kept, and the reference
    of that earlier document (-1 when the index does not record owners). The cross-dump
    candidate pairs, to verify like the within-dump ones and to name the kept copy."""
    doc_idx = np.asarray(doc_idx, dtype=np.int64).ravel()
    if len(index) == 0 or doc_idx.size == 0:
        return np.empty((0, 2), np.int64)
    owners = index.owners(composite_band_keys(keys, band_start))
    rows, cols = np.nonzero(owners != -2)
    if rows.size == 0:
        return np.empty((0, 2), np.int64)
    return np.unique(np.stack((doc_idx[rows], owners[rows, cols]), axis=1), axis=0)


# --------------------------------------------------------------------------- verification


def verify_pairs(pairs: np.ndarray, left: Mapping[int, np.ndarray] | Callable[[int], np.ndarray],
                 right: Mapping[int, np.ndarray] | Callable[[int], np.ndarray], min_jaccard: float) -> np.ndarray:
    """``bool[m]``: which candidate pairs ``(a, b)`` have an exact Jaccard similarity of at
    least ``min_jaccard`` between the shingle sets ``left[a]`` and ``right[b]`` (sorted
    unique hash arrays, ``minhash.shingle_hashes64``).

    LSH banding only says two documents share a band; with few rows per band (GPT-3's
    10 x 1) that happens to unrelated pages, and connected components then chain them
    together. Spark's MinHashLSH, which GPT-3 used, keeps a pair of its similarity join
    only when the distance computed on the pair's own features is under the threshold:
    this is that check, on the shingles MinHash ran over."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    get_left = left if callable(left) else left.__getitem__
    get_right = right if callable(right) else right.__getitem__
    keep = np.empty(pairs.shape[0], dtype=bool)
    for i, (a, b) in enumerate(pairs.tolist()):
        keep[i] = jaccard(get_left(a), get_right(b)) >= min_jaccard
    return keep


def grow_band_index(index: SortedHashIndex, kept_keys: np.ndarray, band_start: int = 0) -> SortedHashIndex:
    """A new index with the composite band keys of a dump's kept documents added."""
    return index.union(composite_band_keys(kept_keys, band_start).ravel())


# --------------------------------------------------------------------------- per-shard step


class MinHashDedupStep(Step):
    """Per-shard filter: removes the documents a dump-level clustering marked as removed.

    Built from a ``DuplicateClusters`` (documents keyed by their global doc index in
    ``doc_index_field``) or, with ``from_removed``, from a mapping that the dump-level
    asset stored (documents keyed by ``doc_id``). The detail names the cluster and the
    keeper so that "why was this page dropped?" has an answer. With ``size_field`` set,
    every kept document is annotated with the size of its cluster (1 when unique).
    """

    name = "minhash_dedup"

    def __init__(self, clusters: Optional[DuplicateClusters] = None, doc_index_field: str = "doc_index",
                 keeper_names: Optional[dict] = None):
        self._removed: dict = {}
        self._sizes: dict = {}
        self.key_field = doc_index_field
        self.size_field: Optional[str] = None
        if clusters is not None:
            names = keeper_names or {}
            removed = clusters.removed()
            for i, cid, keeper in zip(removed.doc_index.tolist(), removed.cluster_id.tolist(), removed.keeper.tolist()):
                self._removed[i] = (cid, names.get(keeper, keeper), "", False) if keeper >= 0 else (cid, "", "", True)

    @classmethod
    def from_removed(cls, removed: dict, *, key_field: str = "doc_id", cluster_sizes: Optional[dict] = None,
                     size_field: Optional[str] = None) -> "MinHashDedupStep":
        """``removed``: key -> ``(cluster label, keeper label, keeper's dump, earlier)``;
        ``earlier`` is True when the keeper is a document an earlier dump kept (its label
        is "" when that index recorded no owner). ``cluster_sizes``: key -> size, for
        kept members."""
        step = cls(None, doc_index_field=key_field)
        step._removed = dict(removed)
        step._sizes = dict(cluster_sizes or {})
        step.size_field = size_field
        return step

    @property
    def output_columns(self) -> dict:
        return {self.size_field: int} if self.size_field else {}

    def apply(self, doc):
        key = doc[self.key_field]
        hit = self._removed.get(key)
        if hit is None:
            if self.size_field:
                doc[self.size_field] = self._sizes.get(key, 1)
            return None
        cid, keeper, keeper_dump, earlier = hit
        # The detail answers "duplicate of what?": the kept copy's id (and its dump).
        where = f" kept_dump={keeper_dump}" if keeper_dump else ""
        if earlier:
            kept = f"kept={keeper}" if keeper != "" else "kept=unknown (index without owners)"
            return ("minhash_duplicate_of_earlier_dump", f"cluster={cid} {kept}{where}")
        return ("minhash_duplicate", f"cluster={cid} kept={keeper}{where}")


def iter_range_chunks(
    shards: Iterable[tuple[np.ndarray, np.ndarray]], band_start: int, band_stop: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Slice each shard's full ``(doc_idx, keys)`` to one band range (copying only the
    slice, so the caller may drop the full array right after)."""
    for doc_idx, keys in shards:
        yield doc_idx, np.ascontiguousarray(np.asarray(keys)[:, band_start:band_stop])

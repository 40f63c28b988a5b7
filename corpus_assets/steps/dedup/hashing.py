"""Stable 64-bit hashing and a sorted hash index, shared by the dedup stages.

Everything here is deterministic across processes, machines and Python versions: no
use of Python's salted ``hash()``, no NumPy random stream whose algorithm may change.

- ``stable_hash64`` hashes a string or bytes with BLAKE2b cut to 8 bytes (``hashlib``,
  so no extra dependency; RFC 7693).
- ``fmix64`` is the 64-bit finalizer of MurmurHash3 (Appleby), vectorized over NumPy
  ``uint64`` arrays; it is a bijection that spreads every input bit over the output.
- ``splitmix64_sequence`` draws a reproducible stream of 64-bit words from a seed
  (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators"); it is
  fully specified here, so hash parameters never change with the NumPy version.
- ``SortedHashIndex`` is a sorted, unique ``uint64`` array answering membership queries
  with ``np.searchsorted``: the index of earlier dumps' URL hashes or band keys.

All ``uint64`` arithmetic in this package relies on NumPy's wrap-around (mod 2**64)
semantics for arrays, which is silent and exact.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Union

import numpy as np

U64 = np.uint64
MASK64 = (1 << 64) - 1

# MurmurHash3 fmix64 constants.
_FMIX_C1 = U64(0xFF51AFD7ED558CCD)
_FMIX_C2 = U64(0xC4CEB9FE1A85EC53)
_S33 = U64(33)

# SplitMix64 constants.
_GOLDEN = 0x9E3779B97F4A7C15
_SM_C1 = 0xBF58476D1CE4E5B9
_SM_C2 = 0x94D049BB133111EB


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer over a ``uint64`` array (returns a new array)."""
    x = np.asarray(x, dtype=np.uint64)
    x = x ^ (x >> _S33)
    x = x * _FMIX_C1
    x ^= x >> _S33
    x *= _FMIX_C2
    x ^= x >> _S33
    return x


def _splitmix64_int(z: int) -> int:
    z = (z + _GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * _SM_C1) & MASK64
    z = ((z ^ (z >> 27)) * _SM_C2) & MASK64
    return z ^ (z >> 31)


def splitmix64_sequence(seed: int, count: int, stream: int = 0) -> np.ndarray:
    """``count`` pseudo-random 64-bit words from ``(seed, stream)``, as ``uint64``.

    Vectorized SplitMix64: word ``i`` is ``mix(state0 + (i + 1) * golden)``.
    """
    state0 = _splitmix64_int((seed & MASK64) ^ ((stream * 0xD1B54A32D192ED03) & MASK64))
    i = np.arange(1, count + 1, dtype=np.uint64)
    z = U64(state0) + i * U64(_GOLDEN)
    z = (z ^ (z >> U64(30))) * U64(_SM_C1)
    z = (z ^ (z >> U64(27))) * U64(_SM_C2)
    return z ^ (z >> U64(31))


def stable_hash64(value: Union[str, bytes]) -> int:
    """64-bit BLAKE2b digest of ``value`` (UTF-8 for strings) as a Python int."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(value, digest_size=8).digest(), "little")


def hash_strings(values: Iterable[str]) -> np.ndarray:
    """``stable_hash64`` of each string, as a ``uint64`` array (duplicates hashed once)."""
    values = list(values)
    cache: dict[str, int] = {}
    out = np.empty(len(values), dtype=np.uint64)
    for i, v in enumerate(values):
        h = cache.get(v)
        if h is None:
            h = cache[v] = stable_hash64(v)
        out[i] = h
    return out


class SortedHashIndex:
    """An immutable set of 64-bit hashes kept as a sorted unique ``uint64`` array.

    Membership of a batch is one ``np.searchsorted``: O(m log n), no Python loop. The
    index grows by ``union`` (a merge that returns a new index, so the snapshot a dump
    was deduplicated against is never mutated under it). It round-trips through a
    one-column Parquet file (``hash: uint64``), small enough for millions of entries
    (8 bytes each before compression).
    """

    __slots__ = ("hashes",)

    COLUMN = "hash"

    def __init__(self, hashes: np.ndarray | None = None, *, assume_sorted_unique: bool = False):
        if hashes is None:
            hashes = np.empty(0, dtype=np.uint64)
        hashes = np.asarray(hashes, dtype=np.uint64).ravel()
        self.hashes = hashes if assume_sorted_unique else np.unique(hashes)

    def __len__(self) -> int:
        return int(self.hashes.size)

    def __repr__(self) -> str:
        return f"SortedHashIndex({len(self)} hashes)"

    def contains(self, query: np.ndarray) -> np.ndarray:
        """Boolean mask, same shape as ``query``: which hashes are in the index."""
        query = np.asarray(query, dtype=np.uint64)
        if self.hashes.size == 0:
            return np.zeros(query.shape, dtype=bool)
        flat = query.ravel()
        pos = np.searchsorted(self.hashes, flat)
        pos[pos == self.hashes.size] = 0
        return (self.hashes[pos] == flat).reshape(query.shape)

    def union(self, other: Union["SortedHashIndex", np.ndarray]) -> "SortedHashIndex":
        """A new index holding the hashes of both."""
        other_hashes = other.hashes if isinstance(other, SortedHashIndex) else np.asarray(other, np.uint64).ravel()
        return SortedHashIndex(np.union1d(self.hashes, other_hashes), assume_sorted_unique=True)

    def to_arrow(self):
        import pyarrow as pa

        return pa.table({self.COLUMN: pa.array(self.hashes, type=pa.uint64())})

    @classmethod
    def from_arrow(cls, table) -> "SortedHashIndex":
        column = table.column(cls.COLUMN).to_numpy()
        return cls(column)

    def write_parquet(self, path: Union[str, Path]) -> None:
        import pyarrow.parquet as pq

        pq.write_table(self.to_arrow(), str(path))

    @classmethod
    def read_parquet(cls, path: Union[str, Path]) -> "SortedHashIndex":
        import pyarrow.parquet as pq

        return cls.from_arrow(pq.read_table(str(path), columns=[cls.COLUMN]))


class OwnedHashIndex:
    """Sorted unique ``uint64`` hashes, each with the ``int64`` reference of the document
    that owns it (the earliest one added: the smallest reference wins a shared hash).

    The cross-dump band index: "does this band key belong to a document an earlier dump
    kept, and to which?" (so a removal can name what it duplicates). References are row
    numbers of the snapshot's document table; -1 means "unknown owner" (an index written
    before owners were recorded)."""

    __slots__ = ("hashes", "refs")

    HASH, REF = "hash", "ref"

    def __init__(self, hashes: np.ndarray | None = None, refs: np.ndarray | None = None):
        hashes = np.empty(0, np.uint64) if hashes is None else np.asarray(hashes, dtype=np.uint64).ravel()
        refs = np.full(hashes.size, -1, np.int64) if refs is None else np.asarray(refs, dtype=np.int64).ravel()
        if refs.size != hashes.size:
            raise ValueError(f"{hashes.size} hashes but {refs.size} owner references")
        # Sort by hash, then by reference: the first row of each hash is its earliest owner.
        order = np.lexsort((refs, hashes))
        hashes, refs = hashes[order], refs[order]
        first = np.ones(hashes.size, dtype=bool)
        first[1:] = hashes[1:] != hashes[:-1]
        self.hashes, self.refs = hashes[first], refs[first]

    def __len__(self) -> int:
        return int(self.hashes.size)

    def owners(self, query: np.ndarray) -> np.ndarray:
        """``int64`` array shaped like ``query``: the owner of each hash, -2 where absent
        (-1 stays "present, owner unknown")."""
        query = np.asarray(query, dtype=np.uint64)
        if self.hashes.size == 0:
            return np.full(query.shape, -2, dtype=np.int64)
        flat = query.ravel()
        pos = np.searchsorted(self.hashes, flat)
        pos[pos == self.hashes.size] = 0
        hit = self.hashes[pos] == flat
        return np.where(hit, self.refs[pos], -2).reshape(query.shape)

    def union(self, hashes: np.ndarray, refs: np.ndarray) -> "OwnedHashIndex":
        """A new index with ``hashes`` (owned by ``refs``) added; existing owners are kept
        where their reference is smaller."""
        return OwnedHashIndex(np.concatenate([self.hashes, np.asarray(hashes, np.uint64).ravel()]),
                              np.concatenate([self.refs, np.asarray(refs, np.int64).ravel()]))

    def to_arrow(self):
        import pyarrow as pa

        return pa.table({self.HASH: pa.array(self.hashes, pa.uint64()), self.REF: pa.array(self.refs, pa.int64())})

    @classmethod
    def from_arrow(cls, table) -> "OwnedHashIndex":
        refs = table.column(cls.REF).to_numpy() if cls.REF in table.column_names else None
        return cls(table.column(cls.HASH).to_numpy(), refs)

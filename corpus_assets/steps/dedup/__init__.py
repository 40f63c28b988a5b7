"""RefinedWeb's deduplication stages as plain Python (no Dagster).

- ``minhash``: normalization, word n-gram shingles, MinHash signatures and LSH band
  keys, presets (``refinedweb`` 450 x 20, ``fineweb`` 14 x 8, ``gpt3`` 10 x 1).
- ``clusters``: band-range bucketing to candidate pairs, vectorized union-find,
  deterministic survivors, the cross-dump band-key index and the per-shard filter step.
- ``exact_substring``: Lee et al. 2022 exact substring dedup (suffix array or hashed
  windows) with the CUT / MASK / DROPPARTIAL / DROPANY modes.
- ``urls``: URL normalization and the cross-dump URL index.
- ``hashing``: stable 64-bit hashes and ``SortedHashIndex``.
"""

from .clusters import (
    DuplicateClusters,
    MinHashDedupStep,
    UnionFind,
    band_ranges,
    candidate_pairs,
    cluster_band_ranges,
    composite_band_keys,
    grow_band_index,
    iter_range_chunks,
    earlier_matches,
    match_earlier_dumps,
    resolve_clusters,
    verify_pairs,
)
from .exact_substring import (
    ExactSubstringStep,
    Mode,
    apply_mode,
    cut_spans,
    find_duplicate_spans,
)
from .hashing import OwnedHashIndex, SortedHashIndex, stable_hash64
from .minhash import (
    FINEWEB,
    GPT3,
    PRESETS,
    REFINEDWEB,
    MinHasher,
    MinHashPreset,
    band_keys_from_arrow,
    band_keys_to_arrow,
    collision_probability,
    describe_presets,
    get_minhasher,
    get_preset,
    jaccard,
    lsh_threshold,
    normalize_text,
    shingle_hashes64,
)
from .urls import UrlDedupStep, check_urls, grow_url_index, normalize_url, url_hash, url_hashes

__all__ = [name for name in dir() if not name.startswith("_")]

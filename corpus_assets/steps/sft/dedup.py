"""Exact and near-duplicate removal for instruction samples.

- Exact: samples whose texts normalize to the same string (the project's MinHash
  normalization, ``steps/dedup/minhash.normalize_text``: lower case, accents, punctuation
  and whitespace folded) are one group.
- Near: MinHash (the project's ``MinHasher``: universal-hash permutations mod 2^32 from
  SplitMix64) over the character n-grams (n = 5) of the normalized text, ``num_perm``
  = 256 permutations cut into ``bands`` LSH bands; a pair sharing a band joins a cluster
  only when its signature-estimated Jaccard similarity is >= ``jaccard`` (0.7), as the
  BetterMixture winner's Data-Juicer ``document_minhash_deduplicator`` with character
  5-grams, 256 permutations and threshold 0.7.

Within an exact group the sample with the highest quality score is kept (ties: the first in
pool order). Near duplicates are resolved greedily, best quality first: a sample is kept
unless it is >= ``jaccard`` similar (signature estimate) to a sample already kept, every kept
sample sharing one of its LSH bands being compared (not only a bucket's lowest-numbered
member, as union-find's star pairs would give: that left near duplicates in and made the
result depend on line order, breaker issue 15 f13). Facts: ``candidate_pairs`` = the
(sample, kept sample) comparisons made, ``verified_pairs`` = those >= ``jaccard``. Unlike connected components
(Data-Juicer's union-find over band collisions), this never chains: a sample is removed only
for being >= ``jaccard`` similar to one that stays. On GPTeacher the difference is large:
toolformer samples share a long tool header, and connected components merged 3,600 of
5,165 filtered samples into 62 clusters, removing samples that resemble no kept one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from corpus_assets.steps.dedup.hashing import fmix64, hash_strings
from corpus_assets.steps.dedup.minhash import MinHasher, MinHashPreset, normalize_text
from corpus_assets.steps.sft.config import SftDedup

U64 = np.uint64
_C_CHAR = U64(0x9E3779B97F4A7C15)
EXACT, NEAR = "exact_duplicate", "near_duplicate"


def char_shingles32(text: str, n: int = 5) -> np.ndarray:
    """32-bit hashes of the character n-grams of the normalized text (sorted, unique); a
    text shorter than n is one shingle: itself."""
    norm = normalize_text(text)
    codes = np.frombuffer(norm.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    if codes.size < n:
        h = hash_strings([norm])
        return np.unique((fmix64(h) >> U64(32)).astype(np.uint32))
    count = codes.size - n + 1
    acc = fmix64(codes[:count] + _C_CHAR)
    for j in range(1, n):
        acc = fmix64(acc * _C_CHAR + codes[j:j + count])
    return np.unique((acc >> U64(32)).astype(np.uint32))


def preset(cfg: SftDedup) -> MinHashPreset:
    return MinHashPreset("sft_char", num_bands=cfg.bands, rows_per_band=cfg.num_perm // cfg.bands, ngram=cfg.ngram,
                         seed=cfg.seed)


@dataclass
class DedupResult:
    keep: np.ndarray                      # bool per input sample
    reasons: list                         # None / EXACT / NEAR
    duplicate_of: np.ndarray              # index of the kept sample of its group (-1: not a duplicate)
    removed: Counter = field(default_factory=Counter)
    facts: dict = field(default_factory=dict)


def _keepers(labels: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Per element, the index of its group's best-quality member (ties: smallest index)."""
    order = np.lexsort((np.arange(labels.size), -quality, labels))  # by label, then best quality first
    best = np.empty(labels.size, dtype=np.int64)
    first_of_label = {}
    for i in order:
        lab = int(labels[i])
        if lab not in first_of_label:
            first_of_label[lab] = int(i)
        best[i] = first_of_label[lab]
    return best


def deduplicate(texts: Sequence[str], quality: Sequence[float], cfg: SftDedup) -> DedupResult:
    n = len(texts)
    quality = np.asarray(quality, dtype=np.float64)
    reasons = [None] * n
    duplicate_of = np.full(n, -1, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    facts = {"exact_groups": 0, "candidate_pairs": 0, "verified_pairs": 0, "samples_with_near_pairs": 0,
             "lsh_threshold": round(preset(cfg).threshold, 4)}
    if cfg.exact and n:
        keys = hash_strings(normalize_text(t) for t in texts)
        _, labels = np.unique(keys, return_inverse=True)
        best = _keepers(labels.astype(np.int64), quality)
        for i in range(n):
            if best[i] != i:
                alive[i], reasons[i], duplicate_of[i] = False, EXACT, best[i]
        facts["exact_groups"] = int(sum(1 for c in Counter(labels.tolist()).values() if c > 1))
    if cfg.near and alive.sum() > 1:
        idx = np.flatnonzero(alive)
        hasher = MinHasher(preset(cfg))
        sigs = hasher.signatures_from_shingles([char_shingles32(texts[i], cfg.ngram) for i in idx])
        keys = hasher.band_keys(sigs)
        # Greedy, best quality first: each sample is compared with EVERY kept sample that
        # shares one of its LSH bands (not only a bucket's lowest-numbered member), so it is
        # removed iff it is >= jaccard similar to some kept sample; the result depends on
        # quality (ties: pool order), not on how the bucket members happen to be numbered.
        buckets: dict[tuple[int, int], list[int]] = {}
        checked = verified = 0
        linked = set()
        order = np.lexsort((np.arange(idx.size), -quality[idx]))  # best quality first
        rank = np.empty(idx.size, dtype=np.int64)
        rank[order] = np.arange(idx.size)
        for j in order:
            j = int(j)
            row = keys[j]
            cands = sorted({m for b in range(row.size) for m in buckets.get((b, int(row[b])), ())},
                           key=lambda m: rank[m])
            twin = None
            if cands:
                est = (sigs[cands] == sigs[j]).mean(axis=1)
                checked += len(cands)
                hits = np.flatnonzero(est >= cfg.jaccard)
                verified += int(hits.size)
                if hits.size:
                    # the most similar kept sample (ties: the one kept first, i.e. best quality)
                    twin = cands[int(hits[np.argmax(est[hits])])]
                    linked.update((j, twin))
            if twin is None:
                for b in range(row.size):
                    buckets.setdefault((b, int(row[b])), []).append(j)
            else:
                i = idx[j]
                alive[i], reasons[i], duplicate_of[i] = False, NEAR, idx[twin]
        facts["candidate_pairs"], facts["verified_pairs"] = checked, verified
        facts["samples_with_near_pairs"] = len(linked)
    return DedupResult(alive, reasons, duplicate_of, Counter(r for r in reasons if r), facts)

"""MinHash signatures, LSH presets, bucketing, clustering and survivors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus_assets.steps.base import run_steps
from corpus_assets.steps.dedup.clusters import (
    MinHashDedupStep,
    UnionFind,
    band_ranges,
    candidate_pairs,
    cluster_band_ranges,
    grow_band_index,
    iter_range_chunks,
    match_earlier_dumps,
    resolve_clusters,
)
from corpus_assets.steps.dedup.hashing import SortedHashIndex
from corpus_assets.steps.dedup.minhash import (
    FINEWEB,
    GPT3,
    REFINEDWEB,
    MinHasher,
    MinHashPreset,
    band_keys_from_arrow,
    band_keys_to_arrow,
    collision_probability,
    estimate_jaccard,
    get_minhasher,
    jaccard,
    lsh_threshold,
    normalize_text,
    shingle_hashes64,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --------------------------------------------------------------------------- helpers

_rng = np.random.default_rng(20240610)


def _letters(i: int) -> str:
    """i written in base 26 with letters: words without digits, which every preset's
    normalization keeps apart (FineWeb's turns "tok12" and "tok34" into the same "tok0")."""
    out = ""
    while True:
        i, d = divmod(i, 26)
        out = chr(ord("a") + d) + out
        if i == 0:
            return out


VOCAB = [f"tok{_letters(i)}" for i in range(20000)]


def random_words(n: int, rng=_rng) -> list[str]:
    return [VOCAB[i] for i in rng.integers(0, len(VOCAB), n)]


def edit(words: list[str], start: int, count: int, rng=_rng) -> list[str]:
    out = list(words)
    out[start : start + count] = random_words(count, rng)
    return out


def shared_band(keys_a: np.ndarray, keys_b: np.ndarray) -> bool:
    return bool((keys_a == keys_b).any())


def cluster_texts(texts: list[str], preset=REFINEDWEB, bands_per_range: int = 100):
    mh = get_minhasher(preset)
    keys = mh.band_keys_for_texts(texts)
    idx = np.arange(len(texts), dtype=np.int64)
    ranges = (
        iter_range_chunks([(idx, keys)], s, e) for s, e in band_ranges(preset.num_bands, bands_per_range)
    )
    return keys, cluster_band_ranges(len(texts), ranges)


def partition(clusters) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for d, c in zip(clusters.doc_index.tolist(), clusters.cluster_id.tolist()):
        groups.setdefault(c, set()).add(d)
    return {frozenset(g) for g in groups.values()}


# --------------------------------------------------------------------------- normalization / presets


def test_normalization_follows_refinedweb():
    assert normalize_text("  Héllo,   WÖRLD!\n\tÇa-va?  ") == "hello world ca va"
    assert normalize_text("end.Start") == "end start"  # punctuation -> space, not glued
    assert normalize_text("naïve café — “quoted” … $5 + 3 = 8") == "naive cafe quoted 5 3 8"
    # Digits kept by default (RefinedWeb); each number -> one 0 in FineWeb's rule.
    assert normalize_text("Call 555-1234") == "call 555 1234"
    assert normalize_text("Call 555-1234", numbers="whole") == "call 0 0"
    assert normalize_text("") == ""


def test_preset_layouts_and_thresholds():
    assert (REFINEDWEB.num_bands, REFINEDWEB.rows_per_band, REFINEDWEB.num_perm) == (450, 20, 9000)
    assert (FINEWEB.num_bands, FINEWEB.rows_per_band, FINEWEB.num_perm) == (14, 8, 112)
    assert (GPT3.num_bands, GPT3.rows_per_band, GPT3.num_perm) == (10, 1, 10)
    assert REFINEDWEB.threshold == pytest.approx(0.737, abs=0.001)
    # The paper's literal "20 buckets of 450" would only pair near-exact copies.
    assert lsh_threshold(20, 450) == pytest.approx(0.9934, abs=0.001)
    assert FINEWEB.threshold == pytest.approx(0.719, abs=0.001)
    assert GPT3.threshold == pytest.approx(0.1)
    assert collision_probability(0.8, 14, 8) == pytest.approx(0.9235, abs=1e-3)
    assert collision_probability(1.0, 450, 20) == 1.0
    assert collision_probability(0.0, 450, 20) == 0.0
    desc = REFINEDWEB.describe()
    assert desc["lsh_threshold"] == pytest.approx(0.7368, abs=1e-4) and desc["num_perm"] == 9000


# --------------------------------------------------------------------------- signatures


def test_identical_documents_always_collide_in_every_band():
    text = " ".join(random_words(300))
    for preset in (REFINEDWEB, FINEWEB, GPT3):
        mh = get_minhasher(preset)
        k1, k2 = mh.band_keys_for_texts([text, text])
        assert (k1 == k2).all()
    # Differences that normalization erases do not matter either.
    mh = get_minhasher(REFINEDWEB)
    a, b = mh.band_keys_for_texts([text, "  " + text.upper().replace(" ", " ,  ") + "!"])
    assert (a == b).all()


def test_unrelated_documents_do_not_collide_at_refinedweb():
    rng = np.random.default_rng(7)
    texts = [" ".join(random_words(250, rng)) for _ in range(40)]
    keys = get_minhasher(REFINEDWEB).band_keys_for_texts(texts)
    pairs = candidate_pairs([(np.arange(40), keys)])
    assert pairs.shape == (0, 2)


def test_signatures_are_deterministic_and_batch_independent():
    texts = [" ".join(random_words(n)) for n in (3, 50, 400, 1200)]
    a = MinHasher(REFINEDWEB).signatures(texts)
    b = MinHasher(REFINEDWEB).signatures(texts[::-1])[::-1]
    c = np.stack([MinHasher(REFINEDWEB).signature(t) for t in texts])
    mh = MinHasher(REFINEDWEB)
    d = mh.signatures_from_shingles([mh.shingles32(t) for t in texts])  # per-doc path
    assert a.dtype == np.uint32 and a.shape == (4, 9000)
    assert (a == b).all() and (a == c).all() and (a == d).all()
    # A different seed gives different permutations.
    other = MinHasher(MinHashPreset("x", 450, 20, seed=2)).signatures(texts)
    assert (other != a).mean() > 0.9


# Pinned digest: band keys are stored per dump and compared across dumps, so the hash
# must never change silently. If the algorithm is changed on purpose, every stored
# signature and band-key index must be rebuilt; then update this value.
PINNED_TEXT = "The quick brown fox jumps over the lazy dog, again and again, every single day."


def _digest(preset) -> str:
    keys = get_minhasher(preset).band_keys_for_texts([PINNED_TEXT])
    return hashlib.sha256(keys.tobytes()).hexdigest()[:16]


def test_band_keys_are_stable_across_processes():
    code = (
        "import hashlib; from corpus_assets.steps.dedup.minhash import get_minhasher;"
        f"k=get_minhasher('fineweb').band_keys_for_texts([{PINNED_TEXT!r}]);"
        "print(hashlib.sha256(k.tobytes()).hexdigest()[:16])"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=True)
    assert out.stdout.strip() == _digest(FINEWEB)
    assert _digest(FINEWEB) == PINNED_FINEWEB_DIGEST


PINNED_FINEWEB_DIGEST = "3e4d60c321291818"


def test_short_documents_are_one_whole_text_shingle():
    assert shingle_hashes64("only four words here").size == 1
    assert shingle_hashes64("").size == 1
    mh = get_minhasher(REFINEDWEB)
    k = mh.band_keys_for_texts(["only four words here", "Only four words, here!", "only three words"])
    assert (k[0] == k[1]).all()
    assert not shared_band(k[0], k[2])
    # Five words: exactly one 5-gram shingle; six words: two.
    assert shingle_hashes64("a b c d e").size == 1
    assert shingle_hashes64("a b c d e f").size == 2


def test_row_agreement_estimates_jaccard_on_synthetic_sets():
    """P[row match] = J: the mean agreement over 9,000 rows is close to J."""
    rng = np.random.default_rng(123)
    mh = get_minhasher(REFINEDWEB)
    for s in (0.2, 0.5, 0.8, 0.95):
        universe = rng.choice(2**32, size=4000, replace=False).astype(np.uint32)
        n_union = 2000
        n_common = int(round(s * n_union))
        n_only = (n_union - n_common) // 2
        common = universe[:n_common]
        a = np.sort(np.concatenate([common, universe[n_common : n_common + n_only]]))
        b = np.sort(np.concatenate([common, universe[n_common + n_only : n_common + 2 * n_only]]))
        true_j = n_common / (n_common + 2 * n_only)
        sig = mh.signatures_from_shingles([a, b])
        est = estimate_jaccard(sig[0], sig[1])
        assert est == pytest.approx(true_j, abs=0.03), (s, est, true_j)


def test_band_collision_rate_matches_theory():
    """Fraction of synthetic pairs sharing >= 1 band vs 1 - (1 - s^r)^b (fineweb 14x8)."""
    rng = np.random.default_rng(99)
    mh = get_minhasher(FINEWEB)
    n_pairs = 300
    for s in (0.5, 0.7, 0.8, 0.9):
        shingles = []
        for _ in range(n_pairs):
            universe = rng.choice(2**32, size=600, replace=False).astype(np.uint32)
            n_common = int(round(s * 300))
            n_only = (300 - n_common) // 2
            common = universe[:n_common]
            shingles.append(np.concatenate([common, universe[n_common : n_common + n_only]]))
            shingles.append(np.concatenate([common, universe[n_common + n_only : n_common + 2 * n_only]]))
        keys = mh.band_keys(mh.signatures_from_shingles(shingles))
        hit = (keys[0::2] == keys[1::2]).any(axis=1).mean()
        true_j = int(round(s * 300)) / (int(round(s * 300)) + 2 * ((300 - int(round(s * 300))) // 2))
        expected = collision_probability(true_j, 14, 8)
        assert hit == pytest.approx(expected, abs=0.1), (s, hit, expected)


def test_text_estimate_close_to_exact_jaccard():
    base = random_words(600)
    variant = edit(edit(base, 100, 20), 400, 20)
    t1, t2 = " ".join(base), " ".join(variant)
    exact = jaccard(shingle_hashes64(t1), shingle_hashes64(t2))
    sig = get_minhasher(REFINEDWEB).signatures([t1, t2])
    assert estimate_jaccard(sig[0], sig[1]) == pytest.approx(exact, abs=0.03)


# --------------------------------------------------------------------------- clusters


def test_known_clusters_including_transitive_chain():
    rng = np.random.default_rng(5)
    texts: list[str] = []
    # Family 1 (docs 0-3): a page and three light edits of it.
    fam1 = random_words(400, rng)
    texts += [" ".join(fam1), " ".join(edit(fam1, 10, 8, rng)), " ".join(edit(fam1, 200, 8, rng)), " ".join(edit(fam1, 390, 8, rng))]
    # Family 2 (docs 4-9): a chain; each doc edits a fresh region of the previous one, so
    # neighbours are similar (J ~ 0.89) but the ends are not (J ~ 0.53).
    chain = [random_words(400, rng)]
    for i in range(5):
        chain.append(edit(chain[-1], 20 + 75 * i, 20, rng))
    texts += [" ".join(w) for w in chain]
    # Family 3 (docs 10-11): exact copies.
    fam3 = " ".join(random_words(300, rng))
    texts += [fam3, fam3]
    # Singletons (docs 12-21).
    texts += [" ".join(random_words(300, rng)) for _ in range(10)]

    keys, clusters = cluster_texts(texts)
    a, c = 4, 9
    assert jaccard(shingle_hashes64(texts[a]), shingle_hashes64(texts[c])) < 0.6
    assert not shared_band(keys[a], keys[c]), "chain ends must not be direct candidates"
    assert partition(clusters) == {frozenset(range(0, 4)), frozenset(range(4, 10)), frozenset({10, 11})}
    # Survivor: smallest index in each cluster; everything else removed.
    removed, cid, keeper = clusters.lookup(np.arange(len(texts)))
    assert set(np.flatnonzero(removed)) == {1, 2, 3, 5, 6, 7, 8, 9, 11}
    assert keeper[9] == 4 and cid[9] == 4 and keeper[11] == 10
    assert (cid[12:] == -1).all() and not removed[12:].any()


def test_transitive_union_on_hand_made_band_keys():
    # A shares band 3 with B, B shares band 7 with C; A and C share nothing.
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**63, size=(5, 10), dtype=np.int64).astype(np.uint64)
    keys[1, 3] = keys[0, 3]  # A ~ B
    keys[2, 7] = keys[1, 7]  # B ~ C
    keys[4, 0] = keys[3, 0]  # D ~ E
    idx = np.arange(5)
    pairs = candidate_pairs([(idx, keys)])
    assert pairs.tolist() == [[0, 1], [1, 2], [3, 4]]
    clusters = resolve_clusters(_uf(5, pairs))
    assert partition(clusters) == {frozenset({0, 1, 2}), frozenset({3, 4})}


def _uf(n, pairs):
    uf = UnionFind(n)
    uf.union_pairs(pairs)
    return uf


def test_band_ranges_and_chunk_order_do_not_change_clusters():
    rng = np.random.default_rng(11)
    n, bands = 3000, 24
    keys = rng.integers(0, 2**63, size=(n, bands), dtype=np.int64).astype(np.uint64)
    # Plant duplicate groups through random shared bands.
    for _ in range(800):
        a, b = rng.integers(0, n, 2)
        j = rng.integers(0, bands)
        keys[b, j] = keys[a, j]
    idx = np.arange(n, dtype=np.int64)
    one = cluster_band_ranges(n, [[(idx, keys)]])
    for width in (1, 5, 24):
        perm = rng.permutation(n)
        shards = [(idx[perm[s : s + 700]], keys[perm[s : s + 700]]) for s in range(0, n, 700)]
        ranges = [list(iter_range_chunks(shards, s, e)) for s, e in band_ranges(bands, width)][::-1]
        other = cluster_band_ranges(n, ranges)
        for f in ("doc_index", "cluster_id", "keeper", "keep"):
            assert np.array_equal(getattr(one, f), getattr(other, f))


def test_vectorized_union_find_matches_reference():
    rng = np.random.default_rng(3)
    n = 2000
    pairs = rng.integers(0, n, size=(1500, 2))
    # Long chain to exercise pointer jumping.
    chain = np.stack([np.arange(1000, 1999), np.arange(1001, 2000)], axis=1)[::-1]
    pairs = np.concatenate([pairs, chain])
    ref = list(range(n))

    def find(x):
        while ref[x] != x:
            ref[x] = ref[ref[x]]
            x = ref[x]
        return x

    for u, v in pairs.tolist():
        ru, rv = find(u), find(v)
        if ru != rv:
            ref[max(ru, rv)] = min(ru, rv)
    expected = np.array([find(x) for x in range(n)])
    uf = UnionFind(n)
    for chunk in np.array_split(pairs, 4):
        uf.union_pairs(chunk)
    assert np.array_equal(uf.labels(), expected)


def test_priority_survivor_rule():
    uf = _uf(6, np.array([[0, 2], [2, 4], [1, 5]]))
    prio = np.array([5.0, 1.0, 0.5, 9.0, 0.5, 1.0])  # ties broken by smaller index
    clusters = resolve_clusters(uf, priority=prio)
    kept = set(clusters.doc_index[clusters.keep].tolist())
    assert kept == {2, 1}
    removed, cid, keeper = clusters.lookup(np.array([0, 4, 5, 3]))
    assert removed.tolist() == [True, True, True, False]
    assert keeper.tolist() == [2, 2, 1, -1] and cid.tolist() == [0, 0, 1, -1]


def test_band_keys_parquet_roundtrip_by_range(tmp_path):
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 2**63, size=(50, 14), dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    table = pa.table({"doc_index": pa.array(np.arange(50)), "band_keys": band_keys_to_arrow(keys)})
    path = tmp_path / "sig.parquet"
    pq.write_table(table, path, row_group_size=16)
    back = pq.read_table(path)
    assert np.array_equal(band_keys_from_arrow(back.column("band_keys")), keys)
    assert np.array_equal(band_keys_from_arrow(back.column("band_keys"), 3, 9), keys[:, 3:9])


def test_cross_dump_index_removes_later_copies_and_is_a_snapshot():
    rng = np.random.default_rng(21)
    base = [random_words(300, rng) for _ in range(4)]
    dump1 = [" ".join(w) for w in base]
    # dump2: a re-crawl of dump1 doc 0, an edit of doc 1, a near-dup pair of doc 1's edit,
    # and a new page.
    new_page = " ".join(random_words(300, rng))
    dump2 = [dump1[0], " ".join(edit(base[1], 5, 6, rng)), new_page, new_page + " extra words at the end"]
    mh = get_minhasher(FINEWEB)
    k1 = mh.band_keys_for_texts(dump1)
    index0 = SortedHashIndex()
    index1 = grow_band_index(index0, k1)
    assert len(index0) == 0 and len(index1) == k1.size  # growing returns a new index
    k2 = mh.band_keys_for_texts(dump2)
    anchored = match_earlier_dumps(index1, k2)
    assert anchored.tolist() == [True, True, False, False]
    n = len(dump2)
    clusters = cluster_band_ranges(n, [[(np.arange(n), k2)]], anchored=anchored)
    removed, cid, keeper = clusters.lookup(np.arange(n))
    assert removed.tolist() == [True, True, False, True]
    assert keeper.tolist()[:2] == [-1, -1] and keeper[3] == 2
    # Against the empty snapshot (what dump1 saw) nothing of dump2 is anchored.
    assert not match_earlier_dumps(index0, k2).any()


def test_minhash_step_conservation():
    texts = ["same text " * 30, "same text " * 30, "different words entirely " * 20]
    _, clusters = cluster_texts(texts, preset=FINEWEB)
    docs = [{"doc_id": f"d{i}", "doc_index": i, "text": t} for i, t in enumerate(texts)]
    removed_log = []
    step = MinHashDedupStep(clusters, keeper_names={0: "d0"})
    out, stats = run_steps([step], docs, lambda d, s, r, det: removed_log.append((d["doc_id"], r, det)))
    kept = [d["doc_id"] for d in out]
    assert kept == ["d0", "d2"]
    assert removed_log == [("d1", "minhash_duplicate", "cluster=0 kept=d0")]
    assert stats[0].check() is None

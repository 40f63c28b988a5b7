"""Targeted selection's steps against their definitions: ZIP-FIT's NCD and alignment,
the level-0 degeneration, DSIR's weights and Gumbel top-k, decontamination, and the
held-out n-gram LM."""

from __future__ import annotations

import gzip
import math
import random
import string
import zlib

import numpy as np
import pytest

from corpus_assets.steps.selection import dsir, zipfit
from corpus_assets.steps.selection.decontamination import ContaminationIndex
from corpus_assets.steps.selection.ngram_lm import ByteNgramLM
from corpus_assets.steps.selection.text import word_punct_tokens

TARGET = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
          "clips in May. How many clips did Natalia sell altogether in April and May?")


def C(s: str, level: int) -> int:
    return len(gzip.compress(s.encode("utf-8"), compresslevel=level))


def reference_alignment(x: str, targets: list[str], level: int) -> float:
    """ZIP-FIT as the paper writes it, with gzip.compress for every length."""
    return float(np.mean([1 - (C(x + y, level) - min(C(x, level), C(y, level))) / max(C(x, level), C(y, level))
                          for y in targets]))


# -- ZIP-FIT -------------------------------------------------------------------------------

def test_ncd_hand_computed_at_level_0():
    # Level 0 stores: 10-byte gzip header + one stored block (5-byte header + data) + 8-byte
    # trailer, so C(s) = 23 + len(s) for s under 64 KiB. x = "abc", y = "abcd":
    # C(x) = 26, C(y) = 27, C(x+y) = 30, NCD = (30 - 26) / 27.
    assert (C("abc", 0), C("abcd", 0), C("abcabcd", 0)) == (26, 27, 30)
    assert zipfit.ncd(26, 27, 30) == pytest.approx(4 / 27)
    targets = zipfit.TargetSet(["abcd"], level=0)
    assert targets.alignment("abc") == pytest.approx(1 - 4 / 27)


def test_ncd_formula_and_gzip_lengths_at_level_9():
    assert zipfit.ncd(10, 20, 25) == pytest.approx(0.75)
    assert zipfit.ncd(20, 10, 25) == pytest.approx(0.75)  # symmetric in the two sizes
    for s in ["", "a", TARGET, TARGET * 40, "ünïcödé ✓" * 9]:
        for level in range(10):
            assert zipfit.gzip_len(s.encode(), level) == C(s, level)
    # A text is closer to itself than to an unrelated one, at level 9.
    x_same, x_other = TARGET, "Die Bundesregierung beschloss am Mittwoch neue Regeln für Mieter."
    assert zipfit.TargetSet([TARGET], 9).alignment(x_same) > zipfit.TargetSet([TARGET], 9).alignment(x_other)


@pytest.mark.parametrize("level", [1, 6, 9])
def test_reused_compressor_state_gives_the_whole_lengths(level):
    rng = random.Random(level)
    words = ["def", "return", "x", "=", "the", "cat", "sat", "(", ")", ":", "\n", "1", "42"]
    targets = ["", "y", TARGET, "".join(rng.choice(string.printable) for _ in range(3000))]
    candidates = ["", "q", TARGET[::-1], " ".join(rng.choice(words) for _ in range(20_000)),  # > 32 KiB window
                  bytes(rng.getrandbits(8) for _ in range(5000)).decode("latin-1")]
    # either side of the size where compressing x + y whole gives way to the reused state
    prose = " ".join(rng.choice(words) for _ in range(2000))
    candidates += [prose[:zipfit.REUSE_MIN_BYTES - 1], prose[:zipfit.REUSE_MIN_BYTES]]
    ts = zipfit.TargetSet(targets, level)
    for x in candidates:
        c_x, joint = ts.pair_lengths(x)
        assert c_x == C(x, level)
        assert list(joint) == [C(x + y, level) for y in targets]


@pytest.mark.parametrize("level", [0, 6])
def test_alignment_is_the_mean_of_one_minus_ncd(level):
    targets = [TARGET, "def add(a, b):\n    return a + b\n", "x"]
    for x in [TARGET, "import os\nprint(os.getcwd())", "How many apples?"]:
        assert zipfit.TargetSet(targets, level).alignment(x) == pytest.approx(reference_alignment(x, targets, level))


def test_level_0_scores_depend_only_on_lengths():
    targets = [TARGET, "def add(a, b):\n    return a + b\n"]
    copy_of_target = TARGET
    unrelated = "".join(random.Random(1).choice(string.ascii_letters) for _ in range(len(TARGET)))
    assert len(copy_of_target.encode()) == len(unrelated.encode())
    level0 = zipfit.TargetSet(targets, 0)
    # Same byte length, same score, whatever the content; and the score is a function of
    # the lengths, computed here from zero bytes.
    assert level0.alignment(copy_of_target) == level0.alignment(unrelated)
    assert level0.alignment(unrelated) == pytest.approx(
        zipfit.level0_score(len(unrelated.encode()), [len(t.encode()) for t in targets]))
    # A real level sees the content.
    level6 = zipfit.TargetSet(targets, 6)
    assert level6.alignment(copy_of_target) > level6.alignment(unrelated) + 0.1
    # Ranking at level 0 follows length only: the shorter of two unrelated texts wins.
    short, long = "zq" * 20, "zq" * 400
    assert level0.alignment(short) > level0.alignment(long)


def test_parallel_scoring_equals_serial_and_streams():
    rng = random.Random(3)
    texts = [" ".join(rng.choice(["clips", "May", "def", "return", "sold", "x"]) for _ in range(rng.randint(0, 300)))
             for _ in range(70)]
    targets = [TARGET, "def f(x):\n    return x\n"]
    serial = zipfit.score_candidates(iter(texts), targets, level=6, workers=1, batch_size=8)
    parallel = zipfit.score_candidates(iter(texts), targets, level=6, workers=2, batch_size=8)
    assert np.array_equal(serial, parallel)
    assert len(serial) == 70
    assert len(zipfit.score_candidates(iter([]), targets, workers=2)) == 0


def test_parallel_map_reads_its_input_lazily():
    from multiprocessing.pool import ThreadPool

    pulled = []

    def batches():
        for i in range(50):
            pulled.append(i)
            yield [i]

    with ThreadPool(2) as pool:
        for j, result in enumerate(zipfit._bounded_ordered_map(pool, lambda b: b[0] * 2, batches(), window=4)):
            assert result == 2 * j  # in input order
            assert len(pulled) <= j + 1 + 4  # never more than the window ahead


def test_top_k_best_first_ties_to_the_earlier():
    scores = np.array([0.1, 0.5, 0.5, 0.9, 0.2])
    assert list(zipfit.top_k(scores, 3)) == [3, 1, 2]
    assert list(zipfit.top_k(scores, 0)) == []
    assert len(zipfit.top_k(scores, 99)) == 5


def test_bad_settings_raise():
    with pytest.raises(ValueError):
        zipfit.TargetSet([], 6)
    with pytest.raises(ValueError):
        zipfit.TargetSet(["x"], 10)


# -- DSIR ------------------------------------------------------------------------------------

def test_word_punct_tokens_lowercase():
    assert word_punct_tokens("Hello, World!! x2=3.5") == ["hello", ",", "world", "!!", "x2", "=", "3", ".", "5"]
    assert len(dsir.hashed_ngrams("A b.", 10_000, 2)) == 3 + 2  # 3 unigrams + 2 bigrams


def test_dsir_weights_on_a_toy_corpus():
    B = 1_000_003  # prime, so the three words below land in three buckets (asserted)
    assert len({zlib.crc32(w.encode()) % B for w in "xyz"}) == 3
    target = dsir.fit_distribution(["x x y"], B, order=1, alpha=1.0)
    raw = dsir.fit_distribution(["x y z"], B, order=1, alpha=1.0)
    est = dsir.ImportanceEstimator(target, raw, order=1)
    # add-1 smoothing, 3 tokens each: p_t(x) = 3/(3+B), p_r(x) = 2/(3+B) -> log 3/2;
    # y: 2/2 -> 0; z: 1/2 -> log 1/2. "X z, z" has x once and z twice.
    assert est.log_weight("X z z") == pytest.approx(math.log(3 / 2) + 2 * math.log(1 / 2))
    assert est.log_weight("y") == pytest.approx(0.0, abs=1e-12)
    assert est.log_weight("") == 0.0
    assert np.allclose(est.log_weights(["x", "z"]), [math.log(1.5), math.log(0.5)])


def test_dsir_counts_include_bigrams():
    B = 10_000
    c = dsir.ngram_counts("to be or not to be", B, order=2)
    assert c.sum() == 6 + 5
    assert c[zlib.crc32(b"to be") % B] >= 2


def test_gumbel_top_k_samples_in_proportion_to_weights():
    weights = np.array([1.0, 2.0, 3.0, 4.0])
    p = weights / weights.sum()
    rng = np.random.default_rng(12345)
    trials = 20_000
    first = np.bincount([dsir.gumbel_top_k(np.log(weights), 1, seed=0, rng=rng)[0] for _ in range(trials)], minlength=4)
    assert np.allclose(first / trials, p, atol=0.012)
    # k = 2 without replacement: P(i in sample) = p_i + sum_{j != i} p_j p_i / (1 - p_j).
    expected = np.array([p[i] + sum(p[j] * p[i] / (1 - p[j]) for j in range(4) if j != i) for i in range(4)])
    included = np.zeros(4)
    for _ in range(trials):
        included[dsir.gumbel_top_k(np.log(weights), 2, seed=0, rng=rng)] += 1
    assert np.allclose(included / trials, expected, atol=0.015)


def test_gumbel_top_k_is_deterministic_under_a_seed():
    logw = np.log(np.arange(1, 200, dtype=float))
    a = dsir.gumbel_top_k(logw, 20, seed=7)
    assert np.array_equal(a, dsir.gumbel_top_k(logw, 20, seed=7))
    assert not np.array_equal(a, dsir.gumbel_top_k(logw, 20, seed=8))
    assert len(set(a.tolist())) == 20


# -- decontamination ---------------------------------------------------------------------------

def test_planted_13_gram_overlaps_are_found():
    index = ContaminationIndex([TARGET], n=13)
    words = TARGET.split()
    planted = "Some forum post. " + " ".join(words[3:16]).upper() + " and more words follow here."
    assert index.first_match(planted) is not None
    # The same copy with other punctuation and spacing still matches (word tokens only).
    assert index.first_match("x " + ",  ".join(words[10:23]) + "!") is not None
    # Twelve words in a row are not a 13-gram.
    assert index.first_match(" ".join(words[3:15])) is None
    assert index.first_match("") is None


def test_short_target_examples_match_whole_and_tiny_ones_are_ignored():
    index = ContaminationIndex(["def add(a, b): return a + b", "return x"], n=13, min_tokens=5)
    assert index.first_match("code: def add(a, b):\n    return a + b  # done") == "def add a b return a b"
    assert index.first_match("return x") is None  # 2 tokens < min_tokens
    assert index.examples == 2


# -- held-out n-gram LM -------------------------------------------------------------------------

def test_unigram_witten_bell_hand_computed():
    lm = ByteNgramLM(order=1).fit(["aab"])
    # c(a) = 2, c(b) = 1, c() = 3, N1+ = 2: P(a) = (2 + 2/256) / 5, P(c) = (2/256) / 5.
    logp = lm.log2_probs(["ac"])
    assert 2 ** logp[0] == pytest.approx((2 + 2 / 256) / 5)
    assert 2 ** logp[1] == pytest.approx((2 / 256) / 5)
    assert ByteNgramLM(order=3).fit([]).bits_per_byte(["anything"]) == pytest.approx(8.0)


def test_lm_distributions_sum_to_one_and_prefer_their_training_text():
    lm = ByteNgramLM(order=3).fit(["abcabd", "abcabc" * 5, "xyz"])
    for history in [b"ab", b"zz", b"", b"c"]:
        total = sum(2 ** lm.log2_probs([history + bytes([w])])[-1] for w in range(1, 256))
        # The zero byte (padding) is read as a space; neither occurs in the training text,
        # so both get the same probability and P(space | h) stands in for P(0 | h).
        total += 2 ** lm.log2_probs([history + b" "])[-1]
        assert total == pytest.approx(1.0, rel=1e-9)
    assert lm.bits_per_byte(["abcabc"]) < lm.bits_per_byte(["qwerty"])
    with pytest.raises(ValueError):
        ByteNgramLM(order=9)


def test_lm_byte_budget():
    full = ByteNgramLM(order=2).fit(["abcdef", "ghij"])
    cut = ByteNgramLM(order=2).fit(["abcdef", "ghij"], max_bytes=4)
    none = ByteNgramLM(order=2).fit(["abcdef"], max_bytes=0)
    assert (full.train_bytes, cut.train_bytes, none.train_bytes) == (10, 4, 0)


def test_worker_cpu_time_is_reported():
    stats = {}
    zipfit.score_candidates(iter([TARGET * 50] * 40), [TARGET] * 20, level=6, workers=2, batch_size=4, stats=stats)
    assert stats["worker_cpu_seconds"] > 0

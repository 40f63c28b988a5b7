"""Regression tests for the breaker's findings on fine-tuning pool selection (issue 15):
tiny pools, no models loaded."""

from __future__ import annotations

import numpy as np
import pytest

from corpus_assets.steps.sft.config import SftDedup
from corpus_assets.steps.sft.dedup import char_shingles32, deduplicate
from corpus_assets.steps.dedup.minhash import MinHasher

_HEADER = ("You are an assistant with access to the following tools: Calendar(date) returns events; "
           "Weather(city) returns the forecast; Calculator(expr) evaluates arithmetic. ") * 2


def _templated(n: int) -> list[str]:
    return [_HEADER + f"Question {i}: what is {i} times {i * 7 % 101}? Answer: {i * (i * 7 % 101)}" for i in range(n)]


# --------------------------------------------------------------------------- f13 near dedup


@pytest.mark.parametrize("quality", ["descending", "ascending", "random"])
def test_near_dedup_keeps_one_of_a_near_identical_group_whatever_the_order(quality):
    texts = _templated(60)
    q = {"descending": np.linspace(1, 0, 60), "ascending": np.linspace(0, 1, 60),
         "random": np.random.default_rng(0).random(60)}[quality]
    result = deduplicate(texts, q, SftDedup())
    # all 60 are >= 0.8 similar to each other: exactly the best-quality one stays
    assert int(result.keep.sum()) == 1 and int(np.flatnonzero(result.keep)[0]) == int(np.argmax(q))
    assert result.removed["near_duplicate"] == 59


def test_no_two_kept_samples_are_near_duplicates():
    rng = np.random.default_rng(1)
    texts = _templated(30) + [f"Unrelated sample {i}: " + " ".join(rng.choice(list("abcdefgh"), 80)) for i in range(30)]
    order = rng.permutation(len(texts))
    texts = [texts[i] for i in order]
    cfg = SftDedup()
    result = deduplicate(texts, rng.random(len(texts)), cfg)
    kept = np.flatnonzero(result.keep)
    hasher = MinHasher(__import__("corpus_assets.steps.sft.dedup", fromlist=["preset"]).preset(cfg))
    sigs = hasher.signatures_from_shingles([char_shingles32(texts[i], cfg.ngram) for i in kept])
    for a in range(len(kept)):
        est = (sigs[a + 1:] == sigs[a]).mean(axis=1)
        assert not (est >= cfg.jaccard).any()
    # every removed one names a kept twin it is >= jaccard similar to
    for i in np.flatnonzero(~result.keep):
        assert result.keep[result.duplicate_of[i]]

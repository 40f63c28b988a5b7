"""CCNet's perplexity buckets: percentile cut-offs (30th / 60th, not thirds), the bucket
rule, the picked subset, and the signal column for languages without a model."""

import math

import pytest

from corpus_assets.steps.base import run_steps
from corpus_assets.steps.ccnet.config import CCNetConfig
from corpus_assets.steps.ccnet.perplexity import PerplexityBucket, PerplexityScore, bucket_of, percentile_cutoffs


def test_cutoffs_are_the_30th_and_60th_percentiles():
    # 0..100: the 30th percentile is 30, the 60th 60 (linear interpolation, as pandas)
    assert percentile_cutoffs(range(101)) == (30.0, 60.0)
    # on 1..10: 30th = 1 + 0.3 * 9 = 3.7, 60th = 1 + 0.6 * 9 = 6.4 -- not thirds (4, 7)
    assert percentile_cutoffs(range(1, 11)) == pytest.approx((3.7, 6.4))
    # unscored (-1), NaN and inf are not part of the sample; nothing left is None
    assert percentile_cutoffs([-1.0, float("nan"), 5.0, float("inf")]) == (5.0, 5.0)
    assert percentile_cutoffs([-1.0, -1.0]) is None
    assert percentile_cutoffs([10, 20, 30, 40], 50, 75) == pytest.approx((25.0, 32.5))


def test_bucket_rule_is_ccnets():
    cut = (100.0, 200.0)
    assert bucket_of(50.0, cut) == "head"
    assert bucket_of(100.0, cut) == "middle"  # strictly below the cut-off is head
    assert bucket_of(199.9, cut) == "middle"
    assert bucket_of(200.0, cut) == "tail"
    assert bucket_of(math.inf, cut) == "tail"
    assert bucket_of(-1.0, cut) == "all"  # unscored
    assert bucket_of(float("nan"), cut) == "all"
    assert bucket_of(50.0, None) == "all"  # a language without cut-offs


def test_share_of_each_bucket_on_a_known_sample():
    values = [float(v) for v in range(1000)]
    cut = percentile_cutoffs(values)
    buckets = [bucket_of(v, cut) for v in values]
    assert (buckets.count("head"), buckets.count("middle"), buckets.count("tail")) == (300, 300, 400)


def _run(step, docs):
    removed = []
    stream, _ = run_steps([step], docs, lambda d, s, r, detail: removed.append((d["doc_id"], r)))
    return list(stream), removed


def test_bucket_step_keeps_the_picked_subset_and_names_the_others():
    docs = [{"doc_id": str(i), "language": lang, "ccnet_perplexity": p}
            for i, (lang, p) in enumerate([("en", 10.0), ("en", 150.0), ("en", 900.0), ("de", 10.0), ("en", -1.0)])]
    kept, removed = _run(PerplexityBucket({"en": (100.0, 200.0)}, keep_buckets=("head", "middle")), docs)
    assert [(d["doc_id"], d["ccnet_bucket"]) for d in kept] == [("0", "head"), ("1", "middle")]
    assert removed == [("2", "bucket_tail"), ("3", "bucket_all"), ("4", "bucket_all")]
    with pytest.raises(ValueError, match="unknown buckets"):
        PerplexityBucket({}, keep_buckets=("best",))


class _FakeModel:
    def document_perplexity(self, text, split_lines=True):
        return float(len(text.split("\n")) if split_lines else 1)


def test_perplexity_is_a_signal_column_and_removes_only_documents_without_words():
    docs = [{"doc_id": "0", "language": "en", "text": "a\nb"}, {"doc_id": "1", "language": "fr", "text": "x"},
            {"doc_id": "2", "language": "en", "text": ""}, {"doc_id": "3", "text": None},
            {"doc_id": "4", "text": "y"}, {"doc_id": "5", "language": "en", "text": " \n\t\n  \x00"},
            {"doc_id": "6", "language": "fr", "text": "\n\n"}]
    kept, removed = _run(PerplexityScore(lambda lang: _FakeModel() if lang == "en" else None), docs)
    # no words, no perplexity: a counted removal, whatever the language (no bucket to guess)
    assert removed == [("2", "no_words"), ("3", "no_words"), ("5", "no_words"), ("6", "no_words")]
    assert [(d["doc_id"], d["ccnet_perplexity"]) for d in kept] == [("0", 2.0), ("1", -1.0), ("4", -1.0)]


def test_settings_refuse_inverted_percentiles():
    with pytest.raises(ValueError, match="below"):
        CCNetConfig(head_percentile=60, tail_percentile=30)
    assert CCNetConfig(keep_buckets="head").keep_buckets == ("head",)


def test_models_are_resolved_once_per_language_not_per_document(monkeypatch):
    # the model's folder name hashes the reference file: per document it cost ~5 ms
    from corpus_assets import ccnet_stages
    from corpus_assets.steps.lm.config import LmConfig

    calls = []
    monkeypatch.setattr(ccnet_stages, "model_folder", lambda config, language: calls.append(language) or language)
    monkeypatch.setattr(ccnet_stages, "load_or_train", lambda config, language: _FakeModel())
    monkeypatch.setattr(ccnet_stages, "_LOADED", {})
    get = ccnet_stages.language_models(LmConfig())
    for _ in range(100):
        assert isinstance(get("en"), _FakeModel)
        assert get("de") is None
    assert calls == ["en"]

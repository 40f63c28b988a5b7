"""Word segmentation per script (steps/segmentation): hand-checked sentences, the token
invariants the dedup steps rely on, and the segmenter's identity in the fingerprints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from corpus_assets.config import load_config
from corpus_assets.steps.dedup.exact_substring import (
    find_duplicate_token_spans,
    token_spans_to_char_spans,
    tokenize,
)
from corpus_assets.steps.dedup.minhash import get_minhasher, normalize_text
from corpus_assets.steps.quality._text import split_whitespace_words, split_words
from corpus_assets.steps.quality.decisions import thresholds_fingerprint
from corpus_assets.steps.quality.signals import SignalConfig, compute_signals, signals_fingerprint
from corpus_assets.steps.segmentation import segmenter_for
from corpus_assets.steps.segmentation.profiles import (
    LanguageOverride,
    build_language_profiles,
    prescreen_segmenter,
    profiles_for,
)
from corpus_assets.steps.segmentation.segmenters import MultiSegmenter
from corpus_assets.steps.segmentation.thresholds import adapt_thresholds, quantile_matched_threshold
from corpus_assets.steps.quality.decisions import FilterThresholds

# (language, text, words) checked by hand: each word is a dictionary word of the language
HAND_CHECKED = [
    # "I love Beijing Tiananmen" (jieba's own example sentence)
    ("zh", "我爱北京天安门", ["我", "爱", "北京", "天安门"]),
    # "Went to Tokyo": Tokyo / to / go / polite auxiliary / past (UniDic short units)
    ("ja", "東京に行きました", ["東京", "に", "行き", "まし", "た"]),
    # "Hello (polite, male speaker)"
    ("th", "สวัสดีครับ", ["สวัสดี", "ครับ"]),
    # "I love the Lao language": I / love / language / Lao
    ("lo", "ຂ້ອຍຮັກພາສາລາວ", ["ຂ້ອຍ", "ຮັກ", "ພາສາ", "ລາວ"]),
    # "I love the Khmer language": I / love / Khmer language
    ("km", "ខ្ញុំស្រឡាញ់ភាសាខ្មែរ", ["ខ្ញុំ", "ស្រឡាញ់", "ភាសាខ្មែរ"]),
    # "Burmese language": Myanmar language / speech
    ("my", "မြန်မာဘာသာစကား", ["မြန်မာဘာသာ", "စကား"]),
]


@pytest.mark.parametrize("language,text,expected", HAND_CHECKED)
def test_each_segmenter_cuts_a_hand_checked_sentence(language, text, expected):
    seg = segmenter_for(language)
    assert seg.words(text) == expected
    assert seg.tokens(text) == expected  # no punctuation: tokens are the words


def test_whitespace_segmenter_is_the_package_word_units():
    text = "Don't stop, state-of-the-art 3.5! -- ++ Hello,\tworld 1,000 z.B."
    seg = segmenter_for("en")
    assert seg.identity == "whitespace"
    assert seg.words(text) == split_words(text)
    assert seg.tokens(text) == split_whitespace_words(text)
    assert [text[a:b] for a, b in seg.token_spans(text)] == text.split()
    assert segmenter_for("de") is seg and segmenter_for("fr") is seg


def test_punctuation_attaches_and_other_scripts_stay_whole():
    ja = segmenter_for("ja")
    text = "「東京」に行きました。iPhone 15を買った・・・ state-of-the-art"
    assert ja.words(text)[:5] == ["東京", "に", "行き", "まし", "た"]
    assert "iPhone" in ja.words(text) and "state-of-the-art" in ja.words(text)
    assert "・" not in "".join(ja.words(text))  # the middle dot is punctuation, never a word
    tokens = ja.tokens(text)
    assert tokens[0] == "「東京」" and tokens[4] == "た。"
    # an opening bracket goes with the word after it, a closing one with the word before
    assert ja.tokens("ブラック（1）と【セール】中") == ["ブラック", "（1）", "と", "【セール】", "中"]
    # tokens rebuild each whitespace run exactly, and their spans point at them
    assert "".join(tokens) == "".join(text.split())
    assert [text[a:b] for a, b in ja.token_spans(text)] == tokens
    zh = segmenter_for("zh")
    assert zh.tokens("今天天气很好。Python3很好用") == ["今天天气", "很", "好。", "Python3", "很", "好", "用"]


def test_thai_marks_stay_inside_words_and_astral_characters_keep_offsets():
    th = segmenter_for("th")
    # Thai vowels above/below are combining marks (Mn), not \w: a word must keep them
    assert th.words("ผมชื่อสมชาย") == ["ผม", "ชื่อ", "สมชาย"]
    zh = segmenter_for("zh")
    text = "𠀀北京 天安门"  # a supplementary-plane Han character first
    assert "".join(zh.tokens(text)) == "𠀀北京天安门"
    assert [text[a:b] for a, b in zh.token_spans(text)] == zh.tokens(text)


def test_multi_segmenter_sends_each_run_to_its_script():
    multi = prescreen_segmenter(build_language_profiles(("ja", "th")))
    assert isinstance(multi, MultiSegmenter)
    assert multi.words("東京に行きました สวัสดีครับ hello") == ["東京", "に", "行き", "まし", "た", "สวัสดี", "ครับ", "hello"]
    assert prescreen_segmenter(build_language_profiles(("en", "de"))) is None


def test_segmenter_identity_is_in_the_signal_and_threshold_fingerprints():
    config = SignalConfig()
    none = build_language_profiles(("en",), signal_stop_words=config.stop_words)
    assert not none  # English: no profile ...
    assert signals_fingerprint(config, none) == signals_fingerprint(config)  # ... the same hash as before
    assert thresholds_fingerprint(FilterThresholds(), none) == thresholds_fingerprint(FilterThresholds())
    ja = build_language_profiles(("ja",))
    assert "fugashi==1.5.2+unidic-lite==1.0.8" in str(ja.payload())
    other = build_language_profiles(("ja",), {"ja": LanguageOverride(segmenter="whitespace")})
    fingerprints = {signals_fingerprint(config), signals_fingerprint(config, ja), signals_fingerprint(config, other)}
    assert len(fingerprints) == 3
    assert thresholds_fingerprint(FilterThresholds(), ja) != thresholds_fingerprint(FilterThresholds())
    # a new dictionary version changes the hash: the identity is what is hashed
    payload = ja.payload()
    assert payload["ja"]["segmenter"] == segmenter_for("ja").identity


def test_dedup_code_versions_carry_the_segmenter():
    from corpus_assets import dedup_stages

    config = load_config()
    assert dedup_stages.dedup_segmenter_identities(config) == {}
    zh = dataclasses.replace(config, language_id=dataclasses.replace(config.language_id, languages=("zh",)))
    assert dedup_stages.dedup_segmenter_identities(zh) == {"zh": "jieba==0.42.1;hmm"}
    assert profiles_for(zh) is profiles_for(zh)  # cached per config


def test_minhash_and_exact_substring_count_segmented_words():
    zh = segmenter_for("zh")
    a = "我们今天去北京天安门广场看升旗仪式，然后去故宫博物院参观古代文物。"
    b = "我们今天去北京天安门广场看升旗仪式，然后去颐和园参观古代园林。"
    hasher = get_minhasher("refinedweb")
    # without segmentation each document is one "word": one shingle, never similar
    plain = hasher.signatures([a, b])
    assert len(normalize_text(a).split()) == 2
    seg = hasher.signatures([a, b], [zh, zh])
    assert float(np.mean(seg[0] == seg[1])) > float(np.mean(plain[0] == plain[1]))
    assert float(np.mean(seg[0] == seg[1])) > 0.2
    # English through the segmenter path gives the old signatures
    en = ["The quick brown fox jumps over the lazy dog again and again today."]
    assert np.array_equal(hasher.signatures(en), hasher.signatures(en, [None]))
    # exact substring: token offsets of the segmenter
    toks = tokenize(a, zh)
    assert len(toks) > 10 and a[toks.starts[0]:toks.ends[0]] == toks.words[0]
    # a shared passage of >= 5 words is found in segmented tokens, not in whitespace ones
    shared = "北京天安门广场看升旗仪式然后去故宫博物院参观古代文物"
    docs = ["前言：" + shared + "。结束", "另一篇：" + shared + "。"]
    by_doc, _, tokens = find_duplicate_token_spans(lambda: iter([(d, zh) for d in docs]), min_tokens=5)
    assert tokens > 20 and 1 in by_doc and 0 not in by_doc  # the first occurrence is kept
    (start, stop), = token_spans_to_char_spans(docs[1], by_doc[1], zh)
    assert shared in docs[1][start:stop + 1] or docs[1][start:stop] in shared + "。"
    assert len(docs[1][start:stop]) >= len(shared) - 2
    by_doc_plain, _, _ = find_duplicate_token_spans(lambda: iter(docs), min_tokens=5)
    assert by_doc_plain == {}


def test_stop_words_apply_per_language_and_say_when_there_is_no_list():
    profiles = build_language_profiles(("ja", "km", "zh", "de"))
    ja_text = "私は東京に行きました。そこで友達と会って、たくさん話をしました。" * 10
    s = compute_signals(ja_text, "ja", SignalConfig(), profile=profiles.get("ja"))
    assert s["gopher_stop_words_applicable"] and s["gopher_stop_word_distinct"] >= 4
    s = compute_signals("ខ្ញុំស្រឡាញ់ភាសាខ្មែរ " * 30, "km", SignalConfig(), profile=profiles.get("km"))
    assert not s["gopher_stop_words_applicable"]  # stopwordsiso has no Khmer list
    assert profiles.get("km").stop_words_source == ""
    assert profiles.get("zh").stop_words_source.startswith("FineWeb-2")
    # a product list without particles fails the Japanese rule; prose passes
    names = "マージ 長財布 パンチングレザー ブラック ヘッドポーター カラビナ\n" * 10
    s = compute_signals(names, "ja", SignalConfig(), profile=profiles.get("ja"))
    assert s["gopher_stop_word_distinct"] < 2


def test_quantile_matching_on_a_synthetic_distribution():
    rng = np.random.default_rng(0)
    english = rng.normal(5.0, 1.0, 200_000)  # e.g. mean word length in English
    other = rng.normal(2.0, 0.5, 200_000)  # ... and in a language with short words
    # English's minimum of 3 cuts the lower 2.28% (z = -2): the same share of the other
    # language lies below 2.0 - 2 * 0.5 = 1.0
    assert quantile_matched_threshold(english, 3.0, other, side="min") == pytest.approx(1.0, abs=0.02)
    # a maximum at the English 97.72% point maps to the other language's 97.72% point
    assert quantile_matched_threshold(english, 7.0, other, side="max") == pytest.approx(3.0, abs=0.02)
    rows_en = [{"gopher_mean_word_length": v} for v in english[:20_000]]
    rows_other = [{"gopher_mean_word_length": v} for v in other[:20_000]]
    adapted = adapt_thresholds(rows_en, rows_other, FilterThresholds(),
                               names=["min_mean_word_length", "max_mean_word_length"])
    assert adapted["min_mean_word_length"] == pytest.approx(1.0, abs=0.05)
    # English's 10 is beyond every English value: nothing removed -> the language's maximum
    assert adapted["max_mean_word_length"] == pytest.approx(float(np.max(other[:20_000])), abs=1e-3)


def test_c4_and_fineweb_use_the_language_line_ends_and_words():
    from corpus_assets.steps.quality.signals import c4_walk_with

    zh = build_language_profiles(("zh",)).get("zh")
    text = "今天天气很好，我们去公园散步。公园里有很多人！大家都很开心。\n北京是中国的首都。\n首页"
    walk = c4_walk_with(text, SignalConfig(), zh)
    # 。！ close sentences without a space after them; "首页" has no end mark
    assert walk.sentences == 4 and walk.removed_by_rule["no_terminal_punct"] == 1
    english = c4_walk_with(text, SignalConfig())  # English settings: no line ends in 。
    assert english.removed_by_rule["no_terminal_punct"] == 3
    s = compute_signals(text, "zh", SignalConfig(), profile=zh)
    assert s["fineweb_line_punct_ratio"] == pytest.approx(2 / 3)
    assert s["qs_words"] == len(segmenter_for("zh").words(text)) > 15


def test_asset_code_versions_carry_the_segmenters_and_keep_english():
    from corpus_assets.assets import dedup, refinedweb
    from corpus_assets.config import fingerprint

    config = load_config()
    ja = dataclasses.replace(config, language_id=dataclasses.replace(config.language_id, languages=("ja",)))

    def versions(cfg):
        out = {}
        for asset in [*refinedweb.build_assets(cfg), *dedup.build_dedup_assets(cfg)]:
            out.update({k.to_user_string(): v for k, v in asset.code_versions_by_key.items()})
        return out

    en_versions, ja_versions = versions(config), versions(ja)
    # English: the versions from before segmenters (settings fingerprints only)
    preset = config.dedup.minhash_preset
    assert en_versions["minhash_signatures"] == f"{dedup.CODE_REVISION['minhash_signatures']}-{fingerprint(preset)}"
    assert en_versions["rw_quality_signals"].endswith(signals_fingerprint(config.quality_signals))
    for asset in ("rw_raw", "rw_quality_signals", "rw_filtered", "minhash_signatures", "minhash_buckets",
                  "duplicate_clusters", "exact_substring_spans", "rw_deduped", "dedup_index"):
        assert ja_versions[asset] != en_versions[asset], asset


def test_prescreen_counts_segmented_words():
    from corpus_assets.steps.prescreen import chunks_of

    blocks = ["東京都内の会社で働いています。", "毎日電車で通勤しています。"]
    assert [w for _, w in chunks_of(blocks, 20)] == [2]  # one "word" per block by spaces
    # 東京 都内 の 会社 で 働い て い ます。 + 毎日 電車 で 通勤 し て い ます。
    assert [w for _, w in chunks_of(blocks, 20, segmenter_for("ja"))] == [17]

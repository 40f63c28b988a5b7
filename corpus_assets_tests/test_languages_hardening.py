"""Hostile inputs and settings for the languages-beyond-English work (issue 18's breaker
findings f01-f07): bounded runs for the segmenting libraries, the combined pre-screen
segmenter, punctuation never a word, per-language settings validated when they load."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from corpus_assets.steps.segmentation.segmenters import (
    MAX_LIBRARY_RUN,
    MultiSegmenter,
    combined_segmenter,
    segmenter_for,
)

REPO = Path(__file__).resolve().parent.parent
JA = "東京は日本の首都であり、多くの人が住んでいます。私は毎日電車で会社に行きます。"
ZH = "我们今天去北京大学参观，然后吃了很多好吃的东西。"


# -- f01: MeCab crashed (SIGSEGV) on a long Latin run glued to kana --------------------


def test_long_latin_run_glued_to_kana_does_not_crash_mecab():
    """The breaker's page: kana + 200k Latin letters, and a 1.3M-character kana run. Run
    in a subprocess so that a segfault fails this test instead of killing pytest."""
    code = textwrap.dedent("""
        from corpus_assets.steps.segmentation.segmenters import segmenter_for
        ja = segmenter_for("ja")
        words = ja.words("キー" + "a" * 200_000)
        assert words == ["キー", "a" * 200_000], [len(w) for w in words]
        assert len(ja.words("日" + "abcdefghij" * 20_000)) == 2
        text = "日本語の文章です" * 170_000
        spans = ja.token_spans(text)
        assert spans[0][0] == 0 and spans[-1][1] == len(text)
        assert "".join(ja.tokens(text)) == text
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("language", ["ja", "zh", "th"])
def test_long_runs_are_cut_into_bounded_library_calls(language, monkeypatch):
    seg = segmenter_for(language)
    seen: list[int] = []
    original = type(seg)._segment

    def spy(self, run):
        seen.append(len(run))
        return original(self, run)

    monkeypatch.setattr(type(seg), "_segment", spy)
    letter = {"ja": "あ", "zh": "中", "th": "ก"}[language]
    run = letter + "x" * (3 * MAX_LIBRARY_RUN) + letter * (3 * MAX_LIBRARY_RUN + 7) + "y" * 10
    words = seg.words(run)
    assert seen and max(seen) <= MAX_LIBRARY_RUN
    assert "x" * (3 * MAX_LIBRARY_RUN) in words  # the Latin stretch is never segmented
    spans = seg.token_spans(run)
    assert "".join(run[a:b] for a, b in spans) == run


# -- f02: the combined segmenter of several spaceless languages ------------------------


@pytest.mark.parametrize("langs", [("ja", "zh"), ("ja", "th"), ("ja", "zh", "th", "my")])
def test_combined_segmenter_counts_like_the_language_segmenter(langs):
    seg = combined_segmenter(segmenter_for(x) for x in langs)
    assert isinstance(seg, MultiSegmenter)
    ja = JA * 10
    assert seg.tokens(ja) == segmenter_for("ja").tokens(ja)
    assert len(seg.tokens(ja)) > 100  # not one whitespace token per block
    assert [ja[a:b] for a, b in seg.token_spans(ja)] == seg.tokens(ja)
    if "zh" in langs:
        # Chinese (no kana in the run) goes to jieba, not MeCab
        assert seg.words(ZH) == segmenter_for("zh").words(ZH)
        assert seg.tokens(ZH) == segmenter_for("zh").tokens(ZH)


def test_combined_segmenter_routes_each_script_of_a_run():
    seg = combined_segmenter(segmenter_for(x) for x in ("ja", "zh", "th"))
    text = "東京は日本の首都です ภาษาไทยง่าย Hello北京大学"
    words = seg.words(text)
    ja_words = segmenter_for("ja").words("東京は日本の首都です")
    assert words[:len(ja_words)] == ja_words
    assert "ภาษา" in words and "ไทย" in words and "Hello" in words
    assert words[-1] == "北京大学"
    assert "".join(seg.tokens(text)) == text.replace(" ", "")


# -- f06: punctuation of the segmented scripts is never a word -------------------------


@pytest.mark.parametrize("language,text,marks", [
    ("my", "မြန်မာဘာသာစကားသည် ရုံးသုံးဘာသာစကား ဖြစ်သည်။ ဗမာလူမျိုးများ၊ ရခိုင်လူမျိုးများ ပြောဆိုကြသည်။", "။၊"),
    ("km", "ភាសាខ្មែរគឺជាភាសាផ្លូវការរបស់ប្រទេសកម្ពុជា។ ប្រជាជននិយាយភាសានេះ៖ នៅកម្ពុជា។", "។៖"),
])
def test_script_punctuation_is_not_a_word(language, text, marks):
    seg = segmenter_for(language)
    words = seg.words(text)
    assert words and not any(set(w) & set(marks) for w in words)
    tokens = seg.tokens(text)
    assert "".join(tokens) == text.replace(" ", "")
    # a mark goes with the word before it, never a token of its own
    assert not any(set(t) <= set(marks) for t in tokens)


# -- f04: a segmenter change between dumps is refused by the dedup index ---------------


def test_dedup_index_refuses_a_changed_segmenter(tmp_path):
    from corpus_assets import dedup_stages
    from corpus_assets.config import PipelineConfig
    from corpus_assets.steps.langid import LanguageIdConfig
    from corpus_assets.steps.segmentation.profiles import LanguageOverride
    from corpus_assets.storage import CorpusStore

    d1, d2 = "CC-MAIN-2099-01", "CC-MAIN-2099-02"
    fugashi = PipelineConfig(language_id=LanguageIdConfig(languages=("ja",)))
    changed = PipelineConfig(language_id=LanguageIdConfig(languages=("ja",)),
                             languages={"ja": LanguageOverride(segmenter="whitespace")})
    recorded = dedup_stages.index_segmenter_identities(fugashi)
    assert recorded["ja"].startswith("fugashi==")
    assert dedup_stages.index_segmenter_identities(changed) == {"ja": "whitespace"}
    store = CorpusStore(str(tmp_path))
    manifest = {"dump": d1, "snapshot": "s1", "preset": "refinedweb", "segmenters": recorded, "band_files": []}
    store.write_json(dedup_stages._dump_file(dedup_stages.INDEX, d1, "manifest.json"), manifest)
    # same segmenters (and another language added to the scope): accepted
    assert dedup_stages.earlier_snapshot(store, d2, [d1, d2], "refinedweb", recorded) is not None
    assert dedup_stages.earlier_snapshot(store, d2, [d1, d2], "refinedweb", {**recorded, "zh": "jieba"}) is not None
    with pytest.raises(dedup_stages.DedupOrderError, match=r"ja: 'fugashi==.*' -> 'whitespace'"):
        dedup_stages.earlier_snapshot(store, d2, [d1, d2], "refinedweb",
                                      dedup_stages.index_segmenter_identities(changed))
    # an index written before the identities were recorded is not checked
    store.write_json(dedup_stages._dump_file(dedup_stages.INDEX, d1, "manifest.json"),
                     {k: v for k, v in manifest.items() if k != "segmenters"})
    assert dedup_stages.earlier_snapshot(store, d2, [d1, d2], "refinedweb", {"ja": "whitespace"}) is not None


# -- f03 / f05 / f07: the languages section is checked when the settings load ----------


def _load(tmp_path, text):
    from corpus_assets.config import load_config

    path = tmp_path / "settings.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.mark.parametrize("value,says", [
    (".nan", "finite"), (".inf", "finite"), ("7", "less than or equal to 1"), ("-0.1", ">= 0"),
])
def test_language_thresholds_are_validated_like_quality_thresholds(tmp_path, value, says):
    from corpus_assets.config import ConfigError

    with pytest.raises(ConfigError, match=r"languages\.ja\.thresholds\.min_alpha_words_frac: .*" + re_escape(says)):
        _load(tmp_path, f"language_id: {{languages: [ja]}}\nlanguages: {{ja: {{thresholds: {{min_alpha_words_frac: {value}}}}}}}\n")
    with pytest.raises(ConfigError, match=r"languages\.ja\.thresholds\.max_mean_word_length: .*finite"):
        _load(tmp_path, "language_id: {languages: [ja]}\nlanguages: {ja: {thresholds: {max_mean_word_length: .inf}}}\n")
    # a fraction in range and null (rule off) still load
    _load(tmp_path, "language_id: {languages: [ja]}\nlanguages: {ja: {thresholds: {min_alpha_words_frac: 0.5, min_words: null}}}\n")


def re_escape(text):
    import re

    return re.escape(text)


def test_icu_segmenter_for_a_language_it_cannot_segment_is_refused_at_load(tmp_path):
    from corpus_assets.config import ConfigError

    with pytest.raises(ConfigError, match=r"languages\.ja\.segmenter: .*icu has no script for 'ja'"):
        _load(tmp_path, "language_id: {languages: [ja]}\nlanguages: {ja: {segmenter: icu}}\n")
    _load(tmp_path, "language_id: {languages: [th]}\nlanguages: {th: {segmenter: icu}}\n")


def test_misspelt_line_patterns_fallback_is_refused_at_load(tmp_path):
    from corpus_assets.config import ConfigError

    with pytest.raises(ConfigError, match=r"languages\.th\.line_patterns_fallback: no pattern file for 'english'"):
        _load(tmp_path, "language_id: {languages: [th]}\nlanguages: {th: {line_patterns_fallback: english}}\n")
    with pytest.raises(ConfigError, match=r"quality_signals\.line_patterns_fallback: no pattern file for 'klingon'"):
        _load(tmp_path, "quality_signals: {line_patterns_fallback: klingon}\n")
    _load(tmp_path, "language_id: {languages: [th]}\nlanguages: {th: {line_patterns_fallback: ''}}\n")
    _load(tmp_path, "language_id: {languages: [th]}\nlanguages: {th: {line_patterns_fallback: en}}\n")


def test_empty_mark_lists_are_honoured_and_unused_overrides_noted(tmp_path):
    from corpus_assets.steps.segmentation.profiles import profiles_for

    with pytest.warns(UserWarning, match=r"languages\.zh: unused, 'zh' is not in language_id\.languages"):
        config = _load(tmp_path, "language_id: {languages: [ja]}\n"
                                 "languages: {ja: {c4_end_marks: [], fineweb_terminal_punctuation: []},"
                                 " zh: {stop_words: []}}\n")
    ja = profiles_for(config).get("ja")
    assert ja.c4_end_marks == () and ja.fineweb_terminal_punctuation == ()
    # left out: the bundled marks
    plain = profiles_for(_load(tmp_path, "language_id: {languages: [ja]}\n")).get("ja")
    assert "。" in plain.c4_end_marks and "。" in plain.fineweb_terminal_punctuation


# -- line-correction patterns stay linear on a line of a number and thousands of spaces --


def test_counter_and_date_patterns_are_linear_on_runs_of_spaces():
    """Two `\\s*` around an optional part made the counter regex quadratic (en: ~1 s for
    8,000 spaces) and the ja/zh date patterns far worse (ja: 6 s for 300 spaces). A hang
    guard, not a timing: the linear patterns take well under a second here, the old ones
    would take minutes to hours, so the subprocess's timeout fails the test."""
    code = textwrap.dedent("""
        from corpus_assets.steps.quality.signals import SignalConfig, resolve_line_patterns
        from corpus_assets.steps.segmentation.profiles import build_language_profiles
        profiles = build_language_profiles(("ja", "zh", "de"))
        sp = " " * 100_000
        lines = ["1" + sp + "x", "1" + sp + "k" + sp + "x", "いいね：" + sp + "1" + sp + "x",
                 "阅读" + sp + "1" + sp + "x", "2024年3月5日" + sp + "x", "2024/3/5" + sp + "12:30" + sp + "x"]
        for lang in ("en", "de", "ja", "zh"):
            patterns = resolve_line_patterns(SignalConfig(), lang, profiles.get(lang))
            for line in lines:
                assert not patterns.is_counter(line)
                patterns.edit(line)
            assert patterns.is_counter("3 likes") and patterns.is_counter("1.2 K followers")
        ja = resolve_line_patterns(SignalConfig(), "ja", profiles.get("ja"))
        assert ja.is_counter("コメント (3)") and ja.is_counter("5件のコメント")
        assert ja.edit("2024年3月5日(火) 12:30") == ""
        zh = resolve_line_patterns(SignalConfig(), "zh", profiles.get("zh"))
        assert zh.is_counter("阅读 (12)") and zh.edit("2024年3月5日 星期二 12:30") == ""
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"

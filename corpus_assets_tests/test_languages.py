"""Languages beyond English on real pages: the Japanese and Chinese pages of the real WARC
files go through every step with reasons that hold up when read (docs/languages.md), the
``languages`` settings section overrides the bundled profile, and English is unchanged."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from corpus_assets.config import ConfigError, load_config
from corpus_assets.steps.quality.signals import QualitySignals, compute_signals, signals_fingerprint
from corpus_assets.steps.segmentation.profiles import profiles_for

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real-warc"
JA_FILE = REAL / "resiliparse_clueweb-quirk.warc.gz"
ZH_FILE = REAL / "resiliparse_warcfile.warc.gz"
needs_real = pytest.mark.skipif(not (JA_FILE.is_file() and ZH_FILE.is_file()),
                                reason="../shared/data/real-warc is not here (CI has it)")


def _settings(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def ja_run():
    from corpus_assets.language_runs import run_language

    return run_language([JA_FILE], load_config(), "ja")


@pytest.fixture(scope="session")
def zh_run():
    from corpus_assets.language_runs import run_language

    return run_language([ZH_FILE], load_config(), "zh")


@needs_real
def test_japanese_pages_reach_the_quality_filters_and_fail_for_what_they_are(ja_run):
    ja = [p for p in ja_run.pages if p.language == "ja"]
    # before segmentation the pre-screen removed all 29 ("5 words; chunks mostly ja")
    assert len(ja) == 29
    by_step = {s.step: s for s in ja_run.steps}
    assert by_step["language_prescreen"].docs_removed == 0
    # every page's main text (trafilatura) is the shop's ranking sidebar, a table of
    # product names with "|" cell separators: 140 tokens, 46 of them "|"
    assert {p.reason for p in ja} == {"alpha_words"}
    assert all(p.words == 95 for p in ja)  # segmented words, not 5 whitespace runs
    assert all(p.text.count("|") == 46 for p in ja)
    assert not any(p.step == "line_corrections" for p in ja)  # the single-word artifact is gone


@needs_real
def test_chinese_pages_removed_with_reasons_that_hold(zh_run):
    zh = {p.url: p for p in zh_run.pages if p.language == "zh"}
    assert len(zh) == 9
    reasons = Counter(p.reason for p in zh.values() if p.step)
    assert reasons == Counter({"bullet_lines": 2, "stop_words": 2, "word_count_low": 1, "dup_line_frac": 1})
    assert sum(1 for p in zh.values() if not p.step) == 3
    # the 404 page ("很抱歉~ ... 页面已经不存在了") really has few words
    not_found = next(p for p in zh.values() if p.reason == "word_count_low")
    assert "页面已经不存在" in not_found.text and not_found.words < 50
    # the stop-word failures are footers (address, phone, copyright), no sentence
    for p in zh.values():
        if p.reason == "stop_words":
            assert "版权所有" in p.text or "Copyright" in p.text
    # bullet-line failures are lists whose lines all start with "- "
    for p in zh.values():
        if p.reason == "bullet_lines":
            lines = [x for x in p.text.split("\n") if x.strip()]
            assert sum(x.startswith("- ") for x in lines) / len(lines) > 0.9
    # the three kept pages went through line corrections and all three dedup steps
    steps = [s.step for s in zh_run.steps]
    assert steps[-3:] == ["minhash_dedup", "exact_substring_dedup", "url_dedup"]
    assert zh_run.steps[-1].docs_out == 3


@needs_real
def test_a_settings_section_overrides_the_bundled_profile(tmp_path):
    from corpus_assets.language_runs import run_language

    path = _settings(tmp_path, "languages:\n  ja:\n    thresholds:\n      min_alpha_words_frac: 0.5\n")
    config = load_config(path)
    run = run_language([JA_FILE], config, "ja")
    ja = [p for p in run.pages if p.language == "ja"]
    # past the alphabetic rule, the ranking table has no particle: the stop-word rule
    assert {p.reason for p in ja} == {"stop_words"}
    assert profiles_for(config).get("ja") is None  # language_id keeps en: ja not in scope


def test_bad_language_settings_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"languages\.ja.*thresholds\.min_wrds: unknown threshold"):
        load_config(_settings(tmp_path, "languages:\n  ja:\n    thresholds: {min_wrds: 3}\n"))
    with pytest.raises(ConfigError, match=r"languages\.ja\.stop_wrds: unknown setting"):
        load_config(_settings(tmp_path, "languages:\n  ja:\n    stop_wrds: [の]\n"))
    with pytest.raises(ConfigError, match=r"languages\.ja.*segmenter"):
        load_config(_settings(tmp_path, "languages:\n  ja:\n    segmenter: mecab\n"))
    with pytest.raises(ConfigError, match="not a language code"):
        load_config(_settings(tmp_path, "languages:\n  Japanese: {}\n"))
    config = load_config(_settings(tmp_path, "language_id: {languages: [ja]}\n"
                                             "languages:\n  ja:\n    stop_words: [の, は]\n"
                                             "    thresholds: {min_words: 80, dup_line_frac: null}\n"))
    profile = profiles_for(config).get("ja")
    assert profile.stop_words == ("の", "は") and profile.stop_words_source.startswith("settings")
    assert profile.thresholds["min_words"] == 80 and profile.thresholds["dup_line_frac"] is None
    assert profile.thresholds["min_alpha_words_frac"] == 0.759  # the bundled value stays


def test_english_settings_build_no_profile_and_keep_every_fingerprint():
    config = load_config()
    assert not profiles_for(config)
    step = QualitySignals(config.quality_signals, profiles_for(config))
    assert step.fingerprint == signals_fingerprint(config.quality_signals)
    text = "The cat sat on the mat. It was a sunny day and the birds were singing.\n" * 8
    doc = {"text": text, "language": "en"}
    step.apply(doc)
    assert doc == {"text": text, "language": "en",
                   **compute_signals(text, "en", config.quality_signals, fingerprint=step.fingerprint)}


def test_japanese_and_chinese_line_patterns():
    from corpus_assets.steps.quality.line_corrections import correct_lines
    from corpus_assets.steps.quality.signals import SignalConfig, resolve_line_patterns
    from corpus_assets.steps.segmentation.profiles import build_language_profiles

    profiles = build_language_profiles(("ja", "zh", "th"))
    config = SignalConfig()

    def corrected(lang, text):
        profile = profiles.get(lang)
        patterns = resolve_line_patterns(config, lang, profile)
        return correct_lines(text, patterns, count_words=profile.segmenter.count_words)

    body = "東京都内の会社で働いています。毎日電車で通勤しています。"
    r = corrected("ja", "\n".join([body, "閲覧数：1,234", "3件のコメント", "2024年3月5日(火) 12:30",
                                   "新商品のご案内 続きを読む", "ログイン 新規会員登録", body]))
    assert r.removed_by_rule["counter"] == 2 and r.removed_by_rule["pattern"] == 2
    assert "新商品のご案内" in r.text and "続きを読む" not in r.text and r.lines_edited == 1
    assert r.text.count(body) == 2
    zh_body = "北京是中国的首都，也是一座历史悠久的城市。"
    r = corrected("zh", "\n".join([zh_body, "阅读(123)", "当前位置：首页 > 新闻 > 国内", "发布时间：2024-03-05 12:30",
                                   "版权所有 © 2024 某某公司", "沪ICP备11028026号", zh_body]))
    assert r.removed_by_rule["counter"] == 1 and r.removed_by_rule["pattern"] == 4
    assert r.text == zh_body + "\n" + zh_body
    # a line of two Japanese words is not a single-word line (it was one whitespace "word")
    assert corrected("ja", "会社概要\n" + body).lines_removed == 0
    # languages with neither a pattern file nor profile patterns fall back to English's
    assert resolve_line_patterns(config, "th", profiles.get("th")).language == "en"

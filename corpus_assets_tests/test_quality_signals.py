"""Quality signals: hand-worked fractions, line-correction rules, schema, speed.

Expected values are worked out by hand in the comments; the conventions (what a line, a
paragraph, a word is, how n-gram characters are counted) are documented in
corpus_assets/steps/quality/_text.py and signals.py.
"""

from __future__ import annotations

import math
import random
import shutil
import time

import pytest

from corpus_assets.steps.quality import (
    SIGNAL_COLUMNS,
    SIGNAL_DEFAULTS,
    QualitySignals,
    SignalConfig,
    compute_signals,
    signal_arrow_schema,
    signals_fingerprint,
)
from corpus_assets.steps.quality._text import NGramIndex, split_words
from corpus_assets.steps.quality.c4 import c4_walk
from corpus_assets.steps.quality.line_corrections import (
    DEFAULT_LINE_PATTERNS_DIR,
    correct_lines,
    load_line_patterns,
    normalize_language,
)

EN = load_line_patterns(DEFAULT_LINE_PATTERNS_DIR, "en")
DE = load_line_patterns(DEFAULT_LINE_PATTERNS_DIR, "de")


def sig(text, language="en", **config):
    return compute_signals(text, language, SignalConfig(**config) if config else None)


# --------------------------------------------------------------------------------------
# Gopher repetition
# --------------------------------------------------------------------------------------


def test_duplicate_lines_fraction_of_lines_and_characters():
    lines = [
        "alpha beta",  # 10 chars
        "gamma delta",  # 11
        "alpha beta",  # 10  duplicate #1
        "epsilon zeta",  # 12
        "alpha beta",  # 10  duplicate #2
        "eta theta",  # 9
    ]
    text = "\n".join(lines)
    # len(text) = 10+11+10+12+10+9 = 62 characters + 5 newlines = 67
    assert len(text) == 67
    s = sig(text)
    # 2 of 6 lines repeat an earlier line (the first "alpha beta" is not a duplicate)
    assert s["gopher_dup_line_frac"] == pytest.approx(2 / 6)
    # characters in the two repeats: 10 + 10 = 20, over the whole text's 67
    assert s["gopher_dup_line_char_frac"] == pytest.approx(20 / 67)
    # no blank line: the text is one paragraph, nothing repeats
    assert s["qs_paragraphs"] == 1
    assert s["gopher_dup_para_frac"] == 0.0
    assert s["gopher_dup_para_char_frac"] == 0.0


def test_duplicate_paragraphs():
    text = "para one\nline\n\npara two\n\npara one\nline"
    # paragraphs: "para one\nline" (13), "para two" (8), "para one\nline" (13, repeat)
    # len(text) = 13 + 2 + 8 + 2 + 13 = 38
    assert len(text) == 38
    s = sig(text)
    assert s["qs_paragraphs"] == 3
    assert s["gopher_dup_para_frac"] == pytest.approx(1 / 3)
    assert s["gopher_dup_para_char_frac"] == pytest.approx(13 / 38)
    # lines: "para one", "line", "para two", "para one" (repeat, 8), "line" (repeat, 4)
    assert s["gopher_dup_line_frac"] == pytest.approx(2 / 5)
    assert s["gopher_dup_line_char_frac"] == pytest.approx(12 / 38)


def test_top_2gram_on_a_tiny_text():
    text = "the cat sat on the cat mat"
    # len = 3+3+3+2+3+3+3 letters + 6 spaces = 26
    # 2-grams: "the cat" x2, "cat sat", "sat on", "on the", "cat mat" once each.
    # top = "the cat": len("the cat") = 7 characters x 2 occurrences = 14 -> 14/26
    s = sig(text)
    assert s["gopher_top_2gram_char_frac"] == pytest.approx(14 / 26)
    # every 3-gram occurs once: a top n-gram that does not repeat counts 0
    assert s["gopher_top_3gram_char_frac"] == 0.0
    assert s["gopher_top_4gram_char_frac"] == 0.0


def test_top_ngram_tie_goes_to_first_and_overlaps_all_count():
    # "xx yy" x2 and "zzz www" x2 tie; the first one seen wins (Counter.most_common)
    # len = 2+2+2+2+3+3+3+3 + 7 spaces = 27; (len("xx yy")=5) x 2 = 10
    s = sig("xx yy xx yy zzz www zzz www")
    assert s["gopher_top_2gram_char_frac"] == pytest.approx(10 / 27)
    # overlapping occurrences all count (datatrove), so the fraction can pass 1:
    # "ab ab ab ab ab ab ab" (20 chars): "ab ab" occurs 6 times x 5 chars = 30 -> 1.5
    s = sig("ab ab ab ab ab ab ab")
    assert s["gopher_top_2gram_char_frac"] == pytest.approx(30 / 20)


def test_duplicated_5gram_repeat_is_counted_once():
    five = "alpha beta gamma delta epsilon"  # word characters: 5+4+5+5+7 = 26
    text = f"{five} {five}"  # 26*2 + 9 spaces = 61 characters
    assert len(text) == 61
    s = sig(text)
    # 5-grams at positions 0..5; only position 5 repeats position 0: 26 characters
    # (words joined without spaces, as datatrove counts duplicated n-grams)
    assert s["gopher_dup_5gram_char_frac"] == pytest.approx(26 / 61)
    # the five 6-grams are all different
    assert s["gopher_dup_6gram_char_frac"] == 0.0
    assert s["gopher_dup_10gram_char_frac"] == 0.0


def test_overlapping_duplicate_ngrams_are_not_double_counted():
    text = "ab ab ab ab ab ab ab"  # 7 words, 20 characters
    # 5-grams start at 0, 1, 2 and are all "ab ab ab ab ab".
    # scan: pos 0 new -> seen; pos 1 seen -> +10 characters (5 words x 2), jump to pos 6;
    # pos 6 is past the last 5-gram (2): done. Total 10 -> 10/20 = 0.5.
    # Counting every repeated position (1 and 2) would give 20/20 = 1.0.
    s = sig(text)
    assert s["gopher_dup_5gram_char_frac"] == pytest.approx(0.5)
    # 6-grams at 0 and 1: pos 1 repeats pos 0 -> 12 characters
    assert s["gopher_dup_6gram_char_frac"] == pytest.approx(12 / 20)
    # 7-gram: a single one -> 0
    assert s["gopher_dup_7gram_char_frac"] == 0.0


def test_skipped_ngrams_are_never_marked_seen():
    # words: A B C D E A B C D E F A B C D E
    # pos 0..4 new; pos 5 (ABCDE) seen -> +chars, jump to 10; pos 10 (FABCD) new;
    # pos 11 (ABCDE) seen -> +chars, jump to 16 (end). Two repeats of 5 one-letter words.
    words = "A B C D E A B C D E F A B C D E".split()
    index = NGramIndex(words, 10)
    assert index.duplicated_ngram_chars(5) == 10


def test_ngram_index_matches_naive_on_random_text():
    rng = random.Random(7)
    words = [rng.choice(["a", "bb", "ccc", "dd", "e"]) for _ in range(400)]
    index = NGramIndex(words, 10)

    def naive_dup(n):
        seen, total, i = set(), 0, 0
        while i < len(words) - n + 1:
            gram = tuple(words[i : i + n])
            if gram in seen:
                total += sum(len(w) for w in gram)
                i += n
            else:
                seen.add(gram)
                i += 1
        return total

    def naive_top(n):
        from collections import Counter

        grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        gram, count = Counter(grams).most_common(1)[0]
        return len(gram) * count if count > 1 else 0

    for n in (2, 3, 4):
        assert index.top_ngram_chars(n) == naive_top(n)
    for n in range(5, 11):
        assert index.duplicated_ngram_chars(n) == naive_dup(n)


# --------------------------------------------------------------------------------------
# Gopher quality
# --------------------------------------------------------------------------------------


def test_words_exclude_pure_punctuation():
    assert split_words("Hello , world ... # foo-bar don't 3.5 !") == [
        "Hello", "world", "foo-bar", "don't", "3.5",
    ]


def test_quality_signals_hand_worked():
    text = "Hello , world ... # foo-bar don't 3.5 !"
    # words: Hello(5) world(5) foo-bar(7) don't(5) 3.5(3) -> 5 words, mean 25/5 = 5.0
    s = sig(text)
    assert s["gopher_word_count"] == 5
    assert s["gopher_mean_word_length"] == pytest.approx(5.0)
    assert s["gopher_hash_to_word_ratio"] == pytest.approx(1 / 5)  # one "#"
    assert s["gopher_ellipsis_to_word_ratio"] == pytest.approx(1 / 5)  # one "..."
    # the alphabetic fraction counts whitespace words: 9 tokens, 4 with a letter
    # ("," "..." "#" "3.5" "!" have none)
    assert s["gopher_alpha_words_frac"] == pytest.approx(4 / 9)


def test_bullet_and_ellipsis_lines():
    text = "• one two\n- three four\n* five six\nseven eight…\nnine ten...\n\n"
    # 5 non-blank lines; bullets on 3 -> 0.6; ellipsis endings on 2 -> 0.4
    s = sig(text)
    assert s["qs_lines"] == 5
    assert s["gopher_bullet_lines_frac"] == pytest.approx(3 / 5)
    assert s["gopher_ellipsis_lines_frac"] == pytest.approx(2 / 5)
    # "…" and "..." both count as ellipses per word: 2 / 10 words
    assert s["gopher_ellipsis_to_word_ratio"] == pytest.approx(2 / 10)


def test_stop_words_per_language():
    s = sig("The cat and the dog")
    # occurrences, lower-cased: The, and, the -> 3; distinct: the, and -> 2
    assert s["gopher_stop_word_count"] == 3
    assert s["gopher_stop_word_distinct"] == 2
    assert s["gopher_stop_words_applicable"] is True
    # German has no list by default: flagged, count left at 0
    s = sig("Der Hund und die Katze", language="de")
    assert s["gopher_stop_words_applicable"] is False
    assert s["gopher_stop_word_count"] == 0
    # ... unless configured
    s = sig("Der Hund und die Katze", language="de", stop_words={"de": ("der", "die", "und")})
    assert s["gopher_stop_words_applicable"] is True
    assert s["gopher_stop_word_count"] == 3


def test_language_codes_are_normalized():
    for code in ("en", "EN", "__label__en", "en-US", "eng", "eng_Latn"):
        assert normalize_language(code) == "en"
    assert normalize_language(None) == ""
    assert sig("The cat and the dog", language="__label__en")["gopher_stop_word_count"] == 3


# --------------------------------------------------------------------------------------
# RefinedWeb line-wise corrections
# --------------------------------------------------------------------------------------


def _one_line(line, patterns=EN):
    """(rule that removed the line or None, text after correction)."""
    r = correct_lines(line, patterns)
    removed = [rule for rule, n in r.removed_by_rule.items() if n]
    return (removed[0] if removed else None), r.text


@pytest.mark.parametrize(
    "line, rule",
    [
        ("BREAKING NEWS TODAY", "uppercase"),  # 17 upper / 19 chars
        ("ABCD e", "uppercase"),  # 4/6 = 0.67 > 0.5
        ("2023 2024", "numeric"),
        ("3 likes", "counter"),
        ("1.2K views", "counter"),
        ("1 comment", "counter"),
        ("12 Comments · 3 shares", "counter"),
        ("5 min read", "counter"),
        ("Menu", "single_word"),
        ("»", "single_word"),  # no word at all
        ("Read more", "pattern"),  # nothing left after the cut
        ("3 items in cart", "pattern"),  # "3" left: one word
        ("Home » Read more...", "pattern"),  # "Home" left: one word
        ("© 2024 Example Media. All rights reserved.", "pattern"),
        ("We use cookies to improve your experience.", "pattern"),
    ],
)
def test_line_rule_removes(line, rule):
    assert _one_line(line) == (rule, "")


@pytest.mark.parametrize(
    "line",
    [
        "ABCd e",  # 3 upper / 6 chars = 0.5, not > 0.5
        "3 likes for this post",  # a sentence, not a counter
        "Two words",
        "The phrase read more sits in the middle.",  # end pattern, not at the end
        # > 10 words: pattern rules do not apply
        "This is a long sentence with eleven words that ends in read more",
    ],
)
def test_line_rule_keeps(line):
    assert _one_line(line) == (None, line)


def test_pattern_rules_edit_the_line():
    cases = [
        ("Great recipe for dinner. Read more...", "Great recipe for dinner."),  # end
        ("Sign In | Register your account now", "Register your account now"),  # start
        ("Shoes (2 items in cart) on sale now", "Shoes (2 ) on sale now"),  # anywhere
    ]
    for line, expected in cases:
        r = correct_lines(line, EN)
        assert r.text == expected, line
        assert r.lines_edited == 1 and r.lines_removed == 0
    # words removed by an edit count: "Read more" = 2 of 6 words
    r = correct_lines("Great recipe for dinner. Read more...", EN)
    assert r.words_removed == 2 and r.words_total == 6


def test_german_patterns_include_english():
    assert _one_line("12 Kommentare", DE) == ("counter", "")
    assert _one_line("Weiterlesen", DE)[0] == "single_word"
    assert _one_line("Der ganze Bericht. Weiterlesen »", DE) == (None, "Der ganze Bericht.")
    assert _one_line("Alle Cookies akzeptieren", DE) == ("pattern", "")
    assert _one_line("Great post. Read more", DE) == (None, "Great post.")
    assert DE.language == "de"


def test_five_percent_rule_signal():
    body = [f"Sentence {k} has some words." for k in range(19)]  # 19 x 5 = 95 words
    text = "\n".join(body[:10] + ["ONE TWO THREE FOUR FIVE"] + body[10:])  # + 5 = 100
    s = sig(text)
    assert s["qs_words"] == 100
    assert s["rw_lines_removed"] == 1 and s["rw_lines_removed_uppercase"] == 1
    assert s["rw_words_removed"] == 5
    assert s["rw_words_removed_frac"] == pytest.approx(0.05)
    assert s["rw_text_changed"] is True
    assert s["rw_corrected_text"] == "\n".join(body)
    # unchanged text: the corrected-text column stays empty
    s = sig("\n".join(body))
    assert s["rw_text_changed"] is False and s["rw_corrected_text"] == ""
    assert s["rw_words_removed_frac"] == 0.0


def test_unknown_language_falls_back_to_english_patterns():
    assert sig("Hello there friend. Read more", language="fr")["rw_patterns_language"] == "en"
    s = sig("Hello there friend. Read more", language="fr", line_patterns_fallback="")
    assert s["rw_patterns_language"] == "" and s["rw_text_changed"] is False


# --------------------------------------------------------------------------------------
# C4 and FineWeb
# --------------------------------------------------------------------------------------


def test_c4_line_rules():
    text = "\n".join(
        [
            "This line ends well.",  # kept, 1 sentence
            "No terminal punctuation here",  # no_terminal_punct
            "Trailing ellipsis here...",  # no_terminal_punct (ends in "...")
            "Too short.",  # too_few_words (2 < 3)
            "Please enable JavaScript to continue.",  # javascript
            "Read our privacy policy for details.",  # policy
            "Two sentences here. And another one![1]",  # citation cut; kept, 2 sentences
        ]
    )
    walk = c4_walk(text)
    assert walk.removed_by_rule == {
        "long_word": 0, "no_terminal_punct": 2, "too_few_words": 1,
        "javascript": 1, "policy": 1,
    }
    assert walk.kept_lines == ["This line ends well.", "Two sentences here. And another one!"]
    assert walk.sentences == 3
    s = sig(text)
    assert s["c4_lines_removed"] == 5 and s["c4_lines_kept"] == 2
    assert s["c4_sentence_count"] == 3
    assert s["c4_lorem_ipsum"] is False and s["c4_curly_bracket"] is False


def test_c4_document_flags_only_in_surviving_lines():
    # "{" in a line C4 already dropped (no terminal punctuation) does not flag the page
    assert sig("function f() {\nThis is a fine line.")["c4_curly_bracket"] is False
    assert sig("Use the map {a: 1} here.")["c4_curly_bracket"] is True
    assert sig("Lorem ipsum dolor sit amet.")["c4_lorem_ipsum"] is True


def test_fineweb_signals():
    text = "A full sentence that ends properly.\nshort line\nshort line\nAnother one!  "
    # lines: 4; ending in . ' " ! ? (after stripping trailing spaces): 2 -> 0.5
    # lines <= 30 chars: "short line" x2 and "Another one!" -> 3/4
    # duplicated line chars: 10, over len(text) without newlines: 72 - 3 = 69
    s = sig(text)
    assert s["fineweb_line_punct_ratio"] == pytest.approx(0.5)
    assert s["fineweb_short_line_ratio"] == pytest.approx(0.75)
    assert len(text) == 72
    assert s["fineweb_dup_line_char_ratio"] == pytest.approx(10 / 69)
    # 3 newlines / 12 words
    assert s["fineweb_newline_to_word_ratio"] == pytest.approx(3 / 12)


# --------------------------------------------------------------------------------------
# Schema, config, fingerprint, step
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "one", "The cat and the dog.\n\nA second paragraph here."])
def test_every_column_present_typed_and_never_none(text):
    s = sig(text)
    assert set(s) == set(SIGNAL_COLUMNS)
    for name, kind in SIGNAL_COLUMNS.items():
        assert s[name] is not None, name
        assert type(s[name]) is kind, (name, type(s[name]))
    schema = signal_arrow_schema()
    assert schema.names == list(SIGNAL_COLUMNS)


def test_presets_not_computed_are_defaults():
    s = compute_signals("Some text here.", "en", SignalConfig(presets=("gopher_quality",)))
    assert s["qs_presets"] == "gopher_quality"
    assert math.isnan(s["gopher_dup_line_frac"])
    assert s["rw_corrected_text"] == "" and s["c4_sentence_count"] == 0
    assert s["gopher_word_count"] == 3
    for name in SIGNAL_COLUMNS:
        if name.startswith(("c4_", "fineweb_", "rw_")):
            d = SIGNAL_DEFAULTS[name]
            assert s[name] == d or (isinstance(d, float) and math.isnan(s[name]))


def test_config_validation():
    with pytest.raises(ValueError):
        SignalConfig(presets=("nope",))
    with pytest.raises(ValueError):
        SignalConfig(top_ngram_sizes=(5,))
    # lists from YAML are accepted
    assert SignalConfig(presets=["c4"]).presets == ("c4",)


def test_signals_fingerprint_is_stable_and_tracks_config_and_pattern_files(tmp_path):
    base = signals_fingerprint(SignalConfig())
    assert base == signals_fingerprint(SignalConfig())
    assert len(base) == 16
    assert signals_fingerprint(SignalConfig(line_max_uppercase_ratio=0.6)) != base
    # same pattern files elsewhere: same fingerprint; an edited file: a different one
    copy = tmp_path / "patterns"
    shutil.copytree(DEFAULT_LINE_PATTERNS_DIR, copy)
    assert signals_fingerprint(SignalConfig(line_patterns_dir=str(copy))) == base
    with open(copy / "en.yaml", "a", encoding="utf-8") as fh:
        fh.write("\n# edited\n")
    assert signals_fingerprint(SignalConfig(line_patterns_dir=str(copy))) != base


def test_quality_signals_step_annotates_and_never_removes():
    step = QualitySignals()
    assert step.name == "quality_signals"
    doc = {"text": "Just a few words.", "language": "en"}
    assert step.apply(doc) is None
    assert doc["text"] == "Just a few words."
    assert doc["qs_fingerprint"] == signals_fingerprint(SignalConfig())
    assert doc["qs_words"] == 4
    doc = {"text": None, "language": None}
    assert step.apply(doc) is None and doc["qs_chars"] == 0


def test_large_document_is_linear_time():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)] + ["the", "of", "and"] * 300
    words = [rng.choice(vocab) for _ in range(100_000)]
    text = "\n".join(" ".join(words[i : i + 12]) + "." for i in range(0, len(words), 12))
    repetitive = (" ".join(words[:500]) + "\n") * 200
    for doc in (text, repetitive):
        start = time.process_time()
        s = compute_signals(doc, "en")
        elapsed = time.process_time() - start
        assert s["qs_words"] == 100_000
        # ~0.25 s on one core here; a quadratic n-gram scan would take minutes
        assert elapsed < 5.0
    # 199 of 200 copies repeat; word characters (no spaces) over all characters ~0.8
    assert compute_signals(repetitive, "en")["gopher_dup_10gram_char_frac"] > 0.7

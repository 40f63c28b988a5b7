"""Definitions checked against the papers (issue 11): Gopher's alphabetic-word rule, PII
e-mail addresses, FineWeb's MinHash normalization, the FineWeb filter's empty document,
and the LSH S-curve of the MinHash implementation checked statistically.

Every expected value here is worked out by hand from the paper's wording (cited per test),
not taken from another implementation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from corpus_assets.steps.dedup.minhash import (
    FINEWEB,
    GPT3,
    REFINEDWEB,
    collision_probability,
    get_minhasher,
    normalize_text,
)
from corpus_assets.steps.quality.decisions import (
    REMOVAL_REASONS,
    FineWebFilter,
    GopherQualityFilter,
    PiiRedaction,
)
from corpus_assets.steps.quality.pii import redact_pii
from corpus_assets.steps.quality.signals import compute_signals

# --------------------------------------------------------------------------------------
# 1. Gopher (Rae et al. 2021, App. A): "80% of words in a document contain at least one
#    alphabetic character". Words that hold no letter must be countable, so the rule's
#    words are the whitespace-separated tokens of the text.
# --------------------------------------------------------------------------------------

SYMBOL_JUNK = "the ./!*?<><> apple <?////> orange ++ interconnection !<>??? have" * 20


def test_alpha_rule_counts_symbol_runs_as_words():
    # One repeat has 9 whitespace tokens, 5 with a letter; "have" + "the" glue at the 19
    # seams ("havethe"): 20*9 - 19 = 161 tokens, 20*5 - 19 = 81 with a letter.
    s = compute_signals(SYMBOL_JUNK, "en")
    assert s["gopher_alpha_words_frac"] == pytest.approx(81 / 161)
    assert GopherQualityFilter().apply(s)[0] == "alpha_words"


def test_alpha_rule_hand_worked():
    # tokens: "Price:", "$17.56", "--", "x-ray", "++", "42", "ok." -> letters in 3 of 7
    s = compute_signals("Price: $17.56 -- x-ray ++ 42 ok.", "en")
    assert s["gopher_alpha_words_frac"] == pytest.approx(3 / 7)
    # Attached punctuation does not take a word's letters away: every token has one.
    s = compute_signals("Hello, world! (quoted) “text” don't.", "en")
    assert s["gopher_alpha_words_frac"] == pytest.approx(1.0)


def test_other_gopher_word_statistics_keep_letter_digit_words():
    # Word count, mean word length and the per-word ratios stay on words that are not
    # pure punctuation: "--" and "++" are no words there.
    s = compute_signals("alpha -- beta ++ gamma # delta ...", "en")
    assert s["gopher_word_count"] == 4
    assert s["gopher_mean_word_length"] == pytest.approx((5 + 4 + 5 + 5) / 4)
    assert s["gopher_hash_to_word_ratio"] == pytest.approx(1 / 4)
    assert s["gopher_ellipsis_to_word_ratio"] == pytest.approx(1 / 4)
    # the alphabetic fraction: 4 of the 8 whitespace tokens hold a letter
    assert s["gopher_alpha_words_frac"] == pytest.approx(4 / 8)


def test_stop_word_rule_wants_two_different_stop_words():
    # "remove documents that do not contain at least two of the following English words:
    # the, be, to, of, and, that, have, with": "the" five times is one of the words.
    body = " ".join(f"word{i} alpha beta gamma" for i in range(20))
    one_word = compute_signals("The " + body + " the the the the", "en")
    assert one_word["gopher_stop_word_distinct"] == 1
    assert GopherQualityFilter().apply(one_word)[0] == "stop_words"
    two_words = compute_signals("The " + body + " with", "en")
    assert GopherQualityFilter().apply(two_words) is None


def test_alpha_rule_on_an_empty_document_is_zero_not_a_crash():
    s = compute_signals("   \n ", "en")
    assert s["gopher_alpha_words_frac"] == 0.0
    assert GopherQualityFilter().apply(s)[0] == "word_count_low"


# --------------------------------------------------------------------------------------
# 2. PII: an RFC 5322 local part may start with "_", "-" or "+" (atext); it may not start
#    with "." (dot-atom), so leading dots are the text's punctuation and stay.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mail _support@example.com now", "Mail email@example.com now"),
        ("Mail -john@example.com now", "Mail email@example.com now"),
        ("Mail +tag@example.com now", "Mail email@example.com now"),
        ("Mail %x@example.com now", "Mail email@example.com now"),
        ("Contact ...john@example.com", "Contact ...email@example.com"),
        ("Contact .john@example.com.", "Contact .email@example.com."),
        ("(john_doe@example.com)", "(email@example.com)"),
        ("in Markdown _john@example.com_ too", "in Markdown email@example.com_ too"),
        # malformed but still someone's mailbox: no part of the name is left behind
        ("write first..last@example.com", "write email@example.com"),
        ("write john.@example.com", "write email@example.com"),
        # internationalized local part (RFC 6531)
        ("write josé@example.com", "write email@example.com"),
    ],
)
def test_email_local_parts_starting_with_symbols_are_redacted(text, expected):
    out, emails, v4, v6 = redact_pii(text)
    assert out == expected
    assert (emails, v4, v6) == (1, 0, 0)


def test_email_at_an_ip_address_is_one_email():
    # "user@123.123.123.123" names a mailbox: the whole address is redacted as an e-mail,
    # not its IP as an IPv4 address with the user name left in the text.
    for text in ("user@123.123.123.123", "user@[123.123.123.123]", "user@[IPv6:2001:db8::5]"):
        out, emails, v4, v6 = redact_pii(f"mail {text} today")
        assert out == "mail email@example.com today", text
        assert (emails, v4, v6) == (1, 0, 0)
    # an IP on its own is still an IP
    assert redact_pii("host 123.123.123.123 today")[:3] == ("host 192.0.2.1 today", 0, 1)


def test_pii_not_addresses_and_idempotence():
    for text in ("user@localhost", "a@b", "@handle", "x @ y.com", "C++ and C#"):
        assert redact_pii(text)[0] == text, text
    doc = {"text": "ask _a@example.com, .b@example.org or c@[10.0.0.1]"}
    PiiRedaction().apply(doc)
    assert doc["text"] == "ask email@example.com, .email@example.com or email@example.com"
    assert doc["pii_emails_redacted"] == 3 and doc["pii_ipv4_redacted"] == 0
    again = {"text": doc["text"]}
    PiiRedaction().apply(again)
    assert again["text"] == doc["text"] and again["pii_emails_redacted"] == 0


# --------------------------------------------------------------------------------------
# 3. MinHash normalization. FineWeb (Penedo et al. 2024; its datatrove normalization)
#    replaces each number with one "0"; RefinedWeb's preset keeps digits. Control
#    characters (Unicode Cc) are removed in every preset.
# --------------------------------------------------------------------------------------


def test_fineweb_preset_replaces_each_number_with_one_zero():
    assert normalize_text("$17.56", numbers="whole") == "0 0"
    assert normalize_text("Call 555-1234 or 2024", numbers="whole") == "call 0 0 or 0"
    assert normalize_text("abc123def 007 ٣٤٥", numbers="whole") == "abc0def 0 0"
    # the FineWeb preset does it: these two texts normalize alike, so shingle alike
    hasher = get_minhasher(FINEWEB)
    a = "the price was $17.56 on sale"
    b = "the price was $3.2 on sale"
    assert np.array_equal(hasher.shingles32(a), hasher.shingles32(b))
    # RefinedWeb's preset keeps digits as written
    assert normalize_text("$17.56") == "17 56"
    assert not np.array_equal(get_minhasher(REFINEDWEB).shingles32(a), get_minhasher(REFINEDWEB).shingles32(b))


@pytest.mark.parametrize("numbers", ["keep", "digits", "whole"])
def test_control_characters_are_removed_in_every_preset(numbers):
    # Non-whitespace controls (NUL, BEL, ESC, DEL, C1 such as U+0080) are deleted;
    # controls that are whitespace (tab, newline, U+001F unit separator, U+0085 NEL)
    # separate words like a space.
    text = "foo\x00bar\x07 baz\x1b[x\x7f\u0080y\tone\x1ftwo\x85three\u0096"
    assert normalize_text(text, numbers=numbers) == "foobar baz xy one two three"


def test_presets_declare_their_number_rule():
    assert FINEWEB.numbers == "whole"
    assert REFINEDWEB.numbers == "keep" and GPT3.numbers == "keep"
    assert normalize_text("Call 555-1234", numbers="digits") == "call 000 0000"
    with pytest.raises(ValueError):
        normalize_text("x", numbers="roman")


# --------------------------------------------------------------------------------------
# 5. FineWeb's filter: a document without a non-blank line is not a "line punctuation"
#    failure (0/0), it has no lines.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n", "   \n\t\n "])
def test_fineweb_removes_a_document_without_lines_as_no_lines(text):
    s = compute_signals(text, "en")
    assert FineWebFilter().apply(s)[0] == "fineweb_no_lines"


def test_fineweb_no_lines_is_a_listed_reason_checked_first():
    assert REMOVAL_REASONS["fineweb"][0] == "fineweb_no_lines"
    # a document with lines but none ending in punctuation keeps its own reason
    s = compute_signals("one line without an end\nanother one", "en")
    assert FineWebFilter().apply(s)[0] == "fineweb_line_punct_ratio"


# --------------------------------------------------------------------------------------
# The LSH S-curve (Leskovec, Rajaraman & Ullman, "Mining of Massive Datasets", ch. 3):
# two sets of Jaccard similarity s share at least one of b bands of r rows with
# probability 1 - (1 - s^r)^b. Pairs of exactly known Jaccard, built from disjoint random
# shingle values, are run through the fineweb preset (14 x 8); each grade's candidate
# count is checked with an exact two-sided binomial test.
# --------------------------------------------------------------------------------------

# (shared, only in each side): Jaccard = shared / (shared + 2 * only)
S_CURVE_GRADES = [(40, 80), (80, 60), (100, 50), (120, 40), (140, 30), (160, 20), (180, 10), (200, 0)]
S_CURVE_PAIRS = 400


def binomial_two_sided_p(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial test: the probability of outcomes no more likely than k."""
    if p <= 0.0:
        return 1.0 if k == 0 else 0.0
    if p >= 1.0:
        return 1.0 if k == n else 0.0

    def log_pmf(i: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)

    observed = log_pmf(k)
    return min(1.0, sum(math.exp(log_pmf(i)) for i in range(n + 1) if log_pmf(i) <= observed + 1e-7))


def candidate_rates(hasher, grades, pairs: int, seed: int):
    """(Jaccard, candidates, pairs) per grade, for pairs of sets with exactly that Jaccard."""
    rng = np.random.default_rng(seed)
    b = hasher.preset.num_bands
    out = []
    for shared, only in grades:
        size = shared + 2 * only
        values = rng.choice(2**32, size=pairs * size, replace=False).astype(np.uint32).reshape(pairs, size)
        docs = []
        for row in values:
            common, left, right = row[:shared], row[shared : shared + only], row[shared + only :]
            docs.append(np.concatenate([common, left]))
            docs.append(np.concatenate([common, right]))
        keys = hasher.band_keys(hasher.signatures_from_shingles(docs))
        assert keys.shape == (2 * pairs, b)
        hits = int((keys[0::2] == keys[1::2]).any(axis=1).sum())
        out.append((shared / size, hits, pairs))
    return out


def test_candidate_probability_follows_the_s_curve():
    hasher = get_minhasher(FINEWEB)
    b, r = FINEWEB.num_bands, FINEWEB.rows_per_band
    rates = candidate_rates(hasher, S_CURVE_GRADES, S_CURVE_PAIRS, seed=20260601)
    alpha = 0.001 / len(rates)  # family-wise 0.001 over the grades (Bonferroni)
    report = []
    for s, hits, n in rates:
        expected = collision_probability(s, b, r)
        p_value = binomial_two_sided_p(hits, n, expected)
        report.append(f"s={s:.3f} observed {hits / n:.3f} expected {expected:.3f} p={p_value:.3g}")
        assert p_value > alpha, "\n".join(report)
    # the grades straddle the threshold (~0.72): the curve is tested where it is steep
    assert rates[0][1] <= 2 and rates[-1][1] == S_CURVE_PAIRS


def test_s_curve_test_has_the_power_to_reject_a_wrong_layout():
    """Counts as a 14 x 7 or 8 x 14 banding would give them at the steep grades are
    rejected against 14 x 8 by the same test (a mutation check of the test itself)."""
    for bands, rows in ((14, 7), (8, 14)):
        p_values = [
            binomial_two_sided_p(round(collision_probability(s, bands, rows) * 400), 400, collision_probability(s, 14, 8))
            for s in (0.6, 0.7, 0.8)
        ]
        assert min(p_values) < 0.001 / len(S_CURVE_GRADES), (bands, rows, p_values)

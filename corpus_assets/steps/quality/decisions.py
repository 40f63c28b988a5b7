"""Keep/drop decisions from stored quality signals ("signals first, decisions second").

Every filter here reads only the columns that :class:`~.signals.QualitySignals` wrote
(``SIGNAL_COLUMNS``); none re-measures the text, so a changed threshold re-runs these
cheap steps and not the signals. Two steps also *rewrite* the text, which by nature needs
it: ``LineCorrections`` swaps in the stored ``rw_corrected_text``; ``C4Filter`` (when
``c4_remove_lines``) and ``PiiRedaction`` edit the current text. Their keep/drop
decisions still come from the signals alone (a document whose text was deleted is still
decided).

Order (``build_decision_steps``): Gopher repetition -> Gopher quality -> RefinedWeb
line-wise corrections, the paper's order (Penedo et al. 2023, Figure 2 / section 3.2);
then the optional presets C4 and FineWeb, then PII redaction (FineWeb anonymizes last).
Line corrections must precede C4's line removal: both rewrite the text, and the RefinedWeb
correction was computed on the original text. A removed document counts once, under the
first rule it fails, in that order; within a step the rules go in the paper's order too.

Comparisons are the papers': Gopher and RefinedWeb drop when a signal is strictly beyond
its threshold (> 0.30, < 50 words, ...), so a value equal to the threshold is kept.
FineWeb (Penedo et al. 2024; datatrove's ``FineWebQualityFilter``) drops at
``<= 0.12`` terminal-punctuation lines and ``>= 0.67`` short lines / ``>= 0.1`` duplicated
line characters. For that last ratio the paper's text says 0.1 and datatrove's code 0.01:
we take the paper's 0.1. A threshold of None switches its rule off.

Per language: a document whose language (``qs_language``) has a profile with threshold
overrides (``steps/segmentation/profiles``: ``defaults/languages/<lang>.yaml`` and the
``languages`` settings section) is decided with those values in place of the global
ones; every other document with the global thresholds.

Default presets are RefinedWeb's: Gopher repetition, Gopher quality and line-wise
corrections on; C4, FineWeb and PII redaction (which RefinedWeb does not do) off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Callable, Optional

from corpus_assets.steps.base import Document, Step
from corpus_assets.steps.quality.pii import PiiPlaceholders, redact_pii
from corpus_assets.steps.setting_types import Fraction, NonNegativeFloat, NonNegativeInt
from corpus_assets.steps.quality.signals import (
    DUP_NGRAM_SIZES,
    TOP_NGRAM_SIZES,
    SignalConfig,
    c4_walk_with,
)

# Bump when a code change alters a decision (part of thresholds_fingerprint).
DECISIONS_VERSION = 2  # 2: two distinct stop words; fineweb_no_lines

LINE_CORRECTIONS_REASON = "line_corrections_words_removed"

# Every removal reason, per step, in the order the rules are checked.
REMOVAL_REASONS: dict[str, tuple[str, ...]] = {
    "gopher_repetition": (
        "dup_line_frac",
        "dup_para_frac",
        "dup_line_char_frac",
        "dup_para_char_frac",
        *(f"top_{n}gram_char_frac" for n in TOP_NGRAM_SIZES),
        *(f"dup_{n}gram_char_frac" for n in DUP_NGRAM_SIZES),
    ),
    "gopher_quality": (
        "word_count_low",
        "word_count_high",
        "mean_word_length",
        "hash_to_word_ratio",
        "ellipsis_to_word_ratio",
        "bullet_lines",
        "ellipsis_lines",
        "alpha_words",
        "stop_words",
    ),
    "line_corrections": (LINE_CORRECTIONS_REASON,),
    "c4": ("c4_bad_words", "c4_lorem_ipsum", "c4_curly_bracket", "c4_too_few_sentences", "c4_no_lines_left"),
    "fineweb": (
        "fineweb_no_lines",
        "fineweb_line_punct_ratio",
        "fineweb_short_line_ratio",
        "fineweb_dup_line_char_ratio",
        "fineweb_newline_to_word_ratio",
    ),
    "pii": (),
    "no_decision_rules": (),
}

# Columns the decision steps add (only PiiRedaction adds any; only when it runs).
DECISION_COLUMNS: dict[str, type] = {
    "pii_emails_redacted": int,
    "pii_ipv4_redacted": int,
    "pii_ipv6_redacted": int,
}


@dataclass(frozen=True)
class FilterThresholds:
    """Which filter presets run and their thresholds (defaults: RefinedWeb's setting)."""

    # -- presets ---------------------------------------------------------------------
    gopher_repetition: bool = True
    gopher_quality: bool = True
    line_corrections: bool = True
    c4: bool = False
    fineweb: bool = False
    pii: bool = False

    # -- Gopher repetition removal (Rae et al. 2021, Table A1): drop when > threshold --
    dup_line_frac: Optional[Fraction] = 0.30
    dup_para_frac: Optional[Fraction] = 0.30
    dup_line_char_frac: Optional[Fraction] = 0.20
    dup_para_char_frac: Optional[Fraction] = 0.20
    top_2gram_char_frac: Optional[Fraction] = 0.20
    top_3gram_char_frac: Optional[Fraction] = 0.18
    top_4gram_char_frac: Optional[Fraction] = 0.16
    dup_5gram_char_frac: Optional[Fraction] = 0.15
    dup_6gram_char_frac: Optional[Fraction] = 0.14
    dup_7gram_char_frac: Optional[Fraction] = 0.13
    dup_8gram_char_frac: Optional[Fraction] = 0.12
    dup_9gram_char_frac: Optional[Fraction] = 0.11
    dup_10gram_char_frac: Optional[Fraction] = 0.10

    # -- Gopher quality filters (Rae et al. 2021, Appendix A) ----------------------------
    min_words: Optional[NonNegativeInt] = 50  # drop when < 50
    max_words: Optional[NonNegativeInt] = 100_000  # drop when > 100,000
    min_mean_word_length: Optional[NonNegativeFloat] = 3.0  # drop when < 3
    max_mean_word_length: Optional[NonNegativeFloat] = 10.0  # drop when > 10
    max_hash_to_word_ratio: Optional[NonNegativeFloat] = 0.1  # drop when > 0.1
    max_ellipsis_to_word_ratio: Optional[NonNegativeFloat] = 0.1  # drop when > 0.1
    max_bullet_lines_frac: Optional[Fraction] = 0.9  # drop when > 90% of lines
    max_ellipsis_lines_frac: Optional[Fraction] = 0.3  # drop when > 30% of lines
    min_alpha_words_frac: Optional[Fraction] = 0.8  # drop when < 80% of words
    min_stop_words: Optional[NonNegativeInt] = 2  # drop when < 2 (languages with a list only)

    # -- RefinedWeb line-wise corrections (Penedo et al. 2023, App. G.2) ----------------
    max_line_correction_words_frac: Optional[Fraction] = 0.05  # drop when > 5% of words

    # -- C4 (Raffel et al. 2020) ---------------------------------------------------------
    c4_min_sentences: Optional[NonNegativeInt] = 5  # drop when < 5
    c4_drop_lorem_ipsum: bool = True
    c4_drop_curly_bracket: bool = True
    c4_drop_bad_words: bool = True  # when quality_signals.c4_bad_words_path names a list
    c4_remove_lines: bool = True  # also apply C4's line removals to the text

    # -- FineWeb (Penedo et al. 2024) ----------------------------------------------------
    fineweb_min_line_punct_ratio: Optional[Fraction] = 0.12  # drop when <=
    fineweb_max_short_line_ratio: Optional[Fraction] = 0.67  # drop when >=
    fineweb_max_dup_line_char_ratio: Optional[Fraction] = 0.1  # drop when >= (paper; code 0.01)
    fineweb_max_newline_to_word_ratio: Optional[NonNegativeFloat] = None  # datatrove's 0.3; not in paper

    # -- PII redaction (replaces, never drops) --------------------------------------------
    pii_email_placeholder: str = "email@example.com"
    pii_ipv4_placeholder: str = "192.0.2.1"
    pii_ipv6_placeholder: str = "2001:db8::1"
    pii_keep_private_ips: bool = False


def thresholds_fingerprint(thresholds: Optional[FilterThresholds] = None, profiles=None) -> str:
    """Stable 16-hex-digit hash of the decision config (Dagster code version of the
    decision asset: a changed threshold marks only it stale), with the language profiles
    in force when there are any."""
    thresholds = thresholds or FilterThresholds()
    payload = {"version": DECISIONS_VERSION, "thresholds": dataclasses.asdict(thresholds)}
    if profiles:
        payload["languages"] = profiles.payload()
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=list) if profiles else json.dumps(payload, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def language_thresholds(thresholds: FilterThresholds, overrides) -> FilterThresholds:
    """``thresholds`` with a language's overrides (name -> value; None = rule off)."""
    if not overrides:
        return thresholds
    values = {name: (int(v) if v is not None and name in _INT_THRESHOLDS else v) for name, v in overrides.items()}
    return dataclasses.replace(thresholds, **values)


_INT_THRESHOLDS = {"min_words", "max_words", "min_stop_words", "c4_min_sentences"}


# ---------------------------------------------------------------------------------------


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _above(v, t) -> bool:
    return t is not None and not _isnan(v) and v > t


def _below(v, t) -> bool:
    return t is not None and not _isnan(v) and v < t


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


class _SignalFilter(Step):
    """Base: checks that the signals of ``preset`` were computed for the document."""

    preset: str = ""

    def __init__(self, thresholds: Optional[FilterThresholds] = None, profiles=None):
        self.thresholds = thresholds or FilterThresholds()
        self.profiles = profiles
        self._by_language: dict[str, FilterThresholds] = {}

    def thresholds_for(self, doc: Document) -> FilterThresholds:
        """The thresholds of the document's language (its profile's overrides)."""
        if not self.profiles:
            return self.thresholds
        lang = doc.get("qs_language") or ""
        t = self._by_language.get(lang)
        if t is None:
            profile = self.profiles.get(lang)
            t = language_thresholds(self.thresholds, profile.thresholds if profile else None)
            self._by_language[lang] = t
        return t

    def _require(self, doc: Document) -> None:
        computed = doc.get("qs_presets")
        if computed is None:
            raise ValueError(
                f"{self.name}: document has no quality signals (run QualitySignals first)"
            )
        if self.preset not in computed.split(","):
            raise ValueError(
                f"{self.name}: the '{self.preset}' signals were not computed for this document"
                f" (QualitySignals presets: '{computed}'); add it to SignalConfig.presets"
            )


class GopherRepetitionFilter(_SignalFilter):
    """Gopher repetition removal (Rae et al. 2021, Table A1), rules in the table's order."""

    name = "gopher_repetition"
    preset = "gopher_repetition"

    def __init__(self, thresholds: Optional[FilterThresholds] = None, profiles=None):
        super().__init__(thresholds, profiles)
        self.rules = self._rules(self.thresholds)
        self._rules_by_id: dict[int, list] = {id(self.thresholds): self.rules}

    @staticmethod
    def _rules(t: FilterThresholds) -> list:
        # (reason, signal column, threshold): drop when signal > threshold
        rules = [
            ("dup_line_frac", "gopher_dup_line_frac", t.dup_line_frac),
            ("dup_para_frac", "gopher_dup_para_frac", t.dup_para_frac),
            ("dup_line_char_frac", "gopher_dup_line_char_frac", t.dup_line_char_frac),
            ("dup_para_char_frac", "gopher_dup_para_char_frac", t.dup_para_char_frac),
        ]
        for n in TOP_NGRAM_SIZES:
            reason = f"top_{n}gram_char_frac"
            rules.append((reason, f"gopher_{reason}", getattr(t, reason)))
        for n in DUP_NGRAM_SIZES:
            reason = f"dup_{n}gram_char_frac"
            rules.append((reason, f"gopher_{reason}", getattr(t, reason)))
        return rules

    def apply(self, doc: Document):
        self._require(doc)
        t = self.thresholds_for(doc)
        rules = self._rules_by_id.get(id(t))
        if rules is None:
            rules = self._rules_by_id[id(t)] = self._rules(t)
        for reason, column, threshold in rules:
            value = doc[column]
            if _above(value, threshold):
                return reason, f"{column}={_fmt(value)} > {threshold}"
        return None


class GopherQualityFilter(_SignalFilter):
    """Gopher quality filters (Rae et al. 2021, Appendix A), in the paper's order. The
    stop-word rule is skipped where ``gopher_stop_words_applicable`` is False (no list for
    the document's language); that column is the record of the skip."""

    name = "gopher_quality"
    preset = "gopher_quality"

    def apply(self, doc: Document):
        self._require(doc)
        t = self.thresholds_for(doc)
        words = doc["gopher_word_count"]
        if _below(words, t.min_words):
            return "word_count_low", f"gopher_word_count={words} < {t.min_words}"
        if _above(words, t.max_words):
            return "word_count_high", f"gopher_word_count={words} > {t.max_words}"
        mwl = doc["gopher_mean_word_length"]
        if _below(mwl, t.min_mean_word_length):
            return "mean_word_length", f"gopher_mean_word_length={_fmt(mwl)} < {t.min_mean_word_length}"
        if _above(mwl, t.max_mean_word_length):
            return "mean_word_length", f"gopher_mean_word_length={_fmt(mwl)} > {t.max_mean_word_length}"
        checks: list[tuple[str, str, Callable, Optional[float], str]] = [
            ("hash_to_word_ratio", "gopher_hash_to_word_ratio", _above, t.max_hash_to_word_ratio, ">"),
            ("ellipsis_to_word_ratio", "gopher_ellipsis_to_word_ratio", _above, t.max_ellipsis_to_word_ratio, ">"),
            ("bullet_lines", "gopher_bullet_lines_frac", _above, t.max_bullet_lines_frac, ">"),
            ("ellipsis_lines", "gopher_ellipsis_lines_frac", _above, t.max_ellipsis_lines_frac, ">"),
            ("alpha_words", "gopher_alpha_words_frac", _below, t.min_alpha_words_frac, "<"),
        ]
        for reason, column, fails, threshold, op in checks:
            value = doc[column]
            if fails(value, threshold):
                return reason, f"{column}={_fmt(value)} {op} {threshold}"
        if doc["gopher_stop_words_applicable"]:
            # "at least two of the following English words" (Gopher): distinct ones
            count = doc["gopher_stop_word_distinct"]
            if _below(count, t.min_stop_words):
                return "stop_words", f"gopher_stop_word_distinct={count} < {t.min_stop_words}"
        return None


class LineCorrections(_SignalFilter):
    """RefinedWeb line-wise corrections (Penedo et al. 2023, App. G.2): drop the document
    when the removed lines held more than 5% of its words, otherwise replace ``text`` with
    the stored corrected text."""

    name = "line_corrections"
    preset = "line_corrections"

    def apply(self, doc: Document):
        self._require(doc)
        threshold = self.thresholds_for(doc).max_line_correction_words_frac
        frac = doc["rw_words_removed_frac"]
        if _above(frac, threshold):
            return LINE_CORRECTIONS_REASON, (
                f"rw_words_removed_frac={_fmt(frac)} > {threshold}"
                f" ({doc['rw_words_removed']} words in {doc['rw_lines_removed']} lines removed,"
                f" {doc['rw_lines_edited']} lines edited)"
            )
        if doc["rw_text_changed"]:
            doc["text"] = doc["rw_corrected_text"]
        return None


class C4Filter(_SignalFilter):
    """C4's document rules (Raffel et al. 2020) from the signals: "lorem ipsum", "{",
    fewer than 5 sentences. With ``c4_remove_lines`` it then applies C4's line removals to
    the current text (after the RefinedWeb corrections): a rewrite, like PII redaction,
    which is the one place this preset reads the text. ``signal_config`` must be the one
    the signals were computed with (C4's line-rule constants live there)."""

    name = "c4"
    preset = "c4"

    def __init__(
        self,
        thresholds: Optional[FilterThresholds] = None,
        signal_config: Optional[SignalConfig] = None,
        profiles=None,
    ):
        super().__init__(thresholds, profiles)
        self.signal_config = signal_config or SignalConfig()

    def apply(self, doc: Document):
        self._require(doc)
        t = self.thresholds_for(doc)
        if t.c4_drop_bad_words and doc.get("c4_bad_words", 0) > 0:
            return "c4_bad_words", f"{doc['c4_bad_words']} entries of the bad-words list in kept lines"
        if t.c4_drop_lorem_ipsum and doc["c4_lorem_ipsum"]:
            return "c4_lorem_ipsum", "a kept line contains 'lorem ipsum'"
        if t.c4_drop_curly_bracket and doc["c4_curly_bracket"]:
            return "c4_curly_bracket", "a kept line contains '{'"
        sentences = doc["c4_sentence_count"]
        if _below(sentences, t.c4_min_sentences):
            return "c4_too_few_sentences", f"c4_sentence_count={sentences} < {t.c4_min_sentences}"
        text = doc.get("text")
        if t.c4_remove_lines and text:
            profile = self.profiles.get(doc.get("qs_language") or "") if self.profiles else None
            walk = c4_walk_with(text, self.signal_config, profile)
            if not walk.kept_lines:
                return "c4_no_lines_left", "every line failed C4's line rules"
            doc["text"] = "\n".join(walk.kept_lines)
        return None


class FineWebFilter(_SignalFilter):
    """FineWeb's own heuristic filters (Penedo et al. 2024). A document without a
    non-blank line has no line to measure (its ratios are 0/0): it is removed as
    ``fineweb_no_lines``, not as a punctuation failure."""

    name = "fineweb"
    preset = "fineweb"

    def apply(self, doc: Document):
        self._require(doc)
        t = self.thresholds_for(doc)
        if doc["qs_lines"] == 0:
            return "fineweb_no_lines", "qs_lines=0: no non-blank line"
        v = doc["fineweb_line_punct_ratio"]
        if t.fineweb_min_line_punct_ratio is not None and not _isnan(v) and v <= t.fineweb_min_line_punct_ratio:
            return "fineweb_line_punct_ratio", f"fineweb_line_punct_ratio={_fmt(v)} <= {t.fineweb_min_line_punct_ratio}"
        v = doc["fineweb_short_line_ratio"]
        if t.fineweb_max_short_line_ratio is not None and not _isnan(v) and v >= t.fineweb_max_short_line_ratio:
            return "fineweb_short_line_ratio", f"fineweb_short_line_ratio={_fmt(v)} >= {t.fineweb_max_short_line_ratio}"
        v = doc["fineweb_dup_line_char_ratio"]
        if t.fineweb_max_dup_line_char_ratio is not None and not _isnan(v) and v >= t.fineweb_max_dup_line_char_ratio:
            return "fineweb_dup_line_char_ratio", f"fineweb_dup_line_char_ratio={_fmt(v)} >= {t.fineweb_max_dup_line_char_ratio}"
        v = doc["fineweb_newline_to_word_ratio"]
        if _above(v, t.fineweb_max_newline_to_word_ratio):
            return "fineweb_newline_to_word_ratio", f"fineweb_newline_to_word_ratio={_fmt(v)} > {t.fineweb_max_newline_to_word_ratio}"
        return None


class PiiRedaction(Step):
    """Replace e-mail, IPv4 and IPv6 addresses in ``text`` with placeholders (see ``pii``);
    never drops; records the counts in :data:`DECISION_COLUMNS`."""

    name = "pii"

    def __init__(self, thresholds: Optional[FilterThresholds] = None):
        t = thresholds or FilterThresholds()
        self.placeholders = PiiPlaceholders(
            t.pii_email_placeholder, t.pii_ipv4_placeholder, t.pii_ipv6_placeholder
        )
        self.keep_private_ips = t.pii_keep_private_ips

    def apply(self, doc: Document):
        text = doc.get("text")
        emails = ipv4 = ipv6 = 0
        if text:
            text, emails, ipv4, ipv6 = redact_pii(text, self.placeholders, self.keep_private_ips)
            doc["text"] = text
        doc["pii_emails_redacted"] = emails
        doc["pii_ipv4_redacted"] = ipv4
        doc["pii_ipv6_redacted"] = ipv6
        return None


class PassThrough(Step):
    """Keeps every document unchanged. The decision steps when every preset is off: a
    stage with no step would report no documents in or out, and its conservation check
    (docs in = kept + removed) would fail although nothing was lost."""

    name = "no_decision_rules"

    def apply(self, doc: Document):
        return None


def build_decision_steps(
    thresholds: Optional[FilterThresholds] = None,
    signal_config: Optional[SignalConfig] = None,
    profiles=None,
) -> list[Step]:
    """The enabled decision steps, in order (see the module docstring); ``profiles``:
    the language profiles whose threshold overrides apply per document."""
    t = thresholds or FilterThresholds()
    steps: list[Step] = []
    if t.gopher_repetition:
        steps.append(GopherRepetitionFilter(t, profiles))
    if t.gopher_quality:
        steps.append(GopherQualityFilter(t, profiles))
    if t.line_corrections:
        steps.append(LineCorrections(t, profiles))
    if t.c4:
        steps.append(C4Filter(t, signal_config, profiles))
    if t.fineweb:
        steps.append(FineWebFilter(t, profiles))
    if t.pii:
        steps.append(PiiRedaction(t))
    return steps or [PassThrough()]

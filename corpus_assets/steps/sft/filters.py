"""Filters on the per-sample statistics (thresholds from the recipe's ``filters``). A sample
is removed by the FIRST filter it fails, in the order of ``FILTER_REASONS``, so every
removal has exactly one reason and ``in = kept + sum(removed by reason)``.

Perplexity's bounds are data-driven, as the BetterMixture finalists set them: the
inter-quartile range of the samples that passed every other filter (widened by
``perplexity_iqr_k`` x IQR on each side when that is > 0).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from corpus_assets.steps.sft.config import SftFilters

FILTER_REASONS = ("text_too_short", "text_too_long", "low_alnum_ratio", "high_char_rep_ratio", "high_word_rep_ratio",
                  "high_special_char_ratio", "language_not_selected", "low_lang_score", "too_few_tokens",
                  "too_many_tokens", "ir_ratio_out_of_range", "perplexity_not_finite", "perplexity_below_iqr",
                  "perplexity_above_iqr")


def static_reason(stat: dict, f: SftFilters) -> Optional[str]:
    """The first fixed-threshold filter the sample fails (None: passes them all)."""
    if stat["text_len"] < f.min_text_len:
        return "text_too_short"
    if stat["text_len"] > f.max_text_len:
        return "text_too_long"
    if stat["alnum_ratio"] < f.min_alnum_ratio:
        return "low_alnum_ratio"
    if stat["char_rep_ratio"] > f.max_char_rep_ratio:
        return "high_char_rep_ratio"
    if stat["word_rep_ratio"] > f.max_word_rep_ratio:
        return "high_word_rep_ratio"
    if stat["special_char_ratio"] > f.max_special_char_ratio:
        return "high_special_char_ratio"
    if f.languages and stat["lang"] not in f.languages:
        return "language_not_selected"
    if stat["lang_score"] < f.min_lang_score:
        return "low_lang_score"
    if stat["token_count"] < f.min_tokens:
        return "too_few_tokens"
    if stat["token_count"] > f.max_tokens:
        return "too_many_tokens"
    if not f.min_ir_ratio <= stat["ir_ratio"] <= f.max_ir_ratio:
        return "ir_ratio_out_of_range"
    if f.perplexity_iqr and not math.isfinite(stat["perplexity"]):
        return "perplexity_not_finite"
    return None


def perplexity_bounds(values: Sequence[float], k: float = 0.0) -> tuple[float, float, float, float]:
    """(low, high, q1, q3): keep ``low <= perplexity <= high``; numpy's linear quantiles.
    No values: bounds that keep nothing is never needed (nothing is left), so (inf, -inf)."""
    arr = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return math.inf, -math.inf, math.nan, math.nan
    q1, q3 = (float(x) for x in np.quantile(arr, [0.25, 0.75]))
    iqr = q3 - q1
    return q1 - k * iqr, q3 + k * iqr, q1, q3


@dataclass
class FilterResult:
    keep: np.ndarray                       # bool per sample
    reasons: list                          # per sample: None or the reason
    removed: Counter = field(default_factory=Counter)
    perplexity: dict = field(default_factory=dict)  # q1, q3, low, high

    @property
    def kept(self) -> int:
        return int(self.keep.sum())


def apply_filters(stats: Sequence[dict], f: SftFilters) -> FilterResult:
    reasons = [static_reason(s, f) for s in stats]
    bounds = {}
    if f.perplexity_iqr:
        low, high, q1, q3 = perplexity_bounds([s["perplexity"] for s, r in zip(stats, reasons) if r is None],
                                              f.perplexity_iqr_k)
        bounds = {"q1": q1, "q3": q3, "low": low, "high": high, "k": f.perplexity_iqr_k}
        for i, (s, r) in enumerate(zip(stats, reasons)):
            if r is None:
                if s["perplexity"] < low:
                    reasons[i] = "perplexity_below_iqr"
                elif s["perplexity"] > high:
                    reasons[i] = "perplexity_above_iqr"
    keep = np.array([r is None for r in reasons], dtype=bool)
    return FilterResult(keep, reasons, Counter(r for r in reasons if r is not None), bounds)

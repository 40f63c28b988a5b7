"""Adapting a threshold to a language by quantile matching (FineWeb-2's method).

Gopher's and RefinedWeb's thresholds were set on English. FineWeb-2 (Penedo et al. 2025,
section on filtering) moves each one to another language by keeping the *share* of
reference text it cuts: if English's threshold ``t_en`` sits at quantile ``q`` of the
English reference distribution of a signal (``q = F_en(t_en)``), the language's threshold
is the same quantile of its own reference distribution, ``t_lang = F_lang^-1(q)``. A rule
that removes 2% of English Wikipedia then removes 2% of Japanese Wikipedia, whatever the
scale of the signal in each language (words of 1-2 characters in Japanese, 5 in English).

:func:`quantile_matched_threshold` is that mapping for one signal;
:func:`adapt_thresholds` applies it to every numeric Gopher / line-wise threshold from two
reference samples of documents' signals (``compute_signals`` rows), giving the
``thresholds`` block of a ``defaults/languages/<lang>.yaml``. The bundled ja / zh / de
files use FineWeb-2's published values (computed with this method on their reference
corpora) because this project holds an English reference corpus only; a lab with a
reference corpus of its language runs ``benchmarks/languages_thresholds.py``.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

# threshold name -> (signal column, side): "max" thresholds drop above, "min" below.
ADAPTABLE: dict[str, tuple[str, str]] = {
    "dup_line_frac": ("gopher_dup_line_frac", "max"),
    "dup_para_frac": ("gopher_dup_para_frac", "max"),
    "dup_line_char_frac": ("gopher_dup_line_char_frac", "max"),
    "dup_para_char_frac": ("gopher_dup_para_char_frac", "max"),
    **{f"top_{n}gram_char_frac": (f"gopher_top_{n}gram_char_frac", "max") for n in (2, 3, 4)},
    **{f"dup_{n}gram_char_frac": (f"gopher_dup_{n}gram_char_frac", "max") for n in range(5, 11)},
    "min_mean_word_length": ("gopher_mean_word_length", "min"),
    "max_mean_word_length": ("gopher_mean_word_length", "max"),
    "max_hash_to_word_ratio": ("gopher_hash_to_word_ratio", "max"),
    "max_ellipsis_to_word_ratio": ("gopher_ellipsis_to_word_ratio", "max"),
    "max_bullet_lines_frac": ("gopher_bullet_lines_frac", "max"),
    "max_ellipsis_lines_frac": ("gopher_ellipsis_lines_frac", "max"),
    "min_alpha_words_frac": ("gopher_alpha_words_frac", "min"),
    "max_line_correction_words_frac": ("rw_words_removed_frac", "max"),
}


def _clean(values: Iterable[float]) -> np.ndarray:
    arr = np.asarray([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))],
                     dtype=np.float64)
    return np.sort(arr)


def quantile_of(values: Sequence[float], threshold: float, side: str = "max") -> float:
    """Share of ``values`` the rule removes: above ``threshold`` for a "max" rule, below
    it for a "min" rule (the rules drop strictly beyond their threshold)."""
    arr = _clean(values)
    if arr.size == 0:
        raise ValueError("quantile_of: no values")
    if side == "max":
        return float(np.count_nonzero(arr > threshold)) / arr.size
    if side == "min":
        return float(np.count_nonzero(arr < threshold)) / arr.size
    raise ValueError(f"side must be 'max' or 'min', not {side!r}")


def quantile_matched_threshold(
    reference_values: Sequence[float],
    reference_threshold: float,
    language_values: Sequence[float],
    side: str = "max",
) -> float:
    """The language's threshold that removes the same share of its reference text as
    ``reference_threshold`` removes of the (English) reference: ``F_lang^-1(F_en(t_en))``
    (for a "max" rule the upper tail is matched, for a "min" rule the lower tail)."""
    removed = quantile_of(reference_values, reference_threshold, side)
    lang = _clean(language_values)
    if lang.size == 0:
        raise ValueError("quantile_matched_threshold: no language values")
    q = 1.0 - removed if side == "max" else removed
    return float(np.quantile(lang, q, method="linear"))


def adapt_thresholds(
    reference_signals: Sequence[Mapping[str, float]],
    language_signals: Sequence[Mapping[str, float]],
    thresholds,
    names: Optional[Iterable[str]] = None,
    digits: int = 3,
) -> dict[str, float]:
    """Quantile-matched values of ``thresholds``' adaptable rules (a FilterThresholds),
    from the signal rows of the English reference and of the language's reference."""
    out: dict[str, float] = {}
    for name in names or ADAPTABLE:
        column, side = ADAPTABLE[name]
        t_en = getattr(thresholds, name)
        if t_en is None:
            continue
        value = quantile_matched_threshold(
            [row[column] for row in reference_signals], t_en, [row[column] for row in language_signals], side)
        out[name] = round(value, digits)
    return out

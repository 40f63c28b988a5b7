"""CCNet's quality signal: each document's perplexity under a language model of its
language trained on Wikipedia (Wenzek et al. 2020, section 3.3), and the head / middle /
tail buckets cut at per-language percentiles of it (cc_net's ``PerplexityBucket``: 30th
and 60th by default).

- :class:`PerplexityScore` stores the perplexity as a signal column (``ccnet_perplexity``;
  -1 when the document's language has no model, as cc_net leaves it unscored), so a
  cut-off change never recomputes it. It removes only a document with no words (every
  line empty once normalized: whitespace, control characters), reason ``no_words``: the
  model would give it the perplexity of empty sentences, a number that means nothing;
- :func:`percentile_cutoffs` turns a sample of perplexities into (head, tail) cut-offs;
- :class:`PerplexityBucket` writes ``ccnet_bucket`` from the stored perplexity:
  ``head`` below the first cut-off, ``middle`` below the second, else ``tail``; ``all``
  for a language without cut-offs (cc_net's name). With ``keep_buckets`` it also removes
  the documents of the other buckets (reason ``bucket_<name>``): the subset a data lead
  picks.

Nothing here imports Dagster.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from corpus_assets.steps.base import Document, Step
from corpus_assets.steps.lm.text import normalize_for_lm

NO_PERPLEXITY = -1.0
BUCKETS = ("head", "middle", "tail", "all")


class PerplexityScore(Step):
    """``models(language)`` returns the language's model (or None); the model's
    ``document_perplexity(text, split_lines)`` gives CCNet's document perplexity."""

    name = "ccnet_perplexity"
    output_columns = {"ccnet_perplexity": float}

    def __init__(self, models: Callable[[str], Optional[object]], split_lines: bool = True,
                 text_field: str = "text", language_field: str = "language"):
        self.models = models
        self.split_lines = split_lines
        self.text_field = text_field
        self.language_field = language_field

    def apply(self, doc: Document):
        text = doc.get(self.text_field) or ""
        if not has_words(text):
            return "no_words", "no line has text once normalized" if text else "empty text"
        model = self.models(doc.get(self.language_field) or "")
        if model is None:
            doc["ccnet_perplexity"] = NO_PERPLEXITY
            return None
        # cc_net rounds to 0.1; the full value is kept (rounding can only tie documents)
        doc["ccnet_perplexity"] = float(model.document_perplexity(text, self.split_lines))
        return None


def has_words(text: str) -> bool:
    """Whether any line of ``text`` keeps a character after the LM's normalization."""
    return any(normalize_for_lm(line) for line in text.split("\n"))


def percentile_cutoffs(perplexities: Iterable[float], head_percentile: float = 30.0,
                       tail_percentile: float = 60.0) -> Optional[tuple[float, float]]:
    """(head, tail) cut-offs at the two percentiles of the scored values (NaN, inf and
    the -1 of unscored documents left out), or None when there is none. Linear
    interpolation between order statistics (numpy's default, as pandas' quantile, which
    cc_net's cut-off table came from)."""
    values = np.asarray([v for v in perplexities if v is not None], dtype=np.float64)
    values = values[np.isfinite(values) & (values >= 0)]
    if len(values) == 0:
        return None
    head, tail = np.percentile(values, [head_percentile, tail_percentile])
    return float(head), float(tail)


def bucket_of(perplexity: Optional[float], cutoffs: Optional[Sequence[float]]) -> str:
    """cc_net's rule: ``all`` without cut-offs or score; ``head`` when perplexity < head
    cut-off, ``middle`` when < tail cut-off, else ``tail``."""
    if cutoffs is None or perplexity is None:
        return "all"
    perplexity = float(perplexity)
    if np.isnan(perplexity) or perplexity < 0:  # unscored (-1) or broken: never guessed into a bucket
        return "all"
    head, tail = cutoffs
    if perplexity < head:
        return "head"
    if perplexity < tail:
        return "middle"
    return "tail"


class PerplexityBucket(Step):
    name = "ccnet_bucket"
    output_columns = {"ccnet_bucket": str}

    def __init__(self, cutoffs: Mapping[str, Sequence[float]], keep_buckets: Sequence[str] = BUCKETS,
                 language_field: str = "language"):
        unknown = set(keep_buckets) - set(BUCKETS)
        if unknown:
            raise ValueError(f"unknown buckets {sorted(unknown)} (known: {BUCKETS})")
        self.cutoffs = {lang: tuple(c) for lang, c in cutoffs.items()}
        self.keep_buckets = frozenset(keep_buckets)
        self.language_field = language_field

    def apply(self, doc: Document):
        value = doc.get("ccnet_perplexity")
        bucket = bucket_of(value, self.cutoffs.get(doc.get(self.language_field) or ""))
        doc["ccnet_bucket"] = bucket
        if bucket not in self.keep_buckets:
            return f"bucket_{bucket}", f"perplexity {value:.1f}" if isinstance(value, float) else ""
        return None

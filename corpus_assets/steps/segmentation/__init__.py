"""Word segmentation and per-language settings for languages beyond English.

``segmenters``: :func:`segmenter_for` (one :class:`Segmenter` per language: whitespace
words, jieba, fugashi + UniDic-lite, ICU word break). ``profiles``: the per-language
settings (segmenter, stop words, threshold overrides, line patterns) read from
``defaults/languages/<lang>.yaml`` and the ``languages`` settings section.
``thresholds``: adapting a threshold to a language by quantile matching (FineWeb-2).
No Dagster import.
"""

from corpus_assets.steps.segmentation.segmenters import (
    SEGMENTER_BY_LANGUAGE,
    SEGMENTER_NAMES,
    WHITESPACE,
    Segmenter,
    SegmenterUnavailable,
    segmenter_for,
)

__all__ = [
    "SEGMENTER_BY_LANGUAGE",
    "SEGMENTER_NAMES",
    "WHITESPACE",
    "Segmenter",
    "SegmenterUnavailable",
    "segmenter_for",
]

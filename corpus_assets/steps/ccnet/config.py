"""Settings of CCNet's stages (the ``ccnet`` section of the pipeline file); defaults are
CCNet's (Wenzek et al. 2020; cc_net's ``mine.py`` Config and ``PerplexityBucket``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

from pydantic import Field

from corpus_assets.steps.setting_types import ExistingFile, Fraction, LanguageCode, NonNegativeInt, PositiveInt

Percentile = Annotated[float, Field(gt=0.0, lt=100.0)]
Bucket = Annotated[str, Field(pattern=r"^(head|middle|tail|all)$")]


@dataclass(frozen=True)
class CCNetConfig:
    # Shards sharing one line-hash set (cc_net's hash_in_mem: 50). Memory of the count:
    # ~8 bytes per distinct line of the group.
    line_dedup_group_shards: PositiveInt = 50
    # A document shorter than this after line dedup is removed (cc_net's min_len: 300).
    min_chars: NonNegativeInt = 300
    # Language ID after dedup (cc_net's lang_threshold: 0.5; it keeps every language).
    language_model_path: Optional[ExistingFile] = None  # None: language_id.model_path's model
    languages: tuple[LanguageCode, ...] = ()  # empty: any language
    language_min_score: Fraction = 0.5
    # Perplexity buckets: per-language cut-offs at these percentiles of a sample.
    head_percentile: Percentile = 30.0
    tail_percentile: Percentile = 60.0
    cutoff_sample_docs: PositiveInt = 100_000  # per language, per dump (the lowest doc_id hashes)
    # Score each line as a sentence (the paper's words + lines); false: the whole
    # document as one sentence, as cc_net's released code does (its normalizer deletes \n).
    perplexity_split_lines: bool = True
    # The subset ccnet_buckets keeps; the others are removed with reason bucket_<name>.
    keep_buckets: tuple[Bucket, ...] = ("head", "middle", "tail", "all")

    def __post_init__(self):
        if isinstance(self.languages, str):
            object.__setattr__(self, "languages", (self.languages,))
        if isinstance(self.keep_buckets, str):
            object.__setattr__(self, "keep_buckets", (self.keep_buckets,))
        if not self.head_percentile < self.tail_percentile:
            raise ValueError(f"ccnet.head_percentile ({self.head_percentile}) must be below"
                             f" tail_percentile ({self.tail_percentile})")
        if not self.keep_buckets:
            raise ValueError("ccnet.keep_buckets: name at least one of head, middle, tail, all")

    def cutoff_settings(self) -> dict:
        return {"head_percentile": self.head_percentile, "tail_percentile": self.tail_percentile,
                "cutoff_sample_docs": self.cutoff_sample_docs}

"""Settings of the deduplication stages (the ``dedup`` section of the pipeline file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from .exact_substring import DEFAULT_DROP_FRACTION, DEFAULT_MIN_TOKENS, Mode
from .minhash import PRESETS
from ..setting_types import Fraction, PositiveInt

# Literal types (checked against PRESETS and Mode below) let the settings loader name the
# key of a bad value; __post_init__ still guards dataclasses built in code.
PresetName = Literal["refinedweb", "fineweb", "gpt3"]
ModeName = Literal["cut", "mask", "droppartial", "dropany"]
assert set(PresetName.__args__) == set(PRESETS) and set(ModeName.__args__) == {m.value for m in Mode}

# Candidate verification on by default per preset (minimum exact Jaccard of a pair).
# GPT-3 (Brown et al. 2020, App. A) used Spark's MinHashLSH, whose similarity join drops
# candidates above a distance threshold; the paper does not give it, so we take 0.7, the
# similarity the other presets' LSH curves are centred on (0.72, 0.74). With 10 bands of
# 1 row nearly every pair at 0.7 is a candidate (p = 1 - 0.3**10), so what gpt3 keeps
# then follows the threshold, not the banding.
VERIFY_DEFAULTS: dict[str, float] = {"gpt3": 0.7}


@dataclass(frozen=True)
class DedupConfig:
    # Fuzzy dedup (MinHash LSH). refinedweb = 450 bands x 20 rows (9,000 hashes, LSH
    # threshold ~0.74), fineweb = 14 x 8 (~0.72), gpt3 = 10 x 1 (~0.10, a baseline).
    minhash_preset: PresetName = "refinedweb"
    # duplicate_clusters and the cross-dump match read this many bands at a time: memory
    # is num_docs_of_dump * bands_per_range * 8 bytes, whatever the preset.
    bands_per_range: PositiveInt = 50
    # Exact substring dedup (Lee et al. 2022) on the fuzzy survivors of the dump.
    exact_substring: bool = True
    exact_mode: ModeName = "cut"  # cut | mask | droppartial | dropany
    exact_min_tokens: PositiveInt = DEFAULT_MIN_TOKENS
    exact_drop_fraction: Fraction = DEFAULT_DROP_FRACTION  # droppartial: drop above this share
    exact_keep_first: bool = True  # False: also strike the first occurrence (Lee et al.'s tool)
    exact_method: Literal["suffix_array", "hashed"] = "suffix_array"  # suffix_array (reference) | hashed (in hash_parts passes)
    exact_hash_parts: PositiveInt = 1
    # Candidate verification: a candidate pair (sharing a band, within the dump or with an
    # earlier dump's kept document) joins a cluster only when the exact Jaccard similarity
    # of the two documents' shingles is >= this. None: the preset's default
    # (VERIFY_DEFAULTS: on for gpt3, off otherwise); 0: off.
    verify_min_jaccard: Optional[Fraction] = None
    # URL dedup against the URLs kept by earlier dumps (crawl order), plus repeats of a
    # URL inside one shard.
    url_dedup: bool = True

    def __post_init__(self):
        if self.minhash_preset not in PRESETS:
            raise ValueError(f"dedup.minhash_preset must be one of {sorted(PRESETS)}, not {self.minhash_preset!r}")
        Mode(self.exact_mode)  # raises on an unknown mode
        if self.exact_method not in ("suffix_array", "hashed"):
            raise ValueError("dedup.exact_method must be suffix_array or hashed")
        if self.bands_per_range < 1 or self.exact_hash_parts < 1 or self.exact_min_tokens < 1:
            raise ValueError("dedup.bands_per_range, exact_hash_parts and exact_min_tokens must be >= 1")
        v = self.verify_min_jaccard
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0):
            raise ValueError(f"dedup.verify_min_jaccard must be between 0 and 1, not {self.verify_min_jaccard!r}")

    @property
    def candidate_min_jaccard(self) -> float:
        """The verification threshold in force (0.0: verification off)."""
        if self.verify_min_jaccard is None:
            return VERIFY_DEFAULTS.get(self.minhash_preset, 0.0)
        return float(self.verify_min_jaccard)

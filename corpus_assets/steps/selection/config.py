"""Settings of targeted selection (the ``selection`` section of the pipeline file).

Targets and external pool sources are lists of small records; in YAML::

    selection:
      targets:
        - {name: gsm8k, path: benchmarks/gsm8k_test.jsonl, fields: [question, answer]}
      sources:
        - {name: gsm8k_train, path: benchmarks/gsm8k_train.jsonl, fields: [question, answer], domain: math}

Relative paths are under ``data_dir`` (empty: ``../shared/data`` beside the checkout).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Optional

from pydantic import Field

from corpus_assets.steps.setting_types import ExistingDir, NonNegativeInt, PositiveFloat, PositiveInt

OpenFraction = Annotated[float, Field(gt=0.0, lt=1.0)]
TopFraction = Annotated[float, Field(gt=0.0, le=1.0)]
CompressionLevel = Annotated[int, Field(ge=0, le=9)]
# Target and source names become asset keys (selection_target_<name>) and static
# partition keys, so they follow Dagster's name rule; a name it refuses would stop the
# whole code location from loading rather than fail here with its key.
NAME_PATTERN = r"^[A-Za-z0-9_]+$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
# At least one field: none would make every example empty.
FieldNames = Annotated[tuple[str, ...], Field(min_length=1)]


def _check_name(kind: str, name: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name or ""):
        raise ValueError(f"selection {kind} name {name!r}: letters, digits and '_' only (Dagster's name rule)")


def _strings(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class SelectionTarget:
    name: Name
    path: str
    fields: FieldNames = ("text",)
    # Share of the examples kept apart (never scored against, never in the pool) to judge
    # the selections; picked by a seeded hash of the example's line number.
    heldout_fraction: OpenFraction = 0.2

    def __post_init__(self):
        object.__setattr__(self, "fields", _strings(self.fields))
        _check_name("target", self.name)
        if not self.fields:
            raise ValueError(f"selection target {self.name}: fields must name at least one field")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"selection target {self.name}: heldout_fraction must be in (0, 1)")


@dataclass(frozen=True)
class SelectionSource:
    """An external pool source: a JSONL(.gz) file of documents."""

    name: Name
    path: str
    fields: FieldNames = ("text",)
    domain: str = ""  # what the source is (math, code, ...): the composition report's label
    id_field: str = ""  # lineage id field; empty: the line number
    max_docs: int = -1  # -1: selection.max_docs_per_source
    # A mixed source labels documents per record: ``domain_field`` names the record field,
    # ``domain_map`` entries "VALUE=DOMAIN" relabel values (others keep ``domain``).
    domain_field: str = ""
    domain_map: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "fields", _strings(self.fields))
        object.__setattr__(self, "domain_map", _strings(self.domain_map))
        _check_name("source", self.name)
        if not self.fields:
            raise ValueError(f"selection source {self.name}: fields must name at least one field")
        if any("=" not in entry for entry in self.domain_map):
            raise ValueError(f"selection source {self.name}: domain_map entries are VALUE=DOMAIN")

    def domain_of(self, record: dict) -> str:
        if self.domain_field:
            value = str(record.get(self.domain_field) or "")
            for entry in self.domain_map:
                key, _, domain = entry.partition("=")
                if key == value:
                    return domain
        return self.domain


def _default_targets() -> tuple[SelectionTarget, ...]:
    return (
        SelectionTarget("gsm8k", "benchmarks/gsm8k_test.jsonl", ("question", "answer")),
        SelectionTarget("humaneval", "benchmarks/HumanEval.jsonl.gz", ("prompt", "canonical_solution")),
    )


def _default_sources() -> tuple[SelectionSource, ...]:
    return (
        SelectionSource("gsm8k_train", "benchmarks/gsm8k_train.jsonl", ("question", "answer"), "math"),
        SelectionSource("python_code", "code/python_pallets_requests.jsonl.gz", ("text",), "code", "path"),
        # GPTeacher mixes code generation (a third of it) with role play and tool use.
        SelectionSource("gpteacher", "instruct/gpteacher.jsonl.gz", ("instruction", "input", "output"), "instruct",
                        domain_field="source", domain_map=("GPTeacher/codegen=code",)),
        SelectionSource("enwiki", "reference/enwiki_articles.jsonl.gz", ("title", "text"), "wiki", "id"),
    )


@dataclass(frozen=True)
class SelectionConfig:
    # None: ../shared/data beside the checkout; a path set here must exist at load.
    data_dir: Optional[ExistingDir] = None
    targets: tuple[SelectionTarget, ...] = field(default_factory=_default_targets)
    sources: tuple[SelectionSource, ...] = field(default_factory=_default_sources)
    # rw_deduped documents join the pool as source "rw_deduped" (domain "web").
    include_rw_deduped: bool = True
    # Deterministic sample per source: the documents with the lowest seeded hash of their
    # lineage id (independent of file order); <= 0 keeps every document.
    max_docs_per_source: int = 400
    seed: NonNegativeInt = 0  # numpy's generators take no negative seed
    # Selection size: k documents, or top_fraction of the decontaminated pool when k <= 0.
    k: int = 0
    top_fraction: TopFraction = 0.1
    # ZIP-FIT: gzip level (0 stores, see steps/selection/zipfit.py) and how many target
    # examples each candidate is compared with (seeded sample of the non-held-out ones;
    # <= 0: all).
    compression_level: CompressionLevel = 6
    max_target_examples: int = 200
    workers: NonNegativeInt = 0  # processes scoring candidates; 0: the CPUs this process may use
    # DSIR
    dsir_buckets: PositiveInt = 10_000
    dsir_order: PositiveInt = 2
    dsir_alpha: PositiveFloat = 1.0
    # Decontamination (GPT-3: 13-grams)
    decontamination_n: PositiveInt = 13
    decontamination_min_tokens: PositiveInt = 8
    # Held-out evaluation: byte-level n-gram LM, interpolated Witten-Bell
    lm_order: PositiveInt = 5
    lm_max_train_bytes: NonNegativeInt = 20_000_000
    histogram_bins: PositiveInt = 20

    def __post_init__(self):
        def build(cls, items):
            return tuple(i if isinstance(i, cls) else cls(**dict(i)) for i in items)

        object.__setattr__(self, "targets", build(SelectionTarget, self.targets))
        object.__setattr__(self, "sources", build(SelectionSource, self.sources))
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"selection target names must be unique: {names}")
        sources = [s.name for s in self.sources] + ["rw_deduped"]
        if len(set(sources)) != len(sources):
            raise ValueError(f"selection source names must be unique (rw_deduped is taken): {sources}")
        if not 0 <= self.compression_level <= 9:
            raise ValueError("selection.compression_level must be 0..9")
        if not 0.0 < self.top_fraction <= 1.0:
            raise ValueError("selection.top_fraction must be in (0, 1]")
        if self.dsir_buckets < 1 or self.dsir_order < 1 or self.dsir_alpha <= 0:
            raise ValueError("selection.dsir_buckets and dsir_order must be >= 1, dsir_alpha > 0")
        if not 1 <= self.lm_order <= 8:
            raise ValueError("selection.lm_order must be 1..8")
        if self.decontamination_n < 1 or self.decontamination_min_tokens < 1:
            raise ValueError("selection.decontamination_n and decontamination_min_tokens must be >= 1")

    def target(self, name: str) -> SelectionTarget:
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(f"no selection target named {name!r} (known: {[t.name for t in self.targets]})")

    def describe(self) -> dict:
        return dataclasses.asdict(self)

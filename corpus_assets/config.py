"""The pipeline's settings: one YAML file, read once when the code location loads.

Step settings (thresholds, word lists, model paths) live here rather than in Dagster run
config on purpose: each asset's ``code_version`` includes a fingerprint of the settings
it uses, so editing a threshold in this file marks exactly the affected assets (and their
downstream) stale in the UI, and the same file reproduces the same output bytes.

Which file: ``$CORPUS_CONFIG`` when set, else the bundled ``defaults/pipeline.yaml``.
Relative paths inside a file are resolved against that file's folder. Nothing here
imports Dagster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pydantic
import yaml

from corpus_assets.steps.base import StepErrorPolicy
from corpus_assets.steps.dedup.config import DedupConfig
from corpus_assets.steps.domains.config import DomainConfig
from corpus_assets.steps.extraction import ExtractionConfig
from corpus_assets.steps.html_guard import HtmlGuardConfig
from corpus_assets.steps.langid import LanguageIdConfig
from corpus_assets.steps.lm.config import LmConfig
from corpus_assets.steps.ccnet.config import CCNetConfig
from corpus_assets.steps.classifiers.config import ClassifiersConfig
from corpus_assets.steps.mixture.config import MixtureConfig
from corpus_assets.steps.prescreen import LanguagePrescreenConfig
from corpus_assets.steps.progress import ProgressConfig
from corpus_assets.steps.quality.decisions import FilterThresholds
from corpus_assets.steps.quality.signals import SignalConfig
from corpus_assets.steps.segmentation.profiles import LanguageOverride, check_language_code, check_language_settings
from corpus_assets.steps.selection.config import SelectionConfig
from corpus_assets.steps.sft.config import SftConfig
from corpus_assets.steps.setting_types import MAX_SHARDS, ShardCount
from corpus_assets.steps.url_allowlist import UrlAllowlistConfig
from corpus_assets.steps.url_filter import UrlFilterConfig
from corpus_assets.steps.warc import HtmlDecodeConfig

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG_FILE = PACKAGE_DIR / "defaults" / "pipeline.yaml"
NUM_SHARDS_ENV = "CORPUS_NUM_SHARDS"
RECIPE_ENV = "CORPUS_RECIPE"
# A recipe is a file of defaults/recipes/ (corpus_assets/recipes.py): a plain name only.
RecipeName = typing.Annotated[str, pydantic.Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class ConfigError(ValueError):
    """A settings file that cannot be used, with the path and the offending key."""


def fingerprint(*configs: Any) -> str:
    """A short stable hash of dataclass configs, used in Dagster code versions."""
    payload = json.dumps(
        [dataclasses.asdict(c) if dataclasses.is_dataclass(c) else c for c in configs],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class PipelineConfig:
    """The whole settings file: ``num_shards`` and one section per step settings
    dataclass. A section added here is read, and validated field by field, with no other
    change to the loader (see :func:`load_config`)."""

    num_shards: ShardCount = 4
    # The named pipeline (defaults/recipes/<name>.yaml) whose settings this file starts
    # from; the file's own keys override the recipe's. $CORPUS_RECIPE overrides it.
    recipe: RecipeName = "refinedweb"
    html_decode: HtmlDecodeConfig = field(default_factory=HtmlDecodeConfig)
    url_filter: UrlFilterConfig = field(default_factory=UrlFilterConfig)
    url_allowlist: UrlAllowlistConfig = field(default_factory=UrlAllowlistConfig)
    html_guard: HtmlGuardConfig = field(default_factory=HtmlGuardConfig)
    extraction: ExtractionConfig = field(default_factory=ExtractionConfig)
    language_id: LanguageIdConfig = field(default_factory=LanguageIdConfig)
    language_prescreen: LanguagePrescreenConfig = field(default_factory=LanguagePrescreenConfig)
    quality_signals: SignalConfig = field(default_factory=SignalConfig)
    quality_thresholds: FilterThresholds = field(default_factory=FilterThresholds)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    lm: LmConfig = field(default_factory=LmConfig)
    ccnet: CCNetConfig = field(default_factory=CCNetConfig)
    classifiers: ClassifiersConfig = field(default_factory=ClassifiersConfig)
    step_errors: StepErrorPolicy = field(default_factory=StepErrorPolicy)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    domains: DomainConfig = field(default_factory=DomainConfig)
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    sft: SftConfig = field(default_factory=SftConfig)
    # per-language settings over defaults/languages/<lang>.yaml (docs/languages.md)
    languages: dict[str, LanguageOverride] = field(default_factory=dict)
    progress: ProgressConfig = field(default_factory=ProgressConfig)
    source_file: str = ""

    def __post_init__(self):
        for code in self.languages:
            check_language_code(code)
        # a segmenter that cannot segment the language, a fallback without a pattern file
        # (raises, naming languages.<lang>.<key>); overrides outside the scope are noted
        for note in check_language_settings(self.languages, tuple(self.language_id.languages),
                                            self.quality_signals.line_patterns_dir,
                                            self.quality_signals.line_patterns_fallback):
            warnings.warn(note, UserWarning, stacklevel=1)  # one place: shown once per note


# Fields of PipelineConfig that a settings file does not set.
_NOT_SETTINGS = {"source_file"}


def _dataclass_fields(cls: type) -> dict[str, Any]:
    """Field name -> resolved type (``from __future__ import annotations`` leaves strings)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _unknown_keys(cls: type, values: Any, where: tuple[str, ...]) -> list[str]:
    """Keys of ``values`` that are not fields of the dataclass ``cls``, as error lines,
    descending into fields that are dataclasses themselves (pydantic ignores extra keys
    of a stdlib dataclass, and a misspelt key must not pass silently)."""
    if not isinstance(values, dict):
        return []  # pydantic reports the wrong type, with its key
    known = _dataclass_fields(cls)
    if not where:
        known = {k: v for k, v in known.items() if k not in _NOT_SETTINGS}
    errors = []
    for key, value in values.items():
        dotted = ".".join((*where, str(key)))
        if key not in known:
            errors.append(f"{dotted}: unknown setting (known here: {', '.join(sorted(known))})")
        elif dataclasses.is_dataclass(known[key]):
            errors.extend(_unknown_keys(known[key], value, (*where, key)))
        elif isinstance(value, dict) and (item_type := _mapping_value_dataclass(known[key])):
            # a mapping of records (languages: {ja: {...}}): each value is checked
            for name, item in value.items():
                errors.extend(_unknown_keys(item_type, item, (*where, key, str(name))))
        elif isinstance(value, list) and (item_type := _sequence_item_dataclass(known[key])):
            # a list of records (selection.targets): each entry is checked, its index in the key
            for index, item in enumerate(value):
                errors.extend(_unknown_keys(item_type, item, (*where, key, str(index))))
    return errors


def _mapping_value_dataclass(annotation: Any) -> Optional[type]:
    """The dataclass of ``dict[str, X]`` (through ``Annotated``), else None."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is not dict:
        return None
    args = typing.get_args(annotation)
    if len(args) == 2 and dataclasses.is_dataclass(args[1]):
        return args[1]
    return None


def _sequence_item_dataclass(annotation: Any) -> Optional[type]:
    """The dataclass of ``tuple[X, ...]`` / ``list[X]`` (through ``Annotated``), else None."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) not in (tuple, list):
        return None
    item_types = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    if len(item_types) == 1 and dataclasses.is_dataclass(item_types[0]):
        return item_types[0]
    return None


class _SettingsLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` made strict for a settings file:

    - a key given twice in one mapping is an error (PyYAML keeps the last silently);
    - anchors and aliases are refused: a settings file has no need for them, and nested
      aliases expand exponentially ("billion laughs") before any check could run;
    - an int is decimal only: YAML 1.1 reads ``1:20`` as 80 (base 60), ``010`` as 8,
      ``0x10`` and ``1_0`` too; such values stay strings, which the typed fields refuse.
    """

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not allowed in a settings file", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (a later value would replace the earlier one)",
                    key_node.start_mark)
            if isinstance(key, typing.Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_INT_TAG = "tag:yaml.org,2002:int"
_SettingsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _INT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SettingsLoader.add_implicit_resolver(_INT_TAG, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))


def _validation_errors(exc: pydantic.ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        dotted = ".".join(str(part) for part in error["loc"]) or "(file)"
        # A __post_init__ check is reported on its section; its message names the key
        # ("url_filter.blocklist_categories: ..."), so report it on that key.
        named = re.match(r"Value error, ([\w.]+)[: ]", error["msg"])
        if named and dotted != "(file)" and named.group(1).startswith(dotted + "."):
            dotted = named.group(1)
        elif named and dotted == "(file)" and re.fullmatch(r"\w+(?:\.\w+)+", named.group(1)):
            dotted = named.group(1)  # a check across sections names its dotted key
        elif named and len(error["loc"]) == 2 and error["loc"][0] == "languages" and "." in named.group(1):
            dotted = f"{dotted}.{named.group(1)}"  # languages.<lang> + thresholds.<key>
        given = error.get("input")
        shown = "" if isinstance(given, dict) else f" (got {repr(given)[:80]})"
        lines.append(f"{dotted}: {error['msg']}{shown}")
    return lines


# Every section is a stdlib dataclass; pydantic validates the nested whole from the
# field annotations (types, and ranges declared next to the fields with
# corpus_assets/steps/setting_types.py). JSON mode with strict=True is the strictness we
# want from YAML values: no "no" -> False, no "4" -> 4, no string split into a tuple, but
# lists do become tuples (the dataclasses are frozen and hashable).
_VALIDATOR = pydantic.TypeAdapter(PipelineConfig)


def _num_shards_from_env(path: Path) -> Optional[int]:
    value = os.environ.get(NUM_SHARDS_ENV)
    if value is None or value.strip() == "":
        return None
    # the length check first: int() refuses more than 4,300 digits with a ValueError
    if not (value.strip().isascii() and value.strip().isdigit()) or len(value.strip()) > 20 or int(value) < 1:
        raise ConfigError(f"{NUM_SHARDS_ENV}={value[:40]!r}: must be a whole number from 1 to {MAX_SHARDS:,}"
                          f" (it overrides num_shards of {path})")
    return int(value)


def load_config(path: Optional[str | os.PathLike] = None) -> PipelineConfig:
    """Read and validate a pipeline settings file (see ``defaults/pipeline.yaml`` for
    every key). Every problem found is reported at once, each line naming the file and
    the setting's dotted key (``language_id.min_score``); nothing is checked later than
    here that could be checked here (a path that does not exist, a value out of range)."""
    path = Path(path or os.environ.get("CORPUS_CONFIG") or DEFAULT_CONFIG_FILE)
    if path.is_dir():
        raise ConfigError(f"pipeline settings file {path} is a folder, not a file")
    if not path.is_file():
        raise ConfigError(f"pipeline settings file not found: {path}")
    try:
        return _load_config(path)
    except (RecursionError, ValueError, OverflowError, MemoryError) as exc:
        if isinstance(exc, ConfigError):
            raise
        # hostile files: nesting deeper than Python's recursion limit, ints over 4,300 digits
        raise ConfigError(f"{path}: not a usable settings file: {type(exc).__name__}: {str(exc)[:200]}") from None


def _load_config(path: Path) -> PipelineConfig:
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.load(fh, Loader=_SettingsLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable YAML file: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a settings file is a mapping of sections (num_shards:,"
                          f" url_filter:, ...), not a {type(raw).__name__} ({raw!r:.60})")
    if "recipe" in raw and raw["recipe"] is None:
        from corpus_assets.recipes import DEFAULT_RECIPE, recipe_names

        raise ConfigError(f"{path}: invalid settings:\n  {path}: recipe: empty (name one of {', '.join(recipe_names())},"
                          f" or leave the key out for {DEFAULT_RECIPE})")
    # An empty section ("quality_signals:") means all its defaults.
    values = {key: ({} if value is None else value) for key, value in raw.items()}
    # The recipe's settings first, the file's own keys over them (corpus_assets/recipes.py).
    recipe_name = os.environ.get(RECIPE_ENV) or values.get("recipe")
    if recipe_name is not None:
        from corpus_assets.recipes import DEFAULT_RECIPE, RecipeError, apply_recipe

        own = values.get("recipe")
        if os.environ.get(RECIPE_ENV) and own not in (None, DEFAULT_RECIPE, recipe_name):
            # The file's keys were written for its own recipe (webtext's allowlist): running
            # them under another recipe mixes two pipelines, so neither is silently chosen.
            raise ConfigError(f"{path}: invalid settings:\n  {path}: recipe: the file names recipe {own!r:.40} but "
                              f"${RECIPE_ENV}={recipe_name!r:.40}; unset ${RECIPE_ENV} or use a settings file "
                              f"written for that recipe")
        try:
            # One rule whatever the file: a key the recipe sets is overridden only by a value
            # that differs from its default (recipes.merge_over_recipe, docs/recipes.md).
            values = apply_recipe(values, recipe_name, source=str(path))
        except RecipeError as exc:
            where = f"${RECIPE_ENV}" if os.environ.get(RECIPE_ENV) else "recipe"
            raise ConfigError(f"{path}: invalid settings:\n  {path}: {where}: {exc}") from None
    env_shards = _num_shards_from_env(path)
    if env_shards is not None:
        values["num_shards"] = env_shards
    errors = _unknown_keys(PipelineConfig, values, ())
    config = None
    try:
        config = _VALIDATOR.validate_json(
            json.dumps(values, default=str), strict=True, context={"base_dir": path.parent.resolve()}
        )
    except pydantic.ValidationError as exc:
        errors.extend(_validation_errors(exc))
    if not errors and recipe_name is not None:
        from corpus_assets.recipes import missing_requirements

        errors.extend(missing_requirements(config))
    if errors:
        raise ConfigError(f"{path}: invalid settings:\n" + "\n".join(f"  {path}: {e}" for e in errors))
    return dataclasses.replace(config, source_file=str(path))

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from corpus_assets.steps.dedup.config import DedupConfig
from corpus_assets.steps.domains.config import DomainConfig
from corpus_assets.steps.extraction import ExtractionConfig
from corpus_assets.steps.langid import LanguageIdConfig
from corpus_assets.steps.prescreen import LanguagePrescreenConfig
from corpus_assets.steps.quality.decisions import FilterThresholds
from corpus_assets.steps.quality.signals import SignalConfig
from corpus_assets.steps.url_filter import UrlFilterConfig
from corpus_assets.steps.warc import HtmlDecodeConfig

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG_FILE = PACKAGE_DIR / "defaults" / "pipeline.yaml"

# Keys of a config section whose values are file or folder paths, resolved against the
# config file's folder when relative.
_PATH_KEYS = {"blocklist_dir", "model_path", "strict_words_path", "hard_words_path",
              "soft_words_path", "line_patterns_dir",
              "taxonomy_path", "encoder_path", "encoder_cache_dir", "benchmark_dir"}


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
    num_shards: int = 4
    html_decode: HtmlDecodeConfig = field(default_factory=HtmlDecodeConfig)
    url_filter: UrlFilterConfig = field(default_factory=UrlFilterConfig)
    extraction: ExtractionConfig = field(default_factory=ExtractionConfig)
    language_id: LanguageIdConfig = field(default_factory=LanguageIdConfig)
    language_prescreen: LanguagePrescreenConfig = field(default_factory=LanguagePrescreenConfig)
    quality_signals: SignalConfig = field(default_factory=SignalConfig)
    quality_thresholds: FilterThresholds = field(default_factory=FilterThresholds)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    domains: DomainConfig = field(default_factory=DomainConfig)
    source_file: str = ""


_SECTIONS = {
    "html_decode": HtmlDecodeConfig,
    "url_filter": UrlFilterConfig,
    "extraction": ExtractionConfig,
    "language_id": LanguageIdConfig,
    "language_prescreen": LanguagePrescreenConfig,
    "quality_signals": SignalConfig,
    "quality_thresholds": FilterThresholds,
    "dedup": DedupConfig,
    "domains": DomainConfig,
}


def _build_section(cls: type, values: dict, base_dir: Path, where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in (values or {}).items():
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r} (known: {sorted(known)})")
        if key in _PATH_KEYS and isinstance(value, str) and value and not os.path.isabs(value):
            value = str((base_dir / value).resolve())
        if isinstance(value, list):
            value = tuple(value)  # configs are hashable and immutable
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_config(path: Optional[str | os.PathLike] = None) -> PipelineConfig:
    """Read a pipeline settings file (see ``defaults/pipeline.yaml`` for every key)."""
    path = Path(path or os.environ.get("CORPUS_CONFIG") or DEFAULT_CONFIG_FILE)
    if not path.is_file():
        raise ConfigError(f"pipeline settings file not found: {path}")
    with open(path) as fh:
        raw = yaml.safe_load(fh) or {}
    unknown = set(raw) - set(_SECTIONS) - {"num_shards"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}")
    sections = {
        name: _build_section(cls, raw.get(name) or {}, path.parent, f"{path} [{name}]")
        for name, cls in _SECTIONS.items()
    }
    num_shards = int(os.environ.get("CORPUS_NUM_SHARDS") or raw.get("num_shards", 4))
    if num_shards < 1:
        raise ConfigError(f"{path}: num_shards must be >= 1")
    return PipelineConfig(num_shards=num_shards, source_file=str(path), **sections)

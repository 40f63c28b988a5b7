"""Per-language settings: segmenter, stop words, threshold overrides, line patterns.

Where a language's settings come from, the first that says something winning:

1. the ``languages`` section of the pipeline settings file, one entry per language
   (:class:`LanguageOverride`), e.g. ``languages: {ja: {thresholds: {min_words: 80}}}``;
2. for stop words only, ``quality_signals.stop_words`` (where English's Gopher list lives);
3. the bundled profile ``corpus_assets/defaults/languages/<lang>.yaml`` (same keys, plus
   ``line_patterns``; its comments say where each value comes from);
4. the language's default segmenter (``segmenters.SEGMENTER_BY_LANGUAGE``) and the
   ``stopwordsiso`` 0.7.1 list of the language, when it has one.

A language with none of these (English: its stop words are ``quality_signals``') has no
profile and is treated exactly as before profiles existed: whitespace words, the global
thresholds and line patterns. Profiles are built only for the languages in scope: the
languages language ID keeps (``language_id.languages``), or, when it keeps every
language, every language with a bundled profile or a settings entry. So the default
English-only settings build no profile, and every fingerprint stays what it was.

Stop words: Gopher's rule ("at least two of the following English words", Rae et al.
2021) needs the language's most frequent function words. The bundled lists are
FineWeb-2's per-language lists (Penedo et al. 2025, the ``stopwords`` of
``configs/<lang>_<script>.yml`` in huggingface/fineweb-2: the most frequent words of the
language's reference text), keeping the entries that are function words in the
maintained ``stopwordsiso`` list (content words such as 年 "year" and punctuation such as
・ dropped); a language without a bundled list falls back to stopwordsiso's whole list.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

import yaml

from corpus_assets.steps.segmentation.segmenters import (
    SEGMENTER_BY_LANGUAGE,
    WHITESPACE,
    Segmenter,
    _version,
    segmenter_for,
)

DEFAULT_PROFILES_DIR = Path(__file__).resolve().parent.parent.parent / "defaults" / "languages"

SegmenterName = Literal["whitespace", "jieba", "fugashi", "icu"]
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
LINE_PATTERN_KEYS = ("include", "start", "end", "anywhere", "counters", "counter_lines")


def _threshold_fields() -> dict[str, type]:
    """FilterThresholds' numeric fields (name -> int or float): what a language may override."""
    import typing

    from corpus_assets.steps.quality.decisions import FilterThresholds

    hints = typing.get_type_hints(FilterThresholds, include_extras=False)
    out = {}
    for f in dataclasses.fields(FilterThresholds):
        base = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
        kind = base[0]
        if kind in (int, float):
            out[f.name] = kind
    return out


@functools.lru_cache(maxsize=None)
def _threshold_adapter(key: str):
    """pydantic's validator of ``FilterThresholds.<key>`` (its type and declared bounds)."""
    import typing

    import pydantic

    from corpus_assets.steps.quality.decisions import FilterThresholds

    return pydantic.TypeAdapter(typing.get_type_hints(FilterThresholds, include_extras=True)[key])


def _threshold_problem(key: str, value) -> str:
    import pydantic

    try:
        _threshold_adapter(key).validate_python(value)
    except pydantic.ValidationError as exc:
        return "; ".join(e["msg"] for e in exc.errors())
    return ""


@dataclass(frozen=True)
class LanguageOverride:
    """One entry of the ``languages`` settings section (and the shape of a bundled
    profile file, less ``line_patterns``). Every field left out keeps the bundled value.

    segmenter: whitespace | jieba | fugashi | icu.
    stop_words: the Gopher stop-word list of the language ([] = no stop-word rule).
    thresholds: ``quality_thresholds`` keys (numeric ones) with the language's value;
        null switches that rule off for the language.
    c4_end_marks / fineweb_terminal_punctuation: line-end marks of the language.
    line_patterns_fallback: pattern file used when neither the patterns folder nor the
        profile has patterns for the language ("" = only the pattern-free rules).
    """

    segmenter: Optional[SegmenterName] = None
    stop_words: Optional[tuple[str, ...]] = None
    thresholds: dict[str, Optional[float]] = field(default_factory=dict)
    c4_end_marks: Optional[tuple[str, ...]] = None
    fineweb_terminal_punctuation: Optional[tuple[str, ...]] = None
    line_patterns_fallback: Optional[str] = None

    def __post_init__(self):
        known = _threshold_fields()
        for key, value in self.thresholds.items():
            if key not in known:
                raise ValueError(f"thresholds.{key}: unknown threshold (known: {', '.join(sorted(known))})")
            if value is None:
                continue
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or value < 0):
                raise ValueError(f"thresholds.{key}: must be a finite number >= 0 or null, not {value!r}")
            if known[key] is int and float(value) != int(value):
                raise ValueError(f"thresholds.{key}: must be a whole number, not {value!r}")
            # the same type and bounds as quality_thresholds.<key> (a fraction is 0..1)
            problem = _threshold_problem(key, value)
            if problem:
                raise ValueError(f"thresholds.{key}: {problem} (as quality_thresholds.{key}), not {value!r}")
        if self.stop_words is not None:
            object.__setattr__(self, "stop_words", tuple(self.stop_words))
        for name in ("c4_end_marks", "fineweb_terminal_punctuation"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))


@dataclass(frozen=True)
class LanguageProfile:
    """The settings one language's documents are measured and decided with."""

    language: str
    segmenter_name: str = "whitespace"
    stop_words: tuple[str, ...] = ()
    stop_words_source: str = ""  # where the list came from ("" = no list: rule skipped)
    thresholds: Mapping[str, Optional[float]] = field(default_factory=dict)
    c4_end_marks: Optional[tuple[str, ...]] = None
    fineweb_terminal_punctuation: Optional[tuple[str, ...]] = None
    line_patterns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    line_patterns_fallback: Optional[str] = None
    sources: tuple[str, ...] = ()  # "profile:<file name>", "settings", "stopwordsiso"

    @property
    def segmenter(self) -> Segmenter:
        return segmenter_for(self.language, self.segmenter_name)

    def payload(self) -> dict:
        """Everything that changes what is measured or decided (for the fingerprints)."""
        out = dataclasses.asdict(self)
        out["thresholds"] = dict(sorted(self.thresholds.items()))
        out["segmenter"] = self.segmenter.identity
        out.pop("sources")
        return out


class LanguageProfiles:
    """The profiles of the languages in scope, by lid.176 code."""

    def __init__(self, profiles: Optional[Mapping[str, LanguageProfile]] = None):
        self.profiles = dict(sorted((profiles or {}).items()))

    def __bool__(self) -> bool:
        return bool(self.profiles)

    def __contains__(self, language: str) -> bool:
        return language in self.profiles

    def get(self, language: str) -> Optional[LanguageProfile]:
        return self.profiles.get(language)

    def segmenter(self, language: str) -> Segmenter:
        profile = self.profiles.get(language)
        return profile.segmenter if profile is not None else WHITESPACE

    def payload(self) -> dict:
        return {lang: p.payload() for lang, p in self.profiles.items()}

    def segmenter_identities(self) -> dict[str, str]:
        """language -> identity, for the languages whose segmenter is not whitespace."""
        return {lang: p.segmenter.identity for lang, p in self.profiles.items()
                if p.segmenter_name != "whitespace"}


NO_PROFILES = LanguageProfiles()


def prescreen_segmenter(profiles: LanguageProfiles):
    """The segmenter the language pre-screen counts chunk words with: the segmenters of
    the profiled languages written without spaces, combined; None when there are none."""
    from corpus_assets.steps.segmentation.segmenters import combined_segmenter

    return combined_segmenter(p.segmenter for p in profiles.profiles.values())


# ------------------------------------------------------------------------ loading


@functools.lru_cache(maxsize=64)
def _read_profile_file(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"language profile {path}: must hold a mapping")
    allowed = {f.name for f in dataclasses.fields(LanguageOverride)} | {"language", "line_patterns", "stop_words_source"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"language profile {path}: unknown keys {sorted(unknown)} (known: {sorted(allowed)})")
    patterns = data.get("line_patterns") or {}
    if not isinstance(patterns, dict) or set(patterns) - set(LINE_PATTERN_KEYS):
        raise ValueError(f"language profile {path}: line_patterns must be a mapping of {LINE_PATTERN_KEYS}")
    for key, value in patterns.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"language profile {path}: line_patterns.{key} must be a list of strings")
    return data


def profile_files(directory: Path = DEFAULT_PROFILES_DIR) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(directory).glob("*.yaml"))}


def stopwordsiso_list(language: str) -> tuple[str, ...]:
    """stopwordsiso's list for ``language`` (sorted), () when it has none."""
    try:
        import stopwordsiso
    except ImportError:  # pragma: no cover - declared dependency
        return ()
    if not stopwordsiso.has_lang(language):
        return ()
    return tuple(sorted(stopwordsiso.stopwords(language)))


def build_profile(
    language: str,
    override: Optional[LanguageOverride] = None,
    signal_stop_words: Optional[Mapping[str, tuple[str, ...]]] = None,
    directory: Path = DEFAULT_PROFILES_DIR,
) -> Optional[LanguageProfile]:
    """The profile of one language (see the module docstring), None when nothing about
    the language differs from the global settings."""
    signal_stop_words = signal_stop_words or {}
    path = profile_files(directory).get(language)
    data = _read_profile_file(str(path)) if path else {}
    sources = [f"profile:{path.name}"] if path else []
    base = LanguageOverride(**{k: v for k, v in data.items()
                               if k in {f.name for f in dataclasses.fields(LanguageOverride)}})
    if override is not None:
        sources.append("settings")
    over = override or LanguageOverride()

    segmenter = over.segmenter or base.segmenter or SEGMENTER_BY_LANGUAGE.get(language, "whitespace")
    if over.stop_words is not None:
        stop_words, stop_source = over.stop_words, "settings (languages.%s.stop_words)" % language
    elif language in signal_stop_words:
        stop_words, stop_source = tuple(signal_stop_words[language]), "quality_signals.stop_words"
    elif base.stop_words is not None:
        stop_words, stop_source = base.stop_words, data.get("stop_words_source") or f"profile {path.name}"
    else:
        stop_words = stopwordsiso_list(language)
        stop_source = f"stopwordsiso=={_version('stopwordsiso')}" if stop_words else ""
        if stop_words:
            sources.append("stopwordsiso")
    if not stop_words:
        stop_source = ""
    if not sources and segmenter == "whitespace" and language in signal_stop_words:
        return None
    if not sources and segmenter == "whitespace" and not stop_words:
        return None
    thresholds = {**base.thresholds, **over.thresholds}
    patterns = {k: tuple(v) for k, v in (data.get("line_patterns") or {}).items()}
    return LanguageProfile(
        language=language,
        segmenter_name=segmenter,
        stop_words=tuple(w.lower() for w in stop_words),
        stop_words_source=stop_source,
        thresholds=thresholds,
        # an empty list given in the settings is honoured (no marks), like stop_words: []
        c4_end_marks=over.c4_end_marks if over.c4_end_marks is not None else base.c4_end_marks,
        fineweb_terminal_punctuation=(over.fineweb_terminal_punctuation if over.fineweb_terminal_punctuation
                                      is not None else base.fineweb_terminal_punctuation),
        line_patterns=patterns,
        line_patterns_fallback=(over.line_patterns_fallback if over.line_patterns_fallback is not None
                                else base.line_patterns_fallback),
        sources=tuple(sources),
    )


def build_language_profiles(
    scope: tuple[str, ...],
    overrides: Optional[Mapping[str, LanguageOverride]] = None,
    signal_stop_words: Optional[Mapping[str, tuple[str, ...]]] = None,
    directory: Path = DEFAULT_PROFILES_DIR,
) -> LanguageProfiles:
    """Profiles of the languages in ``scope`` (every profiled language when empty)."""
    from corpus_assets.steps.quality.line_corrections import normalize_language

    overrides = {normalize_language(k): v for k, v in (overrides or {}).items()}
    if scope:
        languages = sorted({normalize_language(x) for x in scope})
    else:
        languages = sorted(set(profile_files(directory)) | set(overrides))
    out = {}
    for lang in languages:
        profile = build_profile(lang, overrides.get(lang), signal_stop_words, directory)
        if profile is not None:
            out[lang] = profile
    return LanguageProfiles(out)


def profiles_for(config: Any) -> LanguageProfiles:
    """The profiles of a :class:`~corpus_assets.config.PipelineConfig` (cached per config)."""
    key = id(config)
    cached = _PROFILE_CACHE.get(key)
    if cached is not None and cached[0] is config:
        return cached[1]
    profiles = build_language_profiles(
        tuple(config.language_id.languages),
        getattr(config, "languages", None) or {},
        config.quality_signals.stop_words,
    )
    _PROFILE_CACHE[key] = (config, profiles)
    return profiles


_PROFILE_CACHE: dict[int, tuple[Any, LanguageProfiles]] = {}


def check_language_settings(languages: Mapping[str, LanguageOverride], scope: tuple[str, ...],
                            line_patterns_dir, global_fallback: str) -> list[str]:
    """Problems of the ``languages`` section that only the whole settings can see, each
    naming its key (raised by the settings check): a segmenter that cannot segment the
    language, a ``line_patterns_fallback`` without a pattern file. Returns notes on
    overrides that no language in scope uses (the caller warns)."""
    from corpus_assets.steps.quality.line_corrections import normalize_language
    from corpus_assets.steps.segmentation.segmenters import _ICU_SCRIPTS

    problems, notes = [], []
    for code, over in languages.items():
        lang = normalize_language(code)
        if over.segmenter == "icu" and lang not in _ICU_SCRIPTS:
            problems.append(f"languages.{code}.segmenter: icu has no script for {code!r}"
                            f" (icu segments {', '.join(sorted(_ICU_SCRIPTS))})")
        fallback = over.line_patterns_fallback
        if fallback and not (Path(line_patterns_dir) / f"{normalize_language(fallback)}.yaml").is_file():
            problems.append(f"languages.{code}.line_patterns_fallback: no pattern file for {fallback!r} in"
                            f" {line_patterns_dir} (known: {', '.join(_pattern_languages(line_patterns_dir))};"
                            f" \"\" = no patterns)")
    if global_fallback and not (Path(line_patterns_dir) / f"{normalize_language(global_fallback)}.yaml").is_file():
        problems.append(f"quality_signals.line_patterns_fallback: no pattern file for {global_fallback!r} in"
                        f" {line_patterns_dir} (known: {', '.join(_pattern_languages(line_patterns_dir))};"
                        f" \"\" = no patterns)")
    if problems:
        raise ValueError("; ".join(problems))
    if scope:
        kept = {normalize_language(x) for x in scope}
        for code in languages:
            if normalize_language(code) not in kept:
                notes.append(f"languages.{code}: unused, {code!r} is not in language_id.languages"
                             f" {sorted(kept)}")
    return notes


def _pattern_languages(directory) -> list[str]:
    return sorted(p.stem for p in Path(directory).glob("*.yaml"))


def check_language_code(code: str) -> str:
    if not _LANGUAGE_CODE.match(code):
        raise ValueError(f"languages: {code!r} is not a language code (lid.176's ISO 639 codes: ja, zh, de)")
    return code

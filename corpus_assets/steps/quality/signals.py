"""Quality signals: every number the quality filters decide on, computed once per document.

"Signals first, decisions second" (the design of RedPajama-V2's quality signals): the step
:class:`QualitySignals` never removes anything; it measures ``doc["text"]`` (trafilatura's
extraction, with ``doc["language"]`` from language ID) and stores the results as flat
scalar columns listed in :data:`SIGNAL_COLUMNS`. The filters in ``decisions`` then read
only these columns, so changing a threshold re-runs the cheap decisions, never this.

Columns are never None: a float that was not computed (its preset switched off) is NaN,
an int 0, a bool False, a string "" -- so every Parquet file has the same schema.
``qs_presets`` records which presets were computed; the decision steps refuse to decide
from a preset whose signals are missing.

What each preset measures (definitions in the papers; where they are ambiguous we follow
datatrove, the most widely used open implementation, and say so):

gopher_repetition -- Gopher, Rae et al. 2021, Appendix A and Table A1
    duplicate-line / duplicate-paragraph fraction (repeats / items), characters in
    duplicate lines / paragraphs over the text's length, top 2/3/4-gram character
    fraction, duplicated 5..10-gram character fraction. The n-grams are of letter/digit
    words (``_text``): "apple." and "apple" are one word. Counting conventions are
    datatrove's (``_text``): repeats exclude the first occurrence; top n-gram characters
    = ``len(" ".join(ngram)) * count``; duplicated n-gram characters = the words' own
    characters, overlaps not double-counted; every fraction over ``len(text)``.
gopher_quality -- Gopher, same appendix
    word count, mean word length, ``#`` per word, ellipses (``...`` and ``…``) per word,
    fraction of lines starting with a bullet, fraction of lines ending with an ellipsis,
    fraction of words with an alphabetic character, stop-word count. The paper names no
    tokenizer; each statistic uses the unit its wording needs (``_text``):

    ==============================  ==========================================================
    statistic                       words it counts
    ==============================  ==========================================================
    word count (50..100,000)        letter/digit words: a punctuation mark is no word
    mean word length (3..10)        letter/digit words: a word's length is its own letters
                                    and digits, not the comma after it
    ``#`` / ellipses per word       the symbols counted in the whole text, over the
                                    letter/digit word count (the word-count rule's words)
    words with a letter (>= 80%)    whitespace-separated words: symbol runs ("++",
                                    ``./!*?<><>``) are words without a letter, which is
                                    what the rule removes; "Hello," holds a letter
    stop words (>= 2 distinct)      letter/digit words, lower-cased: "The" and "the," count
    ==============================  ==========================================================

    datatrove divides the ``#``/ellipsis ratios and the alphabetic fraction by all of its
    spaCy tokens, every punctuation mark a token of its own, so "Hello, world." is 50%
    alphabetic there and 100% here and in the paper's whitespace reading. Bullets:
    datatrove checks "•" and "-"; we also take "*", "●", "▪", "◦", "‣" (configurable).
    Stop words: the rule keeps a document that contains "at least two of the following
    English words" (the paper), i.e. two distinct ones of Gopher's eight
    (``gopher_stop_word_distinct``; datatrove 0.10 counts distinct words too, earlier
    datatrove releases counted occurrences, kept as ``gopher_stop_word_count``); we
    lower-case first (datatrove compares case-sensitively, so a sentence-initial "The"
    does not count there). Languages without a list get
    ``gopher_stop_words_applicable = False`` and the rule is skipped.

Languages beyond English (``steps/segmentation``): a document whose language has a
profile is measured with the profile's segmenter (jieba, fugashi, ICU word break for the
scripts written without spaces), its stop words, its line patterns and its line-end
marks; every statistic above keeps its definition, with the segmenter's words in place of
letter/digit words and its tokens in place of whitespace words. A language without a
profile (English by default) is measured exactly as before. The profiles in force are
part of ``signals_fingerprint``.
line_corrections -- RefinedWeb, Penedo et al. 2023, section 3.2 and App. G.2
    the corrected text and what was cut (see ``line_corrections``), computed on the
    whole text. ``rw_corrected_text`` is "" when nothing changed (``rw_text_changed``
    False): the text column already holds it, and storing it twice would double the
    table's size for nothing.
c4 -- Raffel et al. 2020, section 2.2 (see ``c4``)
    lines C4's rules would remove (per rule), "lorem ipsum" and "{" flags, sentences.
fineweb -- Penedo et al. 2024, its custom heuristic filters
    fraction of (non-blank) lines ending in terminal punctuation (FineWeb's set
    ``. ' " ! ?``, checked after stripping trailing spaces, which trafilatura leaves),
    fraction of lines of <= 30 characters, characters in duplicated lines over the
    text's characters without newlines (datatrove's denominator), and newlines per word
    (datatrove's extra "list ratio", not in the paper).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Mapping, Optional

from corpus_assets.steps.base import Document, Step
from corpus_assets.steps.setting_types import ExistingDir, ExistingFile, Fraction, NonNegativeInt, PositiveInt
from corpus_assets.steps.quality._text import (
    NGramIndex,
    find_duplicates,
    split_lines,
    split_paragraphs,
    split_whitespace_words,
    split_words,
)
from corpus_assets.steps.quality.c4 import C4_LINE_RULES, CJK_SENTENCE_END_RE, BadWords, c4_walk
from corpus_assets.steps.quality.line_corrections import (
    DEFAULT_LINE_PATTERNS_DIR,
    RULES as LINE_RULES,
    build_line_patterns,
    correct_lines,
    load_line_patterns,
    normalize_language,
    patterns_dir_digest,
)

# Bump when a code change alters what a signal means or how it is counted: it is part of
# signals_fingerprint, the Dagster code version of the signals asset.
SIGNALS_VERSION = 2  # 2: Gopher's alphabetic-word fraction over whitespace words

PRESETS = ("gopher_repetition", "gopher_quality", "line_corrections", "c4", "fineweb")

# Gopher (Rae et al. 2021, Appendix A): "at least two of the following English words".
GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")

TOP_NGRAM_SIZES = (2, 3, 4)
DUP_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)


@dataclass(frozen=True)
class SignalConfig:
    """Everything that changes the signals (and so the signals fingerprint).

    presets: which presets' signals to compute (default: all of them, so any decision
        preset can be switched on later without recomputing; the extra cost is small).
    top_ngram_sizes / dup_ngram_sizes: n-gram sizes to compute, subsets of 2..4 / 5..10
        (the schema has a column for each; sizes left out are NaN).
    bullet_markers / ellipsis_markers: line starts / line ends and symbols counted.
    stop_words: language (lid.176 code) -> stop words; languages absent skip the rule.
    line_patterns_dir: folder of ``<language>.yaml`` boilerplate pattern files.
    line_patterns_fallback: language whose patterns apply when a document's language has
        no file ("" = none: only the pattern-free line rules apply).
    line_max_uppercase_ratio / line_pattern_max_words: RefinedWeb's line-rule constants.
    c4_*: C4's line-rule constants. fineweb_*: FineWeb's.
    """

    presets: tuple[str, ...] = PRESETS
    top_ngram_sizes: tuple[int, ...] = TOP_NGRAM_SIZES
    dup_ngram_sizes: tuple[int, ...] = DUP_NGRAM_SIZES
    bullet_markers: tuple[str, ...] = ("•", "-", "*", "●", "▪", "◦", "‣")
    ellipsis_markers: tuple[str, ...] = ("...", "…")
    stop_words: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"en": GOPHER_STOP_WORDS}
    )
    line_patterns_dir: ExistingDir = DEFAULT_LINE_PATTERNS_DIR
    line_patterns_fallback: str = "en"
    line_max_uppercase_ratio: Fraction = 0.5
    line_pattern_max_words: NonNegativeInt = 10
    c4_end_marks: tuple[str, ...] = (".", "?", "!", '"', "'")
    c4_min_words_per_line: NonNegativeInt = 3
    c4_max_word_length: PositiveInt = 1000
    c4_remove_citations: bool = True
    # C4's rule 3 (drop a line without terminal punctuation); FineWeb's pipeline runs C4's
    # filter with it off.
    c4_filter_no_terminal_punct: bool = True
    # C4's bad-words list (LDNOOBW's en file; one entry a line); None: no list, the
    # c4_bad_words signal stays 0. Its content, not its path, is fingerprinted.
    c4_bad_words_path: Optional[ExistingFile] = None
    fineweb_terminal_punctuation: tuple[str, ...] = (".", "'", '"', "!", "?")
    fineweb_short_line_length: NonNegativeInt = 30

    def __post_init__(self):
        # Accept lists (from YAML / Dagster config) and store tuples.
        for name in (
            "presets", "top_ngram_sizes", "dup_ngram_sizes", "bullet_markers",
            "ellipsis_markers", "c4_end_marks", "fineweb_terminal_punctuation",
        ):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(
            self,
            "stop_words",
            {normalize_language(k): tuple(w.lower() for w in v) for k, v in self.stop_words.items()},
        )
        unknown = set(self.presets) - set(PRESETS)
        if unknown:
            raise ValueError(f"SignalConfig: unknown presets {sorted(unknown)}; known: {PRESETS}")
        if not set(self.top_ngram_sizes) <= set(TOP_NGRAM_SIZES):
            raise ValueError(f"SignalConfig: top_ngram_sizes must be within {TOP_NGRAM_SIZES}")
        if not set(self.dup_ngram_sizes) <= set(DUP_NGRAM_SIZES):
            raise ValueError(f"SignalConfig: dup_ngram_sizes must be within {DUP_NGRAM_SIZES}")
        if self.c4_bad_words_path and os.path.isfile(self.c4_bad_words_path):
            bad_words_of(self)  # read and checked at load time (UTF-8, not empty), not per partition

    def stop_words_for(self, language: str) -> tuple[str, ...]:
        return self.stop_words.get(language, ())


# ---------------------------------------------------------------------------------------
# The schema: column -> Python type (float / int / bool / str). Fixed for every config.
# ---------------------------------------------------------------------------------------

SIGNAL_COLUMNS: dict[str, type] = {
    # provenance and basic counts (always computed)
    "qs_fingerprint": str,  # signals_fingerprint(config)
    "qs_presets": str,  # comma-separated presets computed
    "qs_language": str,  # normalized language the per-language settings used
    "qs_chars": int,  # len(text)
    "qs_lines": int,  # non-blank lines
    "qs_paragraphs": int,  # paragraphs (blank-line separated)
    "qs_words": int,  # words (never pure punctuation)
    # gopher_repetition
    "gopher_dup_line_frac": float,
    "gopher_dup_para_frac": float,
    "gopher_dup_line_char_frac": float,
    "gopher_dup_para_char_frac": float,
    **{f"gopher_top_{n}gram_char_frac": float for n in TOP_NGRAM_SIZES},
    **{f"gopher_dup_{n}gram_char_frac": float for n in DUP_NGRAM_SIZES},
    # gopher_quality
    "gopher_word_count": int,
    "gopher_mean_word_length": float,
    "gopher_hash_to_word_ratio": float,
    "gopher_ellipsis_to_word_ratio": float,
    "gopher_bullet_lines_frac": float,
    "gopher_ellipsis_lines_frac": float,
    "gopher_alpha_words_frac": float,
    "gopher_stop_word_count": int,  # occurrences
    "gopher_stop_word_distinct": int,  # distinct stop words present
    "gopher_stop_words_applicable": bool,  # False: no list for the language, rule skipped
    # line_corrections
    "rw_corrected_text": str,  # "" when unchanged
    "rw_text_changed": bool,
    "rw_patterns_language": str,  # pattern file applied ("" = none)
    "rw_lines_removed": int,
    "rw_lines_edited": int,
    "rw_words_removed": int,
    "rw_words_removed_frac": float,
    **{f"rw_lines_removed_{rule}": int for rule in LINE_RULES},
    # c4
    "c4_lines_kept": int,
    "c4_lines_removed": int,
    **{f"c4_lines_removed_{rule}": int for rule in C4_LINE_RULES},
    "c4_lorem_ipsum": bool,
    "c4_curly_bracket": bool,
    "c4_sentence_count": int,
    "c4_bad_words": int,  # distinct entries of c4_bad_words_path found in C4's kept lines
    # fineweb
    "fineweb_line_punct_ratio": float,
    "fineweb_short_line_ratio": float,
    "fineweb_dup_line_char_ratio": float,
    "fineweb_newline_to_word_ratio": float,
}

_EMPTY = {float: math.nan, int: 0, bool: False, str: ""}
SIGNAL_DEFAULTS: dict[str, object] = {k: _EMPTY[t] for k, t in SIGNAL_COLUMNS.items()}


def c4_walk_with(text: str, config: "SignalConfig", profile=None):
    """C4's line rules with the settings of ``config`` (signals and decisions share it),
    and the language's line-end marks and segmenter when ``profile`` is given."""
    end_marks = config.c4_end_marks
    split = str.split
    extra = {}
    if profile is not None:
        end_marks = profile.c4_end_marks or end_marks
        if profile.segmenter_name != "whitespace":
            split = profile.segmenter.tokens
        if profile.segmenter_name in ("jieba", "fugashi"):
            extra["sentence_end"] = CJK_SENTENCE_END_RE
    return c4_walk(
        text,
        end_marks=end_marks,
        min_words_per_line=config.c4_min_words_per_line,
        max_word_length=config.c4_max_word_length,
        remove_citations=config.c4_remove_citations,
        filter_no_terminal_punct=config.c4_filter_no_terminal_punct,
        split=split,
        **extra,
    )


_BAD_WORDS: dict[tuple, BadWords] = {}


def bad_words_of(config: "SignalConfig") -> Optional[BadWords]:
    """The configured bad-words list, read once per process and file version."""
    path = config.c4_bad_words_path
    if not path:
        return None
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _BAD_WORDS:
        _BAD_WORDS[key] = BadWords.from_file(path)
    return _BAD_WORDS[key]


def signal_arrow_schema():
    """The signal columns as a ``pyarrow.Schema`` (float64 / int64 / bool / large_string)."""
    import pyarrow as pa

    types = {float: pa.float64(), int: pa.int64(), bool: pa.bool_(), str: pa.large_string()}
    return pa.schema([pa.field(k, types[t], nullable=False) for k, t in SIGNAL_COLUMNS.items()])


def signals_fingerprint(config: Optional[SignalConfig] = None, profiles=None) -> str:
    """Stable 16-hex-digit hash of everything that changes the signals: the config, the
    content of the line-pattern files, SIGNALS_VERSION (not the folder's path, so the
    same files give the same hash on every machine) and the language profiles in force
    (each with its segmenter's identity: library and dictionary versions). With no
    profile (English only, the default) the hash is the one from before profiles."""
    config = config or SignalConfig()
    settings = dataclasses.asdict(config)
    settings.pop("line_patterns_dir")
    if config.c4_bad_words_path:
        with open(config.c4_bad_words_path, "rb") as fh:
            settings["c4_bad_words_path"] = "sha256:" + hashlib.sha256(fh.read()).hexdigest()
    payload = {
        "version": SIGNALS_VERSION,
        "config": settings,
        "line_patterns": patterns_dir_digest(config.line_patterns_dir),
    }
    if profiles:
        payload["languages"] = profiles.payload()
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=list)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


_UNSET = object()


def resolve_line_patterns(config: SignalConfig, lang: str, profile=None):
    """The line patterns a document of ``lang`` gets: ``<line_patterns_dir>/<lang>.yaml``,
    else the language profile's ``line_patterns``, else the fallback language's file (the
    profile's ``line_patterns_fallback`` when it sets one, else the global one), else
    None (only the pattern-free rules)."""
    patterns = load_line_patterns(config.line_patterns_dir, lang)
    if patterns is None and profile is not None and profile.line_patterns:
        patterns = build_line_patterns(config.line_patterns_dir, lang, profile.line_patterns)
    if patterns is None:
        fallback = config.line_patterns_fallback
        if profile is not None and profile.line_patterns_fallback is not None:
            fallback = profile.line_patterns_fallback
        if fallback:
            patterns = load_line_patterns(config.line_patterns_dir, normalize_language(fallback))
    return patterns


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def compute_signals(
    text: Optional[str],
    language: Optional[str] = "",
    config: Optional[SignalConfig] = None,
    fingerprint: Optional[str] = None,
    profile=None,
    line_patterns=_UNSET,
) -> dict:
    """All signal columns of one document (see the module docstring). ``profile``: the
    document language's :class:`~corpus_assets.steps.segmentation.profiles.LanguageProfile`
    (None: the global settings, whitespace words). ``line_patterns``: the patterns to
    apply, when the caller has resolved them already."""
    config = config or SignalConfig()
    text = text or ""
    lang = normalize_language(language)
    presets = config.presets
    out = dict(SIGNAL_DEFAULTS)
    segmenter = profile.segmenter if profile is not None and profile.segmenter_name != "whitespace" else None

    n_chars = len(text)
    lines = split_lines(text)
    words = segmenter.words(text) if segmenter is not None else split_words(text)
    n_words = len(words)
    paragraphs = split_paragraphs(text)
    out.update(
        qs_fingerprint=fingerprint if fingerprint is not None else signals_fingerprint(config),
        qs_presets=",".join(p for p in PRESETS if p in presets),
        qs_language=lang,
        qs_chars=n_chars,
        qs_lines=len(lines),
        qs_paragraphs=len(paragraphs),
        qs_words=n_words,
    )
    line_dups = None

    if "gopher_repetition" in presets:
        para_dup, para_dup_chars = find_duplicates(paragraphs)
        line_dups = find_duplicates(lines)
        out["gopher_dup_line_frac"] = _ratio(line_dups[0], len(lines))
        out["gopher_dup_para_frac"] = _ratio(para_dup, len(paragraphs))
        out["gopher_dup_line_char_frac"] = _ratio(line_dups[1], n_chars)
        out["gopher_dup_para_char_frac"] = _ratio(para_dup_chars, n_chars)
        sizes = config.top_ngram_sizes + config.dup_ngram_sizes
        if sizes:
            index = NGramIndex(words, max(sizes))
            for n in config.top_ngram_sizes:
                out[f"gopher_top_{n}gram_char_frac"] = _ratio(index.top_ngram_chars(n), n_chars)
            for n in config.dup_ngram_sizes:
                out[f"gopher_dup_{n}gram_char_frac"] = _ratio(
                    index.duplicated_ngram_chars(n), n_chars
                )

    if "gopher_quality" in presets:
        out["gopher_word_count"] = n_words
        out["gopher_mean_word_length"] = _ratio(sum(map(len, words)), n_words)
        out["gopher_hash_to_word_ratio"] = _ratio(text.count("#"), n_words)
        out["gopher_ellipsis_to_word_ratio"] = _ratio(
            sum(text.count(m) for m in config.ellipsis_markers), n_words
        )
        bullets = config.bullet_markers
        ellipses = config.ellipsis_markers
        out["gopher_bullet_lines_frac"] = _ratio(
            sum(1 for line in lines if line.startswith(bullets)), len(lines)
        )
        out["gopher_ellipsis_lines_frac"] = _ratio(
            sum(1 for line in lines if line.endswith(ellipses)), len(lines)
        )
        # Whitespace words (see the table above). w.isalpha() settles most of them at C
        # speed; the rest ("Hello,", "3.5", "++") are checked character by character.
        tokens = segmenter.tokens(text) if segmenter is not None else split_whitespace_words(text)
        alpha = sum(map(str.isalpha, tokens)) + sum(
            1 for w in tokens if not w.isalpha() and any(map(str.isalpha, w))
        )
        out["gopher_alpha_words_frac"] = _ratio(alpha, len(tokens))
        stop_words = profile.stop_words if profile is not None else config.stop_words_for(lang)
        if stop_words:
            stop = frozenset(stop_words)
            found = [w for w in (w.lower() for w in words) if w in stop]
            out["gopher_stop_word_count"] = len(found)
            out["gopher_stop_word_distinct"] = len(set(found))
            out["gopher_stop_words_applicable"] = True

    if "line_corrections" in presets:
        patterns = (
            resolve_line_patterns(config, lang, profile) if line_patterns is _UNSET else line_patterns
        )
        result = correct_lines(
            text,
            patterns,
            max_uppercase_ratio=config.line_max_uppercase_ratio,
            pattern_max_words=config.line_pattern_max_words,
            count_words=segmenter.count_words if segmenter is not None else None,
        )
        out["rw_corrected_text"] = result.text if result.changed else ""
        out["rw_text_changed"] = result.changed
        out["rw_patterns_language"] = patterns.language if patterns is not None else ""
        out["rw_lines_removed"] = result.lines_removed
        out["rw_lines_edited"] = result.lines_edited
        out["rw_words_removed"] = result.words_removed
        out["rw_words_removed_frac"] = result.words_removed_frac
        for rule, count in result.removed_by_rule.items():
            out[f"rw_lines_removed_{rule}"] = count

    if "c4" in presets:
        walk = c4_walk_with(text, config, profile)
        out["c4_lines_kept"] = len(walk.kept_lines)
        out["c4_lines_removed"] = walk.lines_removed
        for rule, count in walk.removed_by_rule.items():
            out[f"c4_lines_removed_{rule}"] = count
        out["c4_lorem_ipsum"] = walk.lorem_ipsum
        out["c4_curly_bracket"] = walk.curly_bracket
        out["c4_sentence_count"] = walk.sentences
        bad_words = bad_words_of(config)
        if bad_words is not None:
            out["c4_bad_words"] = len(bad_words.found("\n".join(walk.kept_lines)))

    if "fineweb" in presets:
        if line_dups is None:
            line_dups = find_duplicates(lines)
        punct = config.fineweb_terminal_punctuation
        if profile is not None and profile.fineweb_terminal_punctuation:
            punct = profile.fineweb_terminal_punctuation
        short = config.fineweb_short_line_length
        out["fineweb_line_punct_ratio"] = _ratio(
            sum(1 for line in lines if line.endswith(punct)), len(lines)
        )
        out["fineweb_short_line_ratio"] = _ratio(
            sum(1 for line in lines if len(line) <= short), len(lines)
        )
        out["fineweb_dup_line_char_ratio"] = _ratio(line_dups[1], n_chars - text.count("\n"))
        out["fineweb_newline_to_word_ratio"] = _ratio(text.count("\n"), n_words)

    return out


class QualitySignals(Step):
    """Annotate each document with :data:`SIGNAL_COLUMNS`; never removes one."""

    name = "quality_signals"
    output_columns = SIGNAL_COLUMNS

    def __init__(self, config: Optional[SignalConfig] = None, profiles=None):
        self.config = config or SignalConfig()
        self.profiles = profiles
        self.fingerprint = signals_fingerprint(self.config, profiles)
        self._patterns: dict[str, object] = {}

    def apply(self, doc: Document):
        language = doc.get("language")
        profile = None
        if self.profiles:
            lang = normalize_language(language)
            profile = self.profiles.get(lang)
            if profile is not None and lang not in self._patterns:
                self._patterns[lang] = resolve_line_patterns(self.config, lang, profile)
        extra = {"profile": profile}
        if profile is not None:
            extra["line_patterns"] = self._patterns[profile.language]
        doc.update(
            compute_signals(
                doc.get("text"), language, self.config, fingerprint=self.fingerprint, **extra
            )
        )
        return None

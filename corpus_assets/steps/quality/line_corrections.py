"""RefinedWeb's line-wise corrections (Penedo et al. 2023, section 3.2 and Appendix G.2).

The paper: "We analyse documents line-by-line, and discard or edit the lines based on the
following rules: if it is mainly composed of uppercase characters (discard); if it is only
composed of numerical characters (discard); if it is a counter (e.g. 3 likes) (discard);
if it only contains one word (discard); if it is short (<= 10 words) and matches a pattern
(edit): at the beginning of the line (e.g. sign-in), at the end of the line (e.g. Read
more...), anywhere in the line (e.g. items in cart). Finally, if the words in the flagged
lines represent more than 5% of the total document words, the document is discarded.
[...] they require adaptation across languages."

The paper gives neither code nor its pattern lists. Where it is silent we follow DCLM's
reproduction (Li et al. 2024, ``baselines/baselines_configs/refinedweb.yaml`` and
``mappers/modifiers.py``), the most used open one:

* rules apply in the paper's order and the first that matches names the line's removal:
  upper case, numeric, counter, single word, then the pattern edits;
* "mainly upper case": upper-case characters / all characters of the (stripped) line
  > 0.5 (DCLM divides by the line length, spaces and punctuation included);
* "only numerical": every non-space character is a digit (DCLM: digits / length >
  0.999999, which also requires no inner spaces; "2023 2024" is removed here, not there);
* "counter": a number (``3``, ``1.2K``, ``12,5 Tsd.``) followed by a counter noun, the
  whole line being one or more such counters (DCLM's regex, with the noun list moved to
  the per-language pattern files and singular forms added: "1 comment");
* "one word": at most one word, so lines holding no word at all ("»", "***") go too;
* pattern rules *edit* the line, as the paper says and DCLM does
  (``remove_substring_only=True``): the matched phrase (with the separators next to it)
  is cut out and the rest of the line kept. When what is left holds at most one word the
  whole line is dropped (DCLM drops it only when nothing but white space is left; we
  re-apply the one-word rule to the remnant so that "Home » Read more" does not leave
  "Home");
* the 5% rule counts every word removed, from dropped lines and from edits (DCLM compares
  the word counts before and after the line modifiers), over the document's words.

Word counting is the package's (see ``_text``). Pattern lists are YAML files, one per
language, under ``corpus_assets/defaults/line_patterns/`` (format in its README).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

import yaml

from corpus_assets.steps.quality._text import WORD_RE

DEFAULT_LINE_PATTERNS_DIR = str(
    Path(__file__).resolve().parent.parent.parent / "defaults" / "line_patterns"
)

# ISO 639-2/3 codes that other language-ID models emit, mapped to lid.176's ISO 639-1.
_LANGUAGE_ALIASES = {
    "eng": "en", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr", "spa": "es",
    "ita": "it", "nld": "nl", "dut": "nl", "por": "pt", "rus": "ru", "pol": "pl",
}


def normalize_language(code: Optional[str]) -> str:
    """``"__label__en"``, ``"en-US"``, ``"eng_Latn"``, ``"EN"`` -> ``"en"``; None -> ``""``."""
    if not code:
        return ""
    code = str(code).strip().lower()
    if code.startswith("__label__"):
        code = code[len("__label__"):]
    code = re.split(r"[-_]", code, maxsplit=1)[0]
    return _LANGUAGE_ALIASES.get(code, code)


# Separators that travel with a cut phrase ("Sign in | Register", "Great post » Read more").
_SEP = r"\s|»›>«‹<·•:–—/,\-"
_STRIP_REMNANT = " \t|»›>«‹<·•:–—/,-"


_SEP_MARK = "\x00"  # stands for "spaces or hyphens" inside a literal phrase
_FLEX_SEP = r"[\s\-‐]*"


def _alternation(entries) -> str:
    """A pattern list as one regex alternation.

    An entry ``re:...`` is used verbatim. Any other entry is a literal phrase matched
    case-insensitively (the regex is compiled with IGNORECASE), with spaces and hyphens
    interchangeable ("sign in" also matches "Sign-In" and "signin") and word boundaries
    at ends that are word characters. Literal phrases are merged into a character trie
    ("read more|read the full article" -> "read[sep]*(?:more|the...)"), which makes the
    regex ~5x faster than a flat alternation of ~100 phrases: at each position the engine
    tries a handful of first characters instead of every phrase.
    """
    raw: list[str] = []
    trie: dict = {}
    for entry in entries:
        entry = entry.strip()
        if entry.startswith("re:"):
            raw.append(f"(?:{entry[3:]})")
            continue
        parts = [p for p in re.split(r"[\s\-‐]+", entry.lower()) if p]
        node = trie
        for ch in _SEP_MARK.join(parts):
            node = node.setdefault(ch, {})
        node[""] = {}

    def piece(ch: str) -> str:
        return _FLEX_SEP if ch == _SEP_MARK else re.escape(ch)

    def emit(node: dict, prev: str) -> str:
        branches = [piece(ch) + emit(child, ch) for ch, child in sorted(node.items()) if ch]
        if "" in node:  # a phrase may end here; longer phrases are tried first
            branches.append(r"\b" if re.match(r"\w", prev) else "")
        if len(branches) == 1:
            return branches[0]
        return "(?:" + "|".join(branches) + ")"

    top = [
        (r"\b" if re.match(r"\w", ch) else "") + piece(ch) + emit(child, ch)
        for ch, child in sorted(trie.items())
    ]
    return "|".join(top + raw)


_NEVER = re.compile(r"(?!x)x")


@dataclass(frozen=True)
class LinePatterns:
    """Compiled boilerplate patterns of one language (with its includes)."""

    language: str
    start: tuple[str, ...] = ()
    end: tuple[str, ...] = ()
    anywhere: tuple[str, ...] = ()
    counters: tuple[str, ...] = ()
    counter_lines: tuple[str, ...] = ()
    _start_re: re.Pattern = field(default=_NEVER, repr=False, compare=False)
    _end_re: re.Pattern = field(default=_NEVER, repr=False, compare=False)
    _any_re: re.Pattern = field(default=_NEVER, repr=False, compare=False)
    _counter_re: re.Pattern = field(default=_NEVER, repr=False, compare=False)
    _counter_line_re: re.Pattern = field(default=_NEVER, repr=False, compare=False)

    @classmethod
    def build(cls, language, start=(), end=(), anywhere=(), counters=(), counter_lines=()) -> "LinePatterns":
        flags = re.IGNORECASE

        alt = _alternation
        start_re = (
            re.compile(rf"^\W*?(?:{alt(start)})[{_SEP}.!]*", flags) if start else _NEVER
        )
        # No leading separators/spaces in these two: a pattern starting with a literal lets
        # the regex engine skip ahead fast; edit() strips what the cut leaves behind.
        end_re = re.compile(rf"(?:{alt(end)})\W*$", flags) if end else _NEVER
        any_re = re.compile(rf"(?:{alt(anywhere)})", flags) if anywhere else _NEVER
        if counters:
            # the spaces before the multiplier are inside its optional group: two adjacent
            # `\s*` around an optional part would be quadratic on "1" + thousands of spaces
            number = r"\d+(?:[.,]\d+)*(?:\s*(?:k|m|b|mio\.?|mrd\.?|tsd\.?))?"
            nouns = alt(counters)
            counter_re = re.compile(rf"^\W*(?:{number}\s*(?:{nouns})\W*)+$", flags)
        else:
            counter_re = _NEVER
        # whole-line counters written noun first ("閲覧数：1,234"): regular expressions
        counter_line_re = (
            re.compile(rf"^\W*(?:{'|'.join(f'(?:{c})' for c in counter_lines)})\W*$", flags)
            if counter_lines else _NEVER
        )
        return cls(
            language, tuple(start), tuple(end), tuple(anywhere), tuple(counters), tuple(counter_lines),
            start_re, end_re, any_re, counter_re, counter_line_re,
        )

    def is_counter(self, line: str) -> bool:
        return self._counter_re.match(line) is not None or self._counter_line_re.match(line) is not None

    def edit(self, line: str) -> str:
        """The line with boilerplate phrases cut out (anywhere, then start, then end)."""
        out = self._any_re.sub("", line)
        out = self._start_re.sub("", out, count=1)
        out = self._end_re.sub("", out, count=1)
        if out is line or out == line:
            return line
        return re.sub(r"\s{2,}", " ", out).strip(_STRIP_REMNANT)


def _read_pattern_file(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"line patterns: {path} must hold a mapping")
    for key in ("start", "end", "anywhere", "counters", "counter_lines", "include"):
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"line patterns: {path}: '{key}' must be a list of strings")
        data[key] = value
    return data


@functools.lru_cache(maxsize=64)
def load_line_patterns(directory: str, language: str) -> Optional[LinePatterns]:
    """Patterns for ``language`` from ``<directory>/<language>.yaml`` and the files it
    includes; None when the language has no file."""
    root = Path(directory)
    if not language or not (root / f"{language}.yaml").is_file():
        return None
    lists: dict[str, list[str]] = {"start": [], "end": [], "anywhere": [], "counters": [], "counter_lines": []}
    visited: set[str] = set()

    def visit(lang: str) -> None:
        if lang in visited:
            return
        visited.add(lang)
        path = root / f"{lang}.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"line patterns: {path} (included) does not exist")
        data = _read_pattern_file(path)
        for key in lists:
            for entry in data[key]:
                if entry not in lists[key]:
                    lists[key].append(entry)
        for inc in data["include"]:
            visit(normalize_language(inc))

    visit(language)
    return LinePatterns.build(language, **lists)


def build_line_patterns(directory: str, language: str, lists: Mapping[str, tuple[str, ...]]) -> LinePatterns:
    """Patterns given as lists (a language profile's ``line_patterns``), with the files
    of ``directory`` that they ``include``."""
    merged: dict[str, list[str]] = {k: list(lists.get(k, ())) for k in ("start", "end", "anywhere", "counters", "counter_lines")}
    for inc in lists.get("include", ()):
        included = load_line_patterns(directory, normalize_language(inc))
        if included is None:
            raise FileNotFoundError(f"line patterns of {language}: included {inc}.yaml is not in {directory}")
        for key in ("start", "end", "anywhere", "counters", "counter_lines"):
            merged[key].extend(e for e in getattr(included, key) if e not in merged[key])
    return LinePatterns.build(language, **merged)


def patterns_dir_digest(directory: str) -> str:
    """Hash of every pattern file's name and content (part of the signals fingerprint)."""
    h = hashlib.sha256()
    root = Path(directory)
    for path in sorted(root.glob("*.yaml")):
        h.update(path.name.encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


RULES = ("uppercase", "numeric", "counter", "single_word", "pattern")


@dataclass
class LineCorrectionResult:
    text: str  # corrected text
    changed: bool
    lines_removed: int = 0
    lines_edited: int = 0
    words_total: int = 0
    words_removed: int = 0
    removed_by_rule: dict = field(default_factory=lambda: dict.fromkeys(RULES, 0))

    @property
    def words_removed_frac(self) -> float:
        return self.words_removed / self.words_total if self.words_total else 0.0


def _uppercase_ratio(line: str) -> float:
    return sum(map(str.isupper, line)) / len(line)


def _is_numeric(line: str) -> bool:
    return "".join(line.split()).isdigit()


def correct_lines(
    text: str,
    patterns: Optional[LinePatterns],
    max_uppercase_ratio: float = 0.5,
    pattern_max_words: int = 10,
    count_words: Optional[Callable[[str], int]] = None,
) -> LineCorrectionResult:
    """Apply the line rules to ``text``; blank lines are kept as they are (they hold no
    words) and runs of 3+ newlines left by removals collapse to one blank line.
    ``count_words`` counts a line's words (default: the package's letter/digit words;
    a segmenter's ``count_words`` for languages written without spaces)."""
    if count_words is None:
        def count_words(line: str) -> int:
            return len(WORD_RE.findall(line))
    kept: list[str] = []
    result = LineCorrectionResult(text=text, changed=False)
    by_rule = result.removed_by_rule
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            kept.append(raw)
            continue
        n_words = count_words(line)
        result.words_total += n_words
        if _uppercase_ratio(line) > max_uppercase_ratio:
            rule = "uppercase"
        elif _is_numeric(line):
            rule = "numeric"
        elif patterns is not None and patterns.is_counter(line):
            rule = "counter"
        elif n_words <= 1:
            rule = "single_word"
        else:
            rule = None
            if patterns is not None and n_words <= pattern_max_words:
                edited = patterns.edit(line)
                if edited != line:
                    left = count_words(edited)
                    if left <= 1:
                        rule = "pattern"
                    else:
                        result.lines_edited += 1
                        result.words_removed += n_words - left
                        kept.append(edited)
                        continue
        if rule is None:
            kept.append(raw)
            continue
        by_rule[rule] += 1
        result.lines_removed += 1
        result.words_removed += n_words
    if result.lines_removed or result.lines_edited:
        result.changed = True
        result.text = re.sub(r"\n\s*\n(?:\s*\n)+", "\n\n", "\n".join(kept)).strip()
    return result

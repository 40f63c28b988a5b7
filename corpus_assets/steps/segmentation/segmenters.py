"""Word segmenters: one interface for every step that counts words, n-grams or tokens.

A :class:`Segmenter` gives three views of a text, matching the two units of
``steps/quality/_text`` and the tokens of exact-substring dedup:

``words(text)``
    letter/digit words (Gopher's word count, mean length, stop words, n-grams, the
    line-correction and FineWeb word counts). No punctuation mark is ever a word.
``tokens(text)``
    whitespace-like tokens, punctuation attached to the word before it (Gopher's
    alphabetic-word rule, C4's words per line, MinHash words, exact-substring tokens).
    Joined back they give each whitespace-separated run of the text.
``token_spans(text)``
    the character offsets of ``tokens(text)`` (exact-substring dedup cuts by them).

``identity`` names the segmenter and the versions of its library and dictionary; it
goes into the signals fingerprint and into the dedup code versions, so a new dictionary
marks the assets that used it stale.

:class:`WhitespaceSegmenter` is exactly what the package did before segmenters existed
(``_text.WORD_RE`` words, ``str.split`` tokens, ``\\S+`` spans): scripts written with
spaces keep byte-identical output. The others split only the runs of *their* script
(``script_re``) and leave every other run as the whitespace segmenter would, so an English
product name inside a Japanese page stays one word:

==========  ==================  ==============================================================
languages   segmenter           why this one
==========  ==================  ==============================================================
zh          ``jieba`` 0.42.1    the most used Chinese segmenter (FineWeb-2's and many CC
                                pipelines' choice), pure Python, dictionary in the wheel;
                                default mode with its HMM for unknown words
ja          ``fugashi`` 1.5.2   MeCab through Cython, with ``unidic-lite`` 1.0.8 (UniDic
            + ``unidic-lite``   short units, the dictionary in the wheel, no system MeCab);
                                UniDic's short units are the unit of the BCCWJ corpus
th, km,     ICU word break      ICU's dictionary-based break iterator (the ``pyicu-wheels``
lo, my      (``pyicu-wheels``)  wheel bundles ICU 77 and its Thai, Khmer, Lao and Burmese
                                dictionaries; no system ICU). The rule-based alternatives
                                (e.g. pythainlp) cover one language each
==========  ==================  ==============================================================

Each library loads lazily, on the first text of its script, once per process.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import threading
import unicodedata
from typing import Optional

from corpus_assets.steps.quality._text import WORD_RE, _W

_RUN_RE = re.compile(r"\S+")
_CACHE_MAX = 1 << 16
_OPENING = {"Ps": True, "Pi": True}  # opening brackets, opening quotes

# Characters of each segmented script (Unicode blocks).
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
KANA = "\u3040-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9f"  # without ゠ and ・ (punctuation)
THAI = "\u0e00-\u0e7f"
LAO = "\u0e80-\u0eff"
KHMER = "\u1780-\u17ff\u19e0-\u19ff"
MYANMAR = "\u1000-\u109f\ua9e0-\ua9ff\uaa60-\uaa7f"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


class SegmenterUnavailable(RuntimeError):
    """The library a language's segmenter needs is not installed."""


class Segmenter:
    """Whitespace words (see the module docstring); subclasses segment a script."""

    name = "whitespace"

    @property
    def identity(self) -> str:
        return "whitespace"

    def words(self, text: str) -> list[str]:
        return WORD_RE.findall(text)

    def count_words(self, text: str) -> int:
        return len(self.words(text))

    def tokens(self, text: str) -> list[str]:
        return text.split()

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [(m.start(), m.end()) for m in _RUN_RE.finditer(text)]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identity}>"


WhitespaceSegmenter = Segmenter


class ScriptSegmenter(Segmenter):
    """Splits runs holding characters of ``script`` with ``_segment``; other runs are
    whitespace words. ``_segment(run)`` returns pieces whose concatenation is ``run``
    (checked: a library that dropped or changed a character would break the offsets;
    such a run is then split into single characters of the script, never lost)."""

    script = ""

    def __init__(self):
        self._script_re = re.compile(f"[{self.script}]")
        # letter/digit words, with the script's combining marks (Thai vowels are Mn, not \w)
        body = f"(?:{_W}|[{self.script}])"
        self._word_re = re.compile(rf"{body}+(?:['’\-.,:]{body}+)*")
        self._has_word_char = re.compile(rf"{body}")
        self._lock = threading.Lock()
        self._ready = False
        self._cache: dict[str, list[str]] = {}

    # -- subclasses
    def _load(self) -> None:
        raise NotImplementedError

    def _segment(self, run: str) -> list[str]:
        raise NotImplementedError

    # -- shared
    def _pieces(self, run: str) -> list[str]:
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self._load()
                    self._ready = True
        cached = self._cache.get(run)
        if cached is not None:
            return cached
        pieces = [p for p in self._segment(run) if p]
        if "".join(pieces) != run:
            pieces = list(run)
        # the signals segment a document's runs several times (words, tokens, lines):
        # a bounded memo of recent runs (results never depend on what is in it)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[run] = pieces
        return pieces

    def words(self, text: str) -> list[str]:
        out: list[str] = []
        has_script = self._script_re.search
        has_word = self._has_word_char.search
        for word in self._word_re.findall(text):
            if has_script(word):
                out.extend(p for p in self._pieces(word) if has_word(p))
            else:
                out.append(word)
        return out

    def _cuts(self, run: str) -> list[int]:
        """Offsets inside ``run`` where a token starts (the first is 0). A token is a
        word with the punctuation after it; opening brackets and quotes right before a
        word go with that word ("ブラック（1）" -> "ブラック", "（1）")."""
        words: list[tuple[int, int]] = []
        for m in self._word_re.finditer(run):
            word = m.group()
            if self._script_re.search(word):
                pos = m.start()
                for piece in self._pieces(word):
                    if self._has_word_char.search(piece):
                        words.append((pos, pos + len(piece)))
                    pos += len(piece)
            else:
                words.append((m.start(), m.end()))
        cuts = [0]
        for (_, prev_end), (start, _) in zip(words, words[1:]):
            while start > prev_end and _OPENING.get(unicodedata.category(run[start - 1])):
                start -= 1
            cuts.append(start)
        return cuts

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        has_script = self._script_re.search
        for m in _RUN_RE.finditer(text):
            run = m.group()
            if not has_script(run):
                spans.append((m.start(), m.end()))
                continue
            cuts = self._cuts(run)
            bounds = cuts + [len(run)]
            base = m.start()
            spans.extend((base + bounds[i], base + bounds[i + 1]) for i in range(len(cuts)))
        return spans

    def tokens(self, text: str) -> list[str]:
        return [text[a:b] for a, b in self.token_spans(text)]


class JiebaSegmenter(ScriptSegmenter):
    """Chinese: jieba's default (accurate) mode with its HMM for unknown words."""

    name = "jieba"
    script = HAN

    @property
    def identity(self) -> str:
        return f"jieba=={_version('jieba')};hmm"

    def _load(self) -> None:
        try:
            import logging

            import jieba
        except ImportError as exc:  # pragma: no cover - declared dependency
            raise SegmenterUnavailable("Chinese segmentation needs jieba (pip install 'jieba==0.42.1')") from exc
        jieba.setLogLevel(logging.WARNING)
        self._tokenizer = jieba.Tokenizer()
        self._tokenizer.initialize()

    def _segment(self, run: str) -> list[str]:
        return list(self._tokenizer.cut(run, HMM=True))


class FugashiSegmenter(ScriptSegmenter):
    """Japanese: MeCab (fugashi) with UniDic-lite, short units (surface forms)."""

    name = "fugashi"
    script = HAN + KANA

    @property
    def identity(self) -> str:
        return f"fugashi=={_version('fugashi')}+unidic-lite=={_version('unidic-lite')}"

    def _load(self) -> None:
        try:
            import fugashi
            import unidic_lite
        except ImportError as exc:  # pragma: no cover - declared dependency
            raise SegmenterUnavailable(
                "Japanese segmentation needs fugashi and unidic-lite"
                " (pip install 'fugashi==1.5.2' 'unidic-lite==1.0.8')") from exc
        # -r /dev/null: no mecabrc needed on the machine; the dictionary from the wheel
        self._tagger = fugashi.Tagger(f'-r /dev/null -d "{unidic_lite.DICDIR}"')

    def _segment(self, run: str) -> list[str]:
        return [w.surface for w in self._tagger(run)]


class IcuSegmenter(ScriptSegmenter):
    """Thai, Khmer, Lao, Burmese: ICU's word break iterator (dictionary-based)."""

    name = "icu"

    def __init__(self, language: str, script: str):
        self.language = language
        self.script = script
        super().__init__()

    @property
    def identity(self) -> str:
        try:
            import icu

            icu_version = icu.ICU_VERSION
        except ImportError:
            icu_version = "missing"
        return f"icu-word-break[{self.language}] icu=={icu_version} pyicu-wheels=={_version('pyicu-wheels')}"

    def _load(self) -> None:
        try:
            import icu
        except ImportError as exc:  # pragma: no cover - declared dependency
            raise SegmenterUnavailable("ICU word break needs pyicu-wheels (pip install 'pyicu-wheels>=2.15,<2.16')") from exc
        self._icu = icu
        self._breaker = icu.BreakIterator.createWordInstance(icu.Locale(self.language))

    def _segment(self, run: str) -> list[str]:
        self._breaker.setText(run)
        bounds = [0, *self._breaker]  # UTF-16 code unit offsets
        if any(ord(c) > 0xFFFF for c in run):
            # map UTF-16 offsets to code point offsets
            index = {}
            unit = 0
            for i, c in enumerate(run):
                index[unit] = i
                unit += 2 if ord(c) > 0xFFFF else 1
            index[unit] = len(run)
            bounds = [index[b] for b in bounds]
        return [run[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]


# language (lid.176 code) -> segmenter name, for the scripts written without spaces
SEGMENTER_BY_LANGUAGE = {
    "zh": "jieba",
    "wuu": "jieba",
    "yue": "jieba",
    "ja": "fugashi",
    "th": "icu",
    "km": "icu",
    "lo": "icu",
    "my": "icu",
}
SEGMENTER_NAMES = ("whitespace", "jieba", "fugashi", "icu")
_ICU_SCRIPTS = {"th": THAI, "km": KHMER, "lo": LAO, "my": MYANMAR}

WHITESPACE = Segmenter()


@functools.lru_cache(maxsize=None)
def _build(name: str, language: str) -> Segmenter:
    if name == "whitespace":
        return WHITESPACE
    if name == "jieba":
        return JiebaSegmenter()
    if name == "fugashi":
        return FugashiSegmenter()
    if name == "icu":
        if language not in _ICU_SCRIPTS:
            raise ValueError(f"segmenter icu: no script known for language {language!r}"
                             f" (known: {', '.join(sorted(_ICU_SCRIPTS))})")
        return IcuSegmenter(language, _ICU_SCRIPTS[language])
    raise ValueError(f"unknown segmenter {name!r}; known: {', '.join(SEGMENTER_NAMES)}")


def segmenter_for(language: Optional[str], name: Optional[str] = None) -> Segmenter:
    """The segmenter of ``language`` (lid.176 code): ``name`` when given, else the
    language's default (:data:`SEGMENTER_BY_LANGUAGE`; whitespace for every other one).
    One instance per (segmenter, language) and process."""
    from corpus_assets.steps.quality.line_corrections import normalize_language

    lang = normalize_language(language)
    return _build(name or SEGMENTER_BY_LANGUAGE.get(lang, "whitespace"), lang)


class MultiSegmenter(Segmenter):
    """Several script segmenters at once (the language pre-screen, which counts words
    before it knows a chunk's language): each whitespace run goes to the first segmenter
    whose script it holds, other runs are whitespace words."""

    name = "multi"

    def __init__(self, segmenters: list[ScriptSegmenter]):
        self.segmenters = list(segmenters)

    @property
    def identity(self) -> str:
        return " + ".join(s.identity for s in self.segmenters)

    def _pick(self, text: str) -> Optional[ScriptSegmenter]:
        for s in self.segmenters:
            if s._script_re.search(text):
                return s
        return None

    def words(self, text: str) -> list[str]:
        out: list[str] = []
        for m in _RUN_RE.finditer(text):
            seg = self._pick(m.group())
            out.extend(seg.words(m.group()) if seg is not None else WORD_RE.findall(m.group()))
        return out

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for m in _RUN_RE.finditer(text):
            seg = self._pick(m.group())
            if seg is None:
                spans.append((m.start(), m.end()))
            else:
                spans.extend((m.start() + a, m.start() + b) for a, b in seg.token_spans(m.group()))
        return spans


def combined_segmenter(segmenters) -> Optional[Segmenter]:
    """One segmenter for several languages' segmenters: None when all are whitespace."""
    unique: list[ScriptSegmenter] = []
    for s in segmenters:
        if isinstance(s, ScriptSegmenter) and s not in unique:
            unique.append(s)
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else MultiSegmenter(unique)

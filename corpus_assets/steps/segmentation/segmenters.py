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
# The most characters one call of a segmenting library is given. MeCab (fugashi) crashes
# the process (SIGSEGV) on a ~200k-character unknown word and uses ~1.4 GB per million
# characters; jieba and ICU are only slower. Longer runs are cut into pieces of at most
# this many characters, at script boundaries first (a Latin run glued to kana is never
# handed to MeCab), so time and memory stay linear and bounded whatever the page holds.
MAX_LIBRARY_RUN = 2000
_OPENING = {"Ps": True, "Pi": True}  # opening brackets, opening quotes

# Characters of each segmented script (Unicode blocks).
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
KANA = "\u3040-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9f"  # without ゠ and ・ (punctuation)
THAI = "\u0e00-\u0e7f"
LAO = "\u0e80-\u0eff"
KHMER = "\u1780-\u17ff\u19e0-\u19ff"
MYANMAR = "\u1000-\u109f\ua9e0-\ua9ff\uaa60-\uaa7f"


@functools.lru_cache(maxsize=None)
def _without_punctuation(script: str) -> str:
    """The character class ``script`` (ranges "a-b" and single characters) less its
    punctuation (Unicode category P*), as a character class body."""
    chars = []
    i = 0
    while i < len(script):
        if i + 2 < len(script) and script[i + 1] == "-":
            chars.extend(range(ord(script[i]), ord(script[i + 2]) + 1))
            i += 3
        else:
            chars.append(ord(script[i]))
            i += 1
    keep = [c for c in chars if not unicodedata.category(chr(c)).startswith("P")]
    ranges: list[list[int]] = []
    for c in keep:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                   for a, b in ranges)


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
        self._script_run_re = re.compile(f"[{self.script}]+")
        # letter/digit words, with the script's combining marks (Thai vowels are Mn, not \w);
        # the script's punctuation (Burmese ။ ၊, Khmer ។ ៖: category P*) is never a word
        letters = _without_punctuation(self.script)
        body = f"(?:{_W}|[{letters}])"
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
        if len(run) > MAX_LIBRARY_RUN:
            out: list[str] = []
            for chunk, segment in self._bounded(run):
                out.extend(self._pieces(chunk) if segment else [chunk])
            return out
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

    def _bounded(self, run: str):
        """``run`` (longer than MAX_LIBRARY_RUN) as consecutive (chunk, segment?) pairs:
        a stretch without a character of the script is one piece as it stands (never
        segmented, as the whitespace segmenter would keep it); script stretches are
        grouped, with what lies between them, into chunks of at most MAX_LIBRARY_RUN
        characters (a longer stretch is cut every MAX_LIBRARY_RUN characters)."""
        out: list[tuple[str, bool]] = []
        start = 0
        for m in self._script_run_re.finditer(run):
            if m.start() > start:
                # what lies between two script stretches: glued to the chunk before when
                # short, else a piece of its own
                between = run[start:m.start()]
                if out and out[-1][1] and len(out[-1][0]) + len(between) <= MAX_LIBRARY_RUN:
                    out[-1] = (out[-1][0] + between, True)
                else:
                    out.append((between, False))
            stretch = m.group()
            for i in range(0, len(stretch), MAX_LIBRARY_RUN):
                piece = stretch[i:i + MAX_LIBRARY_RUN]
                if i == 0 and out and out[-1][1] and len(out[-1][0]) + len(piece) <= MAX_LIBRARY_RUN:
                    out[-1] = (out[-1][0] + piece, True)
                else:
                    out.append((piece, True))
            start = m.end()
        if start < len(run):
            tail = run[start:]
            if out and out[-1][1] and len(out[-1][0]) + len(tail) <= MAX_LIBRARY_RUN:
                out[-1] = (out[-1][0] + tail, True)
            else:
                out.append((tail, False))
        return out

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
    before it knows a chunk's language). Each whitespace run is cut where its script
    changes, and each part goes to the segmenter of its script: Thai, Lao, Khmer and
    Burmese to their ICU segmenter; kana to MeCab; Han to MeCab when the run holds kana
    (Japanese), else to jieba when Chinese is kept (MeCab when it is not). Characters of
    no segmented script (Latin, digits, punctuation) stay with the part before them, so
    the parts of a run joined give the run. Runs without any such script are whitespace
    words. ``words``, ``tokens`` and ``token_spans`` agree, like a single segmenter's."""

    name = "multi"

    def __init__(self, segmenters: list[ScriptSegmenter]):
        self.segmenters = list(segmenters)
        units = [u for u in (KANA, HAN, THAI, LAO, KHMER, MYANMAR) if any(u in s.script for s in self.segmenters)]
        self._units = units
        self._unit_re = re.compile("|".join(f"([{u}]+)" for u in units))
        self._kana_re = re.compile(f"[{KANA}]")
        self._owner = {u: next(s for s in self.segmenters if u in s.script) for u in units}
        han_owners = [s for s in self.segmenters if HAN in s.script]
        self._han_japanese = next((s for s in han_owners if KANA in s.script), None)
        self._han_chinese = next((s for s in han_owners if KANA not in s.script), None)

    @property
    def identity(self) -> str:
        return " + ".join(s.identity for s in self.segmenters)

    def _parts(self, run: str) -> list[tuple[int, int, Optional[ScriptSegmenter]]]:
        """(start, end, segmenter) parts of one whitespace run, covering it."""
        parts: list[list] = []
        japanese = None
        for m in self._unit_re.finditer(run):
            unit = self._units[m.lastindex - 1]
            if unit is HAN:
                if japanese is None:
                    japanese = self._kana_re.search(run) is not None
                seg = (self._han_japanese if japanese else self._han_chinese) or self._owner[HAN]
            else:
                seg = self._owner[unit]
            if not parts:
                parts.append([0, m.end(), seg])
            elif parts[-1][2] is seg:
                parts[-1][1] = m.end()
            else:
                parts[-1][1] = m.start()
                parts.append([m.start(), m.end(), seg])
        if not parts:
            return [(0, len(run), None)]
        parts[-1][1] = len(run)
        return [tuple(p) for p in parts]

    def words(self, text: str) -> list[str]:
        out: list[str] = []
        for m in _RUN_RE.finditer(text):
            run = m.group()
            for a, b, seg in self._parts(run):
                out.extend(seg.words(run[a:b]) if seg is not None else WORD_RE.findall(run[a:b]))
        return out

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for m in _RUN_RE.finditer(text):
            run = m.group()
            for a, b, seg in self._parts(run):
                base = m.start() + a
                if seg is None:
                    spans.append((base, m.start() + b))
                else:
                    spans.extend((base + x, base + y) for x, y in seg.token_spans(run[a:b]))
        return spans

    def tokens(self, text: str) -> list[str]:
        return [text[a:b] for a, b in self.token_spans(text)]


def combined_segmenter(segmenters) -> Optional[Segmenter]:
    """One segmenter for several languages' segmenters: None when all are whitespace."""
    unique: list[ScriptSegmenter] = []
    for s in segmenters:
        if isinstance(s, ScriptSegmenter) and s not in unique:
            unique.append(s)
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else MultiSegmenter(unique)

"""C4's cleaning rules (Raffel et al. 2020, section 2.2), as an optional preset.

The walk over lines follows C4's reference code (TFDS ``c4_utils.clean_page``, which
datatrove's ``C4QualityFilter`` reproduces) rule for rule and in its order, for each
stripped line:

1. a word (white-space split) longer than 1,000 characters -> drop the line;
2. citation markers ``[1]``, ``[edit]``, ``[citation needed]`` are cut;
3. the line does not end in terminal punctuation (``. ? ! " '``) or ends in "..." ->
   drop the line (FineWeb switched this rule off: alone it removed ~30% of tokens);
4. fewer than 3 words -> drop the line;
5. "lorem ipsum" -> drop the document;
6. "javascript" -> drop the line;
7. "{" -> drop the document;
8. "terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
   "use cookies" -> drop the line;
9. the line is kept and its sentences counted; fewer than 5 sentences in the kept lines
   -> drop the document.

Rule 3 can be switched off (``filter_no_terminal_punct=False``; FineWeb's pipeline runs
C4's filter so, datatrove's ``C4QualityFilter(filter_no_terminal_punct=False)``).

C4's bad-words filter (the "List of Dirty, Naughty, Obscene or Otherwise Bad Words",
LDNOOBW) is available as ``BadWords``: a page is dropped when any listed word or phrase
occurs in its kept lines, matched as TFDS matches it (lower-cased text, the entry between
non-word characters). The list itself is not shipped (no package here carries it):
``quality_signals.c4_bad_words_path`` names a file of one entry a line (production:
LDNOOBW's ``en`` file, as C4).

So, as in C4, "lorem ipsum" and "{" only count in lines that survived rules 1-4 (a "{"
in a line without terminal punctuation does not drop the page). For the signals the walk
goes on past 5 and 7 (recording a flag) as C4 would with those two rules switched off, so
each document-level rule can be turned off alone. Blank lines are skipped (C4 drops them
under rule 3; they are not counted here). C4's three-sentence-span deduplication
and its ``langdetect`` step are not part of this preset (the ``c4`` recipe approximates
them with exact substring dedup and fastText language ID: docs/recipes.md).

Sentences: C4 counts them with a sentence tokenizer (NLTK punkt). We count runs of
``. ! ? …`` followed by white space or the end of the line (closing quotes and brackets
allowed between), at least one per kept line; for Chinese and Japanese also runs of
``。！？``, which need no white space after them (``CJK_SENTENCE_END_RE``). Abbreviations ("Dr. Smith") count as
sentence ends here and not in punkt, so a page can reach 5 sentences a little earlier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CITATION_RE = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]", re.IGNORECASE)
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
_SENTENCE_END_RE = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s|$)")
# Chinese and Japanese: 。！？ end a sentence with no space after them.
CJK_SENTENCE_END_RE = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s|$)|[。！？]+[」』”’）)\]]*")

C4_LINE_RULES = ("long_word", "no_terminal_punct", "too_few_words", "javascript", "policy")


@dataclass
class C4Walk:
    kept_lines: list = field(default_factory=list)
    removed_by_rule: dict = field(default_factory=lambda: dict.fromkeys(C4_LINE_RULES, 0))
    lorem_ipsum: bool = False
    curly_bracket: bool = False
    sentences: int = 0

    @property
    def lines_removed(self) -> int:
        return sum(self.removed_by_rule.values())


def count_sentences(line: str, sentence_end=_SENTENCE_END_RE) -> int:
    return max(1, len(sentence_end.findall(line)))


def c4_walk(
    text: str,
    end_marks: tuple[str, ...] = (".", "?", "!", '"', "'"),
    min_words_per_line: int = 3,
    max_word_length: int = 1000,
    remove_citations: bool = True,
    filter_no_terminal_punct: bool = True,
    split=str.split,
    sentence_end=_SENTENCE_END_RE,
) -> C4Walk:
    """Run C4's line rules over ``text`` (see the module docstring). ``split`` cuts a
    line into words (white space; a segmenter's ``tokens`` for languages written
    without spaces)."""
    walk = C4Walk()
    removed = walk.removed_by_rule
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        words = split(line)
        if max_word_length >= 0 and any(len(w) > max_word_length for w in words):
            removed["long_word"] += 1
            continue
        if remove_citations:
            line = CITATION_RE.sub("", line)
        if filter_no_terminal_punct and (not line.endswith(end_marks) or line.endswith("...")):
            removed["no_terminal_punct"] += 1
            continue
        if len(split(line)) < min_words_per_line:  # after the citation cut, as TFDS
            removed["too_few_words"] += 1
            continue
        lower = line.lower()
        if "lorem ipsum" in lower:
            walk.lorem_ipsum = True
        if "javascript" in lower:
            removed["javascript"] += 1
            continue
        if "{" in line:
            walk.curly_bracket = True
        if any(p in lower for p in POLICY_SUBSTRINGS):
            removed["policy"] += 1
            continue
        walk.sentences += count_sentences(line, sentence_end)
        walk.kept_lines.append(line)
    return walk


class BadWords:
    """C4's bad-words rule: a page whose kept lines contain any entry of the list is
    dropped. Matched as TFDS's ``c4_utils`` does: on the lower-cased text, an entry counts
    when non-word characters (or the text's ends) surround it, so "ass" does not match
    "class" and multi-word entries match as phrases."""

    def __init__(self, words: "list[str] | tuple[str, ...]"):
        self.words = tuple(sorted({w.strip().lower() for w in words if w.strip()}))
        self._regex = (re.compile(r"(?:\W|^)(" + "|".join(re.escape(w) for w in self.words) + r")(?=\W|$)")
                       if self.words else None)

    @classmethod
    def from_file(cls, path: str) -> "BadWords":
        """One entry a line; blank lines and lines starting with ``#`` are skipped. A file that
        is not UTF-8 (the error names the file and line) or lists no entry is refused: an
        empty list would leave the rule on in name and off in effect."""
        entries = []
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise ValueError(f"quality_signals.c4_bad_words_path: {path}: line {number} is not UTF-8 "
                                     "text (save the list as UTF-8)") from None
                if line.strip() and not line.lstrip().startswith("#"):
                    entries.append(line)
        if not entries:
            raise ValueError(f"quality_signals.c4_bad_words_path: {path} lists no word (the bad-words rule would "
                             "remove nothing; set the path to null to switch it off)")
        return cls(entries)

    def found(self, text: str) -> list[str]:
        """The distinct entries present in ``text`` (sorted)."""
        if self._regex is None or not text:
            return []
        return sorted({m.group(1) for m in self._regex.finditer(text.lower())})

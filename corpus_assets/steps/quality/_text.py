"""How this package counts words, lines and paragraphs, and the duplicate/n-gram counters.

One definition of each unit is shared by the signals that use it, so that a "word" in the
word-count rule is the same thing as a "word" in the n-gram rules and in the 5%
line-correction rule; only Gopher's alphabetic-word rule counts whitespace words.

Words
    Gopher (Rae et al. 2021, Appendix A) states its quality rules on "words" without
    naming a tokenizer. Two units are used, each where the rule needs it (the table of
    which statistic uses which is in ``signals``' module docstring):

    Letter/digit words (``split_words``): a run of word characters (Unicode letters,
    digits, ``_``, plus combining marks) that may be joined by one inner apostrophe,
    hyphen, dot, comma or colon ("don't", "state-of-the-art", "3.5", "1,000", "z.B",
    "12:30"). Punctuation, symbols and emoji separate words and are never words. These
    are the words that are counted (50..100,000), measured (mean length), divided by
    (``#`` and ellipses per word), matched against the stop words and cut into n-grams:
    a comma standing alone is no word, and "the," is the stop word "the". datatrove's
    spaCy/NLTK tokens minus pure-punctuation tokens are the same idea; the differences:
    "don't" stays one word (NLTK: "do", "n't"), and a symbol such as "€" is not a word
    (datatrove counts it when its punctuation table lacks it).

    Whitespace words (``split_whitespace_words``): the whitespace-separated tokens of the
    text, punctuation attached. Gopher's "80% of words contain at least one alphabetic
    character" needs words that may hold no letter: symbol runs such as ``./!*?<><>`` or
    ``++`` are what the rule is there to catch, and letter/digit words can never be
    such a run (with them a page of half symbol runs would read as 100% alphabetic).
    "Hello," is one word with a letter; "--" is one word without.

    Scripts written without spaces (Chinese, Japanese, Thai, Khmer, Lao, Burmese) would
    come out as one "word" per run of characters in both units; for a document whose
    language has a profile the signals take both units from the language's segmenter
    instead (``steps/segmentation``: its ``words`` and ``tokens`` are these two units,
    cut by jieba, MeCab or ICU inside the runs of the script).

Lines
    ``text.split("\\n")``, each stripped, blank lines dropped. datatrove splits on ``\\n+``
    for repetition (keeps whitespace-only lines), ``splitlines()`` for the quality filter
    (keeps blank lines) and ``split("\\n")`` for FineWeb (keeps blank lines); trafilatura's
    output has no blank lines, so on this pipeline's text the choices coincide.

Paragraphs
    Split on a blank line (two or more newlines, possibly with spaces between), as datatrove
    does (``\\n{2,}``), each stripped, empty ones dropped. Trafilatura separates paragraphs
    with a single newline, so most extracted documents are one paragraph and the paragraph
    signals are rarely the deciding ones (the same holds for FineWeb).
"""

from __future__ import annotations

import re

import numpy as np

# Combining marks so that NFD-normalized text ("u" + U+0308) still forms one word.
_W = r"[\w\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0900-\u0dff]"
WORD_RE = re.compile(rf"{_W}+(?:['’\-.,:]{_W}+)*")
_PARAGRAPH_SPLIT_RE = re.compile(r"\n[ \t\r\f\v]*\n\s*")


def split_words(text: str) -> list[str]:
    """The letter/digit words of ``text`` (see the module docstring)."""
    return WORD_RE.findall(text)


def split_whitespace_words(text: str) -> list[str]:
    """The whitespace-separated tokens of ``text`` (Gopher's alphabetic-word rule)."""
    return text.split()


def count_words(text: str) -> int:
    return len(WORD_RE.findall(text))


def split_lines(text: str) -> list[str]:
    """Non-blank lines of ``text``, stripped."""
    return [s for s in (line.strip() for line in text.split("\n")) if s]


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs (separated by a blank line), stripped; empty ones dropped."""
    return [p for p in (p.strip() for p in _PARAGRAPH_SPLIT_RE.split(text.strip())) if p]


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(number of items, number of characters) that repeat an earlier item.

    The first occurrence is not counted, only the repeats (datatrove's reading of
    Gopher's "duplicate line/paragraph fraction"): lines A, B, A give 1 duplicate line
    holding len(A) characters.
    """
    seen: set[str] = set()
    dup_items = 0
    dup_chars = 0
    for item in items:
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup_items, dup_chars


class NGramIndex:
    """Integer ids of every word n-gram of a document, for n = 1..max_n, in O(N log N).

    Level 1 maps each distinct word to an id. Level n combines the id of the (n-1)-gram
    starting at i with the id of word i+n-1 into one integer key and densifies the keys
    with ``np.unique``: two positions get the same level-n id exactly when their n-grams
    are equal. Nothing here is quadratic in the document length, and no n-gram string is
    ever built, so a 100,000-word document costs a few tens of milliseconds.
    """

    def __init__(self, words: list[str], max_n: int):
        self.n_words = len(words)
        vocab: dict[str, int] = {}
        ids = [vocab.setdefault(w, len(vocab)) for w in words]
        lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
        # prefix[i] = characters in words[:i]: chars of words[i:i+n] = prefix[i+n]-prefix[i]
        self.prefix = np.zeros(len(words) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.prefix[1:])
        word_ids = np.asarray(ids, dtype=np.int64)
        self._ids: dict[int, np.ndarray] = {1: word_ids}
        self._first: dict[int, np.ndarray] = {}
        self._counts: dict[int, np.ndarray] = {}
        vocab_size = max(len(vocab), 1)
        prev = word_ids
        for n in range(2, max_n + 1):
            if len(words) < n:
                break
            # keys < N * vocab_size <= N^2: fits int64 for any real document
            key = prev[:-1] * vocab_size + word_ids[n - 1 :]
            _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            self._ids[n] = inverse.reshape(-1)
            self._first[n] = first
            prev = self._ids[n]

    def ids(self, n: int) -> np.ndarray:
        return self._ids.get(n, np.zeros(0, dtype=np.int64))

    def counts(self, n: int) -> np.ndarray:
        if n not in self._counts:
            ids = self.ids(n)
            self._counts[n] = np.bincount(ids) if len(ids) else np.zeros(0, dtype=np.int64)
        return self._counts[n]

    def ngram_chars(self, start: int, n: int) -> int:
        """Characters of the words of the n-gram starting at ``start`` (no separators)."""
        return int(self.prefix[start + n] - self.prefix[start])

    def top_ngram_chars(self, n: int) -> int:
        """Characters covered by the most frequent n-gram, counted as in datatrove:
        ``len(" ".join(ngram)) * occurrences`` (overlapping occurrences all count).

        Ties go to the n-gram that occurs first (``Counter.most_common(1)``'s choice).
        An n-gram occurring only once counts 0, as in RedPajama-V2's
        ``rps_doc_frac_chars_top_{n}gram``: Gopher's signal measures repetition, and
        without this a 3-word page would be "removed for repetition" (datatrove counts
        it). For documents of >= 50 words (the word-count minimum) the two readings take
        the same decisions; only the removal reason of tiny pages differs.
        """
        counts = self.counts(n)
        if len(counts) == 0:
            return 0
        top = int(counts.max())
        if top <= 1:
            return 0
        candidates = np.flatnonzero(counts == top)
        start = int(self._first[n][candidates].min())
        return (self.ngram_chars(start, n) + n - 1) * top

    def duplicated_ngram_chars(self, n: int) -> int:
        """Characters in repeated n-grams, overlaps not double-counted (Gopher; datatrove's
        ``find_all_duplicate``): scan left to right keeping the set of n-grams seen; an
        n-gram already seen adds its characters (words joined without separators, as
        datatrove) and the scan jumps past its n words; otherwise it is added to the set
        and the scan moves one word on. N-grams skipped over are never added to the set.

        Positions whose n-gram occurs once in the whole document can never be "already
        seen", so the scan only visits positions of n-grams that occur twice or more.
        """
        ids = self.ids(n)
        if len(ids) == 0:
            return 0
        counts = self.counts(n)
        repeated_positions = np.flatnonzero(counts[ids] > 1)
        if len(repeated_positions) == 0:
            return 0
        seen: set[int] = set()
        total = 0
        next_free = 0  # first position the scan has not jumped over
        id_list = ids.tolist()
        prefix = self.prefix
        for pos in repeated_positions.tolist():
            if pos < next_free:
                continue
            gram = id_list[pos]
            if gram in seen:
                total += int(prefix[pos + n] - prefix[pos])
                next_free = pos + n
            else:
                seen.add(gram)
        return total

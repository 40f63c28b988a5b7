"""CCNet's paragraph (line) deduplication (Wenzek et al. 2020, section 3.1).

A document is split on ``\\n``; each line is normalized (:func:`normalize_for_dedup`:
strip, lower-case, digits -> 0, CCNet's Unicode punctuation and control characters
removed) and hashed: the first 8 bytes of its SHA-1, read as a little-endian uint64 (as
cc_net's ``str_hash``). Over a *group* of shards (CCNet: 50 shards share one hash set), a
hash seen more than once is a duplicate, and **every** line carrying it is removed, the
first occurrence included (cc_net's ``DuplicatesRemover`` keeps a line only when its hash
was seen exactly once). A line repeated inside one document counts twice, so it goes too.

Lines whose normalized form is empty neither count nor match: they are dropped from the
text (cc_net hashes them as ``sha1("")``, which recurs everywhere, so it drops them as
duplicates; we say so rather than count them). A document left with no line is removed
(``all_lines_duplicated``), one left shorter than ``min_chars`` characters is removed
(``too_short_after_line_dedup``; CCNet's ``min_len`` is 300).

Memory: one uint64 per line of the group while counting, then the sorted array of the
duplicated hashes, which is all the removal step holds. Nothing here imports Dagster.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Optional

import numpy as np

from corpus_assets.steps.base import Document, Step
from corpus_assets.steps.lm.text import normalize_for_dedup

HASH_BYTES = 8


def line_hash(line: str) -> Optional[int]:
    """The line's dedup hash, or None when it normalizes to nothing."""
    normalized = normalize_for_dedup(line)
    if not normalized:
        return None
    digest = hashlib.sha1(normalized.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:HASH_BYTES], "little")


def line_hashes(text: str) -> np.ndarray:
    """Hashes of the text's non-empty normalized lines (uint64, in line order)."""
    hashes = [h for h in map(line_hash, (text or "").split("\n")) if h is not None]
    return np.array(hashes, dtype=np.uint64)


class GroupLineCounter:
    """Counts line hashes over a group of shards; ``duplicates()`` is the sorted array of
    the hashes seen more than once. Adding is batched: each ``add`` appends one array, and
    ``compact`` folds them into (unique hashes, counts) when the buffer grows, so memory is
    ~8 bytes per distinct line plus one buffer."""

    def __init__(self, compact_every: int = 5_000_000):
        self._pending: list[np.ndarray] = []
        self._pending_size = 0
        self._compact_every = compact_every
        self._unique = np.zeros(0, np.uint64)
        self._counts = np.zeros(0, np.int64)
        self.lines = 0

    def add(self, hashes: np.ndarray) -> None:
        if len(hashes) == 0:
            return
        self._pending.append(hashes)
        self._pending_size += len(hashes)
        self.lines += len(hashes)
        if self._pending_size >= self._compact_every:
            self.compact()

    def add_text(self, text: str) -> None:
        self.add(line_hashes(text))

    def compact(self) -> None:
        if not self._pending:
            return
        values, counts = np.unique(np.concatenate(self._pending), return_counts=True)
        merged = np.concatenate([self._unique, values])
        merged_counts = np.concatenate([self._counts, counts])
        self._unique, inverse = np.unique(merged, return_inverse=True)
        self._counts = np.bincount(inverse, weights=merged_counts, minlength=len(self._unique)).astype(np.int64)
        self._pending, self._pending_size = [], 0

    @property
    def distinct(self) -> int:
        self.compact()
        return len(self._unique)

    def duplicates(self) -> np.ndarray:
        self.compact()
        return self._unique[self._counts > 1]


def duplicated_hashes(texts: Iterable[str]) -> np.ndarray:
    """The sorted duplicated line hashes of a group given as texts (tests, small groups)."""
    counter = GroupLineCounter()
    for text in texts:
        counter.add_text(text)
    return counter.duplicates()


class CCNetLineDedup(Step):
    """Removes every line whose hash is in ``duplicates`` (sorted uint64: the group's
    duplicated hashes), then documents left with no line or too short.

    Adds ``ccnet_original_lines`` / ``ccnet_original_chars`` (before) and
    ``ccnet_lines_removed`` to each kept document."""

    name = "ccnet_line_dedup"
    output_columns = {"ccnet_original_lines": int, "ccnet_original_chars": int, "ccnet_lines_removed": int}

    def __init__(self, duplicates: np.ndarray, min_chars: int = 300, text_field: str = "text"):
        self.duplicates = np.asarray(duplicates, dtype=np.uint64)
        if len(self.duplicates) > 1 and np.any(self.duplicates[1:] <= self.duplicates[:-1]):
            self.duplicates = np.unique(self.duplicates)
        self.min_chars = min_chars
        self.text_field = text_field
        self.lines_in = 0
        self.lines_removed = 0

    def _is_duplicate(self, hashes: np.ndarray) -> np.ndarray:
        if len(self.duplicates) == 0 or len(hashes) == 0:
            return np.zeros(len(hashes), bool)
        idx = np.minimum(np.searchsorted(self.duplicates, hashes), len(self.duplicates) - 1)
        return self.duplicates[idx] == hashes

    def apply(self, doc: Document):
        text = doc.get(self.text_field)
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        lines = text.split("\n")
        kept_lines, hashes = [], []
        for line in lines:
            h = line_hash(line)
            if h is not None:
                kept_lines.append(line)
                hashes.append(h)
        duplicate = self._is_duplicate(np.array(hashes, dtype=np.uint64))
        new_text = "\n".join(line for line, dup in zip(kept_lines, duplicate) if not dup)
        removed = int(duplicate.sum())
        self.lines_in += len(kept_lines)
        self.lines_removed += removed
        doc["ccnet_original_lines"] = len(lines)
        doc["ccnet_original_chars"] = len(text)
        doc["ccnet_lines_removed"] = removed
        if not new_text:
            return "all_lines_duplicated" if removed else "no_text", f"{removed} of {len(kept_lines)} lines"
        doc[self.text_field] = new_text
        if len(new_text) < self.min_chars:
            return "too_short_after_line_dedup", f"{len(new_text)} chars < {self.min_chars} ({removed} lines removed)"
        return None

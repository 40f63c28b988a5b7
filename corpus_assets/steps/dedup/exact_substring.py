"""Exact substring deduplication (Lee et al. 2022, "Deduplicating Training Data Makes
Language Models Better", Sec. 4.2), as RefinedWeb applies it after MinHash (Penedo et
al. 2023, Sec. 3.3) with its four treatments of the spans found.

Definitions used here:

- Tokens: maximal runs of non-whitespace characters (regex ``\\S+``) of the document
  text, each remembered with its character offsets; no normalization (punctuation stays
  attached, case matters), so "exact" means exact up to whitespace. Lee et al. count
  GPT-2 BPE tokens; 50 such word tokens are roughly 60-70 BPE tokens, so the default
  ``min_tokens=50`` is slightly stricter than theirs. Configurable.
- A *repeated window* is a sequence of ``k = min_tokens`` consecutive tokens inside one
  document that occurs at least twice in the collection (in the same or another
  document). A duplicated span is a maximal run of tokens covered by repeated windows,
  so every span found has >= k tokens; a repeat of k-1 tokens is never found.
- Collection order: documents are numbered in the order given (the caller passes the
  dump's shards in order, rows in order); an occurrence's position is (document number,
  token offset). The *first occurrence* of a repeated window is the one with the
  smallest position.

Which copies are removed (``keep_first``, default True): Lee et al.'s tool strikes
every occurrence of a repeated sequence, including the first (their README says so),
so a paragraph quoted by two pages vanishes from both. We keep the first occurrence
and remove the later ones: a token is removed when it lies in a non-first occurrence of
some repeated window and in no first occurrence of any repeated window. Hence every
repeated window keeps exactly its first occurrence intact (no text disappears entirely)
and every later copy is removed unless it overlaps a first occurrence (e.g. in periodic
text such as "a b a b a b ...", where the first k tokens survive). ``keep_first=False``
reproduces Lee et al. (all occurrences removed). Caveat: when the document holding a
first occurrence is dropped for another reason (DROPPARTIAL/DROPANY on its own other
spans, or a later filter), that span is gone from the corpus; a single pass cannot avoid
this without iterating.

Modes (RefinedWeb's names), applied per document to the spans to remove:

- CUT: the spans are cut out of the text (with the whitespace that followed each span,
  or the whitespace before it when the span ends the text).
- MASK: the text is kept; the spans (char offsets) are recorded so a trainer can mask
  the loss on them.
- DROPPARTIAL: the document is dropped when the spans cover more than ``drop_fraction``
  (0.2) of its characters; below that the spans are CUT (``below_threshold="cut"``,
  default) or the document is kept unchanged (``below_threshold="keep"``).
- DROPANY: the document is dropped when it has any span.

Methods for finding repeated windows, which give identical results (up to 64-bit hash
collisions, tested):

- ``suffix_array`` (reference): words mapped to integer ids (first-seen order), the
  documents concatenated with a UNIQUE separator id after each one, so no common prefix
  (hence no match) can cross a document boundary; suffix array by libdivsufsort (Mori;
  via ``pydivsufsort``) and LCP array by Kasai et al. 2001. Suffixes whose first k
  tokens agree are contiguous in the suffix array with LCP >= k between neighbours:
  each such run is one repeated window, its first occurrence the smallest position.
- ``hashed``: every k-token window of every document hashed to 64 bits (polynomial
  hash of stable per-word hashes, finished with fmix64); windows whose hash occurs
  at least twice are repeated. Needs only per-document work plus a group-by on
  ``(hash, position)``, so a dump too big for one suffix array can be split by hash
  range and processed in parts; ``window_hashes`` is the per-document half.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from ..base import Step
from .hashing import fmix64, hash_strings

U64 = np.uint64
DEFAULT_MIN_TOKENS = 50
DEFAULT_DROP_FRACTION = 0.2

_TOKEN_RE = re.compile(r"\S+")


class Mode(str, Enum):
    CUT = "cut"
    MASK = "mask"
    DROPPARTIAL = "droppartial"
    DROPANY = "dropany"


# --------------------------------------------------------------------------- tokens


@dataclass
class Tokens:
    """Whitespace tokens of one text with their character offsets."""

    words: list[str]
    starts: np.ndarray  # int64, char offset of each token
    ends: np.ndarray  # int64, char offset just past each token

    def __len__(self) -> int:
        return len(self.words)


def tokenize(text: str, segmenter=None) -> Tokens:
    """Whitespace tokens, or ``segmenter``'s tokens (a language written without spaces:
    ``steps/segmentation``), with their offsets."""
    words, starts, ends = [], [], []
    if segmenter is not None:
        for a, b in segmenter.token_spans(text or ""):
            words.append(text[a:b])
            starts.append(a)
            ends.append(b)
    else:
        for m in _TOKEN_RE.finditer(text or ""):
            words.append(m.group())
            starts.append(m.start())
            ends.append(m.end())
    return Tokens(words, np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64))


def _tokens_of(item) -> list[str]:
    """Tokens of a streamed document: a text, or (text, segmenter or None)."""
    if isinstance(item, tuple):
        text, segmenter = item
        if segmenter is not None:
            return segmenter.tokens(text or "")
        item = text
    return _TOKEN_RE.findall(item or "")


def _layout_offsets(lengths: Sequence[int]) -> np.ndarray:
    """Start of each document in the concatenation ``doc0 sep doc1 sep ...``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths + 1, out=offsets[1:])
    return offsets


# --------------------------------------------------------------------------- repeated windows


@dataclass
class RepeatedWindows:
    """Every occurrence of every repeated k-token window, as layout positions
    (``offsets[doc] + token``), sorted, with a flag for the first occurrence."""

    k: int
    positions: np.ndarray  # int64
    first: np.ndarray  # bool

    def as_set(self) -> set[tuple[int, bool]]:
        return set(zip(self.positions.tolist(), self.first.tolist()))


def _first_flags(positions_grouped: np.ndarray, group_starts: np.ndarray) -> np.ndarray:
    gmin = np.minimum.reduceat(positions_grouped, group_starts)
    sizes = np.diff(np.append(group_starts, positions_grouped.size))
    return positions_grouped == np.repeat(gmin, sizes)


def _finish(k: int, positions: np.ndarray, first: np.ndarray) -> RepeatedWindows:
    order = np.argsort(positions, kind="stable")
    return RepeatedWindows(k, positions[order], first[order])


def repeated_windows_suffix_array(token_ids: Sequence[np.ndarray], k: int) -> RepeatedWindows:
    """Repeated k-windows via suffix array + LCP. ``token_ids``: per document, an int
    array of word ids (ids >= 0, shared vocabulary)."""
    from pydivsufsort import divsufsort, kasai

    lengths = [int(t.size) for t in token_ids]
    empty = RepeatedWindows(k, np.empty(0, np.int64), np.empty(0, bool))
    if sum(lengths) == 0 or k < 1:
        return empty
    vocab = max((int(t.max()) for t in token_ids if t.size), default=-1) + 1
    n_docs = len(token_ids)
    if vocab + n_docs >= 1 << 32:
        raise ValueError("alphabet too large for one suffix array; use method='hashed'")
    parts = []
    for d, t in enumerate(token_ids):
        parts.append(np.asarray(t, dtype=np.uint32))
        parts.append(np.array([vocab + d], dtype=np.uint32))  # unique separator
    concat = np.concatenate(parts)
    sa = np.asarray(divsufsort(concat), dtype=np.int64)
    lcp = np.asarray(kasai(concat, sa), dtype=np.int64)  # lcp[i] = lcp(sa[i], sa[i+1])
    link = lcp[:-1] >= k  # suffixes i and i+1 share their first k tokens
    if not link.any():
        return empty
    n = sa.size
    member = np.zeros(n, dtype=bool)
    member[:-1] |= link
    member[1:] |= link
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = ~link
    idx = np.flatnonzero(member)
    group_starts = np.flatnonzero(new_group[idx])
    positions = sa[idx]
    first = _first_flags(positions, group_starts)
    return _finish(k, positions, first)


def window_hashes(token_hashes: np.ndarray, k: int) -> np.ndarray:
    """64-bit hash of every k-token window of one document (``n - k + 1`` values, none
    when the document has fewer than k tokens)."""
    th = np.asarray(token_hashes, dtype=np.uint64)
    w = th.size - k + 1
    if w <= 0 or k < 1:
        return np.empty(0, dtype=np.uint64)
    mult = U64(0x100000001B3)  # any odd multiplier; fmix64 below does the mixing
    acc = th[:w].copy()
    for j in range(1, k):
        acc *= mult
        acc += th[j : j + w]
    return fmix64(acc ^ U64(k))


def _repeated_groups(h: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Occurrences whose hash occurs at least twice: ``(positions, first_flags)``."""
    order = np.lexsort((p, h))
    hs, ps = h[order], p[order]
    same = hs[1:] == hs[:-1]
    member = np.zeros(hs.size, dtype=bool)
    member[:-1] |= same
    member[1:] |= same
    new_group = np.ones(hs.size, dtype=bool)
    new_group[1:] = ~same
    idx = np.flatnonzero(member)
    group_starts = np.flatnonzero(new_group[idx])
    positions_g = ps[idx]
    if positions_g.size == 0:
        return positions_g, np.empty(0, bool)
    return positions_g, _first_flags(positions_g, group_starts)


def repeated_windows_hashed(token_hashes: Sequence[np.ndarray], k: int) -> RepeatedWindows:
    """Repeated k-windows via hashing every window. ``token_hashes``: per document, a
    uint64 array of stable per-token hashes."""
    return repeated_windows_hashed_in_parts(lambda: token_hashes, k, parts=1)


def repeated_windows_hashed_in_parts(
    open_token_hashes: Callable[[], Iterable[np.ndarray]], k: int, parts: int = 1
) -> RepeatedWindows:
    """The hashed method in ``parts`` passes over the collection, for collections whose
    windows do not fit in memory at once: pass ``p`` keeps only the windows whose hash is
    ``p`` modulo ``parts``. A repeated window has one hash, so all its occurrences fall in
    the same pass and every pass is complete on its own. Memory: the windows of one part
    (16 bytes each) plus the repeated occurrences found so far. ``open_token_hashes()``
    must yield the same documents in the same order on every call."""
    if parts < 1:
        raise ValueError("parts must be >= 1")
    found_pos, found_first = [], []
    for part in range(parts):
        hashes, positions = [], []
        offset = 0
        for th in open_token_hashes():
            th = np.asarray(th, dtype=np.uint64)
            wh = window_hashes(th, k)
            if wh.size:
                pos = offset + np.arange(wh.size, dtype=np.int64)
                if parts > 1:
                    sel = (wh % U64(parts)) == U64(part)
                    wh, pos = wh[sel], pos[sel]
                hashes.append(wh)
                positions.append(pos)
            offset += th.size + 1  # the layout of _layout_offsets: one separator per document
        if hashes:
            pos, first = _repeated_groups(np.concatenate(hashes), np.concatenate(positions))
            found_pos.append(pos)
            found_first.append(first)
    if not found_pos:
        return RepeatedWindows(k, np.empty(0, np.int64), np.empty(0, bool))
    return _finish(k, np.concatenate(found_pos), np.concatenate(found_first))


def _coverage(positions: np.ndarray, k: int, length: int) -> np.ndarray:
    diff = np.bincount(positions, minlength=length + k + 1)[: length + 1].astype(np.int64)
    diff -= np.bincount(positions + k, minlength=length + k + 1)[: length + 1]
    return np.cumsum(diff)[:length] > 0


def removal_mask(windows: RepeatedWindows, layout_length: int, keep_first: bool = True) -> np.ndarray:
    """``bool[layout_length]``: which layout positions (tokens) are removed."""
    k = windows.k
    later = _coverage(windows.positions[~windows.first], k, layout_length)
    firsts = _coverage(windows.positions[windows.first], k, layout_length)
    if keep_first:
        return later & ~firsts
    return later | firsts


# --------------------------------------------------------------------------- spans


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    if not mask.any():
        return []
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def token_spans_by_doc(
    windows: RepeatedWindows, offsets: np.ndarray, keep_first: bool = True
) -> dict[int, list[tuple[int, int]]]:
    """Per document that has any, the merged ``(token_start, token_stop)`` runs to remove.

    Works document by document on the documents that hold repeated windows, so its
    memory is that of the windows, not of the whole collection's token layout."""
    if windows.positions.size == 0:
        return {}
    k = windows.k
    docs = np.searchsorted(offsets, windows.positions, side="right") - 1
    bounds = np.flatnonzero(np.diff(docs)) + 1
    result: dict[int, list[tuple[int, int]]] = {}
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, docs.size]):
        d = int(docs[a])
        length = int(offsets[d + 1] - offsets[d] - 1)
        local = windows.positions[a:b] - offsets[d]
        first = windows.first[a:b]
        later_cov = _coverage(local[~first], k, length)
        first_cov = _coverage(local[first], k, length)
        mask = (later_cov & ~first_cov) if keep_first else (later_cov | first_cov)
        runs = _runs(mask)
        if runs:
            result[d] = runs
    return result


def find_duplicate_token_spans(
    open_texts: Callable[[], Iterable[str]],
    *,
    min_tokens: int = DEFAULT_MIN_TOKENS,
    method: str = "suffix_array",
    keep_first: bool = True,
    hash_parts: int = 1,
) -> tuple[dict[int, list[tuple[int, int]]], int, int]:
    """Find duplicated spans over a collection streamed by ``open_texts()`` (documents
    numbered in the order yielded; each a text, or ``(text, segmenter)`` for a document
    whose language is written without spaces). Returns ``(token_spans_by_doc, num_docs, num_tokens)``.

    ``suffix_array`` reads the collection once and holds its token ids (4 bytes a token)
    and the suffix and LCP arrays (16 bytes a token): the reference, for a dump that fits
    one worker. ``hashed`` reads it ``hash_parts`` times and holds one part's windows at
    a time (see ``repeated_windows_hashed_in_parts``)."""
    lengths: list[int] = []
    if method == "suffix_array":
        vocab: dict[str, int] = {}
        ids = []
        for text in open_texts():
            words = _tokens_of(text)
            ids.append(np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.int64, count=len(words)))
            lengths.append(len(words))
        windows = repeated_windows_suffix_array(ids, min_tokens)
        del ids
    elif method == "hashed":
        def token_hashes() -> Iterator[np.ndarray]:
            lengths.clear()
            for text in open_texts():
                words = _tokens_of(text)
                lengths.append(len(words))
                yield hash_strings(words)

        windows = repeated_windows_hashed_in_parts(token_hashes, min_tokens, hash_parts)
    else:
        raise ValueError(f"unknown method {method!r} (suffix_array or hashed)")
    offsets = _layout_offsets(lengths)
    return token_spans_by_doc(windows, offsets, keep_first), len(lengths), int(sum(lengths))


def token_spans_to_char_spans(text: str, token_spans: Sequence[Sequence[int]], segmenter=None) -> list[tuple[int, int]]:
    """``(token_start, token_stop)`` runs of ``text``'s tokens -> char spans."""
    if not token_spans:
        return []
    toks = tokenize(text, segmenter)
    return [(int(toks.starts[a]), int(toks.ends[b - 1])) for a, b in token_spans]


def find_duplicate_spans(
    texts: Sequence[str],
    *,
    min_tokens: int = DEFAULT_MIN_TOKENS,
    method: str = "suffix_array",
    keep_first: bool = True,
) -> list[list[tuple[int, int]]]:
    """Per document, the sorted, merged ``(char_start, char_end)`` spans to remove
    (to cut, to mask, or to count for the drop modes)."""
    by_doc, _, _ = find_duplicate_token_spans(
        lambda: texts, min_tokens=min_tokens, method=method, keep_first=keep_first
    )
    return [token_spans_to_char_spans(t, by_doc.get(d, [])) for d, t in enumerate(texts)]


# --------------------------------------------------------------------------- modes


@dataclass
class ExactDedupResult:
    text: Optional[str]  # None when dropped
    dropped: bool
    reason: Optional[str]
    spans: list[tuple[int, int]] = field(default_factory=list)
    dup_chars: int = 0
    dup_fraction: float = 0.0


def cut_spans(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """Remove each span and the whitespace after it (before it, when it ends the text)."""
    if not spans:
        return text
    pieces = []
    pos = 0
    n = len(text)
    for a, b in sorted(spans):
        end = b
        while end < n and text[end].isspace():
            end += 1
        start = a
        if end == n:
            while start > pos and text[start - 1].isspace():
                start -= 1
        pieces.append(text[pos:start])
        pos = max(pos, end)
    pieces.append(text[pos:])
    return "".join(pieces)


def apply_mode(
    text: str,
    spans: Sequence[tuple[int, int]],
    mode: Mode | str,
    *,
    drop_fraction: float = DEFAULT_DROP_FRACTION,
    below_threshold: str = "cut",
) -> ExactDedupResult:
    mode = Mode(mode)
    spans = list(spans)
    dup_chars = sum(b - a for a, b in spans)
    frac = dup_chars / len(text) if text else 0.0
    base = dict(spans=spans, dup_chars=dup_chars, dup_fraction=frac)
    if not spans:
        return ExactDedupResult(text, False, None, **base)
    if mode is Mode.DROPANY:
        return ExactDedupResult(None, True, "exact_substring_any", **base)
    if mode is Mode.DROPPARTIAL:
        if frac > drop_fraction:
            return ExactDedupResult(None, True, "exact_substring_fraction", **base)
        if below_threshold == "keep":
            return ExactDedupResult(text, False, None, **base)
        return ExactDedupResult(cut_spans(text, spans), False, None, **base)
    if mode is Mode.MASK:
        return ExactDedupResult(text, False, None, **base)
    return ExactDedupResult(cut_spans(text, spans), False, None, **base)


class ExactSubstringStep(Step):
    """Per-shard application of spans found dump-wide by ``find_duplicate_spans``.

    ``spans_by_doc`` maps a document id to its spans, in characters, or in whitespace
    tokens with ``spans_in_tokens=True`` (what the dump-level search stores). CUT rewrites ``text``; MASK
    writes the spans to ``mask_field`` as ``[[start, end], ...]``; the drop modes
    remove the document with reason ``exact_substring_any`` / ``exact_substring_fraction``.
    A CUT that leaves no text removes the document (``exact_substring_emptied``).
    """

    name = "exact_substring_dedup"

    def __init__(
        self,
        spans_by_doc: dict,
        mode: Mode | str = Mode.CUT,
        *,
        drop_fraction: float = DEFAULT_DROP_FRACTION,
        below_threshold: str = "cut",
        id_field: str = "doc_id",
        mask_field: str = "exact_dup_spans",
        spans_in_tokens: bool = False,
        segmenter_of=None,
    ):
        self.spans_by_doc = spans_by_doc
        # doc -> the segmenter its token spans were counted with (None: whitespace tokens)
        self.segmenter_of = segmenter_of
        self.spans_in_tokens = spans_in_tokens
        self.mode = Mode(mode)
        self.drop_fraction = drop_fraction
        self.below_threshold = below_threshold
        self.id_field = id_field
        self.mask_field = mask_field

    @property
    def output_columns(self) -> dict:
        return {self.mask_field: list[list[int]]} if self.mode is Mode.MASK else {}

    def apply(self, doc):
        spans = self.spans_by_doc.get(doc.get(self.id_field))
        if spans and self.spans_in_tokens:
            segmenter = self.segmenter_of(doc) if self.segmenter_of is not None else None
            spans = token_spans_to_char_spans(doc.get("text") or "", spans, segmenter)
        if self.mode is Mode.MASK:
            doc[self.mask_field] = [list(s) for s in spans] if spans else []
        if not spans:
            return None
        text = doc.get("text") or ""
        res = apply_mode(text, spans, self.mode, drop_fraction=self.drop_fraction, below_threshold=self.below_threshold)
        if res.dropped:
            return (res.reason, f"dup_fraction={res.dup_fraction:.3f} spans={len(spans)}")
        if res.text is not text:
            if not res.text.strip():
                return ("exact_substring_emptied", f"spans={len(spans)}")
            doc["text"] = res.text
        return None

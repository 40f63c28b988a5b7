"""CCNet's line dedup on hand-made lines: normalization, the hash, every copy removed
(the first too), empty lines ignored, the minimum length, the group's bounded counter."""

import hashlib

import numpy as np
import pytest

from corpus_assets.steps.base import run_steps
from corpus_assets.steps.ccnet.line_dedup import (
    CCNetLineDedup,
    GroupLineCounter,
    duplicated_hashes,
    line_hash,
    line_hashes,
)
from corpus_assets.steps.lm.text import normalize_for_dedup, normalize_for_lm


def test_normalization_for_dedup():
    # strip, lower case, every digit -> 0, CCNet's Unicode punctuation and controls removed
    assert normalize_for_dedup("  Hello World 2024!  ") == "hello world 0000!"
    assert normalize_for_dedup("Prix\u00a0: 12,50 €") == "prix\u00a0: 00,00 €"  # ASCII punctuation stays
    assert normalize_for_dedup("«Bonjour» — ça va？") == "bonjour  ça va"
    assert normalize_for_dedup("tab\there\x7f\x85end") == "tabhereend"
    assert normalize_for_dedup("Ünïcödé") == "ünïcödé"  # accents kept for dedup
    assert normalize_for_dedup("٣ apples") == "0 apples"  # an Arabic-Indic digit is a digit
    assert normalize_for_dedup(" \t ") == ""


def test_normalization_for_the_language_model():
    # as for dedup, but accents removed and punctuation replaced, not removed
    assert normalize_for_lm("Ünïcödé «Ça» 42…") == 'unicode "ca" 00...'


def test_hash_is_the_first_8_bytes_of_sha1_little_endian():
    expected = int.from_bytes(hashlib.sha1("hello world 0000!".encode()).digest()[:8], "little")
    assert line_hash("  Hello World 2024!") == expected
    # lines equal after normalization share a hash
    assert line_hash("Call 555-1234 now") == line_hash("call 000-0000 NOW ")
    assert line_hash("") is None and line_hash("\x01 ") is None
    assert line_hashes("a\n\n b \n").tolist() == [line_hash("a"), line_hash("b")]


def _dedup(texts, min_chars=0, group=None):
    step = CCNetLineDedup(duplicated_hashes(group if group is not None else texts), min_chars=min_chars)
    removed = []
    docs = [{"doc_id": str(i), "text": t} for i, t in enumerate(texts)]
    stream, stats = run_steps([step], docs, lambda d, s, r, detail: removed.append((d["doc_id"], r)))
    return {d["doc_id"]: d["text"] for d in stream}, removed, step


def test_every_occurrence_of_a_duplicated_line_is_removed_the_first_too():
    kept, removed, step = _dedup([
        "Cookie policy\nFirst unique line\nShared footer 2021",
        "cookie POLICY\nSecond unique line\nShared footer 1999",
        "Third unique line",
    ])
    # "Cookie policy" and "Shared footer N" (digits -> 0) occur twice: both copies go
    assert kept == {"0": "First unique line", "1": "Second unique line", "2": "Third unique line"}
    assert removed == []
    assert step.lines_removed == 4 and step.lines_in == 7


def test_a_line_repeated_inside_one_document_goes_too():
    kept, _, _ = _dedup(["menu\nbody text\nmenu"])
    assert kept == {"0": "body text"}


def test_empty_lines_are_ignored_not_counted_as_duplicates():
    kept, _, step = _dedup(["one\n\n   \ntwo", "three\n\nfour"])
    # blank lines appear three times but are no duplicates; they are not kept either
    assert kept == {"0": "one\ntwo", "1": "three\nfour"}
    assert step.lines_removed == 0


def test_documents_left_empty_or_short_are_removed_with_a_reason():
    texts = ["boilerplate\nnav", "boilerplate\nnav\nA long enough paragraph of real text.", "nav\nshort"]
    kept, removed, _ = _dedup(texts, min_chars=20)
    assert kept == {"1": "A long enough paragraph of real text."}
    assert dict(removed) == {"0": "all_lines_duplicated", "2": "too_short_after_line_dedup"}
    # no text at all is its own reason, never a crash
    _, removed, _ = _dedup(["", None], min_chars=0)
    assert [r for _, r in removed] == ["no_text", "no_text"]


def test_duplicates_are_counted_within_the_group_only():
    # "shared" occurs once in this shard's documents but also once in another shard of the group
    kept, _, _ = _dedup(["shared\nmine"], group=["shared\nmine", "shared\nother shard"])
    assert kept == {"0": "mine"}
    # outside the group it is unique
    kept, _, _ = _dedup(["shared\nmine"], group=["shared\nmine", "other group"])
    assert kept == {"0": "shared\nmine"}


def test_group_counter_compacts_without_changing_the_answer():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 50, size=1000).astype(np.uint64)
    small = GroupLineCounter(compact_every=7)
    for chunk in np.array_split(hashes, 90):
        small.add(chunk)
    values, counts = np.unique(hashes, return_counts=True)
    assert small.duplicates().tolist() == values[counts > 1].tolist()
    assert small.lines == 1000 and small.distinct == len(values)


def test_hostile_text_does_not_crash():
    texts = ["\ud800 lone surrogate\nx", "\x00\x00\n" * 1000 + "tail", "a" * 100_000, "\r\n\r\n", "💥\u200b"]
    kept, removed, _ = _dedup(texts, min_chars=0)
    assert len(kept) + len(removed) == len(texts)

"""Exact substring dedup (Lee et al. 2022): span finding, the four modes, both methods."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from corpus_assets.steps.base import run_steps
from corpus_assets.steps.dedup.exact_substring import (
    ExactSubstringStep,
    Mode,
    apply_mode,
    cut_spans,
    find_duplicate_spans,
    repeated_windows_hashed,
    repeated_windows_suffix_array,
    tokenize,
)
from corpus_assets.steps.dedup.hashing import hash_strings

_counter = itertools.count()


def fresh(n: int) -> str:
    """n tokens never used anywhere else."""
    return " ".join(f"u{next(_counter)}" for _ in range(n))


def span_text(text: str, spans) -> list[str]:
    return [text[a:b] for a, b in spans]


@pytest.fixture
def corpus():
    dup50 = fresh(50)
    docs = [
        fresh(30) + "\n\n" + dup50 + "\n\n" + fresh(30),  # 0: first occurrence
        fresh(20) + "\n\n" + dup50 + "\n\n" + fresh(10),  # 1: later copy, 50/80 tokens
        fresh(400) + "\n\n" + dup50 + "\n\n" + fresh(50),  # 2: later copy, small share
        fresh(100),  # 3: unique
    ]
    return docs, dup50


@pytest.mark.parametrize("method", ["suffix_array", "hashed"])
def test_fifty_token_repeat_found_in_later_copies_only(corpus, method):
    docs, dup50 = corpus
    spans = find_duplicate_spans(docs, min_tokens=50, method=method)
    assert spans[0] == [] and spans[3] == []
    assert span_text(docs[1], spans[1]) == [dup50]
    assert span_text(docs[2], spans[2]) == [dup50]
    # Lee et al.'s behaviour: every occurrence, the first included.
    all_spans = find_duplicate_spans(docs, min_tokens=50, method=method, keep_first=False)
    assert span_text(docs[0], all_spans[0]) == [dup50]


@pytest.mark.parametrize("method", ["suffix_array", "hashed"])
def test_forty_nine_token_repeat_not_found(method):
    dup49 = fresh(49)
    docs = [fresh(10) + " " + dup49 + " " + fresh(10), fresh(5) + " " + dup49 + " " + fresh(5)]
    assert find_duplicate_spans(docs, min_tokens=50, method=method) == [[], []]
    # ... while a threshold of 49 finds it.
    found = find_duplicate_spans(docs, min_tokens=49, method=method)
    assert span_text(docs[1], found[1]) == [dup49]


def test_matches_never_cross_documents():
    x = fresh(50).split()
    docs = [fresh(10) + " " + " ".join(x[:25]), " ".join(x[25:]) + " " + fresh(10), " ".join(x)]
    for method in ("suffix_array", "hashed"):
        assert find_duplicate_spans(docs, min_tokens=50, method=method) == [[], [], []]


def test_repeat_inside_one_document_keeps_first_copy():
    para = fresh(60)
    doc = fresh(5) + "\n" + para + "\n" + fresh(5) + "\n" + para + "\n" + fresh(5)
    (spans,) = find_duplicate_spans([doc], min_tokens=50)
    assert len(spans) == 1 and spans[0][0] > doc.index(para)
    assert span_text(doc, spans) == [para]


def test_periodic_text_keeps_one_window():
    doc = " ".join(["a", "b"] * 100)
    (spans,) = find_duplicate_spans([doc], min_tokens=50)
    out = cut_spans(doc, spans)
    # Two distinct repeated windows exist ("a b ... a b" at even offsets, "b a ... b a"
    # at odd ones); the first occurrence of each survives: tokens 0..50.
    assert out.split() == (["a", "b"] * 26)[:51]


def test_mode_cut(corpus):
    docs, dup50 = corpus
    spans = find_duplicate_spans(docs, min_tokens=50)
    r0 = apply_mode(docs[0], spans[0], Mode.CUT)
    assert r0.text == docs[0] and not r0.dropped  # first occurrence untouched
    r1 = apply_mode(docs[1], spans[1], Mode.CUT)
    assert dup50 not in r1.text and not r1.dropped
    head, _, tail = docs[1].partition("\n\n" + dup50 + "\n\n")
    assert r1.text == head + "\n\n" + tail  # whitespace after the span went with it


def test_mode_mask(corpus):
    docs, dup50 = corpus
    spans = find_duplicate_spans(docs, min_tokens=50)
    r = apply_mode(docs[2], spans[2], "mask")
    assert r.text == docs[2] and not r.dropped
    assert span_text(docs[2], r.spans) == [dup50]


def test_mode_droppartial(corpus):
    docs, dup50 = corpus
    spans = find_duplicate_spans(docs, min_tokens=50)
    r1 = apply_mode(docs[1], spans[1], Mode.DROPPARTIAL)
    assert r1.dropped and r1.reason == "exact_substring_fraction" and r1.dup_fraction > 0.2
    r2 = apply_mode(docs[2], spans[2], Mode.DROPPARTIAL)
    assert not r2.dropped and r2.dup_fraction < 0.2
    assert dup50 not in r2.text  # below the threshold the span is cut ...
    r2k = apply_mode(docs[2], spans[2], Mode.DROPPARTIAL, below_threshold="keep")
    assert r2k.text == docs[2]  # ... or kept, if asked
    assert not apply_mode(docs[0], spans[0], Mode.DROPPARTIAL).dropped


def test_mode_dropany(corpus):
    docs, _ = corpus
    spans = find_duplicate_spans(docs, min_tokens=50)
    dropped = [apply_mode(d, s, Mode.DROPANY).dropped for d, s in zip(docs, spans)]
    assert dropped == [False, True, True, False]


def test_cut_spans_whitespace():
    assert cut_spans("keep DUP more", [(5, 8)]) == "keep more"
    assert cut_spans("keep\n\nDUP", [(6, 9)]) == "keep"
    assert cut_spans("DUP keep", [(0, 3)]) == "keep"
    assert cut_spans("a X b Y c", [(2, 3), (6, 7)]) == "a b c"


def test_suffix_array_and_hashed_windows_agree():
    rng = np.random.default_rng(17)
    words = [f"w{i}" for i in range(300)]
    for trial in range(15):
        shared = list(rng.choice(words, 120))
        docs = []
        for _ in range(8):
            parts = list(rng.choice(words, rng.integers(0, 80)))
            if rng.random() < 0.7:
                a = int(rng.integers(0, 60))
                parts += shared[a : a + int(rng.integers(0, 60))]
            parts += list(rng.choice(words[:4], rng.integers(0, 60)))  # low-entropy runs
            docs.append(" ".join(parts))
        for k in (8, 20, 50):
            toks = [tokenize(d) for d in docs]
            vocab: dict[str, int] = {}
            ids = [np.array([vocab.setdefault(w, len(vocab)) for w in t.words], dtype=np.int64) for t in toks]
            sa = repeated_windows_suffix_array(ids, k)
            hw = repeated_windows_hashed([hash_strings(t.words) for t in toks], k)
            assert sa.as_set() == hw.as_set()
            for keep_first in (True, False):
                assert find_duplicate_spans(docs, min_tokens=k, keep_first=keep_first) == find_duplicate_spans(
                    docs, min_tokens=k, method="hashed", keep_first=keep_first
                )


def test_exact_substring_step(corpus):
    docs, dup50 = corpus
    spans = find_duplicate_spans(docs, min_tokens=50)
    rows = [{"doc_id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    by_id = {f"d{i}": s for i, s in enumerate(spans) if s}
    removed = []
    out, stats = run_steps(
        [ExactSubstringStep(by_id, Mode.DROPPARTIAL)], [dict(r) for r in rows], lambda d, s, r, det: removed.append((d["doc_id"], r))
    )
    kept = list(out)
    assert [d["doc_id"] for d in kept] == ["d0", "d2", "d3"]
    assert removed == [("d1", "exact_substring_fraction")]
    assert dup50 not in kept[1]["text"] and stats[0].check() is None
    out, _ = run_steps([ExactSubstringStep(by_id, "mask")], [dict(r) for r in rows], lambda *a: None)
    masked = list(out)
    assert [m["exact_dup_spans"] for m in masked] == [[], [list(spans[1][0])], [list(spans[2][0])], []]


def test_streamed_token_spans_match_char_spans_and_step_converts_them():
    from corpus_assets.steps.dedup.exact_substring import find_duplicate_token_spans, token_spans_to_char_spans

    shared = " ".join(f"w{i}" for i in range(60))
    docs = [f"intro one {shared} outro", f"head {shared} tail two", "nothing shared here"]
    by_doc, n_docs, n_tokens = find_duplicate_token_spans(lambda: iter(docs), min_tokens=50)
    assert n_docs == 3 and n_tokens == sum(len(d.split()) for d in docs)
    assert by_doc == {1: [(1, 61)]}  # the second copy, tokens 1..60
    (a, b), = token_spans_to_char_spans(docs[1], by_doc[1])
    assert docs[1][a:b] == shared
    assert find_duplicate_spans(docs, min_tokens=50) == [[], [(a, b)], []]
    removed = []
    out, _ = run_steps(
        [ExactSubstringStep({"b": by_doc[1]}, Mode.CUT, spans_in_tokens=True)],
        [{"doc_id": "a", "text": docs[0]}, {"doc_id": "b", "text": docs[1]}],
        lambda d, s, r, det: removed.append(r),
    )
    texts = [d["text"] for d in out]
    assert texts == [docs[0], "head tail two"] and removed == []


@pytest.mark.parametrize("parts", [1, 2, 5])
def test_hashed_windows_in_parts_equal_one_pass(parts):
    from corpus_assets.steps.dedup.exact_substring import repeated_windows_hashed_in_parts

    rng = np.random.default_rng(7)
    docs = [rng.integers(0, 30, size=int(n)).astype(np.uint64) for n in rng.integers(0, 80, size=40)]
    one = repeated_windows_hashed(docs, 4)
    split = repeated_windows_hashed_in_parts(lambda: iter(docs), 4, parts)
    assert one.as_set() == split.as_set() and one.as_set()

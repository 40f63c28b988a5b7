"""URL normalization and the cross-dump URL index."""

from __future__ import annotations

import numpy as np
import pytest

from corpus_assets.steps.base import run_steps
from corpus_assets.steps.dedup.hashing import SortedHashIndex
from corpus_assets.steps.dedup.urls import (
    UrlDedupStep,
    check_urls,
    first_occurrence_mask,
    grow_url_index,
    normalize_url,
    url_hash,
    url_hashes,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("https://example.com/a/b", "https://example.com/a/b"),
        ("HTTP://WWW.Example.COM/a/b", "https://example.com/a/b"),  # scheme, case, www.
        ("http://example.com:80/a", "https://example.com/a"),  # default port
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),  # other port kept
        ("https://example.com/a/#section-2", "https://example.com/a"),  # fragment, trailing /
        ("https://example.com", "https://example.com/"),
        ("https://example.com/", "https://example.com/"),
        ("https://example.com/a/./b/../c", "https://example.com/a/c"),  # dot segments
        ("https://example.com/%7Euser/%2f", "https://example.com/~user/%2F"),  # escapes
        ("https://example.com/p?utm_source=x&utm_medium=y&id=3", "https://example.com/p?id=3"),
        ("https://example.com/p?b=2&a=1&fbclid=XYZ&gclid=1", "https://example.com/p?a=1&b=2"),
        ("https://example.com/p?UTM_Campaign=z&&a=1", "https://example.com/p?a=1"),
        ("https://example.com/p;jsessionid=ABC123?x=1", "https://example.com/p?x=1"),
        ("https://user:pw@example.com/p", "https://example.com/p"),
        ("https://bücher.de./x", "https://xn--bcher-kva.de/x"),  # IDNA, trailing dot
        ("<http://www.example.com/x>", "https://example.com/x"),  # wget quirk
        ("  https://example.com/x  ", "https://example.com/x"),
    ],
)
def test_normalize_url(raw, expected):
    assert normalize_url(raw) == expected


def test_different_resources_stay_different():
    distinct = [
        "https://example.com/a",
        "https://example.com/A",  # path case matters
        "https://example.com/a?id=1",
        "https://example.com/a?id=2",
        "https://www2.example.com/a",
        "https://m.example.com/a",
        "https://example.com:8080/a",
        "https://example.org/a",
        "ftp://example.com/a",
    ]
    assert len({normalize_url(u) for u in distinct}) == len(distinct)


def test_malformed_urls_do_not_raise():
    for u in ["", "not a url", "http://[::1", "http://a.com:notaport/", "mailto:x@example.com"]:
        assert isinstance(normalize_url(u), str)


def test_tracking_copy_has_same_hash():
    assert url_hash("https://news.example.com/story?utm_source=tw") == url_hash("http://www.news.example.com/story/")


def test_index_check_grow_and_parquet_roundtrip(tmp_path):
    dump1 = ["https://a.com/1", "https://a.com/2", "https://b.com/x?utm_source=feed"]
    index0 = SortedHashIndex()
    index1 = grow_url_index(index0, dump1)
    assert len(index0) == 0 and len(index1) == 3  # a new snapshot, the old one untouched
    dump2 = ["http://www.a.com/1", "https://b.com/x", "https://c.com/new", "https://a.com/3"]
    hashes, seen = check_urls(dump2, index1)
    assert seen.tolist() == [True, True, False, False]
    index2 = grow_url_index(index1, hashes[~seen])
    assert len(index2) == 5
    path = tmp_path / "urls.parquet"
    index2.write_parquet(path)
    back = SortedHashIndex.read_parquet(path)
    assert np.array_equal(back.hashes, index2.hashes)
    assert back.contains(url_hashes(["https://c.com/new"])).all()


def test_first_occurrence_mask():
    h = url_hashes(["https://a.com/x", "https://a.com/y", "http://a.com/x?utm_id=1", "https://a.com/y"])
    assert first_occurrence_mask(h).tolist() == [True, True, False, False]


def test_url_dedup_step():
    index = grow_url_index(SortedHashIndex(), ["https://a.com/1"])
    docs = [
        {"doc_id": "n1", "url": "http://www.a.com/1?fbclid=abc"},
        {"doc_id": "n2", "url": "https://a.com/2"},
        {"doc_id": "n3", "url": "https://a.com/2#top"},
    ]
    removed = []
    out, stats = run_steps(
        [UrlDedupStep(index, within_partition=True)], docs, lambda d, s, r, det: removed.append((d["doc_id"], r, det))
    )
    assert [d["doc_id"] for d in out] == ["n2"]
    assert removed == [
        ("n1", "url_seen_in_earlier_dump", "https://a.com/1"),
        ("n3", "url_repeated", "https://a.com/2"),
    ]
    assert stats[0].check() is None

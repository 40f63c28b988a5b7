"""The cross-dump band index records which kept document owns each band key (issue 10,
item 18: a removal names the copy it duplicates)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from corpus_assets.steps.dedup import OwnedHashIndex, composite_band_keys, earlier_matches


def test_the_earliest_owner_of_a_shared_key_wins_and_absent_keys_say_so():
    index = OwnedHashIndex(np.array([30, 10, 20], np.uint64), np.array([5, 1, 2]))
    grown = index.union(np.array([10, 40], np.uint64), np.array([7, 8]))
    assert grown.owners(np.array([10, 20, 30, 40, 50], np.uint64)).tolist() == [1, 2, 5, 8, -2]
    assert len(index) == 3 and len(grown) == 4  # union returns a new index
    assert OwnedHashIndex().owners(np.array([1], np.uint64)).tolist() == [-2]


def test_an_index_written_without_owners_reads_as_unknown_owner():
    old = OwnedHashIndex.from_arrow(pa.table({"hash": pa.array([3, 1], pa.uint64())}))
    assert old.owners(np.array([1, 2], np.uint64)).tolist() == [-1, -2]
    again = OwnedHashIndex.from_arrow(OwnedHashIndex(np.array([9], np.uint64), np.array([4])).to_arrow())
    assert again.owners(np.array([9], np.uint64)).tolist() == [4]


def test_earlier_matches_pairs_each_document_with_the_owners_it_shares_a_band_with():
    earlier_keys = np.array([[11, 12, 13], [21, 22, 23]], np.uint64)  # two kept documents, refs 0 and 1
    composite = composite_band_keys(earlier_keys, 0)
    index = OwnedHashIndex(composite.ravel(), np.repeat(np.array([0, 1]), 3))
    # doc 7 shares band 0 with ref 0 and band 2 with ref 1; doc 8 shares nothing; doc 9
    # has ref 0's band-1 key in band 2 (another band: no match).
    keys = np.array([[11, 99, 23], [98, 97, 96], [95, 94, 12]], np.uint64)
    pairs = earlier_matches(index, np.array([7, 8, 9]), keys, 0)
    assert pairs.tolist() == [[7, 0], [7, 1]]
    assert earlier_matches(OwnedHashIndex(), np.array([7]), keys[:1], 0).shape == (0, 2)

"""Candidate verification (issue 11, item 4), written from the definition: LSH banding
makes candidates; Spark's MinHashLSH similarity join (what GPT-3 used) keeps a candidate
pair only when the similarity computed on the pair's own features passes a threshold. So
a cluster is a connected component of VERIFIED pairs: documents joined only through
pairs below the threshold stay apart."""

from __future__ import annotations

import random

import numpy as np
import pytest

from corpus_assets import dedup_stages
from corpus_assets.config import PipelineConfig
from corpus_assets.stages import run_document_stage
from corpus_assets.steps.base import Step
from corpus_assets.steps.dedup import UnionFind, jaccard, shingle_hashes64, verify_pairs
from corpus_assets.steps.dedup.config import DedupConfig
from corpus_assets.storage import CorpusStore

DUMP = "CC-MAIN-2024-10"


def _words(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(n)]


def _chain_texts() -> dict[str, str]:
    """A and C share nothing; B is half A and half C (Jaccard ~0.3 with each); D is B
    with one word changed (Jaccard ~0.95 with B)."""
    a, c = _words(1, 200), _words(2, 200)
    b = a[100:] + c[:100]
    d = list(b)
    d[150] = "changed"
    return {"A": " ".join(a), "B": " ".join(b), "C": " ".join(c), "D": " ".join(d)}


class _KeepAll(Step):
    name = "keep_all"

    def apply(self, doc):
        return None


def _store_with(tmp_path, texts: dict[str, str]) -> CorpusStore:
    store = CorpusStore(str(tmp_path))
    docs = [{"doc_id": k, "url": f"https://example.org/{k}", "text": t} for k, t in texts.items()]
    run_document_stage(store, dedup_stages.UPSTREAM, DUMP, "000", iter(docs), [_KeepAll()])
    return store


def _clusters(store, config) -> tuple[dict, dict]:
    dedup_stages.build_minhash_signatures(store, DUMP, "000", config)
    dedup_stages.build_minhash_buckets(store, DUMP, ["000"], config, None)
    report = dedup_stages.build_duplicate_clusters(store, DUMP, config)
    table = store.read_table(f"{dedup_stages.CLUSTERS}/{DUMP}/clusters.parquet").to_pylist()
    return report, {r["doc_id"]: r["cluster_id"] for r in table}


def test_verify_pairs_keeps_exactly_the_pairs_at_or_above_the_threshold():
    texts = _chain_texts()
    shingles = {i: shingle_hashes64(t, "gpt3") for i, t in enumerate(texts.values())}
    pairs = np.array([[0, 1], [1, 2], [0, 2], [1, 3]])
    truth = [jaccard(shingles[a], shingles[b]) for a, b in pairs.tolist()]
    assert truth[2] == 0.0 and 0.2 < truth[0] < 0.4 and truth[3] > 0.9
    for threshold in (0.0, 0.25, truth[0], 0.7, 1.0):
        kept = verify_pairs(pairs, shingles, shingles, threshold)
        assert kept.tolist() == [j >= threshold for j in truth]


def test_chain_of_unverified_links_does_not_merge_a_with_c(tmp_path):
    """The gpt3 preset (10 bands of 1 row) pairs A-B and B-C (Jaccard ~0.3): without
    verification connected components put A and C (Jaccard 0) in one cluster."""
    texts = _chain_texts()
    off = PipelineConfig(dedup=DedupConfig(minhash_preset="gpt3", verify_min_jaccard=0))
    report, cluster_of = _clusters(_store_with(tmp_path / "off", texts), off)
    assert report["verify_min_jaccard"] == 0 and report["candidate_pairs_rejected"] == 0
    assert cluster_of["A"] == cluster_of["C"], "precondition: the banding chains A and C together"

    on = PipelineConfig(dedup=DedupConfig(minhash_preset="gpt3"))  # verification on by default for gpt3
    assert on.dedup.candidate_min_jaccard == 0.7
    report, cluster_of = _clusters(_store_with(tmp_path / "on", texts), on)
    assert "A" not in cluster_of and "C" not in cluster_of
    assert cluster_of["B"] == cluster_of["D"], "the verified near-duplicate pair still clusters"
    assert report["candidate_pairs_rejected"] >= 2 and report["candidate_pairs"] - report["candidate_pairs_rejected"] == 1
    assert report["docs_to_remove"] == 1


def test_a_chain_of_verified_links_still_merges_by_definition():
    """Verification filters edges; clustering stays connected components: A~B and B~C
    both verified put A and C together even though A-C alone does not pass."""
    w = _words(3, 240)
    texts = [" ".join(w[0:200]), " ".join(w[20:220]), " ".join(w[40:240])]
    shingles = [shingle_hashes64(t, "gpt3") for t in texts]
    pairs = np.array([[0, 1], [1, 2], [0, 2]])
    kept = verify_pairs(pairs, shingles.__getitem__, shingles.__getitem__, 0.7)  # callables work too
    assert kept.tolist() == [True, True, False]
    uf = UnionFind(3)
    uf.union_pairs(pairs[kept])
    assert len(set(uf.labels().tolist())) == 1


def test_verification_is_available_to_every_preset_and_validated():
    assert DedupConfig().candidate_min_jaccard == 0.0  # refinedweb: off by default
    assert DedupConfig(minhash_preset="fineweb", verify_min_jaccard=0.8).candidate_min_jaccard == 0.8
    assert DedupConfig(minhash_preset="gpt3", verify_min_jaccard=0).candidate_min_jaccard == 0.0
    for bad in (-0.1, 1.5, "0.7", True, float("nan")):
        with pytest.raises(ValueError, match="verify_min_jaccard"):
            DedupConfig(verify_min_jaccard=bad)


def test_refinedweb_with_verification_keeps_true_duplicates(tmp_path):
    texts = _chain_texts()
    config = PipelineConfig(dedup=DedupConfig(verify_min_jaccard=0.8))
    report, cluster_of = _clusters(_store_with(tmp_path, texts), config)
    assert set(cluster_of) == {"B", "D"} and report["candidate_pairs_rejected"] == 0

"""The domain stage functions on a small hand-made rw_deduped, with a stand-in encoder
(hashed bag of words: no model to load), so the chain seeds -> classifiers -> labels ->
subsets, its bad cases (empty text, an empty shard, a dump with no usable seed) and the
``llm`` seed path with its store cache run in seconds."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pytest

from corpus_assets import domain_stages
from corpus_assets.config import PipelineConfig
from corpus_assets.stages import run_document_stage
from corpus_assets.steps.domains import DomainConfig
from corpus_assets.steps.domains.annotator import LlmAnnotator
from corpus_assets.steps.domains.taxonomy import UNCLASSIFIED, load_taxonomy
from corpus_assets.storage import CorpusStore
from corpus_assets_tests.domains_llm_server import run_server

SHARDS = ["000", "001", "002"]
DOC_SCHEMA = pa.schema([("doc_id", pa.string()), ("url", pa.string()), ("text", pa.string())])
TAXONOMY = load_taxonomy()


class HashedBagEncoder:
    """Deterministic stand-in for the sentence encoder: words hashed into 256 dims."""

    model_path = None

    def encode(self, texts):
        out = np.zeros((len(texts), 256), np.float32)
        for i, text in enumerate(texts):
            for w in (text or "").lower().replace(":", " ").replace(",", " ").replace(".", " ").split():
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 256] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def doc(i, domain, words):
    rng = np.random.default_rng(i)
    keywords = list(next(d for d in TAXONOMY.domains if d.name == domain).keywords)
    text = " ".join(rng.choice(keywords, words)) + " " + domain.replace("_", " ")
    # Hosts name the domain (the loopback LLM labels by the words it sees), except every
    # tenth document's, which sits on a host of no domain.
    host = "misc.example" if i % 10 == 9 else f"www.{domain}{i % 2}.example"
    return {"doc_id": f"d{i:04d}", "url": f"https://{host}/page/{i}", "text": text}


def write_dump(store, dump, rows_by_shard):
    for shard in SHARDS:
        run_document_stage(store, "rw_deduped", dump, shard, iter(rows_by_shard.get(shard, [])), [],
                           baseline_docs=10 * max(1, len(rows_by_shard.get(shard, []))), schema=DOC_SCHEMA)


def config(**kw):
    base = dict(rounds=2, seed_min_similarity=0.2, seed_margin=0.05, seed_negative_max_similarity=0.01,
                heldout_fraction=0.2, coarse_epochs=10, coarse_dim=16, fine_epochs=100)
    base.update(kw)
    return PipelineConfig(num_shards=len(SHARDS), domains=DomainConfig(**base))


@pytest.fixture()
def store(tmp_path):
    store = CorpusStore(str(tmp_path / "corpus"))
    rows = [doc(i, ["sports", "food", "law"][i % 3], 8) for i in range(90)]
    rows[5]["text"] = "   "  # empty after extraction: counted, never a crash
    # shard 002 stays empty (every document of it was removed upstream)
    write_dump(store, "D1", {"000": rows[:50], "001": rows[50:]})
    return store


def run_chain(store, dump, cfg, annotator=None):
    encoder = HashedBagEncoder()
    seeds = domain_stages.build_domain_seed_labels(store, dump, SHARDS, cfg, TAXONOMY, encoder, annotator)
    classifiers = domain_stages.build_domain_classifiers(store, dump, SHARDS, cfg, TAXONOMY)
    labels = [domain_stages.build_domain_labels(store, dump, s, cfg, encoder) for s in SHARDS]
    return seeds, classifiers, labels


def test_chain_labels_every_document_once_and_subsets_add_up(store):
    cfg = config()
    seeds, classifiers, labels = run_chain(store, "D1", cfg)
    assert seeds["docs_read"] == 90 and seeds["empty_text"] == 1 and seeds["docs_embedded"] == 89
    assert {"sports", "food", "law"} <= set(seeds["domains_with_seeds"])
    assert classifiers["trained"] and [r["round"] for r in classifiers["rounds"]] == [1, 2]
    assert [lab["docs"] for lab in labels] == [50, 40, 0]
    for shard in SHARDS:
        assert domain_stages.verify_labels(store, "D1", shard)[0]
    rows = [r for s in SHARDS for r in store.read_table(domain_stages.labels_path("D1", s)).to_pylist()]
    assert next(r for r in rows if r["doc_id"] == "d0005")["reason"] == "empty_text"
    right = sum(1 for r in rows if r["doc_id"] != "d0005" and r["domain"] == ["sports", "food", "law"][int(r["doc_id"][1:]) % 3])
    assert right / 89 > 0.8  # an easy corpus: the cascade gets it
    names = TAXONOMY.names + [UNCLASSIFIED]
    total = sum(domain_stages.build_domain_subset(store, "D1", d, SHARDS)["docs"] for d in names)
    assert total == 90
    for d in ("sports", UNCLASSIFIED):
        passed, facts = domain_stages.verify_subset(store, "D1", d, SHARDS, names)
        assert passed, facts


def test_same_inputs_same_labels(store, tmp_path):
    cfg = config()
    run_chain(store, "D1", cfg)
    first = [store.read_table(domain_stages.labels_path("D1", s)) for s in SHARDS]
    run_chain(store, "D1", cfg)
    assert all(a.equals(store.read_table(domain_stages.labels_path("D1", s))) for a, s in zip(first, SHARDS))


def test_a_dump_without_usable_seeds_is_all_unclassified(store):
    cfg = config(seed_min_similarity=0.99)  # nothing is confident enough
    seeds, classifiers, labels = run_chain(store, "D1", cfg)
    assert seeds["doi_seeds"] == 0 and not classifiers["trained"]
    assert sum(lab["docs"] for lab in labels) == 90
    reasons = {}
    for lab in labels:
        for k, v in lab["unclassified_reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    assert reasons == {"no_seed_labels": 89, "empty_text": 1}


def test_an_empty_dump_materializes(tmp_path):
    store = CorpusStore(str(tmp_path / "empty"))
    write_dump(store, "D0", {})
    seeds, classifiers, labels = run_chain(store, "D0", config())
    assert seeds["docs_read"] == 0 and not classifiers["trained"] and all(lab["docs"] == 0 for lab in labels)
    assert domain_stages.build_domain_subset(store, "D0", UNCLASSIFIED, SHARDS)["docs"] == 0
    assert domain_stages.verify_subset(store, "D0", UNCLASSIFIED, SHARDS, TAXONOMY.names + [UNCLASSIFIED])[0]


def test_llm_seeds_label_roots_first_and_a_rerun_pays_nothing(store):
    cfg = config(annotator="llm")
    with run_server() as (url, script):
        def annotator():
            cache = domain_stages.load_llm_cache(store, "test-model", "v1")
            return LlmAnnotator(url, "test-model", TAXONOMY.names, batch_size=8, timeout_s=2, backoff_s=0.01,
                                cache=cache, sleep=lambda s: None)

        seeds = domain_stages.build_domain_seed_labels(store, "D1", SHARDS, cfg, TAXONOMY, HashedBagEncoder(), annotator())
        first_requests = len(script.requests)
        # Roots first (7 hosts, one batch), then only the documents of roots with a domain.
        assert "root URL" in script.requests[0]["messages"][0]["content"]
        asked_roots = [it["input"] for it in json.loads(script.requests[0]["messages"][1]["content"])]
        assert sorted(asked_roots)[:3] == ["food0.example", "food1.example", "law0.example"]
        assert all("root URL" not in r["messages"][0]["content"] for r in script.requests[1:])
        rows = store.read_table("domain_seed_labels/D1/seeds.parquet").to_pylist()
        on_misc = [r for r in rows if int(r["doc_id"][1:]) % 10 == 9]
        assert on_misc and all(r["label"] == "none" and r["source"] == "llm_root" for r in on_misc)
        others = [r for r in rows if int(r["doc_id"][1:]) % 10 != 9]
        assert all(r["source"] == "llm" and r["label"] == ["sports", "food", "law"][int(r["doc_id"][1:]) % 3]
                   for r in others)
        assert seeds["annotator_stats"]["labelled"] == 7 + len(others)
        again = domain_stages.build_domain_seed_labels(store, "D1", SHARDS, cfg, TAXONOMY, HashedBagEncoder(), annotator())
        assert len(script.requests) == first_requests  # every answer came from the store's cache
        assert again["annotator_stats"]["cached"] == 7 + len(others)
        assert store.read_table("domain_seed_labels/D1/seeds.parquet").to_pylist() == rows


def test_a_stage_stopped_by_a_dead_llm_keeps_the_answers_it_paid_for(store):
    from corpus_assets.steps.domains.annotator import LlmUnavailable
    cfg = config(annotator="llm")
    with run_server() as (url, script):
        script.steps = ["ok", "ok"]  # the roots, one batch of documents; then the server dies
        script.default = "503"
        ann = LlmAnnotator(url, "test-model", TAXONOMY.names, batch_size=8, timeout_s=2, max_retries=0,
                           cache={}, sleep=lambda s: None, max_failed_batches=2)
        with pytest.raises(LlmUnavailable):
            domain_stages.build_domain_seed_labels(store, "D1", SHARDS, cfg, TAXONOMY, HashedBagEncoder(), ann)
        assert len(domain_stages.load_llm_cache(store, "test-model", "v1")) == 7 + 8


def test_conservation_fails_when_labels_name_domains_that_are_no_partition(store):
    # labels made with the 67-domain taxonomy; subsets now come from a 1-domain one
    run_chain(store, "D1", config())
    partitions = ["sports", UNCLASSIFIED]
    for d in partitions:
        domain_stages.build_domain_subset(store, "D1", d, SHARDS)
    passed, facts = domain_stages.verify_subset(store, "D1", "sports", SHARDS, partitions)
    assert not passed
    assert {"food", "law"} <= set(facts["domains_without_partition"])
    assert "sports" not in facts["domains_without_partition"]
    names = TAXONOMY.names + [UNCLASSIFIED]
    assert domain_stages.verify_subset(store, "D1", "sports", SHARDS, names)[0]


def test_benchmarks_sharing_a_stem_stay_apart_and_bad_lines_are_counted(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "gsm8k.test.jsonl").write_text('{"question": "a"}\n[1, 2]\n"text"\nnot json\n')
    (bench / "gsm8k.train.jsonl").write_text('{"question": "b"}\n{"question": "c"}\n')
    cfg = PipelineConfig(num_shards=len(SHARDS), domains=DomainConfig(
        benchmark_dir=str(bench), benchmark_files=("gsm8k.test.jsonl", "gsm8k.train.jsonl")))
    report = domain_stages.build_domain_benchmark_similarity(CorpusStore(str(tmp_path / "c")), [], SHARDS, cfg,
                                                             HashedBagEncoder())
    assert len(report["benchmarks"]) == 2
    assert report["benchmark_skipped_lines"] == {"gsm8k.test.jsonl": 3, "gsm8k.train.jsonl": 0}

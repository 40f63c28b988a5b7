"""The domain assets through Dagster on both sample dumps: seed labels, classifiers (every
round kept), labels with their blocking check, subsets with their conservation check,
and the two analyses, whose tables and heatmap are read back from the materializations.

The sample's rw_deduped is a copy of the session's ``sample_run`` corpus (which stays
read-only); the encoder is loaded once per process and shared by every asset."""

from __future__ import annotations

import dataclasses
import shutil

import dagster as dg
import pytest

from corpus_assets import domain_stages
from corpus_assets.assets.domains import domain_names, subset_partition_key
from corpus_assets.definitions import build_definitions
from corpus_assets.partitions import DUMP_DIM, shard_keys, shard_partition_key
from corpus_assets.steps.domains.taxonomy import UNCLASSIFIED
from corpus_assets.storage import CorpusStore
from corpus_assets_tests.helpers import QUIET, latest, materialize

DUMPS = ["CC-MAIN-2024-10", "CC-MAIN-2024-18"]


def latest_unpartitioned(instance, asset):
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset)), limit=1).records
    return {k: v.value for k, v in records[0].event_log_entry.asset_materialization.metadata.items()}


@pytest.fixture(scope="module")
def domain_run(sample_run, tmp_path_factory, shared_data):
    corpus = tmp_path_factory.mktemp("domain_corpus") / "corpus"
    shutil.copytree(sample_run.store.root, corpus)
    cfg = sample_run.config
    config = dataclasses.replace(cfg, domains=dataclasses.replace(
        cfg.domains, rounds=2, benchmark_dir=str(shared_data / "benchmarks"), similarity_sample_size=16))
    defs = build_definitions(config=config, corpus_root=str(corpus), crawl_root=str(shared_data))
    shards = shard_keys(config.num_shards)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DUMP_DIM, DUMPS)
        for dump in DUMPS:
            materialize(defs, instance, ["domain_seed_labels", "domain_classifiers"], dump)
            for shard in shards:
                materialize(defs, instance, ["domain_labels"], shard_partition_key(dump, shard), check_count=1)
        yield defs, instance, config, CorpusStore(str(corpus)), shards


def test_every_document_gets_exactly_one_label(domain_run):
    defs, instance, config, store, shards = domain_run
    for dump in DUMPS:
        for shard in shards:
            meta = latest(instance, "domain_labels", shard_partition_key(dump, shard))
            upstream = store.row_count(f"rw_deduped/{dump}/{shard}/documents.parquet")
            assert meta["docs"] == upstream
            table = store.read_table(domain_stages.labels_path(dump, shard))
            assert table.num_rows == upstream
            assert set(table.column_names) == {"doc_id", "domain", "score", "runner_up", "runner_up_score", "round",
                                               "reason", "chars"}  # an attribute table: no text
            rows = table.to_pylist()
            assert all((r["domain"] == UNCLASSIFIED) == bool(r["reason"]) for r in rows)
            assert all(1 <= r["round"] <= 2 for r in rows)


def test_rounds_are_kept_with_their_bookkeeping(domain_run):
    defs, instance, config, store, shards = domain_run
    meta = latest(instance, "domain_classifiers", DUMPS[0])
    assert meta["rounds"] == 2
    rows = [r.data for r in meta["per_round"].records]
    assert {r["round"] for r in rows} == {1, 2}
    by = {(r["round"], r["domain"]): r for r in rows}
    for (k, d), r in by.items():
        if k == 2 and (1, d) in by:
            assert r["docs"] == by[(1, d)]["docs"] + r["gained"] - r["lost"]
    for k in (1, 2):
        assert store.exists(f"domain_classifiers/{DUMPS[0]}/round_{k}/coarse.parquet")
        assert store.exists(f"domain_classifiers/{DUMPS[0]}/round_{k}/labels.parquet")
    seeds = latest(instance, "domain_seed_labels", DUMPS[0])
    assert seeds["docs_read"] == seeds["docs_embedded"] + seeds["empty_text"]
    assert seeds["doi_seeds"] + seeds["doni_all_seeds"] + seeds["abstained"] == seeds["docs_embedded"]
    assert seeds["doi_seeds"] > 0


def test_subsets_conserve_documents(domain_run):
    defs, instance, config, store, shards = domain_run
    for dump in DUMPS:
        docs_in = sum(store.row_count(f"rw_deduped/{dump}/{s}/documents.parquet") for s in shards)
        counts = {}
        for shard in shards:
            for d in store.read_table(domain_stages.labels_path(dump, shard), columns=["domain"]).column("domain").to_pylist():
                counts[d] = counts.get(d, 0) + 1
        biggest = max((d for d in counts if d != UNCLASSIFIED), key=counts.get, default=None)
        # Through Dagster, with the blocking check: unclassified and the largest domain.
        for domain in [UNCLASSIFIED] + ([biggest] if biggest else []):
            materialize(defs, instance, ["domain_subsets"], subset_partition_key(dump, domain), check_count=1)
            meta = latest(instance, "domain_subsets", subset_partition_key(dump, domain))
            assert meta["docs"] == counts[domain]
            assert meta["share_of_dump"] == pytest.approx(counts[domain] / docs_in, abs=1e-6)
        # Every domain's subset, by the stage: documents in = the sum over subsets.
        total = sum(domain_stages.build_domain_subset(store, dump, d, shards)["docs"] for d in domain_names(config))
        assert total == docs_in
        passed, facts = domain_stages.verify_subset(store, dump, UNCLASSIFIED, shards, domain_names(config))
        assert passed and facts["every_doc_in_one_subset"]


def test_subset_check_fails_when_a_label_row_is_lost(domain_run, tmp_path):
    defs, instance, config, store, shards = domain_run
    dump, shard = DUMPS[1], shards[0]
    broken = CorpusStore(str(tmp_path / "broken"))
    shutil.copytree(store.root, broken.root)
    table = broken.read_table(domain_stages.labels_path(dump, shard))
    with broken.table_writer(domain_stages.labels_path(dump, shard), table.schema) as writer:
        writer.write_table(table.slice(1))  # one document lost its label
    domain_stages.build_domain_subset(broken, dump, UNCLASSIFIED, shards)
    passed, facts = domain_stages.verify_subset(broken, dump, UNCLASSIFIED, shards, domain_names(config))
    assert not passed and facts["dump_docs_in"] == facts["dump_label_rows"] + 1


def test_analyses_render_in_the_ui(domain_run):
    defs, instance, config, store, shards = domain_run
    result = dg.materialize(defs.assets, selection=["domain_benchmark_similarity", "domain_url_overlap"],
                            instance=instance, resources=defs.resources, run_config=QUIET)
    assert result.success
    sim = latest_unpartitioned(instance, "domain_benchmark_similarity")
    assert set(sim["benchmarks"]) == {"gsm8k_test", "HumanEval"}
    rows = [r.data for r in sim["distances"].records]
    if sim["domains_compared"]:
        assert rows and all(r["mmd"] >= 0 and r["sliced_wasserstein"] >= 0 for r in rows)
        assert sim["heatmap"].startswith("![") and "data:image/png;base64," in sim["heatmap"]
        assert sim["bandwidth"] > 0
    url = latest_unpartitioned(instance, "domain_url_overlap")
    tfidf = [r.data for r in url["url_tfidf"].records]
    assert url["domains"] == len({r["domain"] for r in tfidf})
    assert all(r["idf"] >= 0 for r in tfidf)

"""RW-Deduped through Dagster: fuzzy, exact substring and URL dedup on the fixture crawl and
on the shared sample, crawl order, and what re-materializing an older dump does."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from corpus_assets import dedup_stages
from corpus_assets.definitions import build_definitions
from corpus_assets.partitions import shard_keys
from corpus_assets.resources import CorpusStoreResource
from corpus_assets.stages import documents_path, removed_path
from corpus_assets.steps.dedup import normalize_url
from corpus_assets.steps.dedup.evaluation import evaluate_presets
from corpus_assets.steps.dedup.exact_substring import find_duplicate_token_spans
from corpus_assets.storage import CorpusStore
from corpus_assets_tests.helpers import dedup_dump, latest, materialize, pipeline_run, sum_reasons

D10, D18 = "CC-MAIN-2024-10", "CC-MAIN-2024-18"
RETENTION_KEYS = {"docs_in", "docs_out", "docs_removed", "retention", "chars_in", "chars_out",
                  "cumulative_retention", "removed_by_reason"}


@pytest.fixture(scope="module")
def fixture_dedup(tmp_path_factory, fixture_crawl):
    # Given out of order on purpose: dedup sorts dumps by crawl date.
    with pipeline_run(fixture_crawl / "pipeline.yaml", fixture_crawl, tmp_path_factory.mktemp("dedup_corpus"),
                      [D18, D10]) as run:
        yield run


def _removed_rows(store, dump, num_shards):
    rows = []
    for shard in shard_keys(num_shards):
        rows += [r for r in store.read_table(removed_path("rw_deduped", dump, shard)).to_pylist()]
    return rows


def _kept(store, dump, num_shards):
    docs = []
    for shard in shard_keys(num_shards):
        docs += list(store.iter_rows(documents_path("rw_deduped", dump, shard)))
    return docs


def _filtered_urls(store, dump, num_shards):
    return {d["url"]: d for s in shard_keys(num_shards) for d in store.iter_rows(documents_path("rw_filtered", dump, s))}


def test_fixture_copies_are_removed_with_their_keeper_named(fixture_dedup):
    defs, instance, config, store = fixture_dedup
    filtered = _filtered_urls(store, D10, config.num_shards)
    original = filtered["https://news.example.org/science/river-survey"]
    copy = filtered["https://news.example.org/science/river-survey?utm_source=feed"]
    removed = {r["doc_id"]: r for r in _removed_rows(store, D10, config.num_shards)}
    assert set(removed) == {copy["doc_id"]}, "only the tracking-URL copy is a duplicate in the first dump"
    assert removed[copy["doc_id"]]["reason"] == "minhash_duplicate"
    assert f"kept={original['doc_id']}" in removed[copy["doc_id"]]["detail"]
    kept = {d["doc_id"]: d for d in _kept(store, D10, config.num_shards)}
    assert kept[original["doc_id"]]["minhash_cluster_size"] == 2

    # The second dump re-crawled two first-dump pages: both go, the earlier copies stay.
    recrawls = _filtered_urls(store, D18, config.num_shards)
    gone = {r["url"]: r for r in _removed_rows(store, D18, config.num_shards)}
    assert {u for u in recrawls} <= set(gone)
    assert {r["reason"] for r in gone.values()} == {"minhash_duplicate_of_earlier_dump"}
    # "Duplicate of what?": each names the first dump's kept copy of the page and its dump.
    kept10 = {d["url"]: d["doc_id"] for d in _kept(store, D10, config.num_shards)}
    for url, row in gone.items():
        assert f"kept={kept10[url]} kept_dump={D10}" in row["detail"], row["detail"]
    for dump in (D10, D18):
        for shard in shard_keys(config.num_shards):
            meta = latest(instance, "rw_deduped", f"{dump}|{shard}")
            assert RETENTION_KEYS <= set(meta)
            assert [r.data["step"] for r in meta["funnel"].records] == ["minhash_dedup", "exact_substring_dedup", "url_dedup"]


def test_a_later_dump_cannot_be_deduplicated_before_an_earlier_one(tmp_path, fixture_dedup):
    defs, instance, config, store = fixture_dedup
    empty = CorpusStore(str(tmp_path))
    with pytest.raises(dedup_stages.DedupOrderError, match="deduplicate CC-MAIN-2024-10 first"):
        dedup_stages.earlier_snapshot(empty, D18, [D10, D18], "refinedweb")
    assert dedup_stages.earlier_snapshot(empty, D10, [D10, D18], "refinedweb") is None
    # A different preset's band keys can never match: refuse instead of silently missing.
    with pytest.raises(dedup_stages.DedupOrderError, match="band keys"):
        dedup_stages.earlier_snapshot(store, D18, [D10, D18], "fineweb")


def test_dedup_order_sensor_launches_dumps_in_crawl_order(tmp_path, fixture_dedup):
    defs, instance, config, store = fixture_dedup
    sensor = defs.get_sensor_def("dedup_order_sensor")

    def evaluate(root):
        ctx = dg.build_sensor_context(instance=instance, resources={"corpus_store": CorpusStoreResource(root=str(root))})
        return sensor(ctx)

    assert evaluate(store.root).skip_message.startswith("every dump is indexed")
    copy = tmp_path / "corpus"
    shutil.copytree(store.root, copy)
    # The sensor drives the dump's stages in order, each when its input changed: the
    # index alone missing -> dedup_index; rw_deduped behind the clusters -> rw_deduped.
    shutil.rmtree(copy / "dedup_index" / D18)
    request = evaluate(copy)
    assert (request.partition_key, request.job_name) == (D18, "dedup_index_job")
    shutil.rmtree(copy / "rw_deduped" / D18 / "001")
    (request,) = evaluate(copy)
    assert (request.partition_key, request.job_name) == (f"{D18}|001", "rw_deduped_job")
    # D18 as if its dedup had never run.
    shutil.rmtree(copy / "duplicate_clusters" / D18)
    d10_snapshot = dedup_stages.load_snapshot(store, D10).snapshot_id
    request = evaluate(copy)
    assert request.partition_key == D18 and request.job_name == "dump_dedup_job"
    assert request.run_key.startswith(f"dedup:{D18}:{d10_snapshot}:")
    shutil.rmtree(copy / "dedup_index" / D10)
    request = evaluate(copy)
    assert request.partition_key == D10, "the earlier dump goes first"


def test_rematerializing_an_older_dump_never_silently_changes_a_newer_one(fixture_dedup, fixture_crawl):
    defs, instance, config, store = fixture_dedup
    root = Path(store.root)
    d18_files = {p: p.read_bytes() for p in (root / "rw_deduped" / D18).rglob("*.parquet")}
    d10_files = {p: p.read_bytes() for p in (root / "rw_deduped" / D10).rglob("*.parquet")}
    d10_snapshot = dedup_stages.load_snapshot(store, D10).snapshot_id

    # 1. Same settings: the older dump's dedup is deterministic and ignores newer dumps,
    #    so its output and its index snapshot come back identical; the chain holds.
    dedup_dump(defs, instance, D10, config.num_shards)
    assert {p: p.read_bytes() for p in d10_files} == d10_files
    assert dedup_stages.load_snapshot(store, D10).snapshot_id == d10_snapshot
    assert dedup_stages.index_chain_status(store, D18, [D10, D18])[0]

    # 2. The older dump now keeps something else (its second shard is filtered away by a
    #    stricter threshold), and its dedup and index are re-materialized.
    strict = dataclasses.replace(config, quality_thresholds=dataclasses.replace(config.quality_thresholds, min_words=10_000))
    strict_defs = build_definitions(config=strict, corpus_root=store.root, crawl_root=str(fixture_crawl))
    materialize(strict_defs, instance, ["rw_filtered", "minhash_signatures"], f"{D10}|001")
    index_run = dedup_dump(defs, instance, D10, config.num_shards)
    assert dedup_stages.load_snapshot(store, D10).snapshot_id != d10_snapshot

    # The newer dump's output is untouched, and the UI says it is based on an old index.
    assert {p: p.read_bytes() for p in d18_files} == d18_files
    passed, facts = dedup_stages.index_chain_status(store, D18, [D10, D18])
    assert not passed and "re-run" in facts["problem"]
    assert dedup_stages.dumps_built_on_an_older_snapshot(store, D10, [D10, D18]) == [D18]
    (evaluation,) = index_run.get_asset_check_evaluations()
    assert evaluation.check_name == "index_chain"
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert not evaluation.metadata["dumps"].value[D18]["passed"]
    # Indexing the newer dump on top of the changed one is refused until it is re-run.
    with pytest.raises(dedup_stages.DedupOrderError):
        dedup_stages.build_dedup_index(store, D18, shard_keys(config.num_shards), config, [D10, D18])

    # 3. Re-running the newer dump deduplicates it against the new index: the page whose
    #    first-dump copy is gone now stays in the newer dump.
    dedup_dump(defs, instance, D18, config.num_shards)
    assert dedup_stages.index_chain_status(store, D18, [D10, D18])[0]
    assert dedup_stages.dumps_built_on_an_older_snapshot(store, D10, [D10, D18]) == []
    kept_urls = {d["url"] for d in _kept(store, D18, config.num_shards)}
    assert "https://magazine.example.com/history/old-lighthouse" in kept_urls  # was in D10 shard 001
    assert "https://news.example.org/science/river-survey" not in kept_urls  # D10 shard 000 still has it


# -- the shared sample -----------------------------------------------------------------

def _sample_filtered(run):
    docs = []
    for dump in (D10, D18):
        for shard in shard_keys(run.config.num_shards):
            docs += list(run.store.iter_rows(documents_path("rw_filtered", dump, shard), columns=["doc_id", "url", "dump", "text"]))
    return docs


def test_sample_dedup_materializes_with_retention_per_stage(sample_run):
    for dump in (D10, D18):
        totals = sum_reasons(sample_run.instance, "rw_deduped", dump, sample_run.config.num_shards)
        assert totals, f"{dump}: the sample's duplicates must be removed"
        for shard in shard_keys(sample_run.config.num_shards):
            meta = latest(sample_run.instance, "rw_deduped", f"{dump}|{shard}")
            filtered = latest(sample_run.instance, "rw_filtered", f"{dump}|{shard}")
            assert RETENTION_KEYS <= set(meta)
            assert meta["docs_in"] == filtered["docs_out"]
            assert meta["cumulative_retention"] <= filtered["cumulative_retention"]
    within = sum_reasons(sample_run.instance, "rw_deduped", D10, sample_run.config.num_shards)
    assert set(within) == {("minhash_dedup", "minhash_duplicate")}
    across = sum_reasons(sample_run.instance, "rw_deduped", D18, sample_run.config.num_shards)
    assert across[("minhash_dedup", "minhash_duplicate_of_earlier_dump")] > 0


def test_sample_every_fuzzy_removal_names_the_kept_copy_and_its_dump(sample_run):
    """Lineage answers "duplicate of what?": a kept document of the same or an earlier dump."""
    store, n = sample_run.store, sample_run.config.num_shards
    kept = {dump: {d["doc_id"] for d in _kept(store, dump, n)} for dump in (D10, D18)}
    fuzzy = 0
    for dump in (D10, D18):
        for row in _removed_rows(store, dump, n):
            if row["step"] != "minhash_dedup":
                continue
            fuzzy += 1
            fields = dict(part.split("=", 1) for part in row["detail"].split())
            keeper_dump = D10 if row["reason"] == "minhash_duplicate_of_earlier_dump" else dump
            assert fields["kept_dump"] == keeper_dump, row
            assert fields["kept"] in kept[keeper_dump], row
    assert fuzzy >= 30


def test_sample_planted_duplicates_are_caught_by_the_right_stage(sample_run):
    """Every planted copy (tracking URL, /amp/ near-duplicate, re-crawl) that survived
    filtering is removed by fuzzy dedup, unless it is the one copy kept of its group."""
    store, n = sample_run.store, sample_run.config.num_shards
    docs = _sample_filtered(sample_run)
    removed = {}
    for dump in (D10, D18):
        removed.update({r["doc_id"]: r for r in _removed_rows(store, dump, n)})

    def base(url):
        u = normalize_url(url)
        return u[: -len("/amp")] if u.endswith("/amp") else u

    groups: dict = {}
    for d in docs:
        groups.setdefault(base(d["url"]), []).append(d)
    planted = 0
    for members in groups.values():
        if len(members) < 2:
            continue
        planted += len(members) - 1
        survivors = [m for m in members if m["doc_id"] not in removed]
        assert len(survivors) == 1, [m["url"] for m in members]
        assert survivors[0]["dump"] == D10 or all(m["dump"] == D18 for m in members), "the earlier dump's copy is kept"
        for m in members:
            if m["doc_id"] in removed:
                assert removed[m["doc_id"]]["step"] == "minhash_dedup"
                expected = "minhash_duplicate_of_earlier_dump" if m["dump"] == D18 and survivors[0]["dump"] == D10 \
                    else "minhash_duplicate"
                assert removed[m["doc_id"]]["reason"] == expected
    assert planted >= 30, "the sample's planted duplicates that survive filtering"


def test_sample_fuzzy_precision_and_recall_against_exact_jaccard(sample_run):
    texts = [d["text"] for d in _sample_filtered(sample_run)]
    (quality,) = evaluate_presets(texts, ["refinedweb"], [0.8])
    assert quality.truly_redundant_docs >= 30
    assert quality.doc_precision >= 0.95 and quality.doc_recall >= 0.95
    assert quality.pair_recall >= 0.95


@pytest.mark.parametrize("min_tokens", [50, 20])
@pytest.mark.parametrize("keep_first", [True, False])
def test_sample_suffix_array_and_hashed_windows_find_the_same_spans(sample_run, min_tokens, keep_first):
    texts = [d["text"] for d in _sample_filtered(sample_run)]
    reference, n_docs, n_tokens = find_duplicate_token_spans(
        lambda: texts, min_tokens=min_tokens, method="suffix_array", keep_first=keep_first)
    assert reference, "the sample repeats boilerplate paragraphs across pages"
    for parts in (1, 3):
        hashed = find_duplicate_token_spans(lambda: texts, min_tokens=min_tokens, method="hashed",
                                            hash_parts=parts, keep_first=keep_first)
        assert hashed == (reference, n_docs, n_tokens)
    if not keep_first:
        # Every occurrence struck: each span is a whole repeat, so at least min_tokens long.
        # (Keeping first occurrences may shorten a later copy where it overlaps a first one.)
        for spans in reference.values():
            assert all(b - a >= min_tokens for a, b in spans)


def test_sample_index_grows_dump_by_dump(sample_run):
    store = sample_run.store
    first = dedup_stages.load_snapshot(store, D10)
    second = dedup_stages.load_snapshot(store, D18)
    assert first.manifest["dumps"] == [D10] and second.manifest["dumps"] == [D10, D18]
    assert second.manifest["previous_snapshot"] == first.snapshot_id
    kept10 = sum(len(_kept_ids) for _kept_ids in [
        [d for s in shard_keys(sample_run.config.num_shards) for d in store.iter_rows(documents_path("rw_deduped", D10, s), columns=["doc_id"])]])
    assert first.manifest["docs_added"] == kept10
    urls = first.url_index()
    assert len(second.url_index()) > len(urls)
    probe = np.array([dedup_stages.url_hashes([d["url"]])[0] for d in _kept(store, D10, sample_run.config.num_shards)[:5]])
    assert urls.contains(probe).all()

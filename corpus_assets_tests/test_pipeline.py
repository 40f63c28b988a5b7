"""End to end through Dagster: every asset materializes, metadata and checks are there,
and a threshold change re-runs only the decision asset."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dagster as dg
import pytest

from corpus_assets.config import load_config
from corpus_assets.definitions import SHARD_ASSETS, build_definitions
from corpus_assets_tests.helpers import QUIET, code_versions, SHARD_DOCUMENT_ASSETS, latest, pipeline_run, reasons, sum_reasons
from corpus_assets.partitions import DUMP_DIM, shard_keys
from corpus_assets.stages import documents_path, removed_path

RETENTION_KEYS = {"docs_in", "docs_out", "docs_removed", "retention", "chars_in", "chars_out",
                  "cumulative_retention", "removed_by_reason"}
_latest, _reasons, _sum_reasons = latest, reasons, sum_reasons


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory, fixture_crawl):
    with pipeline_run(fixture_crawl / "pipeline.yaml", fixture_crawl, tmp_path_factory.mktemp("corpus"),
                      ["CC-MAIN-2024-10", "CC-MAIN-2024-18"], dedup=False) as run:
        yield run


def test_fixture_crawl_every_partition_has_retention_metadata(fixture_run):
    defs, instance, config, store = fixture_run
    for dump in ("CC-MAIN-2024-10", "CC-MAIN-2024-18"):
        for shard in shard_keys(config.num_shards):
            for asset in SHARD_DOCUMENT_ASSETS:
                meta = _latest(instance, asset, f"{dump}|{shard}")
                assert RETENTION_KEYS <= set(meta), asset
                assert meta["docs_in"] == meta["docs_out"] + meta["docs_removed"]
                assert sum(_reasons(meta).values()) == meta["docs_removed"]


def test_fixture_crawl_removals_have_the_right_reasons(fixture_run):
    defs, instance, config, store = fixture_run
    raw = _sum_reasons(instance, "raw_documents", "CC-MAIN-2024-10", config.num_shards)
    assert raw == {("raw_documents", "http_status_not_200"): 1, ("raw_documents", "not_html"): 1}
    rw_raw = _sum_reasons(instance, "rw_raw", "CC-MAIN-2024-10", config.num_shards)
    assert rw_raw[("url_filter", "blocklisted_domain")] == 1
    # The German article: the language pre-screen removes it before extraction.
    assert rw_raw[("language_prescreen", "few_selected_language_words")] == 1
    assert rw_raw[("extraction", "no_main_text")] == 1  # the cart page
    truncated = _sum_reasons(instance, "raw_documents", "CC-MAIN-2024-18", config.num_shards)
    assert truncated == {("raw_documents", "read_error"): 1}
    # The ledger answers "why was this page dropped?" with a way back to the WARC record.
    ledger = store.read_table(removed_path("rw_raw", "CC-MAIN-2024-10", "001")).to_pylist()
    blocked = [r for r in ledger if r["reason"] == "blocklisted_domain"]
    assert blocked[0]["url"].startswith("https://casino-jackpot.example-bets.com")
    assert blocked[0]["warc_path"].endswith(".warc.gz") and blocked[0]["warc_offset"] >= 0
    kept = list(store.iter_rows(documents_path("rw_filtered", "CC-MAIN-2024-10", "000")))
    assert kept and all(d["language"] == "en" and d["text"] for d in kept)


def test_threshold_change_marks_only_decisions_stale_and_reuses_signals(fixture_run, fixture_crawl):
    defs, instance, config, store = fixture_run
    strict = dataclasses.replace(config, quality_thresholds=dataclasses.replace(
        config.quality_thresholds, min_words=10_000))
    changed = build_definitions(config=strict, corpus_root=store.root, crawl_root=str(fixture_crawl))
    old_versions = code_versions(defs)
    new_versions = code_versions(changed)
    assert {k for k in old_versions if old_versions[k] != new_versions[k]} == {"rw_filtered"}

    # What the UI's staleness compares: the code version each partition was materialized
    # with (recorded on the event) against the code version the definitions now declare.
    partition = "CC-MAIN-2024-10|000"
    stale = set()
    for asset in SHARD_ASSETS:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
        recorded = records[0].event_log_entry.asset_materialization.tags["dagster/code_version"]
        assert recorded == old_versions[asset]
        if recorded != new_versions[asset]:
            stale.add(asset)
    assert stale == {"rw_filtered"}

    signals_file = Path(store.uri(documents_path("rw_quality_signals", "CC-MAIN-2024-10", "000")))
    before = signals_file.stat().st_mtime_ns
    signal_runs = len(instance.fetch_materializations(dg.AssetKey("rw_quality_signals"), limit=1000).records)
    result = dg.materialize(changed.assets, selection=["rw_filtered"], partition_key=partition,
                            instance=instance, resources=changed.resources, run_config=QUIET)
    assert result.success
    assert signals_file.stat().st_mtime_ns == before, "signals were not recomputed"
    assert len(instance.fetch_materializations(dg.AssetKey("rw_quality_signals"), limit=1000).records) == signal_runs
    meta = _latest(instance, "rw_filtered", partition)
    assert meta["docs_out"] == 0 and _reasons(meta)[("gopher_quality", "word_count_low")] == meta["docs_in"]


def test_rerun_is_deterministic(fixture_run):
    defs, instance, config, store = fixture_run
    path = Path(store.uri(documents_path("rw_raw", "CC-MAIN-2024-10", "000")))
    before = path.read_bytes()
    assert dg.materialize(defs.assets, selection=["rw_raw"], partition_key="CC-MAIN-2024-10|000",
                          instance=instance, resources=defs.resources, run_config=QUIET).success
    assert path.read_bytes() == before


def test_eager_automation_fans_a_new_manifest_out_to_every_shard(tmp_path, fixture_crawl):
    config = load_config(fixture_crawl / "pipeline.yaml")
    defs = build_definitions(config=config, corpus_root=str(tmp_path), crawl_root=str(fixture_crawl))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DUMP_DIM, ["CC-MAIN-2024-10"])
        # One tick before the manifest exists: nothing can run yet.
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0
        assert dg.materialize(defs.assets, selection=["crawl_manifest"], partition_key="CC-MAIN-2024-10",
                              instance=instance, resources=defs.resources, run_config=QUIET).success
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        requested = {str(k) for k in result.get_requested_partitions(dg.AssetKey("raw_documents"))}
        assert requested == {f"CC-MAIN-2024-10|{s}" for s in shard_keys(config.num_shards)}
        # The whole chain is requested together (downstream runs after upstream in that run).
        for asset in SHARD_ASSETS[1:]:
            assert {str(k) for k in result.get_requested_partitions(dg.AssetKey(asset))} == requested


# -- the shared sample: both dumps, every partition -----------------------------------

def test_sample_dumps_materialize_with_counted_reasons(sample_run):
    instance, config = sample_run.instance, sample_run.config
    raw = _sum_reasons(instance, "raw_documents", "CC-MAIN-2024-10", config.num_shards)
    assert raw == {("raw_documents", "http_status_not_200"): 10, ("raw_documents", "not_html"): 15}
    rw_raw = _sum_reasons(instance, "rw_raw", "CC-MAIN-2024-10", config.num_shards)
    # The sample's 24 injected blocklisted URLs plus 3 real pages whose domains UT1 lists.
    assert rw_raw[("url_filter", "blocklisted_domain")] == 27
    truncated = _sum_reasons(instance, "raw_documents", "CC-MAIN-2024-18", config.num_shards)
    assert truncated[("raw_documents", "read_error")] == 1
    for dump in ("CC-MAIN-2024-10", "CC-MAIN-2024-18"):
        for shard in shard_keys(config.num_shards):
            meta = _latest(instance, "rw_filtered", f"{dump}|{shard}")
            assert RETENTION_KEYS <= set(meta)
            assert 0 < meta["cumulative_retention"] < 0.5, "most of the sample is German"

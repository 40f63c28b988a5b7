"""Driving the pipeline through Dagster in tests, the way the demo does."""

from __future__ import annotations

from contextlib import contextmanager

import dagster as dg

from corpus_assets.crawl import dump_sort_key
from corpus_assets.definitions import DUMP_DEDUP_ASSETS, SHARD_ASSETS
from corpus_assets.partitions import DUMP_DIM, shard_keys

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# The shard assets that are document tables (retention metadata + conservation check).
SHARD_DOCUMENT_ASSETS = [a for a in SHARD_ASSETS if a != "minhash_signatures"]


def code_versions(defs) -> dict:
    """{asset name: code version} of the computed assets (file-backed AssetSpecs have none)."""
    return {k.path[0]: v for a in defs.assets if isinstance(a, dg.AssetsDefinition)
            for k, v in a.code_versions_by_key.items()}


def materialize(defs, instance, selection, partition_key, check_count=None):
    result = dg.materialize(defs.assets, selection=selection, partition_key=partition_key,
                            instance=instance, resources=defs.resources, run_config=QUIET)
    assert result.success, f"{selection} {partition_key} failed"
    checks = result.get_asset_check_evaluations()
    if check_count is not None:
        assert len(checks) == check_count
    assert all(c.passed for c in checks if c.severity == dg.AssetCheckSeverity.ERROR), checks
    return result


def dedup_dump(defs, instance, dump, num_shards):
    """The dump's dedup, in the order the sensors and automation run it."""
    materialize(defs, instance, DUMP_DEDUP_ASSETS, dump)
    for shard in shard_keys(num_shards):
        materialize(defs, instance, ["rw_deduped"], f"{dump}|{shard}", check_count=1)
    return materialize(defs, instance, ["dedup_index"], dump)


def materialize_all(defs, instance, dumps, num_shards, dedup=True):
    new = [d for d in dumps if d not in instance.get_dynamic_partitions(DUMP_DIM)]
    instance.add_dynamic_partitions(DUMP_DIM, new)
    for dump in dumps:
        materialize(defs, instance, ["crawl_manifest"], dump)
        for shard in shard_keys(num_shards):
            materialize(defs, instance, SHARD_ASSETS, f"{dump}|{shard}", check_count=len(SHARD_DOCUMENT_ASSETS))
    if dedup:
        for dump in sorted(dumps, key=dump_sort_key):
            dedup_dump(defs, instance, dump, num_shards)


def latest(instance, asset, partition):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    return {k: v.value for k, v in records[0].event_log_entry.asset_materialization.metadata.items()}


def reasons(meta) -> dict:
    return {(r.data["step"], r.data["reason"]): r.data["count"] for r in meta["removed_by_reason"].records}


def sum_reasons(instance, asset, dump, num_shards) -> dict:
    total: dict = {}
    for shard in shard_keys(num_shards):
        for key, n in reasons(latest(instance, asset, f"{dump}|{shard}")).items():
            total[key] = total.get(key, 0) + n
    return total


@contextmanager
def pipeline_run(config_file, crawl_root, corpus, dumps, dedup=True):
    """A test instance with ``dumps`` materialized from ``crawl_root`` into ``corpus``;
    yields ``(defs, instance, config, store)``."""
    from corpus_assets.config import load_config
    from corpus_assets.definitions import build_definitions
    from corpus_assets.storage import CorpusStore

    config = load_config(config_file)
    defs = build_definitions(config=config, corpus_root=str(corpus), crawl_root=str(crawl_root))
    with dg.instance_for_test() as instance:
        materialize_all(defs, instance, dumps, config.num_shards, dedup=dedup)
        yield defs, instance, config, CorpusStore(str(corpus))

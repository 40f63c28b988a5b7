"""Dump-level dedup never runs twice at once: the dump-level jobs carry the run tag that
dagster.yaml's run queue limits to one, and the dump-level dedup assets are in a pool that
dagster.yaml limits to one op at a time across all runs, also for runs the UI's Materialize
button launches (the implicit asset job). Checked on an instance built from the real
dagster.yaml and from the PostgreSQL profile's settings."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
import yaml

from corpus_assets.assets.dedup import DUMP_DEDUP_POOL
from corpus_assets.definitions import DUMP_DEDUP_ASSETS, DUMP_SCOPE_TAGS, SHARD_ASSETS, defs
from corpus_assets_tests.conftest import REPO_ROOT

SCOPE_KEY, SCOPE_VALUE = next(iter(DUMP_SCOPE_TAGS.items()))
DUMP_LEVEL_DEDUP = [*DUMP_DEDUP_ASSETS, "dedup_index"]


@pytest.fixture()
def instance(tmp_path):
    shutil.copy(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        yield inst


def _op_pools(job: dg.JobDefinition) -> dict:
    return {node.name: node.definition.pool for node in job.graph.nodes}


def test_dump_level_jobs_carry_the_scope_tag():
    for name in ("dump_dedup_job", "dedup_index_job"):
        assert defs.resolve_job_def(name).tags.get(SCOPE_KEY) == SCOPE_VALUE, name
    # Shard jobs must stay parallel: they do not carry it.
    for name in ("shard_pipeline_job", "rw_deduped_job"):
        assert SCOPE_KEY not in defs.resolve_job_def(name).tags, name


def test_dump_level_dedup_assets_are_in_the_pool_in_every_job():
    for name in DUMP_LEVEL_DEDUP:
        assert defs.resolve_assets_def(name).op.pool == DUMP_DEDUP_POOL, name
    for name in SHARD_ASSETS + ["rw_deduped"]:
        assert defs.resolve_assets_def(name).op.pool is None, name
    # The named job, and the implicit asset job that the UI's Materialize button runs.
    implicit = defs.resolve_implicit_global_asset_job_def()
    for job in (defs.resolve_job_def("dump_dedup_job"), implicit):
        pools = _op_pools(job)
        for name in DUMP_DEDUP_ASSETS:
            assert pools[name] == DUMP_DEDUP_POOL, (job.name, name)
    assert _op_pools(defs.resolve_job_def("dedup_index_job"))["dedup_index"] == DUMP_DEDUP_POOL
    assert _op_pools(implicit)["dedup_index"] == DUMP_DEDUP_POOL


def test_instance_limits_the_scope_tag_and_the_pool(instance):
    config = instance.get_concurrency_config()
    limits = config.run_queue_config.tag_concurrency_limits
    assert {"key": SCOPE_KEY, "value": SCOPE_VALUE, "limit": 1} in limits
    assert config.pool_config.default_pool_limit == 1
    # The limit holds: while one run's dedup step holds the pool, another run's waits.
    storage = instance.event_log_storage
    assert storage.supports_global_concurrency_limits
    storage.initialize_concurrency_limit_to_default(DUMP_DEDUP_POOL)
    assert storage.get_concurrency_info(DUMP_DEDUP_POOL).slot_count == 1
    assert storage.claim_concurrency_slot(DUMP_DEDUP_POOL, "run-a", "minhash_buckets").is_claimed
    assert not storage.claim_concurrency_slot(DUMP_DEDUP_POOL, "run-b", "minhash_buckets").is_claimed
    storage.free_concurrency_slots_for_run("run-a")
    assert storage.claim_concurrency_slot(DUMP_DEDUP_POOL, "run-b", "minhash_buckets").is_claimed


def test_postgres_profile_has_the_same_limits():
    local = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    profile = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.postgres.yaml").read_text())
    assert profile["concurrency"] == local["concurrency"]

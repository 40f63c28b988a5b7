"""Shard runs on a Dask cluster (corpus_assets/executors.py): a backfill of every shard of
a dump, one run per shard partition, each in its own process, launched together as the
daemon launches a backfill's runs, through a LocalCluster of two worker processes, writes the same bytes as Dagster's
default path, and every step ran in a worker process.

Kept cheap for CI (2 cores): the project's fixture crawl (two shards of a few pages), one
cluster for the module, and the job is rebuilt from the environment in each process (the
same way a run process and the workers load the code location: ``$CORPUS_CONFIG``,
``$CORPUS_ROOT``, ``$CORPUS_CRAWL_ROOT``, ``$CORPUS_DASK_SCHEDULER``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
import multiprocessing

import dagster as dg
import pytest

from corpus_assets.config import load_config
from corpus_assets.definitions import SHARD_ASSETS
from corpus_assets.executors import SCHEDULER_ENV, RunScopedDaskExecutor, dask_task_key
from corpus_assets.partitions import DUMP_DIM, shard_keys, shard_partition_key
from corpus_assets_tests.helpers import QUIET, SHARD_DOCUMENT_ASSETS, latest, materialize, pipeline_run

DUMP = "CC-MAIN-2024-10"
NO_MANIFEST = "CC-MAIN-2024-18"
WORKERS = 2
RUNS_TIMEOUT_S = 600


_JOBS: dict = {}


def shard_pipeline_job() -> dg.JobDefinition:
    """The code location's shard job, built from the environment, once per process and
    environment (as importing ``corpus_assets.definitions`` builds it once)."""
    from corpus_assets.definitions import build_definitions

    env = tuple(os.environ.get(k) for k in ("CORPUS_CONFIG", "CORPUS_ROOT", "CORPUS_CRAWL_ROOT", SCHEDULER_ENV))
    if env not in _JOBS:
        _JOBS[env] = build_definitions().resolve_job_def("shard_pipeline_job")
    return _JOBS[env]


def _untimed(value):
    """stats.json without its wall-clock timings (two runs never agree on those)."""
    if isinstance(value, dict):
        # rw_filtered_report: a digest of rw_filtered's stats.json, timings included.
        return {k: _untimed(v) for k, v in value.items()
                if not (k == "seconds" or k.endswith("_seconds") or k == "rw_filtered_report")}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _published(store, num_shards) -> dict:
    """Every published table of the shard assets, by (asset, shard, file): its bytes."""
    out = {}
    for asset in SHARD_ASSETS:
        for shard in shard_keys(num_shards):
            folder = f"{asset}/{DUMP}/{shard}"
            pointer = store.read_pointer(folder)
            assert pointer, f"{folder} was not published"
            for name in pointer["files"]:
                # A local store: uri() is the path of the object the pointer names.
                data = Path(store.uri(f"{folder}/{name}")).read_bytes()
                out[(asset, shard, name)] = _untimed(json.loads(data)) if name.endswith(".json") else data
    return out


def launch_run(args) -> tuple[str, str]:
    """In a fresh process: one run of the shard job for one partition, on the instance."""
    instance_ref, key = args
    job = shard_pipeline_job()
    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        result = dg.execute_job(dg.reconstructable(shard_pipeline_job), instance,
                                tags=job.get_tags_for_partition_key(key, None), run_config=QUIET)
        return key, result.run_id


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, fixture_crawl):
    """The dump's shards on Dagster's default path (in-process, as the demo and tests run)."""
    with pipeline_run(fixture_crawl / "pipeline.yaml", fixture_crawl, tmp_path_factory.mktemp("default_corpus"),
                      [DUMP], dedup=False) as (defs, instance, config, store):
        yield config, _published(store, config.num_shards)


@pytest.fixture(scope="module")
def dask_backfill(tmp_path_factory, fixture_crawl):
    from distributed import Client, LocalCluster

    from corpus_assets.storage import CorpusStore

    base = tmp_path_factory.mktemp("dask")
    corpus = base / "corpus"
    env = {"CORPUS_CONFIG": str(fixture_crawl / "pipeline.yaml"), "CORPUS_ROOT": str(corpus),
           "CORPUS_CRAWL_ROOT": str(fixture_crawl)}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        # Worker processes inherit the environment they start with.
        with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            mp.setenv(SCHEDULER_ENV, cluster.scheduler_address)
            worker_pids = set(client.run(os.getpid).values())
            job = shard_pipeline_job()
            assert job.executor_def.name == "corpus_dask"
            (base / "dagster_home").mkdir()
            with dg.instance_for_test(temp_dir=str(base / "dagster_home")) as instance:
                # NO_MANIFEST is a known dump whose crawl_manifest was never built: its shard
                # runs fail at their first step.
                instance.add_dynamic_partitions(DUMP_DIM, [DUMP, NO_MANIFEST])
                from corpus_assets.definitions import build_definitions

                defs = build_definitions()
                materialize(defs, instance, ["crawl_manifest"], DUMP)
                keys = [shard_partition_key(DUMP, s) for s in shard_keys(load_config().num_shards)]

                # One process per run, as the run launcher starts them (two runs in threads of
                # one process deadlock in Python's logging locks while Dagster sets up a run).
                # Bounded: a hang fails the test instead of stalling CI.
                pool = multiprocessing.get_context("spawn").Pool(len(keys))
                try:
                    run_ids = dict(pool.map_async(launch_run, [(instance.get_ref(), k) for k in keys]).get(RUNS_TIMEOUT_S))
                    failing = pool.apply_async(launch_run, [(instance.get_ref(), shard_partition_key(NO_MANIFEST, "000"))])
                    failing_run_id = failing.get(RUNS_TIMEOUT_S)[1]
                finally:
                    pool.terminate()
                yield instance, run_ids, worker_pids, CorpusStore(str(corpus)), failing_run_id


def test_backfill_on_dask_matches_the_default_executor(default_run, dask_backfill):
    config, expected = default_run
    instance, run_ids, worker_pids, store, _ = dask_backfill
    assert len(worker_pids) == WORKERS
    assert len(run_ids) == config.num_shards
    step_pids = set()
    for key, run_id in run_ids.items():
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS, key
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
        started = {r.event_log_entry.step_key for r in records}
        assert started == set(SHARD_ASSETS), (key, started)
        step_pids |= {r.event_log_entry.dagster_event.pid for r in records}
        # Each partition's materializations come from its own run (no step lost to
        # another run's results), with the retention metadata of the default path.
        for asset in SHARD_ASSETS:
            rec = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1).records
            assert rec and rec[0].run_id == run_id, (asset, key)
        for asset in SHARD_DOCUMENT_ASSETS:
            meta = latest(instance, asset, key)
            assert meta["docs_in"] == meta["docs_out"] + meta["docs_removed"]
    # Every step ran in one of the cluster's worker processes, not in the run's process.
    assert step_pids and step_pids <= worker_pids, (step_pids, worker_pids)
    assert os.getpid() not in step_pids
    print(f"steps ran in {len(step_pids)} of the {len(worker_pids)} worker processes")
    # Byte for byte the default path's tables (documents, ledgers, signatures); the same
    # stats.json but for its timings.
    assert _published(store, config.num_shards) == expected


def test_steps_after_a_failed_step_are_skipped(dask_backfill):
    # dagster-dask would run them anyway, on whatever the failed step's asset held before.
    instance, _, _, store, run_id = dask_backfill
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE

    def steps(event_type):
        return {r.event_log_entry.step_key for r in instance.get_records_for_run(run_id, of_type=event_type).records}

    assert steps(dg.DagsterEventType.STEP_FAILURE) == {"raw_documents"}
    assert steps(dg.DagsterEventType.STEP_SKIPPED) == set(SHARD_ASSETS) - {"raw_documents"}
    assert steps(dg.DagsterEventType.STEP_START) == {"raw_documents"}
    assert store.read_pointer(f"rw_raw/{NO_MANIFEST}/000") is None


def test_task_keys_are_scoped_to_the_run():
    # dagster-dask's own executor keys a step `<job>.<step>`: two runs of one job on one
    # cluster share keys, and Dask hands the second the first's result.
    assert dask_task_key("run-a", "rw_raw") != dask_task_key("run-b", "rw_raw")


def test_executor_reads_the_scheduler_from_the_environment(monkeypatch):
    from corpus_assets.executors import corpus_dask_executor

    monkeypatch.setenv(SCHEDULER_ENV, "tcp://10.0.0.5:8786")
    executor = corpus_dask_executor.executor_creation_fn(SimpleNamespace(executor_config={}))
    assert isinstance(executor, RunScopedDaskExecutor)
    assert (executor.cluster_type, executor.cluster_configuration) == ("existing", {"address": "tcp://10.0.0.5:8786"})

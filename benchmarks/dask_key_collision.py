"""Two shard runs at once on one Dask cluster: does every run execute its own steps?

    .venv/bin/python benchmarks/dask_key_collision.py --executor stock   # dagster-dask's dask_executor
    .venv/bin/python benchmarks/dask_key_collision.py --executor ours    # corpus_assets.executors

Writes the fixture crawl to a temporary folder, starts a ``LocalCluster`` of two worker
processes, materializes ``crawl_manifest``, then launches one ``shard_pipeline_job`` run per
shard of CC-MAIN-2024-10 (two), at once, each in its own process (as a backfill's runs
are), both on that cluster. Prints per run: Dagster's verdict, how many steps the run
started, which runs materialized ``rw_filtered`` for that partition, and whether the
partition was published. docs/operations.md quotes the output.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

DUMP = "CC-MAIN-2024-10"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def job() -> dg.JobDefinition:
    """The shard job with the chosen executor, built from the environment in each process."""
    from dagster_dask import dask_executor

    from corpus_assets.config import load_config
    from corpus_assets.definitions import SHARD_ASSETS, build_definitions
    from corpus_assets.executors import corpus_dask_executor
    from corpus_assets.partitions import shard_partitions_def

    defs = build_definitions()
    executor = dask_executor if os.environ["COLLISION_EXECUTOR"] == "stock" else corpus_dask_executor
    # Workers rebuild the job too; they start before the address is known and never use it.
    executor = executor.configured({"cluster": {"existing": {"address": os.environ.get("COLLISION_ADDR", "tcp://unused:1")}}})
    shard_job = dg.define_asset_job("shard_pipeline_job", selection=SHARD_ASSETS,
                                    partitions_def=shard_partitions_def(load_config().num_shards),
                                    executor_def=executor)
    return dg.Definitions(assets=defs.assets, jobs=[shard_job], resources=defs.resources).resolve_job_def(
        "shard_pipeline_job")


def launch(args) -> tuple[str, str, bool]:
    ref, key = args
    shard_job = job()
    with dg.DagsterInstance.from_ref(ref) as instance:
        result = dg.execute_job(dg.reconstructable(job), instance,
                                tags=shard_job.get_tags_for_partition_key(key, None), run_config=QUIET)
        return key, result.run_id, result.success


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--executor", choices=["stock", "ours"], default="stock")
    args = ap.parse_args()
    from distributed import LocalCluster

    from corpus_assets.definitions import build_definitions
    from corpus_assets.fixtures import build_fixture_crawl

    base = Path(tempfile.mkdtemp(prefix="dask-collision-"))
    crawl = build_fixture_crawl(base / "crawl")  # two shards per dump
    os.environ.update(CORPUS_CONFIG=str(crawl / "pipeline.yaml"), CORPUS_ROOT=str(base / "corpus"),
                      CORPUS_CRAWL_ROOT=str(crawl), COLLISION_EXECUTOR=args.executor)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        os.environ["COLLISION_ADDR"] = cluster.scheduler_address
        (base / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(base / "home")) as instance:
            instance.add_dynamic_partitions("dump", [DUMP])
            defs = build_definitions()
            assert dg.materialize(defs.assets, selection=["crawl_manifest"], partition_key=DUMP, instance=instance,
                                  resources=defs.resources, run_config=QUIET).success
            keys = [f"{DUMP}|000", f"{DUMP}|001"]
            pool = multiprocessing.get_context("spawn").Pool(len(keys))
            try:
                results = pool.map_async(launch, [(instance.get_ref(), k) for k in keys]).get(600)
            finally:
                pool.terminate()
            for key, run_id, ok in results:
                mats = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey("rw_filtered"), asset_partitions=[key]), limit=5).records
                starts = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
                published = (base / "corpus" / "rw_filtered" / DUMP / key.split("|")[1] / "_partition.json").exists()
                print(f"{args.executor} {key} run success: {ok} | steps started in this run: {len(starts)} | "
                      f"rw_filtered materializations of this partition: {[m.run_id[:8] for m in mats]} "
                      f"run {run_id[:8]} | published: {published}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

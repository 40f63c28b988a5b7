"""Production operation hardening (issue 16, parts 2-4): a killed run's pool slot is freed
by run monitoring, .ci/postgres.sh can be sourced twice, the Dask executor bounds a step and
names the settings in its errors. No Dask cluster is started here (test_executor_dask.py
covers the executor end to end)."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import types

import dagster as dg
import pytest
from dagster._core.instance.config import dagster_instance_config

from corpus_assets.assets.dedup import DUMP_DEDUP_POOL
from corpus_assets_tests.conftest import REPO_ROOT

PROFILES = [REPO_ROOT / "dagster.yaml", REPO_ROOT / "deploy" / "dagster.postgres.yaml"]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_run_monitoring_is_on_in_both_profiles(profile):
    config, _ = dagster_instance_config(str(profile.parent), profile.name)  # schema-validated
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["max_resume_run_attempts"] == 0  # dead runs fail, never resume
    assert monitoring["free_slots_after_run_end_seconds"] > 0
    assert monitoring["start_timeout_seconds"] > 0 and monitoring["cancel_timeout_seconds"] > 0


def test_daemon_frees_the_pool_slot_of_a_dead_run(tmp_path, monkeypatch):
    """f04: the slot a killed dedup run held comes back once the run is marked finished."""
    from dagster._daemon.monitoring import concurrency

    shutil.copy(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job(), run_id=None)
        instance.event_log_storage.set_concurrency_slots(DUMP_DEDUP_POOL, 1)
        claim = instance.event_log_storage.claim_concurrency_slot(DUMP_DEDUP_POOL, run.run_id, "minhash_buckets")
        assert claim.is_claimed
        # The run worker was killed; run monitoring marks the run failed.
        instance.report_run_failed(run, "run worker gone")
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        monkeypatch.setattr(concurrency, "get_current_datetime", lambda: later)
        list(concurrency.execute_concurrency_slots_iteration(types.SimpleNamespace(instance=instance), None))
        info = instance.event_log_storage.get_concurrency_info(DUMP_DEDUP_POOL)
        assert info.active_slot_count == 0, "the dead run still holds the pool slot"


def _have_postgres() -> bool:
    out = subprocess.run(["bash", "-c", f"source <(sed '$d' {REPO_ROOT}/.ci/postgres.sh); corpus_pg_bindir"],
                         capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


@pytest.mark.skipif(os.environ.get("CORPUS_TEST_REQUIRE_POSTGRES") != "1"
                    and (shutil.which("bash") is None or not _have_postgres()),
                    reason="no PostgreSQL server binaries here (CI installs them in .ci/postgres.sh)")
def test_postgres_script_sourced_twice_reuses_its_server_and_keeps_the_callers_trap(tmp_path):
    """f03: one server, one folder, stopped at exit, and the caller's own EXIT trap still runs."""
    script = (f"cd {REPO_ROOT}; trap 'echo caller-trap-ran' EXIT; source .ci/postgres.sh; first=$CORPUS_PG_DIR; "
              "source .ci/postgres.sh; [ \"$first\" = \"$CORPUS_PG_DIR\" ] && echo same-server; "
              f"echo $CORPUS_PG_DIR > {tmp_path}/dir")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "same-server" in out.stdout and "reusing" in out.stdout
    assert out.stdout.count("stopped the test server") == 1
    assert out.stdout.rstrip().endswith("caller-trap-ran")
    pg_dir = (tmp_path / "dir").read_text().strip()
    assert pg_dir and not os.path.exists(pg_dir)


@pytest.fixture(scope="module")
def in_process_cluster():
    """A scheduler with no worker, in this process (about a second to start)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield cluster, client


def test_a_run_whose_workers_are_gone_fails_with_a_message(in_process_cluster):
    """f02: no worker left -> a loud failure naming the setting, not a run STARTED forever."""
    from corpus_assets.executors import DaskStepWaitError, wait_for_steps

    _, client = in_process_cluster
    future = client.submit(sum, [1, 2], key="no-worker-step")
    with pytest.raises(DaskStepWaitError, match=r"no Dask worker.*CORPUS_DASK_SCHEDULER"):
        list(wait_for_steps(client, [future], address="tcp://sched:8786", no_worker_timeout_s=0.5, poll_s=0.1))
    client.cancel([future])


def test_a_hung_step_fails_after_the_step_timeout(in_process_cluster):
    import time

    from corpus_assets.executors import DaskStepWaitError, wait_for_steps

    cluster, client = in_process_cluster
    cluster.scale(1)
    client.wait_for_workers(1, timeout=30)
    try:
        fast = client.submit(sum, [1, 2], key="fast-step")
        assert list(wait_for_steps(client, [fast], poll_s=0.1)) == [(fast, 3)]
        slow = client.submit(time.sleep, 3, key="slow-step")
        with pytest.raises(DaskStepWaitError, match="step_timeout_seconds"):
            list(wait_for_steps(client, [slow], step_timeout_s=0.5, poll_s=0.1))
    finally:
        cluster.scale(0)


def test_a_step_does_not_start_in_a_finished_run(tmp_path):
    """f01: a step the cluster still holds after its run failed does not run into it."""
    from corpus_assets.executors import _run_finished

    shutil.copy(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        run = instance.create_run_for_job(dg.GraphDefinition("noop2").to_job(), run_id=None)
        assert not _run_finished(run, instance.get_ref())
        instance.report_run_failed(run, "scheduler lost")
        assert _run_finished(run, instance.get_ref())


@pytest.mark.parametrize("name", ["no_worker_timeout_seconds", "step_timeout_seconds"])
def test_wait_bounds_must_be_positive(name):
    from corpus_assets.executors import corpus_dask_executor

    with pytest.raises(dg.DagsterInvalidConfigError, match=name):
        corpus_dask_executor.executor_creation_fn(types.SimpleNamespace(executor_config={name: 0.0}))
    executor = corpus_dask_executor.executor_creation_fn(types.SimpleNamespace(executor_config={name: 60.0}))
    assert executor.wait_bounds[name.replace("_seconds", "_s")] == 60.0


def test_an_unreachable_scheduler_names_the_setting():
    """f05: the error says where the address came from."""
    dask = pytest.importorskip("dask")
    from corpus_assets.executors import DaskStepWaitError, connect

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
            pytest.raises(DaskStepWaitError, match=r"tcp://127\.0\.0\.1:1.*CORPUS_DASK_SCHEDULER"):
        connect("tcp://127.0.0.1:1")


def test_postgres_scheme_is_refused_with_the_corrected_url():
    """f05: `postgres://` -> the URL to export instead, password not echoed."""
    from corpus_assets.ops_preflight import check_pg_url

    assert check_pg_url("postgresql+psycopg2://dagster:pw@db:5432/dagster") is None
    assert check_pg_url("postgresql://dagster@db/dagster") is None
    problem = check_pg_url("postgres://dagster:s3cret@db.internal:5432/dagster")
    assert "DAGSTER_PG_URL" in problem and "postgresql+psycopg2://dagster:***@db.internal:5432/dagster" in problem
    assert "s3cret" not in problem
    assert "not a PostgreSQL URL" in check_pg_url("mysql://x@db/d")

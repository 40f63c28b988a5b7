"""Shard runs on a Dask cluster: dagster-dask's executor, adapted so that many runs can
share one cluster.

A run's steps are submitted to a `distributed` scheduler and each executes in a worker
process, so the machine that launches runs (the Dagster daemon's run launcher) only
orchestrates, and shard work spreads over the cluster's workers. docs/operations.md says
why Dask rather than Celery, and how to deploy it.

Three things differ from ``dagster_dask.dask_executor`` (0.29.27), whose loop this follows:

1. **Task keys are scoped to the run.** dagster-dask names each future
   ``<job>.<step key>``. Dask treats a key as the identity of a result: a second submit of
   a key the scheduler still holds returns the first one's future and runs nothing. A
   backfill puts several runs of ``shard_pipeline_job`` on one cluster at once, all with the
   step keys ``raw_documents`` ... ``minhash_signatures``, so every run but the first got the
   first run's events back, its own partition never computed, and nothing failed
   (measured: docs/operations.md). Here a key is ``<run id>.<step key>``.
2. **A step whose upstream step failed does not run.** dagster-dask passes the upstream
   futures only to order the tasks, so a step ran after its upstream had failed, on that
   upstream's previous partition files (these assets read their inputs from the corpus
   store, not from Dagster outputs). Here it is skipped, with a ``STEP_SKIPPED`` event, as
   Dagster's own executors do.
3. **The wait is bounded.** ``as_completed`` waits forever for a task Dask holds for lack
   of a worker (every worker killed or scaled away): here the run fails after
   ``no_worker_timeout_seconds`` without a worker, or ``step_timeout_seconds`` without a
   finished step; on failure the steps not yet started are cancelled, and a step does not
   start in a run already marked finished. An unreachable scheduler fails naming
   ``$CORPUS_DASK_SCHEDULER``.

The scheduler address comes from the executor's config (``cluster: {existing: {address:
...}}``), else from ``$CORPUS_DASK_SCHEDULER``; with neither, a ``LocalCluster`` is
started for the run (``cluster: {local: {n_workers: ...}}``, one thread per worker:
Dagster steps are not thread-safe). No Dagster import beyond the executor machinery; the
pipeline's code is unchanged.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import dagster as dg
from dagster import Field, Permissive, Selector, StringSource, multiple_process_executor_requirements
from dagster import _check as check
from dagster._core.definitions.executor_definition import executor
from dagster._core.errors import raise_execution_interrupts
from dagster._core.events import DagsterEvent
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._utils import iterate_with_context
from dask.sizeof import sizeof
from dagster_dask.executor import DaskExecutor, get_dask_resource_requirements, query_on_dask_worker

SCHEDULER_ENV = "CORPUS_DASK_SCHEDULER"
# Bounds on the wait for a run's steps (executor config keys of the same names; seconds).
# No worker at all for this long -> the run fails (a killed or scaled-to-zero cluster).
NO_WORKER_TIMEOUT_S = 300.0
# No step finished for this long -> the run fails (None: unbounded; a hung step).
STEP_TIMEOUT_S: Optional[float] = None
_POLL_S = 5.0


class DaskStepWaitError(Exception):
    """The run's steps cannot finish on the Dask cluster (no worker, or a step over its bound)."""


@sizeof.register(DagsterEvent)
def _event_size(event: DagsterEvent) -> int:
    # Dask sizes every result it holds; without this it warns once per step that it cannot
    # size a DagsterEvent. A step's events are a few KB.
    return 2048


# A skipped step's result: no events, and this marker so its own downstream skip too.
_SKIPPED = "corpus_assets/skipped"


def dask_task_key(run_id: str, step_key: str) -> str:
    """The Dask key of one step of one run: unique across the runs sharing a cluster."""
    return f"{run_id}.{step_key}"


def _succeeded(result: Any) -> bool:
    return isinstance(result, (list, tuple)) and any(getattr(e, "is_step_success", False) for e in result)


def run_step_after(upstream_results: Sequence[Any], *args) -> Any:
    """Runs on a worker: the step, unless an upstream step did not succeed. Dask passes the
    upstream futures' results in ``upstream_results``, so the check needs no round trip."""
    if not all(_succeeded(r) for r in upstream_results):
        return _SKIPPED
    if _run_finished(args[1], args[4]):
        return _SKIPPED
    return query_on_dask_worker(upstream_results, *args)


def _run_finished(dagster_run, instance_ref) -> bool:
    """True when the run was already marked finished (failed, canceled): a step the cluster
    still holds after its run ended must not start and write events into it."""
    from dagster._core.instance import DagsterInstance
    from dagster._core.storage.dagster_run import FINISHED_STATUSES

    with DagsterInstance.from_ref(instance_ref) as instance:
        run = instance.get_run_by_id(dagster_run.run_id)
    return run is not None and run.status in FINISHED_STATUSES


def wait_for_steps(client, futures: Sequence[Any], *, address: str = "",
                   no_worker_timeout_s: float = NO_WORKER_TIMEOUT_S,
                   step_timeout_s: Optional[float] = STEP_TIMEOUT_S, poll_s: float = _POLL_S, clock=None):
    """Yields ``(future, result)`` as the futures finish, like ``as_completed``, but fails
    with ``DaskStepWaitError`` when the cluster has had no worker for ``no_worker_timeout_s``
    (a task Dask holds as "no-worker" waits forever otherwise) or when no step has finished
    for ``step_timeout_s``."""
    import time

    import dask.distributed

    clock = clock or time.monotonic
    pending = set(futures)
    last_progress = no_worker_since = clock()
    where = f" at {address}" if address else ""
    while pending:
        try:
            dask.distributed.wait(list(pending), timeout=poll_s, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass  # nothing finished within poll_s: check the bounds below
        done = [future for future in futures if future in pending and future.done()]
        pending.difference_update(done)
        now = clock()
        for future in done:
            yield future, future.result()
        if done:
            last_progress = now
        if not pending:
            return
        if client.scheduler_info().get("workers"):
            no_worker_since = now
        elif now - no_worker_since > no_worker_timeout_s:
            raise DaskStepWaitError(
                f"no Dask worker connected to the scheduler{where} for {no_worker_timeout_s:g} s while "
                f"{len(pending)} step(s) wait (workers killed or scaled to zero?); the run fails. "
                f"Scheduler: executor config cluster.existing.address or ${SCHEDULER_ENV}; bound: "
                f"executor config no_worker_timeout_seconds.")
        if step_timeout_s is not None and now - last_progress > step_timeout_s:
            raise DaskStepWaitError(
                f"no step finished on the Dask cluster{where} for {step_timeout_s:g} s "
                f"(executor config step_timeout_seconds); {len(pending)} step(s) still pending; the run fails.")


def connect(cluster):
    """A ``distributed.Client`` of ``cluster`` (an address or a cluster object); an address
    that cannot be reached fails naming the setting it came from."""
    import dask.distributed

    try:
        return dask.distributed.Client(cluster)
    except (OSError, TimeoutError) as error:
        raise DaskStepWaitError(
            f"cannot reach the Dask scheduler at {cluster!r}: {error}. The address comes from the "
            f"executor config (cluster.existing.address) or ${SCHEDULER_ENV}, read where the code "
            f"location loads; fix it there, or unset ${SCHEDULER_ENV} to run shard jobs with "
            f"Dagster's default executor.") from error


class RunScopedDaskExecutor(DaskExecutor):
    """dagster-dask's executor with run-scoped task keys and upstream-failure skips."""

    def __init__(self, cluster_type, cluster_configuration, *, no_worker_timeout_s: float = NO_WORKER_TIMEOUT_S,
                 step_timeout_s: Optional[float] = STEP_TIMEOUT_S):
        super().__init__(cluster_type, cluster_configuration)
        self.wait_bounds = {"no_worker_timeout_s": float(no_worker_timeout_s),
                            "step_timeout_s": None if step_timeout_s is None else float(step_timeout_s)}

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan):
        import dask.distributed

        check.invariant(plan_context.instance.is_persistent,
                        "Dask execution needs a persistent DagsterInstance (set DAGSTER_HOME)")
        if self.cluster_type == "existing":
            cluster = self.cluster_configuration["address"]
        elif self.cluster_type == "local":
            cluster = dask.distributed.LocalCluster(**self.build_dict(plan_context.job_name))
        else:  # the schema admits only these two
            raise check.CheckError(f"unknown Dask cluster type {self.cluster_type!r}")
        run_id = plan_context.dagster_run.run_id
        instance_ref = plan_context.instance.get_ref()
        address = cluster if isinstance(cluster, str) else ""
        try:
            with connect(cluster) as client:
                futures, by_step, steps = [], {}, {}
                for level in execution_plan.get_steps_to_execute_by_level():
                    for step in level:
                        upstream = [by_step[key] for step_input in step.step_inputs
                                    for key in step_input.dependency_keys if key in by_step]
                        future = client.submit(
                            run_step_after, upstream, plan_context.reconstructable_job, plan_context.dagster_run,
                            plan_context.run_config, [step.key], instance_ref, execution_plan.known_state,
                            key=dask_task_key(run_id, step.key),
                            resources=get_dask_resource_requirements(step.tags),
                        )
                        futures.append(future)
                        by_step[step.key] = future
                        steps[future.key] = step
                completed = wait_for_steps(client, futures, address=address, **self.wait_bounds)
                try:
                    for future, result in iterate_with_context(raise_execution_interrupts, completed):
                        if isinstance(result, str) and result == _SKIPPED:
                            yield DagsterEvent.step_skipped_event(plan_context.for_step(steps[future.key]))
                            continue
                        for event in result:
                            yield check.inst(event, DagsterEvent)
                finally:
                    # On failure or interrupt: steps not started yet must not start (a step
                    # already executing on a worker cannot be stopped; it finds the run
                    # finished only at its next step boundary, docs/operations.md).
                    try:
                        client.cancel([f for f in futures if not f.done()])
                    except Exception:  # noqa: BLE001 - the scheduler may be gone; keep the first error
                        pass
        finally:
            if not isinstance(cluster, str):
                cluster.close()


@executor(
    name="corpus_dask",
    requirements=multiple_process_executor_requirements(),
    config_schema={
        "cluster": Field(
            Selector({
                "existing": Field({"address": StringSource}, description="A running scheduler, e.g. tcp://host:8786."),
                "local": Field(Permissive(), is_required=False,
                               description="A LocalCluster for this run (distributed.LocalCluster's arguments)."),
            }),
            is_required=False,
            description=f"Where steps run. Default: the scheduler at ${SCHEDULER_ENV}, else a LocalCluster.",
        ),
        "no_worker_timeout_seconds": Field(float, is_required=False, default_value=NO_WORKER_TIMEOUT_S,
                                           description="Fail the run when the cluster has had no worker this long."),
        "step_timeout_seconds": Field(dg.Noneable(float), is_required=False, default_value=STEP_TIMEOUT_S,
                                      description="Fail the run when no step has finished this long (null: no bound)."),
    },
)
def corpus_dask_executor(init_context) -> RunScopedDaskExecutor:
    """Each step of a run on a Dask cluster (``corpus_assets.executors``)."""
    cluster = init_context.executor_config.get("cluster")
    if not cluster:
        address = os.environ.get(SCHEDULER_ENV, "").strip()
        cluster = {"existing": {"address": address}} if address else {"local": {}}
    ((cluster_type, cluster_config),) = cluster.items()
    config = init_context.executor_config
    for name in ("no_worker_timeout_seconds", "step_timeout_seconds"):
        value = config.get(name)
        if value is not None and not value > 0:
            raise dg.DagsterInvalidConfigError(f"corpus_dask executor: {name} must be > 0, got {value!r}", [], config)
    return RunScopedDaskExecutor(cluster_type, cluster_config,
                                 no_worker_timeout_s=config.get("no_worker_timeout_seconds", NO_WORKER_TIMEOUT_S),
                                 step_timeout_s=config.get("step_timeout_seconds", STEP_TIMEOUT_S))


def shard_executor() -> Optional[dg.ExecutorDefinition]:
    """The executor of the shard jobs: Dask when ``$CORPUS_DASK_SCHEDULER`` names a
    scheduler where the code location loads, else None (Dagster's default executor)."""
    return corpus_dask_executor if os.environ.get(SCHEDULER_ENV, "").strip() else None

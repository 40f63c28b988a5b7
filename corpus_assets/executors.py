"""Shard runs on a Dask cluster: dagster-dask's executor, adapted so that many runs can
share one cluster.

A run's steps are submitted to a `distributed` scheduler and each executes in a worker
process, so the machine that launches runs (the Dagster daemon's run launcher) only
orchestrates, and shard work spreads over the cluster's workers. docs/operations.md says
why Dask rather than Celery, and how to deploy it.

Two things differ from ``dagster_dask.dask_executor`` (0.29.27), whose loop this follows:

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
    return query_on_dask_worker(upstream_results, *args)


class RunScopedDaskExecutor(DaskExecutor):
    """dagster-dask's executor with run-scoped task keys and upstream-failure skips."""

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
        try:
            with dask.distributed.Client(cluster) as client:
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
                completed = dask.distributed.as_completed(futures, with_results=True)
                for future, result in iterate_with_context(raise_execution_interrupts, completed):
                    if isinstance(result, str) and result == _SKIPPED:
                        yield DagsterEvent.step_skipped_event(plan_context.for_step(steps[future.key]))
                        continue
                    for event in result:
                        yield check.inst(event, DagsterEvent)
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
    },
)
def corpus_dask_executor(init_context) -> RunScopedDaskExecutor:
    """Each step of a run on a Dask cluster (``corpus_assets.executors``)."""
    cluster = init_context.executor_config.get("cluster")
    if not cluster:
        address = os.environ.get(SCHEDULER_ENV, "").strip()
        cluster = {"existing": {"address": address}} if address else {"local": {}}
    ((cluster_type, cluster_config),) = cluster.items()
    return RunScopedDaskExecutor(cluster_type, cluster_config)


def shard_executor() -> Optional[dg.ExecutorDefinition]:
    """The executor of the shard jobs: Dask when ``$CORPUS_DASK_SCHEDULER`` names a
    scheduler where the code location loads, else None (Dagster's default executor)."""
    return corpus_dask_executor if os.environ.get(SCHEDULER_ENV, "").strip() else None

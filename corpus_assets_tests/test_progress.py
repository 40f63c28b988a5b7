"""Progress lines of long stages: documents done and the rate, at intervals, on the run's
log page."""

from __future__ import annotations

import dataclasses

import dagster as dg

from corpus_assets.steps.progress import ProgressConfig, ProgressLog
from corpus_assets_tests.helpers import QUIET


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)


def test_progress_log_writes_at_intervals_and_at_the_end():
    now = [0.0]
    log = _Log()
    p = ProgressLog(log, "rw_raw D|000", interval_seconds=10, clock=lambda: now[0])
    for i in range(100):
        now[0] = i * 0.5  # 2 docs/s
        p.tick(kept=i % 2 == 0)
    p.finish()
    # a line every 10 s over 50 s, and the final one
    assert len(log.lines) == 4 + 1  # at 10, 20, 30, 40 s of 49.5, and the final one
    assert log.lines[0].startswith("rw_raw D|000: 21 documents done (2.1 docs/s")
    assert log.lines[-1].startswith("rw_raw D|000: 100 documents done in total") and "50 kept" in log.lines[-1]
    silent = ProgressLog(None, "x")
    silent.tick(True)
    silent.finish()
    assert silent.done == 1 and silent.lines == 0


def test_progress_lines_reach_the_runs_log_page(fixture_crawl, tmp_path):
    from corpus_assets.config import load_config
    from corpus_assets.definitions import build_definitions
    from corpus_assets.partitions import DUMP_DIM

    config = dataclasses.replace(load_config(fixture_crawl / "pipeline.yaml"), progress=ProgressConfig(0.0))
    defs = build_definitions(config=config, corpus_root=str(tmp_path / "corpus"), crawl_root=str(fixture_crawl))
    dump = sorted(p.name for p in (fixture_crawl / "crawl-data").iterdir())[0]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DUMP_DIM, [dump])
        for job, key in (("crawl_manifest_job", dump), ("shard_pipeline_job", f"{dump}|000")):
            result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=key,
                                                                 run_config=QUIET)
            assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run.job_name == "shard_pipeline_job"  # a named job, not __ephemeral_asset_job__
        messages = [e.user_message for e in instance.all_logs(result.run_id)]
        for asset in ("raw_documents", "rw_raw", "rw_filtered", "minhash_signatures"):
            lines = [m for m in messages if m.startswith(f"{asset} {dump}|000: ") and "documents done" in m]
            assert lines and "docs/s" in lines[-1], asset

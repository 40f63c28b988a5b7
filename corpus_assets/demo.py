"""``make demo``: materialize every asset for every partition of the sample dumps, then
print the retention funnel per dump and step, read back from the Dagster instance.

Uses ``$DAGSTER_HOME`` when set, else ``.dagster_home`` in the checkout, so a later
``make dev`` (``dagster dev``) shows these runs, their materializations and metadata.
The crawl is ``$CORPUS_CRAWL_ROOT``, else ``../shared/data`` when present, else a small
fixture crawl this project writes itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Document tables, in pipeline order: the retention table has one block of rows each.
DOCUMENT_ASSETS = ["raw_documents", "rw_raw", "rw_quality_signals", "rw_filtered", "rw_deduped"]
# Keep the terminal for the summary; every event is still in the instance for the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _prepare_environment() -> None:
    """Decide DAGSTER_HOME, crawl root and settings before Dagster is imported."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ.setdefault("CORPUS_ROOT", str(REPO_ROOT / ".corpus"))
    if "CORPUS_CRAWL_ROOT" not in os.environ:
        shared = REPO_ROOT.parent / "shared" / "data"
        if (shared / "crawl-data").is_dir():
            os.environ["CORPUS_CRAWL_ROOT"] = str(shared.resolve())
            os.environ.setdefault("CORPUS_CONFIG", str(REPO_ROOT / "configs" / "sample.yaml"))
        else:
            from corpus_assets.fixtures import build_fixture_crawl

            fixture = build_fixture_crawl(REPO_ROOT / ".corpus_fixture")
            print(f"../shared/data is absent: using the fixture crawl written to {fixture}")
            os.environ["CORPUS_CRAWL_ROOT"] = str(fixture)
            os.environ.setdefault("CORPUS_CONFIG", str(fixture / "pipeline.yaml"))


def run_named_job(defs, instance, job_name: str, partition_key=None):
    """One run of a named job of the definitions (the Runs page then says which job ran,
    not ``__ephemeral_asset_job__``), with the definitions' resources; never raises on a
    failed step: the result says."""
    return defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, partition_key=partition_key, run_config=QUIET, raise_on_error=False,
        tags={"corpus_assets/launched_by": "demo"},
    )


def named_job_for(selection) -> str | None:
    """The named job of the definitions that materializes exactly ``selection`` (in any
    order), or None."""
    from corpus_assets.definitions import DUMP_DEDUP_ASSETS, NAMED_JOBS, SHARD_ASSETS

    jobs = {"shard_pipeline_job": SHARD_ASSETS, "dump_dedup_job": DUMP_DEDUP_ASSETS, "rw_deduped_job": ["rw_deduped"],
            "dedup_index_job": ["dedup_index"], "crawl_manifest_job": ["crawl_manifest"],
            **{name: assets for name, (assets, _) in NAMED_JOBS.items()}}
    return next((name for name, assets in jobs.items() if sorted(assets) == sorted(selection)), None)


def _materialize(job: tuple[str, str]) -> tuple[str, bool, float]:
    """Runs in a worker process: one run of the named job for one partition."""
    import dagster as dg

    from corpus_assets.definitions import defs

    partition_key, job_name = job
    started = time.perf_counter()
    result = run_named_job(defs, dg.DagsterInstance.get(), job_name, partition_key)
    return partition_key, result.success, time.perf_counter() - started


def _metadata_value(entry, key):
    value = entry.asset_materialization.metadata.get(key)
    return None if value is None else value.value


def retention_table(instance, dumps: list[str], shard_keys: list[str]) -> list[dict]:
    """Per dump and step: documents in and out, summed over shards from the metadata that
    each partition's materialization recorded (the same numbers the UI shows)."""
    import dagster as dg

    from corpus_assets.partitions import shard_partition_key

    rows = []
    for dump in dumps:
        baseline = 0
        per_step: dict[tuple[str, str], list[int]] = {}
        reasons: dict[tuple[str, str, str], int] = {}
        audit = [0, 0]  # the language pre-screen's audit: pages sampled, kept by language ID
        for asset in DOCUMENT_ASSETS:
            for shard in shard_keys:
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset),
                                          asset_partitions=[shard_partition_key(dump, shard)]), limit=1
                ).records
                if not records:
                    continue
                entry = records[0].event_log_entry
                funnel = _metadata_value(entry, "funnel")
                for record in funnel.records:
                    data = record.data
                    agg = per_step.setdefault((asset, data["step"]), [0, 0])
                    agg[0] += data["docs_in"]
                    agg[1] += data["docs_out"]
                if asset == "raw_documents":
                    baseline += _metadata_value(entry, "docs_out")
                if asset == "rw_raw" and _metadata_value(entry, "prescreen_audit_sampled") is not None:
                    audit[0] += _metadata_value(entry, "prescreen_audit_sampled")
                    audit[1] += _metadata_value(entry, "prescreen_audit_kept")
                for record in _metadata_value(entry, "removed_by_reason").records:
                    data = record.data
                    k = (asset, data["step"], data["reason"])
                    reasons[k] = reasons.get(k, 0) + data["count"]
        for (asset, step), (docs_in, docs_out) in per_step.items():
            rows.append({
                "dump": dump, "asset": asset, "step": step, "docs_in": docs_in, "docs_out": docs_out,
                "retention": docs_out / docs_in if docs_in else 0.0,
                "cumulative": docs_out / baseline if baseline else 0.0,
                "reasons": {r: n for (a, s, r), n in reasons.items() if a == asset and s == step},
                "note": (f"(audit: language ID kept {audit[1]} of {audit[0]} sampled)"
                         if step == "language_prescreen" else ""),
            })
    return rows


def print_retention(rows: list[dict]) -> None:
    current = None
    for row in rows:
        if row["dump"] != current:
            current = row["dump"]
            print(f"\n== {current}: retention per step (cumulative = share of the HTML 200 responses)")
            print(f"{'asset':<20}{'step':<22}{'docs in':>9}{'docs out':>10}{'kept':>8}{'cumul.':>8}  top removal reasons")
        top = ", ".join(f"{r} {n}" for r, n in sorted(row["reasons"].items(), key=lambda kv: -kv[1])[:4])
        print(f"{row['asset']:<20}{row['step']:<22}{row['docs_in']:>9}{row['docs_out']:>10}"
              f"{row['retention']:>8.1%}{row['cumulative']:>8.1%}  {top} {row.get('note', '')}".rstrip())


def print_reports(instance, dumps: list[str]) -> None:
    """Each dump's funnel end and largest drift, read back from corpus_report's metadata."""
    import dagster as dg

    print("\n== corpus_report (open it in the UI for the funnel plot, removals, distributions and drift)")
    for dump in dumps:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("corpus_report"), asset_partitions=[dump]), limit=1).records
        if not records:
            print(f"  {dump}: no report")
            continue
        entry = records[0].event_log_entry
        print(f"  {dump}: {_metadata_value(entry, 'records_read')} responses read, "
              f"{_metadata_value(entry, 'html_responses')} HTML 200 -> {_metadata_value(entry, 'final_docs')} documents "
              f"after {_metadata_value(entry, 'final_asset')} ({_metadata_value(entry, 'final_share')} of HTML 200); "
              f"largest drift: {_metadata_value(entry, 'largest_drift')}")


def run_selection(instance, defs, failures: list[str]) -> None:
    """Targeted selection for every configured target, after the pipeline (its pool reads
    rw_deduped), then one summary block per target read back from selection_comparison."""
    import dagster as dg

    from corpus_assets.assets.selection import SELECTION_ASSETS
    from corpus_assets.config import load_config
    from corpus_assets.selection_stages import data_dir

    cfg = load_config().selection
    if not cfg.targets or not data_dir(cfg).is_dir():
        print(f"\nselection: skipped (no targets, or no selection data at {data_dir(cfg)})")
        return
    for target in cfg.targets:
        started = time.perf_counter()
        result = run_named_job(defs, instance, "selection_job", target.name)
        print(f"  {target.name} {SELECTION_ASSETS[0]} .. {SELECTION_ASSETS[-1]}: "
              f"{'ok' if result.success else 'FAILED'} in {time.perf_counter() - started:.1f}s")
        if not result.success:
            failures.append(f"{target.name} {SELECTION_ASSETS}")
            continue
        records = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("selection_comparison"), asset_partitions=[target.name]), limit=1).records
        report = _metadata_value(records[0].event_log_entry, "report")
        print(f"\n== selection toward {target.name}: pool {report['pool_docs']} docs "
              f"({report['decontamination_removed']} removed by decontamination), k = {report['k']}, "
              f"{report['heldout_examples']} held-out examples; {report['lm']}; "
              f"overlap ZIP-FIT/DSIR {report['overlap_docs']} docs")
        print(f"{'method':<18}{'selected':>9}{'chars':>10}{'bits/byte':>10}{'same bytes':>11}{'CPU s':>8}"
              "  composition by source | by domain")
        for method in ("zipfit_selection", "dsir_selection", "random"):
            m = report["methods"][method]
            mix = " | ".join(", ".join(f"{d} {c['share_docs']:.0%}" for d, c in
                                       sorted(m[key].items(), key=lambda kv: -kv[1]["docs"]))
                             for key in ("composition", "composition_by_domain"))
            cpu = f"{m['cpu_seconds']:.1f}" if m["cpu_seconds"] is not None else "-"
            print(f"{method:<18}{m['selected_docs']:>9}{m['selected_chars']:>10}{m['heldout_bits_per_byte']:>10.3f}"
                  f"{m['heldout_bits_per_byte_equal_bytes']:>11.3f}{cpu:>8}  {mix}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--through-dedup", action="store_true",
                        help="stop after RW-Deduped (no domain subsets, selection or later artifacts)")
    parser.add_argument("--recipe", default=None,
                        help="run one named recipe of corpus_assets/defaults/recipes/ (refinedweb, fineweb, c4, gpt3,"
                        " ccnet, llama) and print its retention (docs/recipes.md)")
    args = parser.parse_args(argv)
    if args.recipe is not None:
        from corpus_assets.recipe_demo import prepare_recipe_environment, run_recipe
        from corpus_assets.recipes import RecipeError

        try:
            prepare_recipe_environment(args.recipe)
        except RecipeError as exc:
            parser.error(f"--recipe: {exc}")
        _prepare_environment()
        from corpus_assets.config import ConfigError

        try:
            return run_recipe(args.recipe, args.workers)
        except ConfigError as exc:  # e.g. webtext without url_allowlist.path: the message, no traceback
            hint = ("\n(point $CORPUS_CONFIG at a settings file of your own that sets it; docs/recipes.md)"
                    if "needs it set" in str(exc) else "")
            print(f"demo --recipe {args.recipe}: {exc}{hint}", file=sys.stderr)
            return 2
    _prepare_environment()

    import dagster as dg

    from corpus_assets.crawl import dump_sort_key
    from corpus_assets.definitions import defs
    from corpus_assets.partitions import DUMP_DIM, shard_keys, shard_partition_key
    from corpus_assets.config import load_config
    from corpus_assets.domain_demo import ANALYSES, SEED_AND_TRAIN, domain_runs, domain_table, print_domain_table

    DOMAIN_JOBS = {tuple(SEED_AND_TRAIN): "domain_training_job", ("domain_labels",): "domain_labels_job",
                   ("domain_subsets",): "domain_subsets_job", tuple(ANALYSES): "domain_analyses_job"}

    config = load_config()
    instance = dg.DagsterInstance.get()
    # The crawl source as the assets get it: the resource builds the S3 client (honouring
    # CORPUS_S3_ENDPOINT_URL) that an s3:// root needs.
    source = defs.resources["crawl_source"].get_source()
    dumps = source.list_dumps()
    print(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']}\ncrawl source={source.root}\n"
          f"corpus root={os.environ['CORPUS_ROOT']}\nsettings={config.source_file}\ndumps={dumps}")
    new = [d for d in dumps if d not in instance.get_dynamic_partitions(DUMP_DIM)]
    if new:
        instance.add_dynamic_partitions(DUMP_DIM, new)

    started = time.perf_counter()
    for dump in dumps:
        assert run_named_job(defs, instance, "crawl_manifest_job", dump).success
    shards = shard_keys(config.num_shards)
    failures: list[str] = []

    def run_parallel(pool, partition_keys: list[str], job_name: str) -> None:
        for key, ok, seconds in pool.map(_materialize, [(k, job_name) for k in partition_keys]):
            print(f"  {key} {job_name}: {'ok' if ok else 'FAILED'} in {seconds:.1f}s")
            if not ok:
                failures.append(f"{key} {job_name}")

    keys = [shard_partition_key(dump, shard) for dump in dumps for shard in shards]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        # Shards of every dump are independent up to their MinHash signatures ...
        run_parallel(pool, keys, "shard_pipeline_job")
        # ... dedup goes dump by dump in crawl order, each against the earlier dumps' index.
        for dump in sorted(dumps, key=dump_sort_key):
            run_parallel(pool, [dump], "dump_dedup_job")
            run_parallel(pool, [shard_partition_key(dump, shard) for shard in shards], "rw_deduped_job")
            run_parallel(pool, [dump], "dedup_index_job")
        # Domain subsets (docs/domains.md): seeds + classifiers, labels per shard, one subset per domain.
        if not args.through_dedup:
            for dump in sorted(dumps, key=dump_sort_key):
                for partition_keys, selection in domain_runs(dump, shards, config):
                    run_parallel(pool, partition_keys, DOMAIN_JOBS[tuple(selection)])
            run_parallel(pool, [None], DOMAIN_JOBS[tuple(ANALYSES)])
    print(f"materialized {len(keys)} shard partitions and their dedup in {time.perf_counter() - started:.1f}s")
    print_retention(retention_table(instance, dumps, shards))
    if not args.through_dedup:
        from corpus_assets.mixture_demo import run_mixtures

        print_domain_table(domain_table(instance, dumps, config))
        run_selection(instance, defs, failures)
        run_mixtures(instance, defs, failures)
        from corpus_assets.sft_demo import run_sft

        run_sft(instance, defs, failures)
    # Last, so each dump's report sees every artifact (domains, selections) built from it.
    for dump, job in [(d, "corpus_report_job") for d in sorted(dumps, key=dump_sort_key)] + [(None, "corpus_overview_job")]:
        if not run_named_job(defs, instance, job, dump).success:
            failures.append(f"{dump} {job}")
    print_reports(instance, dumps)
    print("\nOpen the UI with `make dev` (dagster dev on this DAGSTER_HOME) at http://127.0.0.1:3000")
    if failures:
        print(f"FAILED partitions: {failures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

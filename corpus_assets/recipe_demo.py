"""``python -m corpus_assets.demo --recipe NAME``: run one recipe of
``defaults/recipes/`` on the sample crawl and print its retention.

The recipe's assets are materialized in its order (shard runs in parallel over every
(dump, shard), dump runs per dump, dedup dump after dump in crawl order), into the
corpus root ``$CORPUS_ROOT`` (default ``.corpus_recipes/<name>`` in the checkout, so
recipes do not overwrite each other's partitions; the default ``refinedweb`` with plain
``make demo`` keeps ``.corpus``), recorded in the recipe's own Dagster instance
(``$DAGSTER_HOME``, default ``.corpus_recipes/<name>/dagster_home``). The retention table
is read back from the partitions' stats: documents out of every document asset per dump,
as a share of the dump's HTML 200 responses; then the classifiers' held-out figures and keep rates, and CCNet's buckets.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def prepare_recipe_environment(name: str) -> None:
    """Before Dagster or the settings are imported: the recipe, its own corpus root and its
    own Dagster instance (``recipes.recipe_homes``; ``$CORPUS_ROOT`` / ``$DAGSTER_HOME``
    override them), the pair ``CORPUS_RECIPE=<name> make dev`` opens."""
    from corpus_assets.recipes import load_recipe, recipe_homes

    load_recipe(name)  # a bad name fails here, before anything is written
    os.environ["CORPUS_RECIPE"] = name
    root, home = recipe_homes(name, REPO_ROOT)
    os.environ.setdefault("CORPUS_ROOT", str(root))
    os.environ.setdefault("DAGSTER_HOME", str(home))


def _materialize(job: tuple[str, tuple[str, ...]]) -> tuple[str, bool, float]:
    import dagster as dg

    from corpus_assets.definitions import defs

    from corpus_assets.demo import named_job_for

    partition_key, selection = job
    started = time.perf_counter()
    tags = {"corpus_assets/launched_by": "demo", "corpus_assets/recipe": os.environ.get("CORPUS_RECIPE", "")}
    name = named_job_for(selection)
    if name and name in {j.name for j in defs.jobs}:
        # A named job when one holds exactly these assets, so the Runs page says what ran.
        result = defs.resolve_job_def(name).execute_in_process(
            instance=dg.DagsterInstance.get(), partition_key=partition_key, run_config=QUIET,
            raise_on_error=False, tags=tags)
    else:  # a recipe's own combination of assets
        result = dg.materialize(defs.assets, selection=list(selection), partition_key=partition_key,
                                instance=dg.DagsterInstance.get(), resources=defs.resources, raise_on_error=False,
                                run_config=QUIET, tags=tags)
    return partition_key, result.success, time.perf_counter() - started


def run_recipe(name: str, workers: int) -> int:
    import dagster as dg

    from corpus_assets.config import load_config
    from corpus_assets.crawl import dump_sort_key
    from corpus_assets.definitions import defs
    from corpus_assets.partitions import DUMP_DIM, shard_keys, shard_partition_key
    from corpus_assets.recipes import load_recipe, run_phases

    recipe = load_recipe(name)
    config = load_config()
    instance = dg.DagsterInstance.get()
    source = defs.resources["crawl_source"].get_source()
    dumps = sorted(source.list_dumps(), key=dump_sort_key)
    print(f"recipe={recipe.name} ({recipe.paper})\nsettings={config.source_file}\n"
          f"DAGSTER_HOME={os.environ.get('DAGSTER_HOME')}\n"
          f"corpus root={os.environ['CORPUS_ROOT']}\ndumps={dumps}")
    new = [d for d in dumps if d not in instance.get_dynamic_partitions(DUMP_DIM)]
    if new:
        instance.add_dynamic_partitions(DUMP_DIM, new)
    shards = shard_keys(config.num_shards)
    failures: list[str] = []
    started = time.perf_counter()

    def run(pool, keys: list[str], selection: list[str]) -> None:
        for key, ok, seconds in pool.map(_materialize, [(k, tuple(selection)) for k in keys]):
            print(f"  {key} {selection[0]}{' .. ' + selection[-1] if len(selection) > 1 else ''}: "
                  f"{'ok' if ok else 'FAILED'} in {seconds:.1f}s")
            if not ok:
                failures.append(f"{key} {selection}")

    with ProcessPoolExecutor(max_workers=workers) as pool:
        for kind, assets in run_phases(recipe):
            if failures:
                break
            if kind == "shard":
                run(pool, [shard_partition_key(d, s) for d in dumps for s in shards], assets)
            elif kind == "dump":
                run(pool, dumps, assets)
            else:  # dedup: dump after dump, each against the earlier dumps' index
                for dump in dumps:
                    dump_assets = [a for a in assets if a not in ("rw_deduped", "dedup_index")]
                    if dump_assets:
                        run(pool, [dump], dump_assets)
                    if "rw_deduped" in assets:
                        run(pool, [shard_partition_key(dump, s) for s in shards], ["rw_deduped"])
                    if "dedup_index" in assets:
                        run(pool, [dump], ["dedup_index"])
    print(f"recipe {name}: materialized in {time.perf_counter() - started:.1f}s")
    if failures:
        print(f"FAILED partitions: {failures}", file=sys.stderr)
        return 1
    store = defs.resources["corpus_store"].get_store()
    print_recipe_retention(store, recipe, dumps, shards, config)
    return 0


def recipe_retention(store, recipe, dumps: list[str], shards: list[str]) -> list[dict]:
    """Per dump and document asset of the recipe: documents out, summed over shards, and
    the share of the dump's HTML 200 responses (raw_documents' output)."""
    from corpus_assets.stages import load_report

    rows = []
    for dump in dumps:
        baseline = sum(load_report(store, "raw_documents", dump, s).docs_out for s in shards)
        for asset in recipe.document_assets():
            reports = [load_report(store, asset, dump, s) for s in shards]
            docs_out = sum(r.docs_out for r in reports)
            reasons: dict[str, int] = {}
            for r in reports:
                for _step, reason, n in r.removed_by_reason():
                    reasons[reason] = reasons.get(reason, 0) + n
            rows.append({"dump": dump, "asset": asset, "docs_in": sum(r.docs_in for r in reports),
                         "docs_out": docs_out, "share": docs_out / baseline if baseline else 0.0,
                         "baseline": baseline, "reasons": reasons})
    return rows


def step_counts(store, asset: str, step: str, dumps: list[str], shards: list[str]) -> tuple[int, int]:
    """(docs in, docs out) of one step inside a document asset, over the dumps' shards."""
    from corpus_assets.stages import load_report

    docs_in = docs_out = 0
    for dump in dumps:
        for shard in shards:
            for s in load_report(store, asset, dump, shard).step_stats:
                if s.step == step:
                    docs_in += s.docs_in
                    docs_out += s.docs_out
    return docs_in, docs_out


def print_recipe_retention(store, recipe, dumps: list[str], shards: list[str], config) -> None:
    from corpus_assets import classifier_stages

    rows = recipe_retention(store, recipe, dumps, shards)
    print(f"\n== recipe {recipe.name}: documents out of each asset (share of the dump's HTML 200 responses)")
    print(f"{'dump':<17}{'asset':<26}{'docs in':>8}{'docs out':>9}{'share':>8}  top removal reasons")
    for row in rows:
        top = ", ".join(f"{r} {n}" for r, n in sorted(row["reasons"].items(), key=lambda kv: -kv[1])[:4])
        print(f"{row['dump']:<17}{row['asset']:<26}{row['docs_in']:>8}{row['docs_out']:>9}{row['share']:>8.1%}  {top}")
    final = [r for r in rows if r["asset"] == recipe.output]
    kept, base = sum(r["docs_out"] for r in final), sum(r["baseline"] for r in final)
    print(f"\nRECIPE {recipe.name}: {kept} of {base} HTML documents kept in {recipe.output} "
          f"({kept / base if base else 0:.1%}); the paper: {recipe.published_retention}")
    if config.classifiers.gpt3.enabled:
        docs_in, docs_out = step_counts(store, "rw_filtered", "gpt3_quality", dumps, shards)
        for dump in dumps:
            report = classifier_stages.model_report(store, classifier_stages.GPT3_MODEL, dump)
            if report.get("untrainable"):
                print(f"gpt3 classifier {dump}: untrainable ({report['untrainable']})")
                continue
            print(f"gpt3 classifier {dump}: held-out F1 {report['held_out']['f1']:.3f} (precision "
                  f"{report['held_out']['precision']:.3f}, recall {report['held_out']['recall']:.3f}) on "
                  f"{report['training_docs']['reference']} reference + {report['training_docs']['crawl']} crawl "
                  f"documents, trained in {report['train_seconds']:.1f}s")
        print(f"gpt3 keep rate (Pareto, alpha {config.classifiers.gpt3.pareto_alpha:g}): {docs_out} of {docs_in} "
              f"({docs_out / docs_in if docs_in else 0:.1%})")
    if config.classifiers.llama.enabled:
        from corpus_assets.steps.classifiers.common import f1_at

        docs_in, docs_out = step_counts(store, classifier_stages.LLAMA_FILTERED, "llama_reference", dumps, shards)
        for dump in dumps:
            report = classifier_stages.model_report(store, classifier_stages.LLAMA_MODEL, dump)
            if report.get("untrainable"):
                print(f"llama reference classifier {dump}: untrainable ({report['untrainable']})")
                continue
            f1, at = f1_at(report["held_out"], config.classifiers.llama.threshold)
            print(f"llama reference classifier {dump}: held-out F1 {f1:.3f} at threshold {at:g} on "
                  f"{report['training_docs']['reference']} reference + {report['training_docs']['crawl']} crawl "
                  f"documents, trained in {report['train_seconds']:.1f}s")
        print(f"llama reference classifier keeps {docs_out} of {docs_in} ({docs_out / docs_in if docs_in else 0:.1%};"
              f" threshold {config.classifiers.llama.threshold:g})")
    if "ccnet_buckets" in recipe.assets:
        from corpus_assets.ccnet_stages import demo_summary

        demo_summary(store, dumps, shards, config)

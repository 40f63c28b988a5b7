"""The demo's fine-tuning pool block (docs/sft.md): materialize every sft dataset's samples
and statistics, then every recipe's selection, and print retention per step, tokens used vs
budget, composition by source and diversity against a random selection of the same tokens."""

from __future__ import annotations

import time

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _materialize(instance, defs, assets: list[str], partition: str, failures: list[str]) -> bool:
    from corpus_assets.definitions import NAMED_JOBS
    from corpus_assets.demo import run_named_job

    started = time.perf_counter()
    # The named job of these assets (definitions.NAMED_JOBS), so the Runs page says what ran.
    job = next(name for name, (selection, _) in NAMED_JOBS.items() if selection == list(assets))
    result = run_named_job(defs, instance, job, partition)
    print(f"  {partition} {' -> '.join(assets)}: {'ok' if result.success else 'FAILED'} "
          f"in {time.perf_counter() - started:.1f}s")
    if not result.success:
        failures.append(f"{partition} {assets}")
    return result.success


def print_manifest(manifest: dict) -> None:
    for warning in manifest.get("warnings", []):
        print(f"WARNING: {warning}")
    print(f"== fine-tuning selection {manifest['recipe']} v{manifest['version']}: {manifest['samples']:,} samples, "
          f"{manifest['tokens_used']:,} of {manifest['token_budget']:,} budget tokens "
          f"({manifest['budget_used']:.1%}); tokenizer {manifest['tokenizer']}; seed {manifest['seed']}")
    print(f"{'step':<14}{'in':>8}{'out':>8}{'tokens out':>12}{'retention':>11}  removed by reason")
    for f in manifest["funnel"]:
        reasons = ", ".join(f"{r} {n:,}" for r, n in manifest["removed_by_step"].get(f["step"], {}).items())
        print(f"{f['step']:<14}{f['samples_in']:>8,}{f['samples_out']:>8,}{f['tokens_out']:>12,}"
              f"{f['retention']:>11.3f}  {reasons}")
    comp = manifest["composition"]
    print(f"{'source':<24}{'pool':>7}{'deduped':>9}{'selected':>10}{'tokens':>9}{'share':>7}{'random':>8}")
    for source, e in comp["pool"].items():
        sel, ded = comp["selection"].get(source, {}), comp["after_dedup"].get(source, {})
        print(f"{source:<24}{e['samples']:>7,}{ded.get('samples', 0):>9,}{sel.get('samples', 0):>10,}"
              f"{sel.get('tokens', 0):>9,}{sel.get('share_tokens', 0.0):>7.3f}"
              f"{comp['random'].get(source, {}).get('share_tokens', 0.0):>8.3f}")
    d = manifest["diversity"]
    print(f"diversity over the deduplicated pool ({d['pool']['samples']:,} samples, k-means k={d['pool']['clusters']}):")
    print(f"{'selection':<30}{'samples':>8}{'tokens':>9}{'mean dist':>11}{'max dist':>10}{'entropy':>9}"
          f"{'clusters':>10}{'quality':>9}")
    for name in ("selection", "random", "quality_only", "other_method"):
        # manifest.json writes a figure without a value as null (an empty selection)
        f = {k: float("nan") if v is None else v for k, v in d[name].items()}
        label = f"{name} ({f['method']})" if "method" in f else name
        print(f"{label:<30}{f['samples']:>8,}{f['tokens']:>9,}{f['mean_nearest_distance']:>11.4f}"
              f"{f['max_nearest_distance']:>10.4f}{f['cluster_entropy']:>9.4f}{f['clusters_covered']:>10}"
              f"{f['mean_quality']:>9.4f}")


def run_sft(instance, defs, failures: list[str]) -> None:
    from corpus_assets.config import load_config
    from corpus_assets.sft_stages import SAMPLES, SELECTION, STATISTICS, selection_path

    config = load_config()
    missing = [d.name for d in config.sft.datasets if not config.sft.dataset_file(d).is_file()]
    if missing or not config.sft.datasets:
        print(f"\nsft: skipped (dataset files absent: {missing})")
        return
    recipes = config.sft.recipes()
    print("\n== fine-tuning pool selection (docs/sft.md)")
    for d in config.sft.datasets:
        if not _materialize(instance, defs, [SAMPLES, STATISTICS], d.name, failures):
            return
    store = defs.resources["corpus_store"].get_store()
    for name in sorted(recipes):
        if _materialize(instance, defs, [SELECTION], name, failures):
            print_manifest(store.read_json(selection_path(name)))

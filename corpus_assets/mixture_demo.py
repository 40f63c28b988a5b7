"""The demo's training-mixture block: materialize every mixture spec (default: demo_mix,
web + math + code + Wikipedia) after the selections, and print requested vs achieved token
shares, tokens per source and epochs, read back from the manifest."""

from __future__ import annotations

import time

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _materialize(instance, defs, asset: str, partition: str, failures: list[str]) -> bool:
    from corpus_assets.demo import run_named_job

    started = time.perf_counter()
    result = run_named_job(defs, instance, f"{asset}_job", partition)  # training_mixture_job, mixture_search_job
    print(f"\n  {partition} {asset}: {'ok' if result.success else 'FAILED'} in {time.perf_counter() - started:.1f}s")
    if not result.success:
        failures.append(f"{partition} [{asset}]")
    return result.success


def _sources_without_documents(store, spec, config, defs) -> str:
    """Why the mixture cannot be built from what this corpus holds ("" when it can): the
    external data files are absent (no ``../shared/data`` beside the checkout), or a
    weighted source has no documents (a tiny crawl: a test's one-page dump). Anything else
    (a partition the spec names that this corpus lacks, a bad setting) is not a reason to
    skip: it raises, and the demo reports the mixture as failed. The counts computed here
    are the ones the asset then reads."""
    from corpus_assets import selection_stages
    from corpus_assets.mixture_stages import read_sources
    from corpus_assets.steps.mixture.plan import temperature_weights

    known = {s.name: s for s in config.selection.sources}
    absent = sorted({str(selection_stages.resolve_path(config.selection, known[p].path))
                     for s in spec.sources if s.asset == "external" for p in s.partitions
                     if p in known and not selection_stages.resolve_path(config.selection, known[p].path).is_file()})
    if absent:
        return f"external data absent: {absent}"
    per_source = read_sources(store, spec, config, defs.resources["tokenizer"].get_counter(config.mixture))[0]
    available = {n: s["available_tokens"] for n, s in per_source.items()}
    if spec.temperature is not None:
        # The shares come from the sizes: an empty source is simply given none.
        if not any(available.values()):
            return "no documents in any source"
        weights = temperature_weights(available, spec.temperature)
    else:
        weights = spec.requested_weights()
    empty = [n for n in per_source if weights.get(n, 0) > 0 and available[n] == 0]
    return f"no documents in source(s) {empty}" if empty else ""


def run_mixtures(instance, defs, failures: list[str]) -> None:
    from corpus_assets.config import load_config
    from corpus_assets.mixture_stages import MIXTURE, manifest_path, verify_shares

    config = load_config()
    specs = config.mixture.specs()
    if not specs:
        print("\nmixture: skipped (no mixture specs)")
        return
    store = defs.resources["corpus_store"].get_store()
    for name in sorted(specs):
        try:
            empty = _sources_without_documents(store, specs[name], config, defs)
        except Exception as exc:  # a real problem with this corpus or spec: reported, never skipped
            print(f"\nmixture {name}: FAILED ({type(exc).__name__}: {exc})")
            failures.append(f"{name} [training_mixture]")
            continue
        if empty:
            # A tiny crawl (a test's one-page dump) leaves rw_deduped empty: nothing to mix.
            print(f"\nmixture {name}: skipped ({empty})")
            continue
        if not _materialize(instance, defs, MIXTURE, name, failures):
            continue
        manifest = store.read_json(manifest_path(name))
        passed, facts = verify_shares(manifest)
        print(f"== training mixture {name} v{manifest['version']}: {manifest['tokens']:,} tokens "
              f"(budget {manifest['token_budget']:,}), {manifest['docs']:,} docs in {len(manifest['shards'])} shards "
              f"(Parquet + JSONL.zst); tokenizer {manifest['tokenizer']}; config {manifest['config_hash']}; "
              f"shares within {facts['tolerance']}: {'yes' if passed else 'NO'} (max gap {facts['max_gap']:.4f})")
        print(f"{'source':<10}{'asset':<18}{'requested':>10}{'achieved':>10}{'tokens':>10}{'available':>11}"
              f"{'docs':>7}{'epochs':>8}")
        for source, s in manifest["sources"].items():
            print(f"{source:<10}{s['asset']:<18}{s['requested_share']:>10.3f}{s['achieved_share']:>10.3f}"
                  f"{s['tokens']:>10,}{s['available_tokens']:>11,}{s['docs']:>7}{s['epochs']:>8.3f}")
        run_search(instance, defs, store, name, failures)


def run_search(instance, defs, store, name: str, failures: list[str]) -> None:
    from corpus_assets.mixture_stages import SEARCH, search_path

    if not _materialize(instance, defs, SEARCH, name, failures):
        return
    report = store.read_json(search_path(name, "report.json"))
    print(f"== RegMix-style search around {name}: {len(report['candidates'])} candidates, byte {report['lm_order']}-gram "
          f"proxies on {report['train_bytes']:,} bytes, {report['regression']}; objective {report['objective']}")
    print(f"{'validation set':<20}{'examples':>9}{'Spearman (held-out mixtures)':>30}")
    for v, f in report["fit"].items():
        rho = f["spearman_heldout"]
        print(f"{v:<20}{report['validation_sets'][v]:>9}{'undefined' if rho is None else f'{rho:.3f}':>30}")
    print(f"{'source':<10}{'natural':>9}{'spec':>8}{'proposed':>10}")
    for i, source in enumerate(report["sources"]):
        print(f"{source:<10}{report['natural'][i]:>9.3f}{report['spec_weights'][i]:>8.3f}{report['proposal'][i]:>10.3f}")
    p = report["predicted_objective"]
    print(f"predicted objective (bits/byte): natural {p['natural']:.4f}, proposal {p['proposal']:.4f}; "
          f"proposal spec: {store.uri(search_path(name, 'proposal.yaml'))}")

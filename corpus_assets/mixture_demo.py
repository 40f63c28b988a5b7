"""The demo's training-mixture block: materialize every mixture spec (default: demo_mix,
web + math + code + Wikipedia) after the selections, and print requested vs achieved token
shares, tokens per source and epochs, read back from the manifest."""

from __future__ import annotations

import time

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_mixtures(instance, defs, failures: list[str]) -> None:
    import dagster as dg

    from corpus_assets.config import load_config
    from corpus_assets.mixture_stages import MIXTURE, manifest_path, verify_shares

    config = load_config()
    specs = config.mixture.specs()
    if not specs:
        print("\nmixture: skipped (no mixture specs)")
        return
    store = defs.resources["corpus_store"].get_store()
    for name in sorted(specs):
        started = time.perf_counter()
        result = dg.materialize(defs.assets, selection=[MIXTURE], partition_key=name, instance=instance,
                                resources=defs.resources, raise_on_error=False, run_config=QUIET,
                                tags={"corpus_assets/launched_by": "demo"})
        print(f"\n  {name} {MIXTURE}: {'ok' if result.success else 'FAILED'} in {time.perf_counter() - started:.1f}s")
        if not result.success:
            failures.append(f"{name} [{MIXTURE}]")
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

"""Targeted selection, side by side in one run on the same pool and targets:

- this project's ZIP-FIT (``corpus_assets.steps.selection.zipfit``) vs the PyPI package
  ``zip-fit`` 1.0.9 (``ZIPFIT.rank_sequences_by_alignment``) at the same gzip level: pairs
  (candidate x target example) per second, and whether both keep the same top-k;
- this project's DSIR vs the PyPI package ``data-selection`` 1.0.3 (``HashedNgramDSIR``:
  fit, importance weights, resample) on the same pool, target and k;
- what gzip level 0 (the ``zip-fit`` package's default) does: scores vs candidate length,
  and the top-k's composition at level 0 vs a real level;
- the share of the target's domain in each selection (HumanEval -> code, GSM8K -> math).

Pool: a seeded sample of ``--per-source`` documents from each external source of
``../shared/data`` (gsm8k_train = math, python code, GPTeacher = instruct with its
codegen part labelled code, enwiki = wiki); targets: ``--targets`` non-held-out examples
of GSM8K test and HumanEval (the pipeline's split). The reference packages are
benchmark-only and live in their own venv (``zip-fit`` declares ``datasets`` but its
gzip path never uses it, so it is installed without dependencies and ``datasets`` is
stubbed here)::

    python3 -m venv .bench/selection-venv
    .bench/selection-venv/bin/pip install numpy pydantic 'data-selection==1.0.3' lz4 brotli zstandard
    .bench/selection-venv/bin/pip install --no-deps 'zip-fit==1.0.9'
    PYTHONPATH=. .bench/selection-venv/bin/python benchmarks/bench_selection.py

Both ZIP-FIT sides get the same number of processes (``--workers``, default: the CPUs
available); both DSIR sides run in one process.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import tempfile
import time
import types
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from corpus_assets.steps.selection import dsir, zipfit  # noqa: E402
from corpus_assets.steps.selection.config import SelectionConfig  # noqa: E402

DATA = Path(os.environ.get("CORPUS_SELECTION_DATA", REPO.parent / "shared" / "data"))


def unit_hash(*parts) -> float:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def read_jsonl(path: Path):
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if line.strip():
                yield i, json.loads(line)


def load_pool(cfg: SelectionConfig, per_source: int, seed: int) -> list[dict]:
    pool, seen = [], set()
    for source in cfg.sources:
        docs = []
        for i, rec in read_jsonl(DATA / source.path):
            text = "\n".join(str(rec[f]) for f in source.fields if rec.get(f))
            if text.strip() and text not in seen:  # zip-fit returns texts: keep them unique
                docs.append((unit_hash(seed, source.name, i), {"text": text, "source": source.name,
                                                               "domain": source.domain_of(rec)}))
        for _, doc in sorted(docs, key=lambda t: t[0])[:per_source]:
            seen.add(doc["text"])
            pool.append(doc)
    return pool


def load_targets(cfg: SelectionConfig, name: str, count: int, seed: int) -> list[str]:
    target = cfg.target(name)
    examples = [(unit_hash(seed, name, i), "\n".join(str(r[f]) for f in target.fields if r.get(f)))
                for i, r in read_jsonl(DATA / target.path)]
    examples.sort()
    kept = examples[round(target.heldout_fraction * len(examples)):]  # the held-out share is skipped
    return [t for _, t in kept[:count]]


class Clock:
    def __enter__(self):
        t = os.times()
        self.start = (time.perf_counter(), t.user + t.system + t.children_user + t.children_system)
        return self

    def __exit__(self, *exc):
        t = os.times()
        self.wall = time.perf_counter() - self.start[0]
        self.cpu = t.user + t.system + t.children_user + t.children_system - self.start[1]


def reference_zipfit(pool_texts, targets, k, level, workers):
    sys.modules.setdefault("datasets", types.ModuleType("datasets")).load_dataset = None
    import multiprocessing

    from zip_fit import zipfit as ref

    ref.cpu_count = lambda: workers  # the package uses every CPU; give both sides the same
    ref.Pool = multiprocessing.get_context("fork").Pool
    engine = ref.ZIPFIT("", "", k=k, compress_level=level)
    index = {t: i for i, t in enumerate(pool_texts)}
    with Clock() as clock:
        top = engine.rank_sequences_by_alignment(pool_texts, targets)
    return [index[t] for t, _ in top], {index[t]: float(s) for t, s in top}, clock


def ours_zipfit(pool_texts, targets, k, level, workers):
    stats: dict = {}
    with Clock() as clock:
        scores = zipfit.score_candidates(iter(pool_texts), targets, level=level, workers=workers, stats=stats)
        chosen = zipfit.top_k(scores, k)
    clock.cpu += stats.get("worker_cpu_seconds", 0.0)  # forkserver workers: not reaped by us
    return chosen.tolist(), scores, clock


def reference_dsir(pool, targets, k, tmp: Path):
    """One process, like ours: joblib's reusable (loky) workers are never reaped, so their
    CPU time would be invisible to ``os.times`` and the CPU ratio meaningless."""
    from data_selection import HashedNgramDSIR

    raw_path, target_path = tmp / "raw.jsonl", tmp / "target.jsonl"
    raw_path.write_text("".join(json.dumps({"text": d["text"], "i": i}) + "\n" for i, d in enumerate(pool)))
    target_path.write_text("".join(json.dumps({"text": t}) + "\n" for t in targets))
    engine = HashedNgramDSIR([str(raw_path)], [str(target_path)], cache_dir=str(tmp / "cache"),
                             num_proc=1, ngrams=2, num_buckets=10_000, min_example_length=0)
    np.random.seed(0)
    with Clock() as clock:
        engine.fit_importance_estimator(num_tokens_to_fit="all")
        engine.compute_importance_weights()
        engine.resample(out_dir=str(tmp / "out"), num_to_sample=k, cache_dir=str(tmp / "resample_cache"))
    chosen = [json.loads(line)["i"] for f in sorted((tmp / "out").glob("*.jsonl")) for line in open(f)]
    return chosen, clock


def ours_dsir(pool_texts, targets, k, seed):
    with Clock() as clock:
        est = dsir.ImportanceEstimator(dsir.fit_distribution(targets), dsir.fit_distribution(pool_texts))
        weights = est.log_weights(pool_texts)
        chosen = dsir.gumbel_top_k(weights, k, seed)
    return chosen.tolist(), clock


def floor_cpu_seconds(targets, candidates: int, level: int, passes: int = 20) -> float:
    """CPU seconds to compress every target example alone, once per candidate: a lower
    bound for any exact method built on zlib, which must run deflate over ``y`` (in the
    candidate's context) for every pair. Measured over ``passes`` passes and scaled."""
    encoded = [t.encode("utf-8", "surrogatepass") for t in targets]
    started = time.process_time()
    for _ in range(passes):
        for y in encoded:
            zlib.compress(y, level, -15)
    return (time.process_time() - started) / passes * candidates


def shares(pool, chosen, key="domain") -> dict:
    c = Counter(pool[i][key] for i in chosen)
    return {d: round(n / len(chosen), 3) for d, n in c.most_common()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-source", type=int, default=150)
    parser.add_argument("--targets", type=int, default=40)
    parser.add_argument("--top-fraction", type=float, default=0.1)
    parser.add_argument("--level", type=int, default=6)
    parser.add_argument("--workers", type=int, default=zipfit.default_workers())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"needs the shared data at {DATA}", file=sys.stderr)
        return 2
    cfg = SelectionConfig()
    pool = load_pool(cfg, args.per_source, args.seed)
    texts = [d["text"] for d in pool]
    k = max(1, round(args.top_fraction * len(pool)))
    print(f"pool: {len(pool)} documents ({sum(map(len, texts)):,} chars) from {len(cfg.sources)} sources; "
          f"k = {k}; {args.workers} worker processes each side; gzip level {args.level}")
    figures = {"pool_docs": len(pool), "k": k, "workers": args.workers, "level": args.level, "targets": {}}
    for name in [t.name for t in cfg.targets]:
        targets = load_targets(cfg, name, args.targets, args.seed)
        pairs = len(texts) * len(targets)
        out = figures["targets"][name] = {"target_examples": len(targets), "pairs": pairs}
        print(f"\n== target {name}: {len(targets)} target examples, {pairs:,} pairs")
        rows = []
        for level in sorted({args.level, 0}):
            ref_top, ref_scores, ref_clock = reference_zipfit(texts, targets, k, level, args.workers)
            our_top, our_scores, our_clock = ours_zipfit(texts, targets, k, level, args.workers)
            same = set(ref_top) == set(our_top)
            max_diff = max(abs(ref_scores[i] - our_scores[i]) for i in ref_scores)
            rows.append((f"ZIP-FIT level {level}", pairs, ref_clock, our_clock))
            out[f"zipfit_level{level}"] = {
                "ours_wall_s": round(our_clock.wall, 3), "ours_cpu_s": round(our_clock.cpu, 3),
                "ref_wall_s": round(ref_clock.wall, 3), "ref_cpu_s": round(ref_clock.cpu, 3),
                "ours_pairs_per_s": round(pairs / our_clock.wall), "ref_pairs_per_s": round(pairs / ref_clock.wall),
                "speedup_wall": round(ref_clock.wall / our_clock.wall, 1),
                "speedup_cpu": round(ref_clock.cpu / our_clock.cpu, 1),
                "same_top_k": same, "top_k_overlap": len(set(ref_top) & set(our_top)),
                "max_score_diff_of_ref_top_k": max_diff, "composition": shares(pool, our_top),
            }
            if level == 0:
                lengths = np.array([len(t.encode()) for t in texts], dtype=float)
                rank_corr = float(np.corrcoef(np.argsort(np.argsort(our_scores)), np.argsort(np.argsort(lengths)))[0, 1])
                out["zipfit_level0"]["spearman_score_vs_length"] = round(rank_corr, 3)
                out["zipfit_level0"]["mean_chars_selected"] = round(float(lengths[our_top].mean()))
            else:
                z = out[f"zipfit_level{level}"]
                z["mean_chars_selected"] = round(float(np.mean([len(texts[i]) for i in our_top])))
                floor = floor_cpu_seconds(targets, len(texts), level)
                z["floor_cpu_s"] = round(floor, 3)
                z["floor_pairs_per_cpu_s"] = round(pairs / floor)
                z["ours_pairs_per_cpu_s"] = round(pairs / our_clock.cpu)
                z["ref_pairs_per_cpu_s"] = round(pairs / ref_clock.cpu)
                z["max_speedup_cpu_at_floor"] = round(ref_clock.cpu / floor, 1)
        with tempfile.TemporaryDirectory() as tmp:
            ref_chosen, ref_clock = reference_dsir(pool, targets, k, Path(tmp))
        our_chosen, our_clock = ours_dsir(texts, targets, k, args.seed)
        rows.append(("DSIR (docs/s)", len(texts), ref_clock, our_clock))
        out["dsir"] = {
            "ours_wall_s": round(our_clock.wall, 3), "ours_cpu_s": round(our_clock.cpu, 3),
            "ref_wall_s": round(ref_clock.wall, 3), "ref_cpu_s": round(ref_clock.cpu, 3),
            "ours_docs_per_s": round(len(texts) / our_clock.wall), "ref_docs_per_s": round(len(texts) / ref_clock.wall),
            "speedup_wall": round(ref_clock.wall / our_clock.wall, 1), "speedup_cpu": round(ref_clock.cpu / our_clock.cpu, 1),
            "overlap_with_ref": len(set(ref_chosen) & set(our_chosen)), "ref_selected": len(ref_chosen),
            "composition": shares(pool, our_chosen), "ref_composition": shares(pool, ref_chosen),
        }
        print(f"{'method':<18}{'ours pairs/s':>14}{'package pairs/s':>17}{'x (wall)':>10}{'x (CPU)':>9}"
              f"{'ours CPU s':>12}{'package CPU s':>15}")
        for label, n, ref_c, our_c in rows:
            print(f"{label:<18}{n / our_c.wall:>14,.0f}{n / ref_c.wall:>17,.0f}{ref_c.wall / our_c.wall:>10.1f}"
                  f"{ref_c.cpu / our_c.cpu:>9.1f}{our_c.cpu:>12.2f}{ref_c.cpu:>15.2f}")
        for key in [k_ for k_ in out if k_.startswith("zipfit")]:
            z = out[key]
            print(f"{key}: same top-k as zip-fit: {z['same_top_k']} (overlap {z['top_k_overlap']}/{k}, "
                  f"max score diff {z['max_score_diff_of_ref_top_k']:.2e}); selection by domain {z['composition']}; "
                  f"mean chars selected {z['mean_chars_selected']}"
                  + (f"; Spearman(score, length) = {z['spearman_score_vs_length']}" if "spearman_score_vs_length" in z else ""))
            if "floor_cpu_s" in z:
                print(f"{key}: floor (each target example compressed alone, once per candidate): {z['floor_cpu_s']} CPU s = "
                      f"{z['floor_pairs_per_cpu_s']:,} pairs per CPU s (ours {z['ours_pairs_per_cpu_s']:,}, zip-fit "
                      f"{z['ref_pairs_per_cpu_s']:,}): at most {z['max_speedup_cpu_at_floor']}x zip-fit per CPU second")
        d = out["dsir"]
        print(f"dsir: overlap with data-selection {d['overlap_with_ref']}/{k}; ours by domain {d['composition']}; "
              f"data-selection by domain {d['ref_composition']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The figures of docs/scaling.md that the other benchmarks do not measure.

    .venv/bin/python benchmarks/bench_scaling.py storage --corpus DIR [--crawl ../shared/data]
    .venv/bin/python benchmarks/bench_scaling.py exact-memory [--docs 20000] [--tokens-per-doc 400]
    .venv/bin/python benchmarks/bench_scaling.py pipeline-cpu [--dump CC-MAIN-2024-10] [--config configs/sample.yaml]

``storage``: bytes each artifact takes per WARC response record and per document, from a
corpus the pipeline wrote (e.g. ``CORPUS_ROOT=DIR python -m corpus_assets.demo
--through-dedup``): for every asset and dump, the size of the objects the partitions'
pointers name (what a reader reads; the compressed input WARC bytes beside them), the
responses read (``raw_documents``' stats), documents out, and the cross-dump index's
snapshot per dump with the documents it added.

``pipeline-cpu``: CPU seconds (this process's user + system time, which a busy machine
inflates far less than wall time) of every asset of one dump materialized through Dagster
in-process as the demo does (Parquet writes, metadata, checks and Dagster's own work
included), shard by shard, then the dump's dedup; per WARC response and per document.
Also the CPU of a near-empty step (``crawl_manifest``): Dagster's fixed cost per step.

``exact-memory``: peak memory of exact substring dedup's span finder per token of the
dump, for ``exact_method: suffix_array`` and ``hashed`` with several ``exact_hash_parts``
(``--runs``; default suffix_array, hashed with 1, 4 and 16 parts), each in a fresh
process (peak RSS above the process's RSS before the call, and NumPy's
peak as tracemalloc sees it) over a synthetic dump: Zipf-distributed words, 2 % of
documents carrying a copied 120-token passage.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOCUMENT_ASSETS = ["raw_documents", "rw_raw", "rw_quality_signals", "rw_filtered", "rw_deduped"]


def storage(corpus: Path, crawl: Path) -> None:
    from corpus_assets.crawl import CrawlSource

    sizes: dict = defaultdict(int)      # (asset, dump) -> bytes
    rows: dict = defaultdict(int)       # (asset, dump) -> rows of documents.parquet
    for pointer_file in sorted(corpus.rglob("_partition.json")):
        rel = pointer_file.parent.relative_to(corpus).parts
        asset, dump = rel[0], rel[1] if len(rel) > 1 else "-"
        pointer = json.loads(pointer_file.read_text())
        for name, entry in pointer["files"].items():
            sizes[(asset, dump)] += int(entry["bytes"])
            if name in ("documents.parquet", "band_keys.parquet"):
                rows[(asset, dump)] += int(entry.get("rows") or 0)
    dumps = sorted({d for _, d in sizes if d.startswith("CC-MAIN")})
    source = CrawlSource(str(crawl))
    responses, warc_bytes = {}, {}
    for dump in dumps:
        warc_bytes[dump] = sum((crawl / p).stat().st_size for p in source.read_manifest(dump) if (crawl / p).exists())
        n = 0
        for stats in (corpus / "raw_documents" / dump).rglob("_partition.json"):
            pointer = json.loads(stats.read_text())
            obj = stats.parent / pointer["files"]["stats.json"]["object"]
            n += json.loads(obj.read_text())["steps"][0]["docs_in"]
        responses[dump] = n
    print(f"corpus {corpus}; crawl {crawl}")
    print(f"{'dump':<17}{'asset':<24}{'bytes':>12}{'docs':>8}{'B/response':>12}{'B/doc':>10}")
    for dump in dumps:
        print(f"{dump:<17}{'(input WARC, gzip)':<24}{warc_bytes[dump]:>12}{responses[dump]:>8}"
              f"{warc_bytes[dump] / responses[dump]:>12.0f}{'':>10}")
        for asset in sorted({a for a, d in sizes if d == dump}, key=lambda a: (a not in DOCUMENT_ASSETS, a)):
            b, n = sizes[(asset, dump)], rows.get((asset, dump), 0)
            per_doc = f"{b / n:>10.0f}" if n else f"{'':>10}"
            print(f"{dump:<17}{asset:<24}{b:>12}{n:>8}{b / responses[dump]:>12.1f}{per_doc}")
    print("(dump-level assets and the index are per dump; B/response divides by the dump's WARC responses)")


def pipeline_cpu(dump: str, config_file: Path, crawl: Path) -> None:
    import tempfile

    import dagster as dg

    from corpus_assets.config import load_config
    from corpus_assets.definitions import DUMP_DEDUP_ASSETS, SHARD_ASSETS, build_definitions
    from corpus_assets.partitions import DUMP_DIM, shard_keys, shard_partition_key

    config = load_config(config_file)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        defs = build_definitions(config=config, corpus_root=tmp, crawl_root=str(crawl))
        instance.add_dynamic_partitions(DUMP_DIM, [dump])
        spent: dict = defaultdict(float)
        docs: dict = defaultdict(int)

        def run(selection, key):
            for asset in selection:
                started, wall = cpu(), time.perf_counter()
                result = dg.materialize(defs.assets, selection=[asset], partition_key=key, instance=instance,
                                        resources=defs.resources, run_config=quiet)
                assert result.success, (asset, key)
                spent[asset] += cpu() - started
                for m in result.get_asset_materialization_events():
                    meta = m.materialization.metadata
                    n = meta.get("docs_out") or meta.get("docs")
                    if n is not None and key != dump:
                        docs[asset] += int(n.value)

        run(["crawl_manifest"], dump)
        shards = shard_keys(config.num_shards)
        for shard in shards:
            run(SHARD_ASSETS, shard_partition_key(dump, shard))
        run(DUMP_DEDUP_ASSETS, dump)
        for shard in shards:
            run(["rw_deduped"], shard_partition_key(dump, shard))
        run(["dedup_index"], dump)
        stats_dir = Path(tmp) / "raw_documents" / dump
        responses = 0
        for pointer_file in stats_dir.rglob("_partition.json"):
            pointer = json.loads(pointer_file.read_text())
            responses += json.loads((pointer_file.parent / pointer["files"]["stats.json"]["object"]).read_text()
                                    )["steps"][0]["docs_in"]
    print(f"{dump}: {responses} WARC responses, {len(shards)} shards, settings {config_file}")
    print(f"{'asset':<24}{'runs':>5}{'CPU s':>9}{'docs out':>9}{'CPU ms/response':>16}")
    total = 0.0
    for asset, seconds in spent.items():
        runs = len(shards) if asset in SHARD_ASSETS or asset == "rw_deduped" else 1
        total += seconds
        print(f"{asset:<24}{runs:>5}{seconds:>9.2f}{docs.get(asset, ''):>9}{seconds * 1000 / responses:>16.2f}")
    print(f"{'total':<24}{'':>5}{total:>9.2f}{'':>9}{total * 1000 / responses:>16.2f}")


def _synthetic_texts(docs: int, tokens_per_doc: int, seed: int = 0) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(50_000)]
    ranks = np.minimum(rng.zipf(1.2, size=docs * tokens_per_doc), len(vocab)) - 1
    words = [vocab[i] for i in ranks]
    texts = [" ".join(words[i * tokens_per_doc:(i + 1) * tokens_per_doc]) for i in range(docs)]
    passage = " ".join(vocab[i] for i in rng.integers(0, len(vocab), 120))
    for i in rng.choice(docs, docs // 50, replace=False):
        texts[i] = texts[i] + " " + passage
    return texts


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def exact_child(method: str, parts: int, docs: int, tokens_per_doc: int) -> dict:
    import tracemalloc

    from corpus_assets.steps.dedup.exact_substring import find_duplicate_token_spans

    texts = _synthetic_texts(docs, tokens_per_doc)
    before = _rss_mib()
    tracemalloc.start()
    started = time.perf_counter()
    spans, n_docs, n_tokens = find_duplicate_token_spans(lambda: iter(texts), min_tokens=50, method=method,
                                                         hash_parts=parts)
    seconds = time.perf_counter() - started
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": method, "parts": parts, "docs": n_docs, "tokens": n_tokens, "docs_with_spans": len(spans),
            "seconds": round(seconds, 2), "rss_above_start_mib": round(peak - before, 1),
            "traced_peak_mib": round(traced / 2**20, 1)}


def exact_memory(docs: int, tokens_per_doc: int, runs: list[tuple[str, int]]) -> None:
    print(f"exact substring span finder, synthetic dump: {docs} docs x ~{tokens_per_doc} tokens, min_tokens=50")
    print(f"{'method':<14}{'parts':>6}{'tokens':>11}{'seconds':>9}{'RSS MiB':>9}{'traced MiB':>11}"
          f"{'B/token RSS':>12}{'B/token traced':>15}")
    for method, parts in runs:
        out = subprocess.run([sys.executable, __file__, "_exact-child", method, str(parts), str(docs),
                              str(tokens_per_doc)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{method:<14}{parts:>6}{r['tokens']:>11}{r['seconds']:>9}{r['rss_above_start_mib']:>9}"
              f"{r['traced_peak_mib']:>11}{r['rss_above_start_mib'] * 2**20 / r['tokens']:>12.1f}"
              f"{r['traced_peak_mib'] * 2**20 / r['tokens']:>15.1f}")


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "_exact-child":
        method, parts, docs, tpd = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(exact_child(method, parts, docs, tpd)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    st = sub.add_parser("storage")
    st.add_argument("--corpus", required=True)
    st.add_argument("--crawl", default=str(ROOT.parent / "shared" / "data"))
    pc = sub.add_parser("pipeline-cpu")
    pc.add_argument("--dump", default="CC-MAIN-2024-10")
    pc.add_argument("--config", default=str(ROOT / "configs" / "sample.yaml"))
    pc.add_argument("--crawl", default=str(ROOT.parent / "shared" / "data"))
    ex = sub.add_parser("exact-memory")
    ex.add_argument("--docs", type=int, default=20_000)
    ex.add_argument("--tokens-per-doc", type=int, default=400)
    ex.add_argument("--runs", default="suffix_array:1,hashed:1,hashed:4,hashed:16",
                    help="method:exact_hash_parts, comma-separated")
    args = ap.parse_args(argv)
    if args.what == "storage":
        storage(Path(args.corpus), Path(args.crawl))
    elif args.what == "pipeline-cpu":
        pipeline_cpu(args.dump, Path(args.config), Path(args.crawl))
    else:
        runs = [(r.split(":")[0], int(r.split(":")[1])) for r in args.runs.split(",")]
        exact_memory(args.docs, args.tokens_per_doc, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

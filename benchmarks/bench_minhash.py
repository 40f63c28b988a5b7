"""MinHash signature throughput vs datasketch, and peak memory of the clustering step.

Usage:  .venv/bin/python benchmarks/bench_minhash.py [--pages 300] [--cluster-docs 1000000]

1. Texts: up to ``--pages`` real pages of the sample dump CC-MAIN-2024-10 (../shared/data,
   or $CORPUS_SHARED_DATA), read with warcio and extracted with trafilatura (nothing is
   cached or written). Without the sample data, synthetic texts are used (and said so).
2. Throughput, documents per second, end to end from the extracted text (normalization
   and 5-gram shingling included for both sides, same shingles):
   - ours: ``MinHasher.signatures`` (+ band keys) at 112 (fineweb 14x8), 256 (32x8) and
     9000 (refinedweb 450x20) permutations;
   - datasketch: a plain per-document ``MinHash(num_perm=N)`` with ``update`` per shingle,
     and with ``update_batch``, at the same N.
3. Clustering: a synthetic dump of ``--cluster-docs`` documents (band keys generated
   shard by shard, with planted exact and near duplicates), clustered band range by band
   range with ``cluster_band_ranges``; peak traced memory (tracemalloc, which sees
   NumPy's allocations) and wall time, for the fineweb (14 bands) and refinedweb (450
   bands) layouts. "all keys at once" is what holding every band key would cost.
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from corpus_assets.steps.dedup.clusters import band_ranges, cluster_band_ranges  # noqa: E402
from corpus_assets.steps.dedup.hashing import fmix64  # noqa: E402
from corpus_assets.steps.dedup.minhash import (  # noqa: E402
    FINEWEB,
    REFINEDWEB,
    MinHasher,
    MinHashPreset,
    normalize_text,
)


# --------------------------------------------------------------------------- texts


def load_pages(limit: int) -> tuple[list[str], str]:
    shared = Path(os.environ.get("CORPUS_SHARED_DATA", ROOT.parent / "shared" / "data"))
    dump = shared / "crawl-data" / "CC-MAIN-2024-10"
    if not dump.exists():
        return synthetic_texts(limit), f"synthetic ({dump} absent)"
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    texts: list[str] = []
    with gzip.open(dump / "warc.paths.gz", "rt") as fh:
        paths = [line.strip() for line in fh if line.strip()]
    for rel in paths:
        path = shared / "crawl-data" / rel.split("crawl-data/", 1)[-1]
        if not path.exists():
            continue
        with open(path, "rb") as fh:
            try:
                for rec in ArchiveIterator(fh):
                    if rec.rec_type != "response" or not rec.http_headers:
                        continue
                    if rec.http_headers.get_statuscode() != "200":
                        continue
                    if "html" not in (rec.http_headers.get_header("Content-Type") or "html"):
                        continue
                    html = rec.content_stream().read()
                    text = trafilatura.extract(html, deduplicate=False)
                    if text and len(text.split()) >= 5:
                        texts.append(text)
                        if len(texts) >= limit:
                            return texts, f"{len(texts)} real pages of CC-MAIN-2024-10 (trafilatura)"
            except Exception as exc:  # a truncated file: keep what was read
                print(f"  (stopped reading {path.name}: {exc})")
    return texts, f"{len(texts)} real pages of CC-MAIN-2024-10 (trafilatura)"


def synthetic_texts(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    vocab = [f"word{i}" for i in range(30000)]
    return [" ".join(vocab[j] for j in rng.zipf(1.2, size=int(rng.integers(200, 1500))) % 30000) for _ in range(n)]


def shingle_bytes(text: str, n: int = 5) -> list[bytes]:
    words = normalize_text(text).split()
    if len(words) < n:
        return [" ".join(words).encode()]
    return [" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)]


# --------------------------------------------------------------------------- throughput


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_ours(texts: list[str], preset: MinHashPreset, repeat: int) -> float:
    mh = MinHasher(preset)
    mh.band_keys(mh.signatures(texts[:4]))  # warm the tables
    return len(texts) / best_of(lambda: mh.band_keys_for_texts(texts), repeat)


def bench_datasketch(texts: list[str], num_perm: int, batch: bool, repeat: int) -> float:
    from datasketch import MinHash

    # datasketch's default scheme (affine32 since 2.0.0). The permutations are drawn once
    # and shared, as a real pipeline would (drawing them per document is slower still).
    template = MinHash(num_perm=num_perm, seed=1)
    scheme = getattr(template, "scheme", None)
    extra = {"scheme": scheme} if scheme else {}

    def run():
        for t in texts:
            m = MinHash(num_perm=num_perm, seed=1, permutations=template.permutations, **extra)
            sh = shingle_bytes(t)
            if batch:
                m.update_batch(sh)
            else:
                for s in sh:
                    m.update(s)

    return len(texts) / best_of(run, repeat)


# --------------------------------------------------------------------------- clustering memory


class SyntheticDump:
    """Band keys of a synthetic dump, produced shard by shard for one band range (as
    reading them from the signature Parquet files would). Documents get a content id:
    5% are exact copies of an earlier document, 5% near copies (sharing about a third of
    the bands of an earlier document); a key is a hash of (content id, band)."""

    C_BAND = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, n_docs: int, shard_size: int = 100_000, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.n_docs, self.shard_size = n_docs, shard_size
        self.content = np.arange(n_docs, dtype=np.int64)
        exact = rng.choice(np.arange(1, n_docs), n_docs // 20, replace=False)
        self.content[exact] = rng.integers(0, exact)
        near = rng.choice(np.arange(1, n_docs), n_docs // 20, replace=False)
        self.near_src = np.full(n_docs, -1, dtype=np.int64)
        self.near_src[near] = rng.integers(0, near)

    def _keys(self, content: np.ndarray, bands: np.ndarray) -> np.ndarray:
        return fmix64(content.astype(np.uint64)[:, None] * self.C_BAND + bands[None, :])

    def shards(self, band_start: int, band_stop: int):
        bands = np.arange(band_start, band_stop, dtype=np.uint64)
        for s in range(0, self.n_docs, self.shard_size):
            idx = np.arange(s, min(self.n_docs, s + self.shard_size), dtype=np.int64)
            keys = self._keys(self.content[idx], bands)
            near = self.near_src[idx] >= 0
            if near.any():
                src_keys = self._keys(self.content[self.near_src[idx[near]]], bands)
                share = ((idx[near][:, None] + bands[None, :].astype(np.int64)) % 3) == 0
                keys[near] = np.where(share, src_keys, keys[near])
            yield idx, keys


def bench_clustering(n_docs: int, preset: MinHashPreset, bands_per_range: int) -> dict:
    dump = SyntheticDump(n_docs)  # generator state: not part of the clustering's memory
    ranges = band_ranges(preset.num_bands, bands_per_range)
    tracemalloc.start()
    t = time.perf_counter()
    stats: dict = {}
    cluster_band_ranges(n_docs, (dump.shards(s, e) for s, e in ranges), stats=stats)
    wall = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stats.update(
        preset=preset.name,
        docs=n_docs,
        bands=preset.num_bands,
        bands_per_range=bands_per_range,
        seconds=round(wall, 1),
        peak_traced_mb=round(peak / 2**20, 1),
        one_range_keys_mb=round(n_docs * bands_per_range * 8 / 2**20, 1),
        all_keys_at_once_mb=round(n_docs * preset.num_bands * 8 / 2**20, 1),
    )
    return stats


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--cluster-docs", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-refinedweb-clustering", action="store_true")
    args = ap.parse_args()

    t = time.perf_counter()
    texts, source = load_pages(args.pages)
    words = [len(normalize_text(x).split()) for x in texts]
    print(f"texts: {source}; loaded in {time.perf_counter() - t:.1f}s; "
          f"words/doc mean {np.mean(words):.0f}, median {np.median(words):.0f}")
    import datasketch

    scheme = getattr(datasketch.MinHash(num_perm=4), "scheme", "legacy")
    print(f"numpy {np.__version__}, datasketch {datasketch.__version__} (scheme {scheme}), python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpus; one process, one thread")
    print()
    print(f"{'perms':>6} {'layout':>8} {'ours docs/s':>12} {'ds update':>10} {'ds batch':>10} {'vs update':>10} {'vs batch':>9}")
    configs = [(FINEWEB, "14x8"), (MinHashPreset("p256", 32, 8), "32x8"), (REFINEDWEB, "450x20")]
    for preset, layout in configs:
        ours = bench_ours(texts, preset, args.repeat)
        rep = 1 if preset.num_perm > 1000 else args.repeat
        ds_u = bench_datasketch(texts, preset.num_perm, batch=False, repeat=rep)
        ds_b = bench_datasketch(texts, preset.num_perm, batch=True, repeat=rep)
        print(f"{preset.num_perm:>6} {layout:>8} {ours:>12.1f} {ds_u:>10.1f} {ds_b:>10.1f} {ours / ds_u:>9.1f}x {ours / ds_b:>8.1f}x")
    print()
    print("clustering (band keys streamed shard by shard, one band range at a time):")
    runs = [(FINEWEB, 2)]
    if not args.skip_refinedweb_clustering:
        runs.append((REFINEDWEB, 30))
    for preset, width in runs:
        st = bench_clustering(args.cluster_docs, preset, width)
        print("  " + ", ".join(f"{k}={v}" for k, v in st.items()))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS over the whole benchmark: {rss:.0f} MB")


if __name__ == "__main__":
    main()

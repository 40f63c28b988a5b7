"""Throughput and memory of each step on the sample dump: ``make bench``.

Streams one dump's WARC files through the same steps the assets run (WARC reading ->
HTML decoding -> URL filter -> HTML guard -> language pre-screen -> extraction -> language
ID -> quality signals -> filter decisions), timing each step's own work, and prints documents per second per step and
the process's peak resident memory. One process, one core: figures are per core.

    .venv/bin/python benchmarks/run.py [--dump CC-MAIN-2024-10] [--crawl ../shared/data] [--no-guard]

``--no-guard`` leaves the HTML guard out, to measure what it costs.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from corpus_assets.config import load_config  # noqa: E402
from corpus_assets.crawl import CrawlSource  # noqa: E402
from corpus_assets.steps.base import Step, run_steps  # noqa: E402
from corpus_assets.steps.extraction import Extract  # noqa: E402
from corpus_assets.steps.html_guard import HtmlGuard  # noqa: E402
from corpus_assets.steps.langid import LanguageId  # noqa: E402
from corpus_assets.steps.prescreen import LanguagePrescreen  # noqa: E402
from corpus_assets.steps.quality.decisions import build_decision_steps  # noqa: E402
from corpus_assets.steps.quality.signals import QualitySignals  # noqa: E402
from corpus_assets.steps.url_filter import UrlFilter  # noqa: E402
from corpus_assets.steps.warc import HtmlDecode, iter_warc_responses  # noqa: E402


class Timed(Step):
    """Wraps a step and adds up the seconds spent inside its ``apply``."""

    def __init__(self, inner: Step):
        self.inner = inner
        self.name = inner.name
        self.chars_in_field = inner.chars_in_field
        self.chars_out_field = inner.chars_out_field
        self.seconds = 0.0

    def apply(self, doc):
        started = time.perf_counter()
        try:
            return self.inner.apply(doc)
        finally:
            self.seconds += time.perf_counter() - started

    def close(self):
        self.inner.close()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dedup_rows(config, texts: list[str]) -> None:
    """The dedup stages' own work over the filtered documents (no Parquet I/O)."""
    import numpy as np

    from corpus_assets.steps.dedup import band_ranges, cluster_band_ranges, get_minhasher, get_preset
    from corpus_assets.steps.dedup.exact_substring import find_duplicate_token_spans

    cfg = config.dedup
    preset = get_preset(cfg.minhash_preset)
    hasher = get_minhasher(preset)
    n = len(texts)
    t0 = time.perf_counter()
    keys = hasher.band_keys(hasher.signatures(texts)) if texts else np.empty((0, preset.num_bands), np.uint64)
    t1 = time.perf_counter()
    idx = np.arange(n, dtype=np.int64)
    stats: dict = {}
    clusters = cluster_band_ranges(
        n, ([(idx, keys[:, a:b])] for a, b in band_ranges(preset.num_bands, cfg.bands_per_range)), stats=stats)
    t2 = time.perf_counter()
    dropped = set(clusters.removed().doc_index.tolist())
    fuzzy_survivors = [t for i, t in enumerate(texts) if i not in dropped]
    spans, _, _ = find_duplicate_token_spans(lambda: fuzzy_survivors, min_tokens=cfg.exact_min_tokens, method=cfg.exact_method)
    t3 = time.perf_counter()
    survivors = n - clusters.num_removed
    for name, out, secs in ((f"minhash_signatures ({preset.name})", n, t1 - t0),
                            ("buckets+clusters", survivors, t2 - t1),
                            (f"exact_substring ({cfg.exact_method})", survivors, t3 - t2)):
        n = survivors if name.startswith("exact") else len(texts)
        print(f"{name:<22}{n:>9}{out:>10}{secs:>10.3f}{(n / secs if secs else 0):>10.1f}")
    print(f"  (dedup over the {len(texts)} filtered documents of this one dump: {stats.get('clusters', 0)} clusters, "
          f"{len(spans)} documents with duplicated spans)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crawl", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--dump", default="CC-MAIN-2024-10")
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "sample.yaml"))
    parser.add_argument("--prescreen", action="store_true",
                        help="run the language pre-screen before extraction (as language_prescreen.enabled does)")
    parser.add_argument("--no-guard", action="store_true",
                        help="leave out the HTML guard (html_guard), to measure its cost")
    args = parser.parse_args(argv)
    if not (Path(args.crawl) / "crawl-data").is_dir():
        print(f"no crawl at {args.crawl}: the benchmark needs ../shared/data (or --crawl)", file=sys.stderr)
        return 2
    config = load_config(args.config)
    source = CrawlSource(args.crawl)
    paths = source.read_manifest(args.dump)

    read_seconds = 0.0

    def records():
        nonlocal read_seconds
        for path in paths:
            with source.open(path) as fh:
                it = iter_warc_responses(fh, path)
                while True:
                    started = time.perf_counter()
                    record = next(it, None)
                    read_seconds += time.perf_counter() - started
                    if record is None:
                        break
                    yield record

    prescreen = (args.prescreen or config.language_prescreen.enabled) and config.language_id.languages
    steps = [Timed(s) for s in (
        HtmlDecode(config.html_decode),
        UrlFilter(config.url_filter),
        *([] if args.no_guard else [HtmlGuard(config.html_guard)]),
        *([LanguagePrescreen(config.language_prescreen, config.language_id)] if prescreen else []),
        Extract(config.extraction),
        LanguageId(config.language_id),
        QualitySignals(config.quality_signals),
        *build_decision_steps(config.quality_thresholds),
    )]
    started = time.perf_counter()
    stream, stats = run_steps(steps, records(), lambda *a: None)
    kept_docs = list(stream)
    kept = len(kept_docs)
    wall = time.perf_counter() - started
    for step in steps:
        step.close()

    print(f"benchmark: {args.dump} from {args.crawl}, {len(paths)} WARC files, one process "
          f"(python {sys.version.split()[0]}, {os.cpu_count()} cores on the machine)")
    print(f"{'step':<22}{'docs in':>9}{'docs out':>10}{'seconds':>10}{'docs/s':>10}")
    first = stats[0].docs_in
    print(f"{'warc_read':<22}{first:>9}{first:>10}{read_seconds:>10.3f}{first / read_seconds if read_seconds else 0:>10.0f}")
    for step, st in zip(steps, stats):
        rate = st.docs_in / step.seconds if step.seconds else float("inf")
        print(f"{step.name:<22}{st.docs_in:>9}{st.docs_out:>10}{step.seconds:>10.3f}{rate:>10.1f}")
    print(f"{'end to end':<22}{first:>9}{kept:>10}{wall:>10.3f}{first / wall:>10.1f}")
    dedup_rows(config, [d["text"] for d in kept_docs])
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

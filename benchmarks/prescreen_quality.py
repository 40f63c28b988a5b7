"""What the language pre-screen would cost on a crawl: every page both ways.

For each HTML page of the given WARC files (after decoding and the URL filter), runs
  full:      trafilatura extraction -> language ID (what rw_raw does without the pre-screen)
  prescreen: the pre-screen's decision alone (no audit)
and prints how many pages the pre-screen removes, how many pages language ID keeps (and
rw_filtered's decisions after it), how many of those the pre-screen would have removed
("lost"), and the smallest number of selected-language words the pre-screen found on a
kept page (the margin above ``min_selected_words``). Also the seconds each way.

    .venv/bin/python benchmarks/prescreen_quality.py [WARC files or folders ...]

Default input: both sample dumps and the real WARC files under ../shared/data.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from corpus_assets.config import load_config  # noqa: E402
from corpus_assets.steps.base import run_steps  # noqa: E402
from corpus_assets.steps.extraction import Extract  # noqa: E402
from corpus_assets.steps.langid import LanguageId  # noqa: E402
from corpus_assets.steps.prescreen import LanguagePrescreen  # noqa: E402
from corpus_assets.steps.quality.decisions import build_decision_steps  # noqa: E402
from corpus_assets.steps.quality.signals import QualitySignals  # noqa: E402
from corpus_assets.steps.url_filter import UrlFilter  # noqa: E402
from corpus_assets.steps.warc import HtmlDecode, iter_warc_responses  # noqa: E402


def warc_files(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, inputs):
        files.extend(sorted(item.rglob("*.warc.gz")) if item.is_dir() else [item])
    return files


def pages(files: list[Path], config):
    """Decoded HTML pages that pass the URL filter, as rw_raw's extraction would see them."""
    def records():
        for path in files:
            with open(path, "rb") as fh:
                yield from iter_warc_responses(fh, str(path))

    stream, _ = run_steps([HtmlDecode(config.html_decode), UrlFilter(config.url_filter)], records(),
                          lambda *a: None)
    yield from stream


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = REPO_ROOT.parent / "shared" / "data"
    parser.add_argument("inputs", nargs="*", default=[str(shared / "crawl-data"), str(shared / "real-warc")])
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "sample.yaml"))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    config = load_config(args.config)
    files = warc_files(args.inputs)
    if not files:
        print(f"no .warc.gz files under {args.inputs}", file=sys.stderr)
        return 2
    prescreen = LanguagePrescreen(dataclasses.replace(config.language_prescreen, audit_fraction=0.0),
                                  config.language_id)
    extract, language_id = Extract(config.extraction), LanguageId(config.language_id)
    signals = QualitySignals(config.quality_signals)
    decisions = build_decision_steps(config.quality_thresholds, config.quality_signals)
    total = removed = kept = lost = kept_filtered = lost_filtered = 0
    margin: list[int] = []
    margin_filtered: list[int] = []
    seconds = {"prescreen": 0.0, "extraction + language ID": 0.0}
    lost_urls = []
    for doc in pages(files, config):
        total += 1
        started = time.perf_counter()
        skip = prescreen.apply(dict(doc)) is not None
        seconds["prescreen"] += time.perf_counter() - started
        words = prescreen.selected_words(doc["html"], stop_early=False)[0]  # the margin, untimed
        started = time.perf_counter()
        keep = extract.apply(doc) is None and language_id.apply(doc) is None
        seconds["extraction + language ID"] += time.perf_counter() - started
        removed += skip
        kept += keep
        if keep:
            margin.append(words)
            lost += skip
            if skip:
                lost_urls.append(f"{doc.get('url', '')} ({doc['text'][:60]!r})")
            # Would the document survive rw_filtered too? (Gopher + line-wise decisions)
            if signals.apply(doc) is None and all(step.apply(doc) is None for step in decisions):
                kept_filtered += 1
                lost_filtered += skip
                margin_filtered.append(words)
    print(f"{len(files)} WARC files, {total} HTML pages after the URL filter "
          f"(pre-screen: chunk_words={config.language_prescreen.chunk_words}, "
          f"min_chunk_score={config.language_prescreen.min_chunk_score}, "
          f"min_selected_words={config.language_prescreen.min_selected_words}; "
          f"languages {list(config.language_id.languages)})")
    print(f"  pre-screen removes          {removed:>6} ({removed / total:.1%}) before extraction")
    print(f"  language ID keeps           {kept:>6} after full extraction (rw_raw)")
    print(f"    of those, pre-screen removes {lost:>3}   {lost_urls[:5]}")
    print(f"  rw_filtered's decisions keep {kept_filtered:>5}")
    print(f"    of those, pre-screen removes {lost_filtered:>3}")
    threshold = config.language_prescreen.min_selected_words
    if margin:
        print(f"  fewest selected-language words the pre-screen finds on a page language ID keeps: "
              f"{min(margin)}; on a page rw_filtered keeps: {min(margin_filtered or [0])} (threshold {threshold})")
    for name, secs in seconds.items():
        print(f"  {name:<26} {secs:>7.1f} s  ({total / secs:.0f} pages/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Quantile-matched thresholds (FineWeb-2's method, docs/languages.md) from reference text.

Computes the quality signals of every document of the English reference
(``reference/enwiki_articles.jsonl.gz`` under ../shared/data) and prints, for each
adaptable threshold, the share of English reference documents it removes. Given
``--reference LANG=FILE`` (JSONL or JSONL.gz with a "text" field, e.g. a Wikipedia dump of
the language), it also computes the language's signals with its profile (segmenter, line
patterns) and prints the quantile-matched value of each threshold: the ``thresholds``
block of ``defaults/languages/<LANG>.yaml``.

    .venv/bin/python benchmarks/languages_thresholds.py
    .venv/bin/python benchmarks/languages_thresholds.py --reference ja=jawiki.jsonl.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from corpus_assets.steps.quality.decisions import FilterThresholds  # noqa: E402
from corpus_assets.steps.quality.signals import SignalConfig, compute_signals  # noqa: E402
from corpus_assets.steps.segmentation.profiles import build_language_profiles  # noqa: E402
from corpus_assets.steps.segmentation.thresholds import ADAPTABLE, adapt_thresholds, quantile_of  # noqa: E402

ENWIKI = REPO_ROOT.parent / "shared" / "data" / "reference" / "enwiki_articles.jsonl.gz"


def read_texts(path: Path, limit: int) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line).get("text") or ""
            if text.strip():
                texts.append(text)
            if limit and len(texts) >= limit:
                break
    return texts


def signals_of(texts: list[str], language: str, config: SignalConfig, profile) -> list[dict]:
    return [compute_signals(t, language, config, fingerprint="", profile=profile) for t in texts]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--english", default=str(ENWIKI))
    parser.add_argument("--reference", action="append", default=[], help="LANG=FILE (JSONL[.gz], field text)")
    parser.add_argument("--limit", type=int, default=0, help="documents per file (0 = all)")
    args = parser.parse_args()
    config, thresholds = SignalConfig(), FilterThresholds()
    started = time.perf_counter()
    english = signals_of(read_texts(Path(args.english), args.limit), "en", config, None)
    print(f"English reference: {len(english)} documents of {Path(args.english).name} "
          f"({time.perf_counter() - started:.0f} s)\n")
    print("| threshold | English value | share of English reference removed |")
    print("|---|---:|---:|")
    for name, (column, side) in ADAPTABLE.items():
        value = getattr(thresholds, name)
        if value is not None:
            print(f"| {name} | {value} | {quantile_of([r[column] for r in english], value, side):.2%} |")
    for item in args.reference:
        language, _, path = item.partition("=")
        profile = build_language_profiles((language,)).get(language)
        started = time.perf_counter()
        rows = signals_of(read_texts(Path(path), args.limit), language, config, profile)
        adapted = adapt_thresholds(english, rows, thresholds)
        print(f"\n{language}: {len(rows)} documents of {Path(path).name} "
              f"({time.perf_counter() - started:.0f} s); thresholds block for defaults/languages/{language}.yaml:\n")
        print("thresholds:")
        for name, value in adapted.items():
            print(f"  {name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

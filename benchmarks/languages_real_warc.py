"""Retention per step for languages beyond English on real WARC files (docs/languages.md).

For each (language, WARC files) the pipeline keeps only that language (``languages:
[<lang>]``) and runs every step over the files as one dump (``corpus_assets.language_runs``:
the rw_raw steps, quality signals and decisions with the language's profile, then MinHash,
exact substring and URL dedup). Prints, per language, a markdown table of documents in and
kept per step with the removal reasons, then every page of the language with its outcome.

    .venv/bin/python benchmarks/languages_real_warc.py            # de, ja, zh (defaults below)
    .venv/bin/python benchmarks/languages_real_warc.py ja path/to/file.warc.gz ...

Defaults: ja on resiliparse_clueweb-quirk.warc.gz (29 Japanese pages), zh on
resiliparse_warcfile.warc.gz (9 Chinese pages), de on the sample crawl's CC-MAIN-2024-10
dump (../shared/data/crawl-data), all with configs/sample.yaml.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from corpus_assets.config import load_config  # noqa: E402
from corpus_assets.language_runs import run_language  # noqa: E402

DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULTS = {
    "de": [DATA / "crawl-data" / "CC-MAIN-2024-10"],
    "ja": [DATA / "real-warc" / "resiliparse_clueweb-quirk.warc.gz"],
    "zh": [DATA / "real-warc" / "resiliparse_warcfile.warc.gz"],
}


def warc_files(inputs) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, inputs):
        files.extend(sorted(item.rglob("*.warc.gz")) if item.is_dir() else [item])
    return files


def report(language: str, files: list[Path], config, show_pages: bool) -> None:
    started = time.perf_counter()
    run = run_language(files, config, language)
    seconds = time.perf_counter() - started
    of_language = [p for p in run.pages if p.language == language]
    names = ", ".join(f.name for f in files) if len(files) <= 2 else f"{len(files)} files under {files[0].parent.name}"
    print(f"\n### {language}: {names} ({seconds:.0f} s)\n")
    print("| step | docs in | kept | removed (reason: count) |")
    print("|---|---:|---:|---|")
    for s in run.steps:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(s.removed_by_reason.items(), key=lambda x: -x[1]))
        print(f"| {s.step} | {s.docs_in} | {s.docs_out} | {reasons} |")
    reached = Counter(p.step or "kept" for p in of_language)
    print(f"\n{len(of_language)} pages identified as {language} (language ID >= "
          f"{config.language_id.min_score}); where they ended: "
          + ", ".join(f"{k}: {v}" for k, v in reached.most_common()))
    if show_pages:
        print()
        for p in of_language:
            outcome = f"{p.step}/{p.reason}: {p.detail[:90]}" if p.step else "kept"
            excerpt = " / ".join(x.strip() for x in p.text.split("\n") if x.strip())[:90]
            print(f"- {p.url[:80]} — {p.words} words — {outcome} — «{excerpt}»")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("language", nargs="?", help="one language (default: de, ja, zh)")
    parser.add_argument("inputs", nargs="*", help="WARC files or folders (default: see above)")
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "sample.yaml"))
    parser.add_argument("--pages", action="store_true", help="list every page of the language")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    config = load_config(args.config)
    jobs = [(args.language, args.inputs or DEFAULTS.get(args.language, []))] if args.language else DEFAULTS.items()
    for language, inputs in jobs:
        files = warc_files(inputs)
        if not files:
            print(f"{language}: no .warc.gz files under {inputs}", file=sys.stderr)
            return 2
        report(language, files, config, args.pages)
    return 0


if __name__ == "__main__":
    sys.exit(main())

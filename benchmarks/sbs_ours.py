"""corpus_assets' side of the side-by-side benchmark, and the floors. Runs in ``.venv``.

``--mode pipeline``: the steps rw_filtered runs (WARC read -> decode -> URL filter ->
extraction -> language ID -> quality signals -> Gopher decisions -> line-wise), one
process; per-step seconds; the extracted texts and our decisions go to ``--texts`` so
the datatrove side can decide on the very same texts (agreement).
``--prescreen`` adds the optional language pre-screen before extraction.
``--mode floors``: WARC reading alone, bare ``trafilatura.extract`` at the pipeline's
settings over the same HTML, bare fastText ``predict`` over the same texts.

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from run import Timed  # noqa: E402

from corpus_assets.config import load_config  # noqa: E402
from corpus_assets.steps.base import run_steps  # noqa: E402
from corpus_assets.steps.extraction import Extract  # noqa: E402
from corpus_assets.steps.langid import LanguageId  # noqa: E402
from corpus_assets.steps.prescreen import LanguagePrescreen  # noqa: E402
from corpus_assets.steps.quality.decisions import build_decision_steps  # noqa: E402
from corpus_assets.steps.quality.signals import QualitySignals  # noqa: E402
from corpus_assets.steps.url_filter import UrlFilter  # noqa: E402
from corpus_assets.steps.warc import HtmlDecode, iter_warc_responses  # noqa: E402


def warc_files(folder: str) -> list[Path]:
    return sorted(Path(folder).glob("*.warc.gz"))


def read_records(folder: str, timer: dict):
    for path in warc_files(folder):
        with open(path, "rb") as fh:
            it = iter_warc_responses(fh, str(path))
            while True:
                started = time.perf_counter()
                record = next(it, None)
                timer["seconds"] += time.perf_counter() - started
                if record is None:
                    break
                yield record


def pipeline(folder: str, config, texts_path: str | None, prescreen: bool = False) -> dict:
    timer = {"seconds": 0.0}
    langid = LanguageId(config.language_id)
    # --prescreen: the optional language pre-screen before extraction, at its default
    # settings (audit included: what a user who turns it on runs).
    before_extraction = [LanguagePrescreen(config.language_prescreen, config.language_id)] if prescreen else []
    steps = [Timed(s) for s in (HtmlDecode(config.html_decode), UrlFilter(config.url_filter), *before_extraction,
                                Extract(config.extraction), langid, QualitySignals(config.quality_signals),
                                *build_decision_steps(config.quality_thresholds, config.quality_signals))]
    decisions: dict[str, dict] = {}
    texts = open(texts_path, "w") if texts_path else None

    def on_removed(doc, step, reason, detail):
        decisions.setdefault(doc.get("doc_id", ""), {})[step] = reason

    # Capture every extracted text once, as it leaves extraction (before language ID).
    extract_step = next(s for s in steps if s.name == Extract.name)
    inner_apply = extract_step.inner.apply

    def apply_and_record(doc):
        verdict = inner_apply(doc)
        if verdict is None and texts is not None:
            texts.write(json.dumps({"id": doc["doc_id"], "text": doc["text"]}) + "\n")
        return verdict

    extract_step.inner.apply = apply_and_record
    langid.model  # load the model outside the timed region, as the floor does
    started = time.perf_counter()
    cpu0 = time.process_time()
    stream, stats = run_steps(steps, read_records(folder, timer), on_removed)
    kept_ids = []
    for doc in stream:
        kept_ids.append(doc["doc_id"])
        decisions.setdefault(doc["doc_id"], {})
    kept = len(kept_ids)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    if texts is not None:
        texts.close()
    stages = [{"name": "warc_read", "docs_in": stats[0].docs_in, "seconds": timer["seconds"]}]
    stages += [{"name": s.name, "docs_in": st.docs_in, "docs_out": st.docs_out, "seconds": s.seconds,
                "removed": dict(st.removed_by_reason)} for s, st in zip(steps, stats)]
    return {"records": stats[0].docs_in, "kept": kept, "end_to_end_seconds": wall, "cpu_seconds": cpu,
            "stages": stages, "decisions": decisions,
            # Which documents came out, as one hash: runs with and without the pre-screen compare by it.
            "kept_ids_sha1": hashlib.sha1("\n".join(sorted(kept_ids)).encode()).hexdigest()}


def fuzzy_dedup(texts_path: str) -> dict:
    """MinHash signatures + band buckets + clusters over the extracted texts, per preset
    (the same texts the datatrove side deduplicates)."""
    import numpy as np

    from corpus_assets.steps.dedup import band_ranges, cluster_band_ranges, get_minhasher

    with open(texts_path) as fh:
        texts = [json.loads(line)["text"] for line in fh]
    out = {"docs": len(texts)}
    for preset in ("fineweb", "refinedweb"):
        hasher = get_minhasher(preset)
        started = time.perf_counter()
        keys = hasher.band_keys_for_texts(texts)
        idx = np.arange(len(texts), dtype=np.int64)
        clusters = cluster_band_ranges(
            len(texts), ([(idx, keys[:, a:b])] for a, b in band_ranges(hasher.preset.num_bands, 50)))
        out[preset] = {"seconds": time.perf_counter() - started, "removed": clusters.num_removed}
    return out


def floors(folder: str, config) -> dict:
    import trafilatura

    timer = {"seconds": 0.0}
    records = list(read_records(folder, timer))
    decode, url = HtmlDecode(config.html_decode), UrlFilter(config.url_filter)
    stream, _ = run_steps([decode, url], records, lambda *a: None)
    htmls = [d["html"] for d in stream]
    c = config.extraction
    started = time.perf_counter()
    texts = [trafilatura.extract(h, output_format="txt", favor_precision=c.favor_precision, include_comments=c.include_comments,
                                 include_tables=c.include_tables, deduplicate=False, fast=c.fast) for h in htmls]
    extract_seconds = time.perf_counter() - started
    texts = [t.replace("\n", " ") for t in texts if t]
    model = LanguageId(config.language_id).model
    started = time.perf_counter()
    for t in texts:
        model.f.predict(t, 1, 0.0, "strict")  # the raw binding (fasttext 0.9.3 predict() breaks on numpy 2)
    predict_seconds = time.perf_counter() - started
    return {"records": len(records), "warc_read_seconds": timer["seconds"], "html_docs": len(htmls),
            "trafilatura_seconds": extract_seconds, "texts": len(texts), "fasttext_seconds": predict_seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True)
    parser.add_argument("--mode", choices=["pipeline", "floors"], default="pipeline")
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "sample.yaml"))
    parser.add_argument("--texts")
    parser.add_argument("--prescreen", action="store_true", help="run the language pre-screen before extraction")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    config = load_config(args.config)
    if args.mode == "pipeline":
        out = pipeline(args.input, config, args.texts, prescreen=args.prescreen)
        if args.texts:
            out["fuzzy_dedup"] = fuzzy_dedup(args.texts)
    else:
        out = floors(args.input, config)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CCNet's branch on the sample dump, and the shared language model against kenlm.

1. A whole CCNet pass over one sample dump with the stage functions the assets call
   (crawl manifest -> raw_documents -> ccnet_text -> ccnet_line_duplicates ->
   ccnet_deduped -> ccnet_perplexity -> ccnet_cutoffs -> ccnet_buckets), each stage in a
   fresh forked process: seconds, documents per second (one process: per core) and the
   stage's peak resident memory; then retention and the bucket sizes.
2. The language model (``lm`` settings; trained into the cache on first use, the training
   time is reported from its model.json): query speed over the sample's deduplicated
   lines, in pieces per second, for
   - ``kenlm``: ``Model.score`` on pre-cut pieces -- the floor (CCNet's engine);
   - the estimator's numpy tables (``KneserNeyModel.log10_probs``, one batch);
   - our pure-Python ARPA reader (``ArpaModel``, the fallback without kenlm);
   - end to end (normalize + SentencePiece + kenlm), what ``ccnet_perplexity`` pays.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_ccnet.py [--dump CC-MAIN-2024-10] [--shards 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from corpus_assets import ccnet_stages, stages  # noqa: E402
from corpus_assets.config import load_config  # noqa: E402
from corpus_assets.crawl import CrawlSource  # noqa: E402
from corpus_assets.partitions import shard_keys  # noqa: E402
from corpus_assets.stages import documents_path, load_report  # noqa: E402
from corpus_assets.storage import CorpusStore  # noqa: E402


def _child(fn, args, queue):
    started = time.perf_counter()
    result = fn(*args)
    queue.put((time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, result))


def in_fresh_process(fn, *args):
    """(seconds, peak RSS MiB, result) of ``fn(*args)`` in a forked process."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"{fn.__name__} failed")
    return out


def _docs_in(report) -> int:
    return report.docs_in if hasattr(report, "docs_in") else 0


def whole_pass(config, crawl: str, dump: str, corpus: str) -> list[dict]:
    source = CrawlSource(crawl)
    store = CorpusStore(corpus)
    shards = shard_keys(config.num_shards)
    rows = []

    def shard_stage(name, fn, with_source=False):
        seconds, peak, docs = 0.0, 0.0, 0
        for shard in shards:
            args = (source, store, dump, shard, config) if with_source else (store, dump, shard, config)
            s, p, report = in_fresh_process(fn, *args)
            seconds, peak, docs = seconds + s, max(peak, p), docs + _docs_in(report)
        rows.append({"stage": name, "seconds": seconds, "docs": docs, "peak_mib": peak})

    def dump_stage(name, fn, docs):
        s, p, report = in_fresh_process(fn, store, dump, shards, config)
        rows.append({"stage": name, "seconds": s, "docs": docs, "peak_mib": p})
        return report

    stages.build_crawl_manifest(source, store, dump, config.num_shards)
    shard_stage("raw_documents", stages.ingest_raw_documents, with_source=True)
    shard_stage(ccnet_stages.TEXT, ccnet_stages.build_ccnet_text)
    text_docs = sum(store.row_count(documents_path(ccnet_stages.TEXT, dump, s)) for s in shards)
    dup = dump_stage(ccnet_stages.DUPLICATES, ccnet_stages.build_ccnet_line_duplicates, text_docs)
    shard_stage(ccnet_stages.DEDUPED, ccnet_stages.build_ccnet_deduped)
    # the model is trained (or read from the cache) before timing the perplexity stage
    t = time.perf_counter()
    lm = ccnet_stages.language_models(config.lm)("en")
    lm_seconds = time.perf_counter() - t
    shard_stage(ccnet_stages.PERPLEXITY, ccnet_stages.build_ccnet_perplexity)
    ppl_docs = sum(store.row_count(documents_path(ccnet_stages.PERPLEXITY, dump, s)) for s in shards)
    cut = dump_stage(ccnet_stages.CUTOFFS, ccnet_stages.build_ccnet_cutoffs, ppl_docs)
    shard_stage(ccnet_stages.BUCKETS, ccnet_stages.build_ccnet_buckets)

    print(f"\n== CCNet pass over {dump} ({len(shards)} shards, line-dedup groups of "
          f"{config.ccnet.line_dedup_group_shards} shards), one process per stage and shard")
    print(f"{'stage':24} {'docs in':>8} {'seconds':>8} {'docs/s/core':>12} {'peak MiB':>9}")
    for r in rows:
        rate = r["docs"] / r["seconds"] if r["seconds"] else 0.0
        print(f"{r['stage']:24} {r['docs']:>8} {r['seconds']:>8.2f} {rate:>12.1f} {r['peak_mib']:>9.0f}")
    raw = sum(load_report(store, "raw_documents", dump, s).docs_out for s in shards)
    lines_in = sum(load_report(store, ccnet_stages.DEDUPED, dump, s).extra["lines_in"] for s in shards)
    lines_removed = sum(load_report(store, ccnet_stages.DEDUPED, dump, s).extra["lines_removed"] for s in shards)
    reasons = {}
    for s in shards:
        for step, reason, n in load_report(store, ccnet_stages.DEDUPED, dump, s).removed_by_reason():
            reasons[f"{step}:{reason}"] = reasons.get(f"{step}:{reason}", 0) + n
    sizes = ccnet_stages.bucket_sizes(store, dump, shards)
    kept = sum(load_report(store, ccnet_stages.BUCKETS, dump, s).docs_out for s in shards)
    print(f"\nHTML responses {raw}; ccnet_text {text_docs}; lines {lines_in:,} of which duplicated "
          f"{lines_removed:,} ({lines_removed / max(lines_in, 1):.1%}); removed at dedup+LID: {reasons}")
    print(f"after LID {ppl_docs} ({ppl_docs / max(raw, 1):.1%} of HTML responses); buckets {sizes};"
          f" kept ({','.join(config.ccnet.keep_buckets)}) {kept}")
    print(f"cut-offs {cut['cutoffs']} from {cut['sample_docs']}")
    print(f"language model: {lm.info['training_tokens']:,} training pieces, n-grams {lm.info['ngrams']},"
          f" trained in {lm.info['seconds']} s (SentencePiece {lm.info['sentencepiece_seconds']} s);"
          f" loaded here in {lm_seconds:.1f} s")
    return [r for s in shards for r in store.read_table(documents_path(ccnet_stages.DEDUPED, dump, s),
                                                         columns=["text", "language"]).to_pylist()]


def lm_speed(config, docs: list[dict]) -> None:
    from corpus_assets.steps.lm.arpa import ArpaModel
    from corpus_assets.steps.lm.model import NgramLanguageModel, load_or_train
    from corpus_assets.steps.lm.text import normalize_for_lm

    lm = load_or_train(config.lm, "en")
    numpy_lm = NgramLanguageModel(lm.folder, backend="numpy")
    lines = [normalize_for_lm(line) for d in docs if d["language"] == "en" for line in d["text"].split("\n")]
    pieces = lm.sp.encode(lines, out_type=str)
    ids = lm.sp.encode(lines)
    joined = [" ".join(p) for p in pieces]
    n_pieces = sum(len(p) + 1 for p in pieces)
    print(f"\n== LM query speed on {len(lines):,} English lines ({n_pieces:,} pieces + </s>), one core")
    results = {}
    if lm.kenlm is not None:
        t = time.perf_counter()
        k_total = sum(lm.kenlm.score(s, bos=True, eos=True) for s in joined)
        results["kenlm Model.score (the floor)"] = time.perf_counter() - t
    t = time.perf_counter()
    n_total = float(numpy_lm.tables.log10_probs(ids).sum())
    results["numpy tables, one batch"] = time.perf_counter() - t
    arpa = ArpaModel.load(lm.folder / "lm.arpa")
    subset = joined[: max(1, len(joined) // 10)]
    t = time.perf_counter()
    for s in subset:
        arpa.score(s)
    arpa_rate = sum(len(s.split()) + 1 for s in subset) / (time.perf_counter() - t)
    t = time.perf_counter()
    for d in docs:
        if d["language"] == "en":
            lm.document_perplexity(d["text"])
    results["end to end (normalize + SentencePiece + kenlm)"] = time.perf_counter() - t
    for name, seconds in results.items():
        print(f"  {name:48} {n_pieces / seconds:>12,.0f} pieces/s")
    print(f"  {'pure-Python ARPA reader (10% of lines)':48} {arpa_rate:>12,.0f} pieces/s")
    if lm.kenlm is not None:
        print(f"  kenlm and numpy totals agree: {k_total:.3f} vs {n_total:.3f} log10")
        agreement(lm, numpy_lm, joined, ids, [d["text"] for d in docs if d["language"] == "en"])


def agreement(lm, numpy_lm, joined: list[str], ids: list[list[int]], texts: list[str]) -> None:
    """The largest differences between kenlm and the numpy tables: per line (log10 of the
    sentence), per document (CCNet's perplexity), what docs/language_model.md quotes."""
    import numpy as np

    per_piece = numpy_lm.tables.log10_probs(ids)
    starts = np.cumsum([0] + [len(i) + 1 for i in ids[:-1]])
    numpy_lines = np.add.reduceat(per_piece, starts)
    kenlm_lines = np.array([lm.kenlm.score(s, bos=True, eos=True) for s in joined])
    line_abs = np.abs(kenlm_lines - numpy_lines)
    line_rel = line_abs / np.maximum(np.abs(numpy_lines), 1e-12)
    doc_rel = [abs(lm.document_perplexity(t) / numpy_lm.document_perplexity(t) - 1) for t in texts]
    worst = int(np.argmax(line_abs))
    print(f"  kenlm vs numpy over {len(joined):,} lines: max |diff| of a line's log10 p {line_abs.max():.2e}"
          f" (relative {line_rel.max():.2e}; the line of {len(ids[worst]):,} pieces), median {np.median(line_abs):.1e};"
          f" over {len(texts)} documents: max relative perplexity difference {max(doc_rel, default=0):.2e}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dump", default="CC-MAIN-2024-10")
    parser.add_argument("--crawl", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--config", default=str(REPO / "configs" / "sample.yaml"))
    args = parser.parse_args()
    if not Path(args.crawl, "crawl-data", args.dump).is_dir():
        print(f"skipped: no sample crawl at {args.crawl}/crawl-data/{args.dump}")
        return 0
    config = load_config(args.config)
    with tempfile.TemporaryDirectory() as corpus:
        docs = whole_pass(config, args.crawl, args.dump, corpus)
    lm_speed(config, docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""datatrove's side of the side-by-side benchmark. Runs in its own virtual environment
(``.venv-datatrove``, made by ``make bench-compare``), never imports corpus_assets.

Pipeline, as FineWeb's example builds it: WarcReader -> URLFilter -> Trafilatura
(favour_precision) -> LanguageFilter(en, 0.65) -> GopherRepetitionFilter ->
GopherQualityFilter. Steps are chained in one process, one core, the way one datatrove
task runs them; each step's own time comes from datatrove's stats.

Offline patches (this machine reaches no model hub; see docs/performance.md):
- the language model is the same local ``lid.176.ftz`` corpus_assets uses (passed in);
- tldextract uses its bundled public suffix snapshot instead of downloading the list;
- (other languages only) NLTK word tokenizers run with ``preserve_line=True``, since the
  punkt sentence model would be downloaded; English, the language measured here, uses
  datatrove's own spaCy tokenizer unchanged.

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def patch_offline(model_path: str) -> None:
    import datatrove.utils.lid as lid
    import datatrove.utils.word_tokenizers as wt

    lid.cached_asset_path_or_download = lambda *a, **k: model_path

    def word_tokenize(self, text):
        from nltk.tokenize import word_tokenize as nltk_word_tokenize

        return wt.strip_strings(nltk_word_tokenize(text, language=self.language, preserve_line=True))

    wt.NLTKTokenizer.word_tokenize = word_tokenize


def build_steps(data_folder: str):
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LanguageFilter, URLFilter
    from datatrove.pipeline.readers import WarcReader
    from tldextract import TLDExtract

    url_filter = URLFilter()
    url_filter.tldextractor = TLDExtract(suffix_list_urls=())
    return [
        WarcReader(data_folder, glob_pattern="*.warc.gz"),
        url_filter,
        Trafilatura(favour_precision=True),
        LanguageFilter(languages=["en"], language_threshold=0.65),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
    ]


def run_pipeline(data_folder: str) -> dict:
    steps = build_steps(data_folder)
    started = time.perf_counter()
    stream = None
    for step in steps:
        stream = step(stream, rank=0, world_size=1)
    kept = sum(1 for _ in stream)
    wall = time.perf_counter() - started
    out = {"end_to_end_seconds": wall, "kept": kept, "stages": []}
    for step in steps:
        stats = step.stats
        counters = {k: v.total if hasattr(v, "total") else v for k, v in stats.stats.items()}
        out["stages"].append({"name": type(step).__name__, "seconds": stats.time_stats.total, "counters": counters})
    out["docs_in"] = out["stages"][0]["counters"].get("documents", 0)
    return out


def corpus_assets_words():
    """corpus_assets' letter/digit word splitter, loaded from
    ``corpus_assets/steps/quality/_text.py`` by path (this environment does not install
    corpus_assets)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "corpus_assets" / "steps" / "quality" / "_text.py"
    spec = importlib.util.spec_from_file_location("corpus_assets_words", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return lambda text, language=None: module.split_words(text)


def decide(doc, filters) -> dict:
    verdicts = {}
    for name, f in filters:
        v = f.filter(doc) if hasattr(f, "filter") else f(doc)
        keep, reason = (v, "") if isinstance(v, bool) else (v[0], v[1])
        verdicts[name] = "keep" if keep else (reason or "removed")
    return verdicts


def decisions_on(texts_file: str) -> dict:
    """datatrove's decisions on corpus_assets' extracted texts: the same text in both."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LanguageFilter

    filters = [("language", LanguageFilter(languages=["en"], language_threshold=0.65)),
               ("gopher_repetition", GopherRepetitionFilter()), ("gopher_quality", GopherQualityFilter())]
    result = {}
    with open(texts_file) as fh:
        for line in fh:
            row = json.loads(line)
            result[row["id"]] = decide(Document(text=row["text"], id=row["id"], metadata={}), filters)
    return result


def decisions_with_the_same_words(texts_file: str) -> dict:
    """datatrove's Gopher filters with corpus_assets' word definitions, statistic by
    statistic (see ``corpus_assets/steps/quality/signals.py``), so the agreement can be
    measured where the definitions are the same: repetition n-grams, word count, mean
    word length, the ``#``/ellipsis ratios and the stop words on letter/digit words; the
    alphabetic-word fraction on whitespace-separated words. datatrove 0.10 splits English
    with spaCy (every punctuation mark a word) and takes every statistic from that one
    list, so its quality filter runs twice: once on letter/digit words with the alphabetic
    rule off, once on whitespace words with only the alphabetic rule on; the verdicts are
    combined in datatrove's rule order (the alphabetic rule comes just before the
    stop words)."""
    import datatrove.pipeline.filters.gopher_quality_filter as quality
    import datatrove.pipeline.filters.gopher_repetition_filter as repetition
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LanguageFilter

    letter_digit_words = corpus_assets_words()
    repetition.split_into_words = letter_digit_words
    without_alpha = GopherQualityFilter(max_non_alpha_words_ratio=None)
    only_alpha = GopherQualityFilter(min_doc_words=None, max_doc_words=None, min_avg_word_length=None,
                                     max_avg_word_length=None, max_symbol_word_ratio=None, max_bullet_lines_ratio=None,
                                     max_ellipsis_lines_ratio=None, min_stop_words=None)

    def quality_filter(doc):
        quality.split_into_words = letter_digit_words
        first = without_alpha.filter(doc)
        if first is not True and first[1] != "gopher_enough_stop_words":
            return first
        if doc.text.split():  # datatrove divides by the word count
            quality.split_into_words = lambda text, language=None: text.split()
            alpha = only_alpha.filter(doc)
            if alpha is not True:
                return alpha
        return first

    filters = [("language", LanguageFilter(languages=["en"], language_threshold=0.65)),
               ("gopher_repetition", GopherRepetitionFilter()), ("gopher_quality", quality_filter)]
    result = {}
    with open(texts_file) as fh:
        for line in fh:
            row = json.loads(line)
            result[row["id"]] = decide(Document(text=row["text"], id=row["id"], metadata={}), filters)
    return result


def fuzzy_dedup(texts_file: str, workdir: str) -> dict:
    """datatrove's MinHash stages (FineWeb's 14 x 8 on word 5-grams) over the same texts:
    signatures -> buckets (one task per bucket) -> clusters -> filter, as its example runs
    them, in one process, through its own files under ``workdir``."""
    import shutil
    from pathlib import Path

    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )

    work = Path(workdir)
    shutil.rmtree(work, ignore_errors=True)
    with open(texts_file) as fh:
        docs = [Document(text=r["text"], id=r["id"], metadata={}) for r in map(json.loads, fh)]
    config = MinhashConfig()
    started = time.perf_counter()
    MinhashDedupSignature(str(work / "sigs"), config=config).run(iter(docs), 0, 1)
    for bucket in range(config.num_buckets):
        MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config).run(None, bucket, config.num_buckets)
    MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=config).run(None, 0, 1)
    kept = sum(1 for _ in MinhashDedupFilter(str(work / "remove")).run(iter(docs), 0, 1))
    seconds = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)
    return {"docs": len(docs), "fineweb": {"seconds": seconds, "removed": len(docs) - kept}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True, help="folder of .warc.gz files")
    parser.add_argument("--model", required=True, help="lid.176 model file")
    parser.add_argument("--texts", help="JSONL of corpus_assets texts: also report datatrove's decisions on them")
    args = parser.parse_args()
    patch_offline(args.model)
    import logging

    from loguru import logger

    logger.remove()
    logging.disable(logging.WARNING)
    cpu0 = time.process_time()
    out = run_pipeline(args.input)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Trafilatura runs in datatrove's sandbox subprocess: its CPU time counts too.
    out["cpu_seconds"] = time.process_time() - cpu0 + children.ru_utime + children.ru_stime
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_rss_children_mib"] = children.ru_maxrss / 1024
    if args.texts:
        out["decisions"] = decisions_on(args.texts)
        out["fuzzy_dedup"] = fuzzy_dedup(args.texts, args.texts + ".minhash")
        # last: it changes datatrove's word splitters for the rest of the process
        out["decisions_same_words"] = decisions_with_the_same_words(args.texts)
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

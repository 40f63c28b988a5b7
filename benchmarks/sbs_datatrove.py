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


def use_corpus_assets_words() -> None:
    """Make datatrove's Gopher filters split words as corpus_assets does (its one word
    regex, loaded from ``corpus_assets/steps/quality/_text.py`` by path, since this
    environment does not install corpus_assets), so the agreement can be measured where
    the definitions are the same. datatrove 0.10 splits English with spaCy, punctuation
    marks becoming words of their own."""
    import importlib.util
    from pathlib import Path

    import datatrove.pipeline.filters.gopher_quality_filter as quality
    import datatrove.pipeline.filters.gopher_repetition_filter as repetition

    path = Path(__file__).resolve().parent.parent / "corpus_assets" / "steps" / "quality" / "_text.py"
    spec = importlib.util.spec_from_file_location("corpus_assets_words", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def corpus_assets_words(text, language=None):
        return module.split_words(text)

    quality.split_into_words = repetition.split_into_words = corpus_assets_words


def decisions_on(texts_file: str) -> dict:
    """datatrove's decisions on corpus_assets' extracted texts: the same text in both."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LanguageFilter

    lang, rep, qual = LanguageFilter(languages=["en"], language_threshold=0.65), GopherRepetitionFilter(), GopherQualityFilter()
    result = {}
    with open(texts_file) as fh:
        for line in fh:
            row = json.loads(line)
            doc = Document(text=row["text"], id=row["id"], metadata={})
            verdicts = {}
            for name, f in (("language", lang), ("gopher_repetition", rep), ("gopher_quality", qual)):
                v = f.filter(doc)
                keep, reason = (v, "") if isinstance(v, bool) else (v[0], v[1])
                verdicts[name] = "keep" if keep else (reason or "removed")
            result[row["id"]] = verdicts
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
        use_corpus_assets_words()  # last: it changes datatrove's filters for the rest of the process
        out["decisions_same_words"] = decisions_on(args.texts)
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

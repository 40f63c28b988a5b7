"""Fine-tuning pool selection benchmark (docs/sft.md, "Speed"): samples per second of each
stage on the GPTeacher pool (or its first ``--samples``), and the process's peak RSS.

Stages, each timed on its own: reading the JSONL; each statistic alone (text statistics,
lid.176, perplexity under the shared n-gram LM, cl100k_base token counts); filters; quality;
exact + MinHash near dedup; sentence embeddings (all-MiniLM-L6-v2, ``--embed`` samples, the
cost that dominates on CPU); k-center greedy under the demo recipe's budget.

    PYTHONPATH=. python benchmarks/bench_sft.py [--samples 14131] [--embed 400]
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import Counter


def _timed(label: str, n: int, fn):
    started = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - started
    print(f"{label:<50}{n:>8,}{seconds:>10.2f}{n / seconds if seconds else float('inf'):>14,.0f}")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=0, help="first N samples (0: all)")
    parser.add_argument("--embed", type=int, default=400, help="samples embedded (the slow stage)")
    parser.add_argument("--recipe", default="demo")
    args = parser.parse_args(argv)

    import numpy as np

    from corpus_assets.config import load_config
    from corpus_assets.sft_stages import statistics_models
    from corpus_assets.steps.domains.encoder import encoder_from_config
    from corpus_assets.steps.sft import diversity as div
    from corpus_assets.steps.sft import statistics as st
    from corpus_assets.steps.sft.dedup import deduplicate
    from corpus_assets.steps.sft.filters import apply_filters
    from corpus_assets.steps.sft.quality import quality_scores
    from corpus_assets.steps.sft.samples import read_samples, sample_text

    config = load_config()
    recipe = config.sft.recipes()[args.recipe]
    dataset = config.sft.dataset(recipe.datasets[0])
    print(f"{'stage':<50}{'samples':>8}{'seconds':>10}{'samples/s':>14}")
    removed = Counter()
    started = time.perf_counter()
    samples = list(read_samples(config.sft.dataset_file(dataset), dataset, config.sft.max_record_chars, removed))
    seconds = time.perf_counter() - started
    print(f"{'read JSONL':<50}{len(samples):>8,}{seconds:>10.2f}{len(samples) / seconds:>14,.0f}")
    if args.samples:
        samples = samples[:args.samples]
    for s in samples:
        s["text"] = sample_text(s["instruction"], s["input"], s["output"])
    n = len(samples)
    texts = [s["text"] for s in samples]
    langid, lm, counter = _timed("load lid.176, n-gram LM, tokenizer", 0, lambda: statistics_models(config))
    _timed("text statistics (len, ratios, repetition)", n, lambda: [
        (st.alnum_ratio(t), st.special_char_ratio(t), st.char_rep_ratio(t), st.word_rep_ratio(t)) for t in texts])
    _timed("lang + lang_score (lid.176)", n, lambda: [langid.predict(t) for t in texts])
    _timed("perplexity (5-gram KN, kenlm)", n, lambda: [lm.document_perplexity(t) for t in texts])
    _timed("token_count (cl100k_base)", n, lambda: counter.count(texts))
    stats = st.SampleStatistics(langid, lm, counter).rows(samples)
    kept = _timed("filters", n, lambda: apply_filters(stats, recipe.filters))
    idx = np.flatnonzero(kept.keep)
    cand = [stats[i] for i in idx]
    quality = _timed("quality score", len(idx), lambda: quality_scores(cand, recipe.quality))
    dd = _timed("exact + MinHash near dedup (char 5-grams, 256)", len(idx),
                lambda: deduplicate([texts[i] for i in idx], quality, recipe.dedup))
    pool = idx[dd.keep]
    encoder = encoder_from_config(config.domains)
    encoder.encode(["warm up"])
    sample = [texts[i][:config.sft.encoder_max_chars] for i in pool[:args.embed]]
    emb = _timed(f"embeddings (MiniLM, first {config.sft.encoder_max_chars} chars)", len(sample),
                 lambda: encoder.encode(sample))
    # k-center over the whole deduplicated pool needs its embeddings: random unit vectors of
    # the same shape stand in (the cost depends on the shape, not the values)
    rng = np.random.default_rng(0)
    fake = rng.normal(size=(len(pool), emb.shape[1])).astype(np.float32)
    fake /= np.linalg.norm(fake, axis=1, keepdims=True)
    tokens = [stats[i]["token_count"] for i in pool]
    chosen = _timed(f"k-center greedy, budget {recipe.token_budget:,}", len(pool),
                    lambda: div.k_center_greedy(fake, tokens, recipe.token_budget, quality[dd.keep]))
    print(f"selected {len(chosen):,} of {len(pool):,} deduplicated samples")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()

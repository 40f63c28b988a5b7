"""The domain classifier against labels nobody here made, and its speed.

DBpedia-14 (Zhang et al. 2015; ``../shared/data/labelled``): the validation file plays an
unlabelled corpus (seed labels by the offline labeller, rounds of coarse + fine training,
exactly the asset code's steps), the test file is scored against its real classes through
the class -> domain mapping below. Reported per class: precision and recall of the seed
labeller, of coarse recall (the class's domain among the recalled ones) and of the
cascade (coarse then fine), per round. Then documents per second per core of the coarse
stage (fastText predict) and the fine stage (encoder + head, on coarse positives only),
the share of documents reaching the fine stage, and peak memory.

    .venv/bin/python benchmarks/bench_domains.py [--limit 2000] [--threads 1]

The class -> domain mapping (only classes that fit a FineFineWeb domain):

| DBpedia-14 class | domain | fit |
|---|---|---|
| Athlete | sports | good |
| Film | movie | good |
| Album | music_and_dance | good |
| WrittenWork | literature | good (includes journals and newspapers: some are journalism) |
| OfficeHolder | politics | good (some are judges, military officers) |
| Animal | biology | good (zoology is biology in the taxonomy; no zoology domain) |
| Plant | biology | good (some are crops: agronomy) |
| Village | geography | good |
| NaturalPlace | geography | good (rivers, mountains, lakes) |
| Artist | artistic | partial: DBpedia's Artist holds musicians and actors as well as painters |
| MeanOfTransportation | transportation_engineering | partial: ships and locomotives fit; aircraft go to aerospace, cars to automotive |
| Company, EducationalInstitution, Building | (none) | no FineFineWeb domain (no education, business or architecture domain); reported as where they land |

Precision of a domain is shared by the classes mapped to it (biology: Animal + Plant;
geography: Village + NaturalPlace).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from corpus_assets.config import load_config  # noqa: E402
from corpus_assets.steps.domains.classifiers import coarse_scores, fine_decisions  # noqa: E402
from corpus_assets.steps.domains.encoder import encoder_from_config  # noqa: E402
from corpus_assets.steps.domains.rounds import run_rounds  # noqa: E402
from corpus_assets.steps.domains.seeds import NONE_LABEL, SeedLabeller, heldout  # noqa: E402
from corpus_assets.steps.domains.taxonomy import load_taxonomy  # noqa: E402
from corpus_assets.domain_stages import coarse_settings  # noqa: E402

CLASS_TO_DOMAIN = {
    "Athlete": "sports", "Film": "movie", "Album": "music_and_dance", "WrittenWork": "literature",
    "OfficeHolder": "politics", "Animal": "biology", "Plant": "biology", "Village": "geography",
    "NaturalPlace": "geography", "Artist": "artistic", "MeanOfTransportation": "transportation_engineering",
    "Company": None, "EducationalInstitution": None, "Building": None,
}


def load(path: Path, limit: int) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    # Every n-th row keeps the class balance of the file under a limit.
    step = max(1, len(rows) // limit) if limit else 1
    rows = rows[::step][: limit or None]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def per_class(predicted_sets: list[set], classes: list[str]) -> dict:
    """Per class: recall = share of its docs whose prediction holds its domain; precision =
    share of the docs predicted as that domain whose class maps to it."""
    out = {}
    for cls, domain in CLASS_TO_DOMAIN.items():
        idx = [i for i, c in enumerate(classes) if c == cls]
        if domain is None:
            landed = Counter(d for i in idx for d in predicted_sets[i])
            out[cls] = {"domain": None, "landed": dict(landed.most_common(3)),
                        "unlabelled": round(sum(1 for i in idx if not predicted_sets[i]) / len(idx), 3)}
            continue
        hit = sum(1 for i in idx if domain in predicted_sets[i])
        predicted = [i for i, s in enumerate(predicted_sets) if domain in s]
        right = sum(1 for i in predicted if CLASS_TO_DOMAIN.get(classes[i]) == domain)
        out[cls] = {"domain": domain, "recall": round(hit / len(idx), 3) if idx else None,
                    "precision": round(right / len(predicted), 3) if predicted else None}
    return out


def print_table(title: str, columns: dict[str, dict]) -> None:
    print(f"\n{title}")
    names = list(columns)
    print(f"{'class':<22}{'domain':<28}" + "".join(f"{n:>16}" for n in names))
    for cls, domain in CLASS_TO_DOMAIN.items():
        cells = []
        for n in names:
            c = columns[n][cls]
            if domain is None:
                cells.append(f"{'none: ' + str(int(100 * c['unlabelled'])) + '%':>16}")
            else:
                p, r = c["precision"], c["recall"]
                cells.append(f"{('-' if p is None else f'{p:.2f}') + ' / ' + ('-' if r is None else f'{r:.2f}'):>16}")
        print(f"{cls:<22}{str(domain or '-'):<28}" + "".join(cells))
    print("(cells: precision / recall; unmapped classes: share left unlabelled)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "labelled"))
    ap.add_argument("--limit", type=int, default=2000, help="rows per file (0 = all 5,000)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 = per-core figures)")
    ap.add_argument("--config", default=None)
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--cache", default=None, help="a folder for the rows' embeddings (re-runs skip encoding)")
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not (data / "dbpedia14_dhim_test.jsonl").exists():
        print(f"skipped: {data} has no DBpedia-14 files (the shared sample data is absent)")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    cfg = config.domains
    taxonomy = load_taxonomy(cfg.taxonomy_path)
    encoder = encoder_from_config(cfg)
    train_texts, _ = load(data / "dbpedia14_dhim_val.jsonl", args.limit)
    test_texts, test_classes = load(data / "dbpedia14_dhim_test.jsonl", args.limit)
    encoder.encode(["warm up"])
    t0 = time.perf_counter()
    rate_texts = train_texts[:200]
    encoder.encode(rate_texts)
    encode_rate = len(rate_texts) / (time.perf_counter() - t0)

    def embedded(name: str, texts: list[str]) -> np.ndarray:
        if not args.cache:
            return encoder.encode(texts)
        path = Path(args.cache) / f"{name}-{args.limit}-{encoder.model_path.name}.npy"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, encoder.encode(texts))
        return np.load(path)

    train_emb = embedded("val", train_texts)
    test_emb = embedded("test", test_texts)

    labeller = SeedLabeller(taxonomy, encoder, cfg.seed_min_similarity, cfg.seed_margin, cfg.seed_negative_max_similarity)
    no_urls = [""] * len(train_texts)  # abstracts have no URL: host rules cannot fire
    seeds = [d.domain for d in labeller.decide(no_urls, train_emb)]
    held = [heldout(f"val-{i}", cfg.heldout_fraction) if s else False for i, s in enumerate(seeds)]
    t0 = time.perf_counter()
    head, results = run_rounds(train_texts, train_emb, seeds, held, taxonomy.names, cfg.rounds,
                               coarse_settings(config), cfg.coarse_threshold, cfg.fine_threshold, cfg.fine_l2,
                               cfg.fine_epochs)
    train_seconds = time.perf_counter() - t0

    test_seed = [d.domain for d in labeller.decide([""] * len(test_texts), test_emb)]
    columns = {"seed": per_class([{s} - {None, NONE_LABEL} for s in test_seed], test_classes)}
    cascade_cols, coarse_cols, perf = {}, {}, []
    for res in results:
        t0 = time.perf_counter()
        coarse = coarse_scores(res.coarse_model, test_texts, cfg.coarse_threshold, cfg.coarse_word_ngrams)
        coarse_seconds = time.perf_counter() - t0
        positive = [i for i, c in enumerate(coarse) if c]
        t0 = time.perf_counter()
        emb = encoder.encode([test_texts[i] for i in positive]) if positive else np.zeros((0, head.weights.shape[0]), np.float32)
        decisions = fine_decisions(head, coarse, emb, cfg.fine_threshold)
        fine_seconds = time.perf_counter() - t0
        coarse_cols[f"coarse r{res.round}"] = per_class([set(c) for c in coarse], test_classes)
        cascade_cols[f"fine r{res.round}"] = per_class([{d.domain} - {None} for d in decisions], test_classes)
        perf.append({"round": res.round, "coarse_docs_per_s": round(len(test_texts) / coarse_seconds, 1),
                     "fine_stage_share": round(len(positive) / len(test_texts), 3),
                     "fine_docs_per_s": round(len(positive) / fine_seconds, 1) if positive else None,
                     "classified": sum(1 for d in decisions if d.domain)})
    columns.update(coarse_cols)
    columns.update(cascade_cols)

    print(f"DBpedia-14: {len(train_texts)} validation rows as the unlabelled corpus, {len(test_texts)} test rows scored; "
          f"taxonomy {taxonomy.name}; torch threads {args.threads}")
    print(f"seed labels on the corpus: {sum(1 for s in seeds if s and s != NONE_LABEL)} DoI, "
          f"{sum(1 for s in seeds if s == NONE_LABEL)} DoNI-for-all, {sum(1 for s in seeds if s is None)} abstained; "
          f"domains with seeds: {len({s for s in seeds} - {None, NONE_LABEL})}")
    print_table("seed labeller and coarse recall per round", {k: columns[k] for k in ["seed", *coarse_cols]})
    print_table("cascade (coarse then fine) per round", cascade_cols)
    print("\nspeed (one process; torch threads as above; fastText predict is one thread):")
    print(f"  encoder: {encode_rate:.1f} docs/s (DBpedia abstracts, ~{int(np.mean([len(t) for t in test_texts]))} chars)")
    print(f"  training {cfg.rounds} rounds on {len(train_texts)} docs: {train_seconds:.1f}s")
    for p in perf:
        print(f"  round {p['round']}: coarse {p['coarse_docs_per_s']:.0f} docs/s, fine-stage share "
              f"{p['fine_stage_share']:.1%}, fine {p['fine_docs_per_s']} docs/s, classified {p['classified']}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory (max RSS): {peak_mb:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"columns": columns, "perf": perf, "encode_docs_per_s": encode_rate,
                                               "train_seconds": train_seconds, "peak_rss_mb": peak_mb}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

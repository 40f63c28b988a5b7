"""The recipes' speed on the sample crawl, and the classifiers' training and scoring.

1. Per recipe, from the partitions a recipe run wrote (``python -m corpus_assets.demo
   --recipe NAME``, corpus root ``.corpus_recipes/<name>``): the seconds every document
   stage spent (each partition's ``stats.json``; one process per partition, so per core),
   summed per asset and in all, and the recipe's documents per second: the HTML responses
   it started from over those seconds. Dump-level stages (MinHash buckets, clusters, line
   duplicates, cut-offs, model training) are listed where their reports carry seconds.
2. The classifiers, trained here on one dump's ``rw_raw`` (read from the gpt3 recipe's
   corpus) and the Wikipedia sample, each in a fresh forked process: training seconds
   (all folds), the held-out F1, scoring speed in documents per second and peak memory.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_recipes.py [--root .corpus_recipes] [--dump CC-MAIN-2024-10]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from corpus_assets.partitions import shard_keys  # noqa: E402
from corpus_assets.recipes import load_recipe, recipe_names  # noqa: E402
from corpus_assets.stages import documents_path, load_report  # noqa: E402
from corpus_assets.storage import CorpusStore  # noqa: E402

DUMPS = ["CC-MAIN-2024-10", "CC-MAIN-2024-18"]
DUMP_REPORTS = {  # dump-level assets whose report says how long they took
    "ccnet_line_duplicates": "ccnet_line_duplicates/{dump}/stats.json",
    "gpt3_quality_model": "gpt3_quality_model/{dump}/report.json",
    "llama_reference_model": "llama_reference_model/{dump}/report.json",
}


def recipe_speed(root: Path, name: str, shards: list[str]) -> dict | None:
    store_root = root / name
    if not store_root.is_dir():
        return None
    store = CorpusStore(str(store_root))
    recipe = load_recipe(name)
    per_asset: dict[str, float] = {}
    html = 0
    for dump in DUMPS:
        html += sum(load_report(store, "raw_documents", dump, s).docs_out for s in shards)
        for asset in recipe.document_assets():
            per_asset[asset] = per_asset.get(asset, 0.0) + sum(load_report(store, asset, dump, s).seconds
                                                              for s in shards)
        for asset, template in DUMP_REPORTS.items():
            if asset in recipe.assets and store.exists(template.format(dump=dump)):
                per_asset[asset] = per_asset.get(asset, 0.0) + store.read_json(template.format(dump=dump))["seconds"]
    total = sum(per_asset.values())
    return {"recipe": name, "html_docs": html, "seconds": total, "docs_per_second": html / total if total else 0.0,
            "per_asset": per_asset}


def _child(fn, args, queue):
    started = time.perf_counter()
    result = fn(*args)
    queue.put((time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, result))


def in_fresh_process(fn, *args):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def train_and_score(kind: str, crawl: list[tuple[str, str]]) -> dict:
    from corpus_assets.steps.classifiers.common import iter_reference, training_set
    from corpus_assets.steps.classifiers.config import Gpt3ClassifierConfig, ReferenceClassifierConfig
    from corpus_assets.steps.classifiers.gpt3 import Gpt3Classifier
    from corpus_assets.steps.classifiers.reference import ReferenceClassifier

    config = Gpt3ClassifierConfig(enabled=True) if kind == "gpt3" else ReferenceClassifierConfig(enabled=True)
    model_class = Gpt3Classifier if kind == "gpt3" else ReferenceClassifier
    data = training_set(crawl, iter_reference(config.reference, kind), config.folds, config.seed,
                        config.max_train_docs, config.positives_per_negative)
    model, report = model_class.train(data, config)
    texts = [t for _, t in crawl] * max(1, 2000 // max(len(crawl), 1))
    ids = [f"bench{i}" for i in range(len(texts))]
    started = time.perf_counter()
    for doc_id, text in zip(ids, texts):
        model.score(doc_id, text)
    scoring = time.perf_counter() - started
    return {"train_seconds": report["train_seconds"], "f1": report["held_out"]["f1"],
            "training_docs": len(data.ids), "score_docs_per_second": len(texts) / scoring}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default=str(REPO / ".corpus_recipes"))
    parser.add_argument("--dump", default="CC-MAIN-2024-10")
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    root, shards = Path(args.root), shard_keys(args.shards)

    print(f"{'recipe':<12}{'HTML docs':>10}{'stage s':>9}{'docs/s':>8}  seconds per asset")
    for name in recipe_names():
        speed = recipe_speed(root, name, shards)
        if speed is None:
            print(f"{name:<12}  (not run: python -m corpus_assets.demo --recipe {name})")
            continue
        detail = ", ".join(f"{a} {s:.1f}" for a, s in speed["per_asset"].items() if s >= 0.05)
        print(f"{name:<12}{speed['html_docs']:>10}{speed['seconds']:>9.1f}{speed['docs_per_second']:>8.1f}  {detail}")

    source = root / "gpt3"
    if not source.is_dir():
        print("classifiers: run the gpt3 recipe first (its rw_raw is the crawl side)")
        return 0
    store = CorpusStore(str(source))
    crawl = [(r["doc_id"], r["text"]) for s in shards
             for r in store.iter_rows(documents_path("rw_raw", args.dump, s), ["doc_id", "text"])]
    print(f"\nclassifiers on {args.dump}'s rw_raw ({len(crawl)} documents) + the Wikipedia sample, 5 folds:")
    print(f"{'classifier':<12}{'train s':>9}{'F1':>7}{'train docs':>11}{'score docs/s':>13}{'peak MiB':>10}")
    for kind in ("gpt3", "llama"):
        seconds, peak, result = in_fresh_process(train_and_score, kind, crawl)
        print(f"{kind:<12}{result['train_seconds']:>9.2f}{result['f1']:>7.3f}{result['training_docs']:>11}"
              f"{result['score_docs_per_second']:>13.0f}{peak:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

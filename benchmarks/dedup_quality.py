"""Precision and recall of the fuzzy dedup presets on the sample, against brute-force
exact Jaccard similarity on word 5-gram shingles; and which stage caught each of the
sample's planted duplicates.

Reads the rw_filtered (and, when present, rw_deduped) tables of a corpus root that
``make demo`` wrote. Usage: ``python benchmarks/dedup_quality.py [--corpus .corpus]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from corpus_assets.crawl import dump_sort_key  # noqa: E402
from corpus_assets.steps.dedup.evaluation import evaluate_presets  # noqa: E402
from corpus_assets.steps.dedup.urls import normalize_url  # noqa: E402
from corpus_assets.storage import CorpusStore  # noqa: E402


def _read(corpus: Path, asset: str, dump: str, columns=None) -> list[dict]:
    rows = []
    for path in CorpusStore(str(corpus)).published_paths(f"{asset}/{dump}", "documents.parquet"):
        if pq.ParquetFile(path).metadata.num_rows:
            rows.extend(pq.read_table(path, columns=columns).to_pylist())
    return rows


def _removed(corpus: Path, asset: str, dump: str) -> dict:
    out = {}
    for path in CorpusStore(str(corpus)).published_paths(f"{asset}/{dump}", "removed.parquet"):
        for r in pq.read_table(path).to_pylist():
            out[r["doc_id"]] = (r["step"], r["reason"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", default=str(REPO / ".corpus"))
    parser.add_argument("--thresholds", default="0.7,0.8,0.9")
    args = parser.parse_args()
    corpus = Path(args.corpus)
    dumps = sorted((p.name for p in (corpus / "rw_filtered").iterdir()), key=dump_sort_key)
    docs = [r for d in dumps for r in _read(corpus, "rw_filtered", d, ["doc_id", "url", "dump", "text"])]
    print(f"{len(docs)} rw_filtered documents of {dumps} (collection order: crawl order, shard, row)\n")
    thresholds = [float(t) for t in args.thresholds.split(",")]
    rows = evaluate_presets([d["text"] for d in docs], ["refinedweb", "fineweb", "gpt3"], thresholds)
    print(f"{'preset':<11}{'LSH thr':>8}{'J >=':>6}{'pair P':>8}{'pair R':>8}{'true':>6}{'cand':>6}"
          f"{'doc P':>8}{'doc R':>8}{'redund':>8}{'removed':>8}")
    for r in rows:
        print(f"{r.preset:<11}{r.lsh_threshold:>8.3f}{r.jaccard_threshold:>6.2f}{r.pair_precision:>8.3f}"
              f"{r.pair_recall:>8.3f}{r.true_pairs:>6}{r.candidate_pairs:>6}{r.doc_precision:>8.3f}"
              f"{r.doc_recall:>8.3f}{r.truly_redundant_docs:>8}{r.removed_docs:>8}")

    if not (corpus / "rw_deduped").is_dir():
        return 0
    # The sample's planted duplicates (shared/data/README.md), found by their URLs.
    print("\nplanted duplicates that survived filtering, and the stage that removed them:")
    first = dumps[0]
    first_urls = {normalize_url(d["url"]) for d in _read(corpus, "raw_documents", first, ["url"])}
    # The page a planted copy was made from (same normalized URL without a tracking
    # query; or without the trailing /amp), among the rw_filtered documents.
    def base_url(url: str) -> str:
        u = normalize_url(url)
        return u[: -len("/amp")] if u.endswith("/amp") else u

    originals = {}
    for d in docs:
        if "utm_" not in d["url"] and not normalize_url(d["url"]).endswith("/amp"):
            originals.setdefault(base_url(d["url"]), d)
    removed_all = {}
    for dump in dumps:
        removed_all.update(_removed(corpus, "rw_deduped", dump))

    def fate_of_kept(url: str) -> tuple[str, str]:
        original = originals.get(base_url(url))
        if original is None:
            return ("kept", "original filtered out (the only copy)")
        if original["doc_id"] in removed_all:
            return ("kept", "original removed as its duplicate (one copy kept)")
        return ("kept", "MISSED (original also kept)")

    for dump in dumps:
        removed = _removed(corpus, "rw_deduped", dump)
        groups: dict[str, list] = {}
        for d in (x for x in docs if x["dump"] == dump):
            url = d["url"]
            if dump == first and "utm_" in url:
                kind = "tracking-URL copy"
            elif dump == first and url.rstrip("/").endswith("/amp"):
                kind = "near-duplicate (/amp/)"
            elif dump != first and normalize_url(url) in first_urls:
                kind = "re-crawl of an earlier-dump URL"
            else:
                continue
            fate = removed.get(d["doc_id"]) or fate_of_kept(url)
            groups.setdefault(kind, []).append(fate)
        for kind, fates in groups.items():
            tally: dict = {}
            for step, reason in fates:
                tally[f"{step}/{reason}" if reason else step] = tally.get(f"{step}/{reason}" if reason else step, 0) + 1
            print(f"  {dump} {kind:<32} {len(fates):>4} survived filtering: {tally}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

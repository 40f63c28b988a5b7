"""The domain part of ``make demo``: which runs to launch, and the per-domain table printed
after the retention funnel (read back from each ``domain_subsets`` materialization, the
numbers the UI shows)."""

from __future__ import annotations

from typing import Optional

SEED_AND_TRAIN = ["domain_seed_labels", "domain_classifiers"]
ANALYSES = ["domain_benchmark_similarity", "domain_url_overlap"]


def domain_runs(dump: str, shards: list[str], config) -> list[tuple[list[Optional[str]], list[str]]]:
    """(partition keys, selection) in dependency order for one dump."""
    from corpus_assets.assets.domains import domain_names, subset_partition_key
    from corpus_assets.partitions import shard_partition_key

    return [
        ([dump], SEED_AND_TRAIN),
        ([shard_partition_key(dump, s) for s in shards], ["domain_labels"]),
        ([subset_partition_key(dump, d) for d in domain_names(config)], ["domain_subsets"]),
    ]


def domain_table(instance, dumps: list[str], config) -> list[dict]:
    import dagster as dg

    from corpus_assets.assets.domains import domain_names, subset_partition_key

    rows = []
    for dump in dumps:
        for domain in domain_names(config):
            records = instance.fetch_materializations(dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("domain_subsets"), asset_partitions=[subset_partition_key(dump, domain)]),
                limit=1).records
            if not records:
                continue
            entry = records[0].event_log_entry
            meta = {k: v.value for k, v in entry.asset_materialization.metadata.items()}
            rows.append({"dump": dump, "domain": domain, "docs": meta["docs"], "chars": meta["chars"],
                         "share": meta["share_of_dump"], "cumulative": meta["cumulative_retention"],
                         "dump_docs": meta["dump_docs"]})
    return rows


def print_domain_table(rows: list[dict], limit: int = 15) -> None:
    by_dump: dict[str, list[dict]] = {}
    for r in rows:
        by_dump.setdefault(r["dump"], []).append(r)
    for dump, items in by_dump.items():
        total = sum(r["docs"] for r in items)
        dump_docs = items[0]["dump_docs"]
        print(f"\n== {dump}: domain subsets of rw_deduped ({len(items)} subsets materialized; "
              f"documents in {dump_docs}, sum over subsets {total}{'' if total == dump_docs else ' MISMATCH'})")
        print(f"{'domain':<36}{'docs':>7}{'chars':>11}{'share':>8}{'cumul.':>8}")
        shown = sorted((r for r in items if r["docs"]), key=lambda r: (-r["docs"], r["domain"]))
        for r in shown[:limit]:
            print(f"{r['domain']:<36}{r['docs']:>7}{r['chars']:>11}{r['share']:>8.1%}{r['cumulative']:>8.1%}")
        if len(shown) > limit:
            print(f"... {len(shown) - limit} more domains with documents")
        print(f"({sum(1 for r in items if not r['docs'])} subsets are empty)")

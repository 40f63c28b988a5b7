"""The corpus report of a dump, and the overview of every dump, from what is stored.

Reads the shard partitions' ``stats.json`` (the counters every document stage publishes
with its tables), the removal ledgers and a few columns of the documents, and writes under
``corpus_report/<dump>/``: ``report.json`` (every figure), ``report.md`` (the tables),
``funnel.png`` and ``distributions.png``. ``corpus_overview/overview.json`` and
``overview.md`` hold one row per dump. No Dagster import: the assets in
``corpus_assets/assets/report.py`` only wire this.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Optional

import pyarrow.compute as pc

from corpus_assets.config import PipelineConfig
from corpus_assets.crawl import dump_sort_key
from corpus_assets.partitions import shard_keys, validate_dump_name
from corpus_assets.stages import documents_path, load_report, manifest_table_path, removed_path, stats_path
from corpus_assets.steps.report import render
from corpus_assets.steps.report.summary import (DOCUMENT_ASSETS, DumpTotals, drift, funnel, histogram, pct,
                                                quantiles, removals, share)
from corpus_assets.storage import CorpusStore, publishes

REPORT = "corpus_report"
OVERVIEW = "corpus_overview"
# The quality signals a data lead looks at first (rw_quality_signals columns), and whether
# their histogram is on a log scale.
MAIN_SIGNALS = {
    "gopher_word_count": True,
    "gopher_mean_word_length": False,
    "gopher_alpha_words_frac": False,
    "gopher_dup_line_frac": False,
    "fineweb_line_punct_ratio": False,
}
HIST_BINS = 20


def report_file(dump: str, name: str) -> str:
    return f"{REPORT}/{dump}/{name}"


def overview_file(name: str) -> str:
    return f"{OVERVIEW}/{name}"


class ReportIncomplete(RuntimeError):
    """A dump whose shard partitions are not all materialized: its sums would be wrong."""


def dump_totals(store: CorpusStore, dump: str, shards: list[str]) -> tuple[DumpTotals, dict]:
    """The stats of every document asset summed over the dump's shards, and per asset the
    shards that have none yet (an asset with no shard at all is simply absent)."""
    totals, missing = DumpTotals(), {}
    for asset in DOCUMENT_ASSETS:
        present = [s for s in shards if store.exists(stats_path(asset, dump, s))]
        if not present:
            continue
        if len(present) != len(shards):
            missing[asset] = [s for s in shards if s not in present]
        for shard in present:
            totals.add(asset, load_report(store, asset, dump, shard).to_dict())
    return totals, missing


def shard_layout(store: CorpusStore, dump: str, shards: list[str]) -> tuple[list[str], dict, list[str]]:
    """The shards of the current ``num_shards`` the report may sum, the shard folders it
    leaves out ({asset: [shard]}), and why (one line each). Left out: a folder outside the
    current shard keys (left by a run with a larger ``num_shards``; Dagster shows no such
    partition), and a current-key raw_documents shard that read WARC files the dump's
    crawl_manifest assigns it none of (a partition of another ``num_shards``' layout,
    which would count its records twice)."""
    ignored: dict[str, list[str]] = {}
    problems: list[str] = []
    for asset in DOCUMENT_ASSETS:
        folders = sorted({rel.split("/")[2] for rel in store.list(f"{asset}/{dump}/", physical=True)
                          if rel.count("/") >= 3})
        stale = [f for f in folders if f not in shards]
        if stale:
            ignored[asset] = stale
    if ignored:
        stale_all = sorted({f for v in ignored.values() for f in v})
        problems.append(f"shard folders {stale_all} (of {', '.join(ignored)}) are not shards of num_shards "
                        f"{len(shards)} (left by a run with another num_shards): not counted")
    manifest = manifest_table_path(dump)
    usable = list(shards)
    if store.exists(manifest):
        assigned = Counter(store.read_table(manifest, columns=["shard"]).column("shard").to_pylist())
        outside = sorted(k for k in assigned if k not in shards)
        if outside:
            problems.append(f"crawl_manifest of {dump} assigns files to shards {outside}, not shards of num_shards "
                            f"{len(shards)}: it was built under another num_shards (re-run the dump's pipeline)")
        for shard in shards:
            if assigned.get(shard) or not store.exists(stats_path("raw_documents", dump, shard)):
                continue
            read = (store.read_json(stats_path("raw_documents", dump, shard)).get("extra") or {}).get("warc_files") or 0
            if read:
                usable.remove(shard)
                for asset in DOCUMENT_ASSETS:
                    if store.exists(stats_path(asset, dump, shard)):
                        ignored.setdefault(asset, []).append(shard)
                problems.append(f"shard {shard} read {read} WARC file(s) but crawl_manifest assigns it none: a "
                                "partition of another num_shards' layout, not counted")
    return usable, ignored, problems


def _language_counts(store: CorpusStore, dump: str, shards: list[str]) -> tuple[Counter, list[float]]:
    """Documents by the language lid.176 gave them (the kept ones from rw_raw's table, the
    others from its ledger's ``language:score`` detail), and the kept documents' scores."""
    counts: Counter = Counter()
    scores: list[float] = []
    for shard in shards:
        if not store.exists(stats_path("rw_raw", dump, shard)):
            continue
        for batch in store.iter_batches(documents_path("rw_raw", dump, shard), ["language", "language_score"]):
            langs = batch.column("language").to_pylist()
            counts.update(langs)
            scores.extend(batch.column("language_score").to_pylist())
        ledger = store.read_table(removed_path("rw_raw", dump, shard), columns=["step", "reason", "detail"],
                                  filters=[("step", "=", "language_id")])
        for reason, detail in zip(ledger.column("reason").to_pylist(), ledger.column("detail").to_pylist()):
            if reason == "empty_text":
                counts[""] += 1
            elif ":" in (detail or ""):
                counts[detail.rsplit(":", 1)[0]] += 1
    return counts, scores


def _column_values(store: CorpusStore, rels: Iterable[str], column: str) -> list:
    out: list = []
    for rel in rels:
        for batch in store.iter_batches(rel, [column]):
            out.extend(batch.column(column).to_pylist())
    return out


def _present_tables(store: CorpusStore, asset: str, dump: str, shards: list[str]) -> list[str]:
    return [documents_path(asset, dump, s) for s in shards if store.exists(stats_path(asset, dump, s))]


def _doc_lengths(store: CorpusStore, rels: list[str]) -> list[int]:
    out: list[int] = []
    for rel in rels:
        for batch in store.iter_batches(rel, ["text"]):
            out.extend(pc.utf8_length(batch.column("text")).to_pylist())
    return out


def _cluster_sizes(store: CorpusStore, dump: str) -> dict[str, int]:
    """MinHash duplicate clusters of the dump by size (documents of this dump in each)."""
    rel = f"duplicate_clusters/{dump}/clusters.parquet"
    if not store.exists(rel):
        return {}
    table = store.read_table(rel, columns=["cluster_id", "cluster_size"])
    sizes = dict(zip(table.column("cluster_id").to_pylist(), table.column("cluster_size").to_pylist()))
    return {str(k): v for k, v in sorted(Counter(sizes.values()).items())}


def _domains(store: CorpusStore, dump: str) -> dict[str, dict]:
    """Per domain subset of the dump: documents and text characters (none when the domain
    assets have not run for it)."""
    out = {}
    for rel in store.list(f"domain_subsets/{dump}/"):
        parts = rel.split("/")
        if len(parts) == 4 and parts[3] == "docs.parquet":
            table = store.read_table(rel, columns=["chars"])
            out[parts[2]] = {"docs": table.num_rows, "chars": int(pc.sum(table.column("chars")).as_py() or 0)}
    return out


def _selections(store: CorpusStore, config: PipelineConfig, dump_ids: set[str]) -> list[tuple[str, str, int, int]]:
    """Funnel rows for the targeted selections: the documents of this dump each selected."""
    from corpus_assets.selection_stages import RW_SOURCE, table_path

    rows = []
    for target in config.selection.targets:
        for asset in ("zipfit_selection", "dsir_selection"):
            rel = table_path(asset, target.name)
            if not store.exists(rel):
                continue
            table = store.read_table(rel, columns=["source", "lineage_id", "text"])
            docs = chars = 0
            for source, lineage, text in zip(*(table.column(c).to_pylist() for c in ("source", "lineage_id", "text"))):
                if source == RW_SOURCE and lineage in dump_ids:
                    docs += 1
                    chars += len(text or "")
            rows.append((asset, f"{target.name}: selected from this dump", docs, chars))
    return rows


def dump_summary(store: CorpusStore, dump: str, config: PipelineConfig, distributions: bool = True) -> dict:
    """Every figure of the dump's report but the drift (which needs the previous dump's)."""
    validate_dump_name(dump)
    shards, ignored, layout_problems = shard_layout(store, dump, shard_keys(config.num_shards))
    totals, missing = dump_totals(store, dump, shards)
    if not totals.steps:
        raise ReportIncomplete(f"{dump}: no document partition is materialized yet (raw_documents first)")
    extra: list[tuple[str, str, int, int]] = []
    domains = _domains(store, dump)
    if domains:
        classified = {d: v for d, v in domains.items() if d != "unclassified"}
        extra.append(("domain_subsets", "in a domain (not unclassified)", sum(v["docs"] for v in classified.values()),
                      sum(v["chars"] for v in classified.values())))
    deduped = _present_tables(store, "rw_deduped", dump, shards)
    if config.selection.targets and deduped:
        ids = set(_column_values(store, deduped, "doc_id"))
        extra += _selections(store, config, ids)
    languages, scores = _language_counts(store, dump, shards)
    summary = {
        "dump": dump,
        "shards": len(shards),
        "missing_partitions": missing,
        # shard folders not summed (another num_shards' layout), and why
        "ignored_partitions": ignored,
        "shard_layout_problems": layout_problems,
        "records_read": totals.records_read,
        "html_responses": totals.docs_out("raw_documents") or 0,
        "funnel": [r.to_dict() for r in funnel(totals, extra)],
        "removals": removals(totals),
        "languages": dict(languages.most_common()),
        "domains": domains,
    }
    # The corpus proper ends at the last document asset (rw_deduped once deduplicated); the
    # domain subsets and selections after it are subsets of it, shown but not the end.
    last = [r for r in summary["funnel"] if r["asset"] in DOCUMENT_ASSETS][-1]
    summary["final"] = {"asset": last["asset"], "step": last["step"], "docs": last["docs"],
                        "share_docs": last["share_docs"]}
    if distributions:
        final = deduped or _present_tables(store, "rw_filtered", dump, shards)
        lengths = _doc_lengths(store, final)
        signal_rels = _present_tables(store, "rw_quality_signals", dump, shards)
        summary["distributions"] = {
            "languages": summary["languages"],
            "language_score": histogram(scores, HIST_BINS, (0.0, 1.0)),
            "doc_length": {**histogram(lengths, HIST_BINS, log=True), **quantiles(lengths)},
            "quality_signals": {name: histogram(_column_values(store, signal_rels, name), HIST_BINS, log=log)
                                for name, log in MAIN_SIGNALS.items()} if signal_rels else {},
            "cluster_sizes": _cluster_sizes(store, dump),
            "length_of": "rw_deduped" if deduped else "rw_filtered",
        }
    return summary


def previous_dump(dump: str, known_dumps: Iterable[str]) -> Optional[str]:
    earlier = sorted((d for d in known_dumps if dump_sort_key(d) < dump_sort_key(dump)), key=dump_sort_key)
    return earlier[-1] if earlier else None


def report_markdown(summary: dict, funnel_png: Optional[bytes] = None, dist_png: Optional[bytes] = None) -> str:
    """The whole report as Markdown; the plots inline when given (data URIs)."""
    dump = summary["dump"]
    final = summary["final"]
    parts = [f"# Corpus report: {dump}",
             f"{summary['records_read']:,} responses read, {summary['html_responses']:,} HTML 200 responses; "
             f"{final['docs']:,} documents left after {final['asset']}: {final['step']} "
             f"({pct(final['share_docs'])} of the HTML 200 responses). Shares of characters are of the first row "
             "counting the same thing: HTML characters until extraction, extracted text characters after it."]
    if summary["missing_partitions"]:
        parts.append(f"**Incomplete**: partitions not materialized yet: {summary['missing_partitions']}")
    if summary.get("shard_layout_problems"):
        parts.append("**Shard layout**: " + "; ".join(summary["shard_layout_problems"]))
    parts += ["## Funnel", render.funnel_markdown(summary["funnel"])]
    if funnel_png:
        parts.append(render.embedded_png(funnel_png, f"funnel of {dump}"))
    parts += ["## Removals by step and reason (biggest first)", render.removals_markdown(summary["removals"])]
    dist = summary.get("distributions")
    if dist:
        total = sum(summary["languages"].values())
        langs = [[k or "(empty text)", f"{n:,}", pct(share(n, total))] for k, n in list(summary["languages"].items())[:15]]
        length = dist["doc_length"]
        parts += ["## Distributions",
                  "Languages lid.176 gave the extracted documents:",
                  render.markdown_table(["language", "documents", "share"], langs),
                  f"Final document length ({dist['length_of']}, text characters): p10 {length.get('p10')}, "
                  f"median {length.get('p50')}, p90 {length.get('p90')}.",
                  "MinHash duplicate clusters by size: "
                  + (", ".join(f"{n} of {k} documents" for k, n in dist["cluster_sizes"].items()) or "none")]
        if summary.get("domains"):
            parts += ["Domain subsets:", render.markdown_table(
                ["domain", "documents", "text chars"],
                [[d, v["docs"], f"{v['chars']:,}"] for d, v in sorted(summary["domains"].items(), key=lambda kv: -kv[1]["docs"])])]
        if dist_png:
            parts.append(render.embedded_png(dist_png, f"distributions of {dump}"))
    if "drift" in summary:
        parts += ["## Drift against the previous dump", render.drift_markdown(summary["drift"])]
    return "\n\n".join(parts) + "\n"


@publishes(REPORT + "/{dump}")
def build_corpus_report(store: CorpusStore, dump: str, config: PipelineConfig, known_dumps: Iterable[str]) -> dict:
    """The dump's report, with drift against the dump before it in crawl order; its files
    are published together under ``corpus_report/<dump>/``. Returns the summary with
    ``funnel_png``, ``distributions_png`` (bytes) and ``markdown`` added."""
    summary = dump_summary(store, dump, config)
    before = previous_dump(dump, known_dumps)
    previous = None
    if before:
        try:
            previous = dump_summary(store, before, config, distributions=False)
        except ReportIncomplete:
            previous = None
    summary["drift"] = drift(summary, previous)
    funnel_png = render.funnel_plot(summary["funnel"], f"{dump}: share of the dump left after each step")
    dist_png = render.distributions_plot(summary["distributions"], f"{dump}: distributions")
    markdown = report_markdown(summary, funnel_png, dist_png)
    store.write_json(report_file(dump, "report.json"), summary)
    for name, data in (("funnel.png", funnel_png), ("distributions.png", dist_png),
                       ("report.md", markdown.encode("utf-8"))):
        with store.file_writer(report_file(dump, name), "." + name.rsplit(".", 1)[1]) as (tmp, _):
            with open(tmp, "wb") as fh:
                fh.write(data)
    return {**summary, "funnel_png": funnel_png, "distributions_png": dist_png, "markdown": markdown}


def overview_rows(store: CorpusStore, dumps: Iterable[str]) -> list[dict]:
    """One row per dump that has a stored report, in crawl order."""
    rows = []
    for dump in sorted(dumps, key=dump_sort_key):
        rel = report_file(dump, "report.json")
        if not store.exists(rel):
            continue
        s = store.read_json(rel)
        by_step = {(r["asset"], r["step"]): r for r in s["funnel"]}
        # The text left where the corpus ends (the final row: the last document asset's last
        # step), not the domain subset / selection rows the funnel lists after it.
        final = s["final"]
        end = by_step.get((final["asset"], final["step"]))
        text_rows = [r for r in s["funnel"] if r["chars_kind"] == "text" and r["asset"] in DOCUMENT_ASSETS]
        end = end if end and end["chars_kind"] == "text" else (text_rows[-1] if text_rows else None)
        stage_rows = {a: [r for r in s["funnel"] if r["asset"] == a] for a in ("rw_filtered", "rw_deduped")}
        top = s["removals"][0] if s["removals"] else None
        rows.append({
            "dump": dump,
            "records_read": s["records_read"],
            "html_responses": s["html_responses"],
            # None: the asset has not run for the dump yet (shown "-", never as 0 documents left)
            "rw_raw": (by_step.get(("rw_raw", "language_id")) or {}).get("docs"),
            "rw_filtered": stage_rows["rw_filtered"][-1]["docs"] if stage_rows["rw_filtered"] else None,
            "rw_deduped": stage_rows["rw_deduped"][-1]["docs"] if stage_rows["rw_deduped"] else None,
            "final_asset": s["final"]["asset"],
            "final_docs": s["final"]["docs"],
            "share_docs": s["final"]["share_docs"],
            "text_chars": end["chars"] if end else 0,
            "share_text_chars": end["share_chars"] if end else 0.0,
            "top_removal": f"{top['step']}: {top['reason']} ({top['docs']:,}, {pct(top['share'])})" if top else "",
            "incomplete": bool(s["missing_partitions"] or s.get("shard_layout_problems")),
        })
    return rows


def _count(value: Optional[int]) -> str:
    return "-" if value is None else f"{value:,}"


def overview_markdown(rows: list[dict], png: Optional[bytes] = None) -> str:
    table = render.markdown_table(
        ["dump", "responses read", "HTML 200", "RW-RAW", "RW-Filtered", "RW (deduped)", "last artifact",
         "docs left", "% of HTML 200", "text chars left", "% of text chars", "largest removal"],
        [[r["dump"], f"{r['records_read']:,}", f"{r['html_responses']:,}", _count(r["rw_raw"]), _count(r["rw_filtered"]),
          _count(r["rw_deduped"]), r["final_asset"], f"{r['final_docs']:,}", pct(r["share_docs"]),
          f"{r['text_chars']:,}", pct(r["share_text_chars"]), r["top_removal"]] for r in rows])
    return "# Corpus overview\n\n" + table + ("\n\n" + render.embedded_png(png, "overview") if png else "") + "\n"


@publishes(OVERVIEW)
def build_corpus_overview(store: CorpusStore, dumps: Iterable[str]) -> dict:
    rows = overview_rows(store, dumps)
    png = render.overview_plot(rows)
    markdown = overview_markdown(rows, png)
    store.write_json(overview_file("overview.json"), {"dumps": rows})
    with store.file_writer(overview_file("overview.md"), ".md") as (tmp, _):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(markdown)
    return {"rows": rows, "png": png, "markdown": markdown}

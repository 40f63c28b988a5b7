"""The corpus report as assets: ``corpus_report`` per dump and ``corpus_overview`` over all.

The work is in ``corpus_assets.report_stages``; these only wire and attach metadata.

    rw_deduped (dump x shard) ─┐
    dedup_index (dump) ────────┼──> corpus_report (dump) ──> corpus_overview (all dumps)
    domain_subsets (dump x domain)┘

``corpus_report`` is eager: it runs once the dump's last document asset has materialized
(``dedup_index`` after every ``rw_deduped`` shard), and again whenever one of them or the
dump's domain subsets do; missing domain subsets do not hold it back. ``corpus_overview`` is
eager after the reports.
"""


import dagster as dg

from corpus_assets import report_stages
from corpus_assets.partitions import DUMP_DIM, dump_partitions, shard_to_dump, validate_dump_name
from corpus_assets.resources import CorpusStoreResource
from corpus_assets.steps.report import render

REPORT_GROUP = "report"
CODE_REVISION = {"corpus_report": "1", "corpus_overview": "1"}

FUNNEL_TABLE_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("asset", "string"), dg.TableColumn("step", "string"),
    dg.TableColumn("docs", "int", description="documents left after the step, summed over the dump's shards"),
    dg.TableColumn("docs_pct", "string", description="% of the dump's HTML 200 responses"),
    dg.TableColumn("chars", "int", description="characters left after the step"),
    dg.TableColumn("chars_are", "string", description="response body (as read), HTML (until extraction) or "
                   "extracted text"),
    dg.TableColumn("chars_pct", "string", description="% of the first row counting the same kind of characters"),
])


def _funnel_records(funnel: list[dict]) -> dg.MetadataValue:
    return dg.MetadataValue.table([dg.TableRecord({
        "asset": r["asset"], "step": r["step"], "docs": r["docs"], "docs_pct": render.docs_pct(r), "chars": r["chars"],
        "chars_are": render.CHARS_LABEL[r["chars_kind"]], "chars_pct": report_stages.pct(r["share_chars"]),
    }) for r in funnel], schema=FUNNEL_TABLE_SCHEMA)


def after_last_document_asset(optional: list[str]) -> dg.AutomationCondition:
    """``eager()``, except that the ``optional`` dependencies (the domain subsets) never hold
    the report back while missing: a dump whose domain assets never run, or have not run
    yet, still gets its report after dedup_index, and a new one when they do run."""
    return (
        dg.AutomationCondition.in_latest_time_window()
        & (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing().ignore(dg.AssetSelection.assets(*optional))
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("eager, domain subsets optional")


def _largest_drift(drift: dict) -> str:
    """The largest changes on one line, and the rates not compared (a dump lacks them)."""
    text = "; ".join(f"{r['rate']} {r['change_pp']:+.1f} pp" for r in drift["largest"])
    text = text or ("no earlier dump" if not drift["previous_dump"] else "no change")
    if drift.get("incomplete"):
        text += f" (not compared: {'; '.join(drift['incomplete'])})"
    return text


def build_report_assets(config, with_domains: bool = True) -> list:
    deps = [dg.AssetDep("rw_deduped", partition_mapping=shard_to_dump), "dedup_index"]
    optional = []
    if with_domains:
        deps.append(dg.AssetDep("domain_subsets", partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
            partition_dimension_name=DUMP_DIM)))
        optional.append("domain_subsets")

    @dg.asset(
        name="corpus_report",
        partitions_def=dump_partitions,
        deps=deps,
        code_version=CODE_REVISION["corpus_report"],
        group_name=REPORT_GROUP,
        kinds={"markdown", "matplotlib"},
        automation_condition=after_last_document_asset(optional) if optional else dg.AutomationCondition.eager(),
        description="The dump's report (RefinedWeb Figure 2 per dump): documents and characters left after "
        "every step from raw_documents to the last artifact, removals by step and reason, distributions "
        "(languages, scores, length, quality signals, MinHash clusters) and drift against the previous dump. "
        "Summed over the dump's shard partitions from their stored stats and ledgers.",
    )
    def corpus_report(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        dump = validate_dump_name(context.partition_key)
        store = corpus_store.get_store()
        out = report_stages.build_corpus_report(store, dump, config, context.instance.get_dynamic_partitions(DUMP_DIM))
        final = out["final"]
        context.log.info(f"corpus_report {dump}: {out['html_responses']} HTML 200 responses -> {final['docs']} "
                         f"documents after {final['asset']}: {final['step']} ({final['share_docs']:.1%})")
        funnel_md = (f"{render.embedded_png(out['funnel_png'], 'funnel of ' + dump)}\n\n"
                     f"{render.funnel_markdown(out['funnel'])}\n")
        dist_md = render.embedded_png(out["distributions_png"], "distributions of " + dump)
        return dg.MaterializeResult(metadata={
            "funnel": dg.MetadataValue.md(funnel_md),
            "funnel_table": _funnel_records(out["funnel"]),
            "removals": dg.MetadataValue.md(render.removals_markdown(out["removals"])),
            "distributions": dg.MetadataValue.md(dist_md),
            "drift": dg.MetadataValue.md(render.drift_markdown(out["drift"])),
            "largest_drift": dg.MetadataValue.text(_largest_drift(out["drift"])),
            "records_read": out["records_read"],
            "html_responses": out["html_responses"],
            "final_docs": final["docs"],
            "final_share": dg.MetadataValue.text(report_stages.pct(final["share_docs"])),
            "final_asset": f"{final['asset']}: {final['step']}",
            "incomplete_partitions": dg.MetadataValue.json(out["missing_partitions"]),
            # shard folders of another num_shards' layout, left out of every sum
            "ignored_partitions": dg.MetadataValue.json(out.get("ignored_partitions") or {}),
            "shard_layout_problems": dg.MetadataValue.text("; ".join(out.get("shard_layout_problems") or []) or "none"),
            "funnel_plot": dg.MetadataValue.path(store.uri(report_stages.report_file(dump, "funnel.png"))),
            "distributions_plot": dg.MetadataValue.path(store.uri(report_stages.report_file(dump, "distributions.png"))),
            "report_markdown": dg.MetadataValue.path(store.uri(report_stages.report_file(dump, "report.md"))),
        })

    @dg.asset(
        name="corpus_overview",
        deps=[dg.AssetDep("corpus_report", partition_mapping=dg.AllPartitionMapping())],
        code_version=CODE_REVISION["corpus_overview"],
        group_name=REPORT_GROUP,
        kinds={"markdown"},
        # Refreshed after any dump's report, once every dump has one.
        automation_condition=dg.AutomationCondition.eager(),
        description="Every dump's report in one table, one row each (crawl order).",
    )
    def corpus_overview(context: dg.AssetExecutionContext, corpus_store: CorpusStoreResource) -> dg.MaterializeResult:
        store = corpus_store.get_store()
        out = report_stages.build_corpus_overview(store, context.instance.get_dynamic_partitions(DUMP_DIM))
        return dg.MaterializeResult(metadata={
            "overview": dg.MetadataValue.md(out["markdown"]),
            "dumps": len(out["rows"]),
            "path": dg.MetadataValue.path(store.uri(report_stages.overview_file("overview.md"))),
        })

    return [corpus_report, corpus_overview]

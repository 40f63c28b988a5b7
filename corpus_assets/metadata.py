"""Retention metadata: the numbers a data lead reads off every materialization.

Key names are a contract with dashboards: ``docs_in``, ``docs_out``, ``docs_removed``,
``retention``, ``chars_in``, ``chars_out``, ``cumulative_retention`` and
``removed_by_reason``; ``funnel`` adds the per-step view inside one asset.
"""

from __future__ import annotations

import dagster as dg

from corpus_assets.stages import StageReport

REMOVED_BY_REASON_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("step", "string"),
        dg.TableColumn("reason", "string"),
        dg.TableColumn("count", "int"),
    ]
)
FUNNEL_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("step", "string"),
        dg.TableColumn("docs_in", "int"),
        dg.TableColumn("docs_out", "int"),
        dg.TableColumn("retention", "float"),
        dg.TableColumn("cumulative_retention", "float"),
    ]
)


def _ratio(num: int, den: int) -> float:
    return round(num / den, 6) if den else 0.0


def retention_metadata(report: StageReport, uri: str) -> dict:
    removed_rows = [
        dg.TableRecord({"step": step, "reason": reason, "count": n})
        for step, reason, n in report.removed_by_reason()
    ]
    funnel_rows = [
        dg.TableRecord(
            {
                "step": s.step,
                "docs_in": s.docs_in,
                "docs_out": s.docs_out,
                "retention": _ratio(s.docs_out, s.docs_in),
                "cumulative_retention": _ratio(s.docs_out, report.baseline_docs),
            }
        )
        for s in report.step_stats
    ]
    return {
        "docs_in": dg.MetadataValue.int(report.docs_in),
        "docs_out": dg.MetadataValue.int(report.docs_out),
        "docs_removed": dg.MetadataValue.int(report.docs_removed),
        "retention": dg.MetadataValue.float(_ratio(report.docs_out, report.docs_in)),
        "chars_in": dg.MetadataValue.int(report.chars_in),
        "chars_out": dg.MetadataValue.int(report.chars_out),
        "cumulative_retention": dg.MetadataValue.float(_ratio(report.docs_out, report.baseline_docs)),
        "removed_by_reason": dg.MetadataValue.table(removed_rows, schema=REMOVED_BY_REASON_SCHEMA),
        "funnel": dg.MetadataValue.table(funnel_rows, schema=FUNNEL_SCHEMA),
        "dagster/row_count": dg.MetadataValue.int(report.docs_out),
        "docs_per_second": dg.MetadataValue.float(_ratio(report.docs_in, report.seconds) if report.seconds else 0.0),
        "path": dg.MetadataValue.path(uri),
    }


def records_table(rows: list[dict], schema: dg.TableSchema) -> dg.MetadataValue:
    """Plain dict rows as a table in the UI (one TableRecord per row)."""
    return dg.MetadataValue.table([dg.TableRecord(row) for row in rows], schema=schema)

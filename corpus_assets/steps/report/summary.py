"""A dump's corpus report as plain data: the funnel, removals, distributions and drift.

Everything here works on numbers already read (stats.json dicts, columns of values); the
reading is ``corpus_assets.report_stages``'s. No Dagster import.

The funnel has RefinedWeb's Figure 2 shape (Penedo et al. 2023): for every step, the
documents and characters left after it, and their share of what the dump started with.
Documents are counted against the HTML 200 responses (``raw_documents``' output, the base
of ``cumulative_retention`` everywhere in this project); characters change meaning at
extraction (HTML before it, extracted text after it), so each row says which it is and the
character share is taken against the first row of the same kind.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

# What a step's chars_out counts (StepStats counts the field each step names): the HTML
# until extraction, the extracted text after it. Steps not listed count text.
HTML_CHAR_STEPS = frozenset({"raw_documents", "url_filter", "html_guard", "language_prescreen"})

# The document assets of one dump, in pipeline order (each one's input is the one before).
DOCUMENT_ASSETS = ("raw_documents", "rw_raw", "rw_quality_signals", "rw_filtered", "rw_deduped")


def chars_kind(step: str) -> str:
    return "html" if step in HTML_CHAR_STEPS else "text"


def share(num: float, den: float) -> float:
    return num / den if den else 0.0


def pct(value: Optional[float], digits: int = 1) -> str:
    """A share as a percentage for a human: 0.1273 -> '12.7%'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value * 100:.{digits}f}%"


@dataclass
class FunnelRow:
    """Documents and characters left after one step of the dump."""

    asset: str
    step: str
    docs: int
    chars: int
    chars_kind: str  # "html" or "text"
    share_docs: float = 0.0  # of the HTML 200 responses
    share_chars: float = 0.0  # of the first row of the same chars_kind

    @property
    def label(self) -> str:
        return self.step if self.step == self.asset else f"{self.asset}: {self.step}"

    def to_dict(self) -> dict:
        # the records read come before the HTML 200 base: no share of it (not 103%)
        return {"asset": self.asset, "step": self.step, "docs": self.docs, "chars": self.chars,
                "chars_kind": self.chars_kind,
                "share_docs": None if self.chars_kind == "body" else round(self.share_docs, 6),
                "share_chars": round(self.share_chars, 6)}


@dataclass
class DumpTotals:
    """Per (asset, step), the stats summed over the dump's shard partitions."""

    steps: dict = field(default_factory=dict)  # (asset, step) -> summed stats dict, insertion = pipeline order
    shards: dict = field(default_factory=dict)  # asset -> shards summed
    records_read: int = 0  # raw_documents' input: responses the reader yielded
    body_chars: int = 0

    def add(self, asset: str, report: dict) -> None:
        """Add one partition's stats.json (a StageReport dict)."""
        self.shards[asset] = self.shards.get(asset, 0) + 1
        for i, s in enumerate(report.get("steps") or []):
            if asset == "raw_documents" and i == 0:
                self.records_read += s["docs_in"]
                self.body_chars += s["chars_in"]
            agg = self.steps.setdefault((asset, s["step"]), {"docs_in": 0, "docs_out": 0, "chars_in": 0,
                                                             "chars_out": 0, "removed_by_reason": Counter()})
            for key in ("docs_in", "docs_out", "chars_in", "chars_out"):
                agg[key] += s[key]
            agg["removed_by_reason"].update(s.get("removed_by_reason") or {})

    def docs_out(self, asset: str) -> Optional[int]:
        rows = [v for (a, _), v in self.steps.items() if a == asset]
        return rows[-1]["docs_out"] if rows else None


def funnel(totals: DumpTotals, extra: Sequence[tuple[str, str, int, int]] = ()) -> list[FunnelRow]:
    """The dump's funnel: one row for the responses read, then one per step of every
    document asset, then ``extra`` rows (asset, step, docs, chars) for artifacts past
    rw_deduped (domain subsets, selections), which count text characters."""
    rows = [FunnelRow("raw_documents", "records read", totals.records_read, totals.body_chars, "body")]
    for (asset, step), agg in totals.steps.items():
        rows.append(FunnelRow(asset, step, agg["docs_out"], agg["chars_out"], chars_kind(step)))
    rows += [FunnelRow(asset, step, docs, chars, "text") for asset, step, docs, chars in extra]
    base_docs = next((r.docs for r in rows if r.asset == "raw_documents" and r.step == "raw_documents"), 0)
    first_of_kind: dict[str, int] = {}
    for r in rows:
        first_of_kind.setdefault(r.chars_kind, r.chars)
        r.share_docs = share(r.docs, base_docs)
        r.share_chars = share(r.chars, first_of_kind[r.chars_kind])
    return rows


def removals(totals: DumpTotals) -> list[dict]:
    """Every (asset, step, reason) with its count, biggest first; ``share`` is of the HTML
    200 responses."""
    base = totals.docs_out("raw_documents") or 0
    rows = [{"asset": asset, "step": step, "reason": reason, "docs": n, "share": round(share(n, base), 6)}
            for (asset, step), agg in totals.steps.items() for reason, n in agg["removed_by_reason"].items()]
    return sorted(rows, key=lambda r: (-r["docs"], r["asset"], r["step"], r["reason"]))


def histogram(values: Iterable[float], bins: int = 20, value_range: Optional[tuple[float, float]] = None,
              log: bool = False) -> dict:
    """Counts of ``values`` (NaN and None left out, and counted) in ``bins`` equal bins, on a
    log10 scale with ``log`` (non-positive values then go to the first bin)."""
    clean, missing = [], 0
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            missing += 1
        else:
            clean.append(math.log10(v) if log and v > 0 else (0.0 if log else float(v)))
    if not clean:
        return {"edges": [], "counts": [], "n": 0, "missing": missing, "log10": log}
    lo, hi = value_range if value_range else (min(clean), max(clean))
    if hi <= lo:
        hi = lo + 1.0
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in clean:
        i = int((min(max(v, lo), hi) - lo) / width)
        counts[min(i, bins - 1)] += 1
    return {"edges": [round(lo + i * width, 6) for i in range(bins + 1)], "counts": counts, "n": len(clean),
            "missing": missing, "log10": log}


def quantiles(values: Sequence[float], qs: Sequence[float] = (0.1, 0.5, 0.9)) -> dict:
    clean = sorted(v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v)))
    if not clean:
        return {f"p{int(q * 100)}": None for q in qs}
    return {f"p{int(q * 100)}": clean[min(len(clean) - 1, int(q * len(clean)))] for q in qs}


def drift_rates(summary: dict) -> dict[str, float]:
    """The rates of one dump's summary that drift compares: share of documents and of
    characters (HTML or text, as the row counts them) left after each step, share removed
    by each (step, reason), and language shares."""
    rates = {}
    for r in summary["funnel"]:
        if r["chars_kind"] != "body":  # the records read come before the HTML 200 base
            rates[f"docs left after {r['asset']}: {r['step']}"] = r["share_docs"]
            rates[f"{r['chars_kind']} chars left after {r['asset']}: {r['step']}"] = r.get("share_chars", 0.0)
    for r in summary["removals"]:
        rates[f"removed by {r['step']}: {r['reason']}"] = r["share"]
    total = sum(summary.get("languages", {}).values()) or 0
    for lang, n in summary.get("languages", {}).items():
        rates[f"language {lang or '(empty text)'} (of documents language ID scored)"] = share(n, total)
    return rates


def _rate_assets(summary: dict) -> dict[str, str]:
    """For each rate of ``drift_rates``, the asset whose figures give it."""
    out = {}
    for r in summary["funnel"]:
        if r["chars_kind"] != "body":
            out[f"docs left after {r['asset']}: {r['step']}"] = r["asset"]
            out[f"{r['chars_kind']} chars left after {r['asset']}: {r['step']}"] = r["asset"]
    for r in summary["removals"]:
        out.setdefault(f"removed by {r['step']}: {r['reason']}", r["asset"])
    for lang in summary.get("languages", {}):
        out[f"language {lang or '(empty text)'} (of documents language ID scored)"] = "rw_raw"
    return out


def _lacking(summary: dict) -> dict[str, str]:
    """The assets whose figures a dump's summary lacks or has only partly: asset -> why.
    Assets absent from its funnel (not materialized yet) are found by the caller."""
    out = {a: f"shards {v} not materialized" for a, v in (summary.get("missing_partitions") or {}).items()}
    for a in (summary.get("ignored_partitions") or {}):
        out.setdefault(a, "shards of another num_shards' layout left out")
    return out


def drift(current: dict, previous: Optional[dict], top: int = 5) -> dict:
    """Every rate of ``current`` beside ``previous``'s, and the ``top`` largest absolute
    changes, in percentage points. A rate of a step that removed nothing in one dump reads
    0 there; a rate of an asset one dump has not (fully) materialized is missing (None,
    with ``missing`` saying why) and never a largest change."""
    if previous is None:
        return {"previous_dump": None, "rows": [], "largest": []}
    now, before = drift_rates(current), drift_rates(previous)
    asset_of = {**_rate_assets(previous), **_rate_assets(current)}
    # languages come from rw_raw: a summary that has some has rw_raw's figures
    present = {side: {r["asset"] for r in summ["funnel"]} | ({"rw_raw"} if summ.get("languages") else set())
               for side, summ in (("current", current), ("previous", previous))}
    lacking = {"current": _lacking(current), "previous": _lacking(previous)}
    rows = []
    for key in list(now) + [k for k in before if k not in now]:
        asset = asset_of.get(key)
        missing = {}
        for side in ("current", "previous"):
            if asset and asset not in present[side]:
                missing[side] = f"{asset} not materialized"
            elif asset in lacking[side]:
                missing[side] = f"{asset}: {lacking[side][asset]}"
        a = None if "current" in missing else now.get(key, 0.0)
        b = None if "previous" in missing else before.get(key, 0.0)
        row = {"rate": key, "current": None if a is None else round(a, 6), "previous": None if b is None else round(b, 6),
               "change_pp": None if a is None or b is None else round((a - b) * 100, 3)}
        if missing:
            row["missing"] = "; ".join(f"{side} dump: {why}" for side, why in missing.items())
        rows.append(row)
    # A step that removes nothing repeats the step before it: call out one of them.
    largest, seen = [], set()
    for r in sorted((r for r in rows if r["change_pp"]), key=lambda r: -abs(r["change_pp"])):
        same = (r["rate"].split(" after ")[0], r["current"], r["previous"])
        if same not in seen and len(largest) < top:
            seen.add(same)
            largest.append(r)
    incomplete = sorted({r["missing"] for r in rows if "missing" in r})
    return {"previous_dump": previous["dump"], "rows": rows, "largest": largest,
            **({"incomplete": incomplete} if incomplete else {})}

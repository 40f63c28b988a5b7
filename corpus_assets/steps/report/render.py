"""The corpus report rendered for people: Markdown tables and PNG plots.

Plots use matplotlib's Agg backend (no display, no GUI toolkit), selected on the figure
itself rather than through ``matplotlib.use``, so importing this never changes the backend
of a process that has another. No Dagster import.
"""

from __future__ import annotations

import base64
import io
from typing import Optional, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from corpus_assets.steps.report.summary import pct

CHARS_LABEL = {"body": "response body chars", "html": "HTML chars", "text": "text chars"}


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def docs_pct(row: dict) -> str:
    """The row's documents as a share of the HTML 200 responses; "-" for the records read
    before that base exists (non-HTML and non-200 records among them)."""
    return "-" if row["chars_kind"] == "body" else pct(row["share_docs"])


def funnel_markdown(funnel: list[dict]) -> str:
    return markdown_table(
        ["asset", "step", "documents left", "% of HTML 200 responses", "characters left", "characters are",
         "% of first of that kind"],
        [[r["asset"], r["step"], f"{r['docs']:,}", docs_pct(r), f"{r['chars']:,}",
          CHARS_LABEL.get(r["chars_kind"], r["chars_kind"]), pct(r["share_chars"])] for r in funnel])


def removals_markdown(removals: list[dict], limit: int = 40) -> str:
    rows = [[r["asset"], r["step"], r["reason"], f"{r['docs']:,}", pct(r["share"], 2)] for r in removals[:limit]]
    more = f"\n\n({len(removals) - limit} smaller reasons not shown)" if len(removals) > limit else ""
    return markdown_table(["asset", "step", "reason", "documents", "% of HTML 200 responses"], rows) + more


def drift_markdown(drift: dict, limit: int = 60) -> str:
    if not drift.get("previous_dump"):
        return "No earlier dump to compare with."
    largest = "\n".join(f"- **{r['rate']}**: {pct(r['previous'])} -> {pct(r['current'])} "
                        f"({r['change_pp']:+.1f} percentage points)" for r in drift["largest"])
    rows = [[r["rate"], pct(r["previous"]), pct(r["current"]),
             "-" if r["change_pp"] is None else f"{r['change_pp']:+.1f}"] for r in drift["rows"][:limit]]
    table = markdown_table(["rate", drift["previous_dump"], "this dump", "change (pp)"], rows)
    gaps = ""
    if drift.get("incomplete"):  # rates missing on one side: shown "-", never a largest change
        gaps = "\n\nNot compared (a dump lacks the figures): " + "; ".join(drift["incomplete"])
    return f"Largest changes against {drift['previous_dump']}:\n\n{largest or '- none'}{gaps}\n\n{table}"


def _plain(label: str) -> str:
    """A label matplotlib shows as written (a ``$`` would start mathtext)."""
    return str(label).replace("$", r"\$")


def png_bytes(fig: Figure, dpi: int = 80) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def embedded_png(data: bytes, alt: str) -> str:
    """Markdown that shows a PNG inline (a data URI: the UI needs no file access)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})"


def funnel_plot(funnel: list[dict], title: str) -> bytes:
    """RefinedWeb Figure 2's shape: per step, the share of the dump left, documents and
    characters side by side (characters hatched while they are HTML)."""
    rows = [r for r in funnel if r["chars_kind"] != "body"]
    fig = Figure(figsize=(9, 0.38 * len(rows) + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(len(rows)))[::-1]
    height = 0.4
    ax.barh([y + height / 2 for y in ys], [100 * r["share_docs"] for r in rows], height, color="#3b6ea8",
            label="documents (% of HTML 200 responses)")
    for y, r in zip(ys, rows):
        html = r["chars_kind"] == "html"
        ax.barh(y - height / 2, 100 * r["share_chars"], height, color="#e39b3b", hatch="//" if html else None,
                edgecolor="#8a5a1c" if html else "#e39b3b",
                label=("characters: HTML (% of HTML chars)" if html else "characters: text (% of extracted text)"))
        ax.text(100 * r["share_docs"] + 0.8, y + height / 2, pct(r["share_docs"]), va="center", fontsize=7)
    ax.set_yticks(ys)
    ax.set_yticklabels([_plain(r["step"] if r["step"] == r["asset"] else f"{r['asset']}: {r['step']}") for r in rows],
                       fontsize=8)
    ax.set_xlim(0, 110)
    ax.set_xlabel("% of the dump left after the step")
    ax.set_title(_plain(title), fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return png_bytes(fig)


def _hist_panel(ax, hist: dict, title: str, xlabel: str) -> None:
    ax.set_title(title, fontsize=8)
    if not hist.get("counts"):
        ax.text(0.5, 0.5, "no documents", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        return
    edges = hist["edges"]
    ax.bar(edges[:-1], hist["counts"], width=[b - a for a, b in zip(edges[:-1], edges[1:])], align="edge",
           color="#3b6ea8", edgecolor="white", linewidth=0.4)
    ax.set_xlabel(("log10 " if hist.get("log10") else "") + xlabel, fontsize=7)
    ax.tick_params(labelsize=6)


def distributions_plot(dist: dict, title: str) -> bytes:
    """Languages, language scores, document length, the main quality signals and MinHash
    cluster sizes, one panel each."""
    signals = dist.get("quality_signals", {})
    panels = 4 + len(signals)
    cols = 3
    fig = Figure(figsize=(10, 2.4 * ((panels + cols - 1) // cols) + 0.6))
    axes = [fig.add_subplot((panels + cols - 1) // cols, cols, i + 1) for i in range(panels)]
    langs = sorted(dist.get("languages", {}).items(), key=lambda kv: -kv[1])[:12]
    ax = axes[0]
    ax.set_title("language ID (top languages, documents)", fontsize=8)
    if langs:
        ax.bar([k or "(empty)" for k, _ in langs], [v for _, v in langs], color="#3b6ea8")
    ax.tick_params(labelsize=6)
    _hist_panel(axes[1], dist.get("language_score", {}), "language score, kept language", "score")
    _hist_panel(axes[2], dist.get("doc_length", {}), "final document length", "characters")
    sizes = dist.get("cluster_sizes", {})
    ax = axes[3]
    ax.set_title("MinHash duplicate clusters by size", fontsize=8)
    if sizes:
        keys = sorted(sizes, key=int)
        ax.bar([str(k) for k in keys], [sizes[k] for k in keys], color="#3b6ea8")
        ax.set_xlabel("documents of this dump in the cluster", fontsize=7)
    else:
        ax.text(0.5, 0.5, "no clusters", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    ax.tick_params(labelsize=6)
    for ax, (name, hist) in zip(axes[4:], signals.items()):
        _hist_panel(ax, hist, name, name)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def overview_plot(rows: list[dict]) -> Optional[bytes]:
    """One bar group per dump: share of documents and of text characters left at the end."""
    if not rows:
        return None
    fig = Figure(figsize=(max(4, 1.2 * len(rows) + 2), 3.2))
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(rows)))
    ax.bar([x - 0.2 for x in xs], [100 * r["share_docs"] for r in rows], 0.4, color="#3b6ea8",
           label="documents left (% of HTML 200 responses)")
    ax.bar([x + 0.2 for x in xs], [100 * r["share_text_chars"] for r in rows], 0.4, color="#e39b3b",
           label="text chars left (% of extracted text)")
    ax.set_xticks(xs)
    ax.set_xticklabels([r["dump"] for r in rows], fontsize=7)
    ax.set_ylabel("%")
    ax.legend(fontsize=7)
    return png_bytes(fig)

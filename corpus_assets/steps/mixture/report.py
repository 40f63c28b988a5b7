"""The achieved mixture as rows and a small bar chart (PNG) for the asset's metadata."""

from __future__ import annotations

import io


def share_rows(manifest: dict) -> list[dict]:
    return [{"source": name, "asset": s["asset"], "requested_share": s["requested_share"],
             "achieved_share": s["achieved_share"], "asked_tokens": s["asked_tokens"], "tokens": s["tokens"],
             "docs": s["docs"], "available_tokens": s["available_tokens"], "epochs": s["epochs"]}
            for name, s in manifest["sources"].items()]


def shares_png(manifest: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = share_rows(manifest)
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * len(rows), 2.6), dpi=80)
    ax.bar(x - 0.2, [r["requested_share"] for r in rows], 0.4, label="requested")
    ax.bar(x + 0.2, [r["achieved_share"] for r in rows], 0.4, label="achieved")
    ax.set_xticks(x, labels=[r["source"] for r in rows], rotation=20, ha="right", fontsize=7)
    ax.set_ylabel("share of output tokens", fontsize=7)
    ax.set_title(f"{manifest['mixture']}: {manifest['tokens']:,} tokens", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()

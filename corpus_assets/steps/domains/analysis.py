"""FineFineWeb's analyses: domain-benchmark distances and URL overlap between domains.

- **MMD** (Gretton et al. 2012), biased V-statistic estimate of MMD^2 with an RBF kernel
  k(x, y) = exp(-||x - y||^2 / (2 sigma^2)); sigma by the **median heuristic**: the median
  of the pairwise Euclidean distances over the pooled embeddings of all samples being
  compared (one bandwidth for the whole table, so entries are comparable). We report
  sqrt(max(MMD^2, 0)).
- **Sliced Wasserstein-1**: the mean over ``projections`` random unit directions (fixed
  seed) of the exact 1-D Wasserstein-1 distance between the projected samples. With equal
  sample sizes the 1-D distance is the mean absolute difference of the sorted projections.
  Sliced rather than exact OT: exact W on samples is an assignment problem (cubic in the
  sample size); the sliced version is n log n per direction and has no solver dependency.
- **URL TF-IDF** over the top-k URLs (hosts) of each domain: with M the number of URL
  occurrences pooled over all domains' top lists, TF(U) = count(U) / M, IDF(U) = log(N / K_U)
  (N domains, K_U the number of domains whose top list holds U); a URL's weight in a
  domain is TF * IDF. Overlap between two domains = the number of top URLs they share.
"""

from __future__ import annotations

import base64
import io
import math
from collections import Counter
from typing import Sequence

import numpy as np


def median_bandwidth(samples: Sequence[np.ndarray]) -> float:
    pooled = np.concatenate([s for s in samples if len(s)])
    sq = np.sum(pooled ** 2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0.0)
    iu = np.triu_indices(len(pooled), k=1)
    med = float(np.median(np.sqrt(d2[iu]))) if iu[0].size else 1.0
    return med if med > 0 else 1.0


def mmd_rbf(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    def k(a, b):
        d2 = np.maximum(np.sum(a ** 2, 1)[:, None] + np.sum(b ** 2, 1)[None, :] - 2 * a @ b.T, 0.0)
        return np.exp(-d2 / (2 * sigma ** 2))

    value = k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()
    return float(math.sqrt(max(value, 0.0)))


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, projections: int = 128, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(x.shape[1], projections))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    px, py = np.sort(x @ dirs, axis=0), np.sort(y @ dirs, axis=0)
    if len(px) != len(py):  # compare quantile functions on a common grid
        q = np.linspace(0, 1, max(len(px), len(py)))
        px = np.quantile(px, q, axis=0)
        py = np.quantile(py, q, axis=0)
    return float(np.abs(px - py).mean())


def url_tfidf(top_urls: dict[str, list[tuple[str, int]]]) -> list[dict]:
    """``top_urls``: domain -> [(url, count)] (its top-k). Rows: domain, url, count, tf, idf, tfidf."""
    n = len(top_urls)
    m = sum(c for rows in top_urls.values() for _, c in rows)
    holders = Counter(u for rows in top_urls.values() for u, _ in rows)
    out = []
    for domain, rows in top_urls.items():
        for url, count in rows:
            tf = count / m if m else 0.0
            idf = math.log(n / holders[url]) if holders[url] else 0.0
            out.append({"domain": domain, "url": url, "count": count, "tf": round(tf, 6),
                        "idf": round(idf, 6), "tfidf": round(tf * idf, 8)})
    return out


def url_overlap_pairs(top_urls: dict[str, list[tuple[str, int]]]) -> list[dict]:
    """Pairs of domains sharing at least one top URL."""
    sets = {d: {u for u, _ in rows} for d, rows in top_urls.items()}
    names = sorted(sets)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sets[a] & sets[b]
            if shared:
                out.append({"domain_a": a, "domain_b": b, "shared_urls": len(shared),
                            "jaccard": round(len(shared) / len(sets[a] | sets[b]), 4)})
    return out


def heatmap_png(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2.2 + 0.9 * len(cols), 1.0 + 0.22 * len(rows)), dpi=80)
    im = ax.imshow(matrix, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(cols)), labels=list(cols), rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), labels=list(rows), fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"

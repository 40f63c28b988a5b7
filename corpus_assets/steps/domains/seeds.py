"""Seed labels, FineFineWeb's first stage, offline: host rules + zero-shot similarity.

FineFineWeb (m-a-p, 2024) has an LLM label ~1M root URLs as domain-of-interest (DoI) or not
(DoNI) per domain, then a second LLM labels documents sampled from those roots. The
embedded default replaces both LLMs with what runs offline:

1. **Host rules**: a document whose host (or a parent of it) is one of a domain's example
   hosts in the taxonomy is a DoI seed for that domain, confidence 1.
2. **Zero-shot similarity**: the document and every domain's description (plus keywords)
   are embedded by the sentence encoder; the most similar domain is a DoI seed when its
   cosine similarity is >= ``seed_min_similarity`` and beats the runner-up by
   ``seed_margin``; confidence = the margin scaled to [0, 1]. Below the margin the labeller
   abstains (no seed). A document whose best similarity is below
   ``seed_negative_max_similarity`` is a DoNI seed for every domain (``none``).

A DoI seed for one domain is also a DoNI seed for every other domain (the classifiers are
multi-class), so every domain the corpus holds gets positive and negative seeds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .taxonomy import Taxonomy, host_of, match_host

NONE_LABEL = "none"  # a DoNI seed for every domain
SOURCE_HOST = "host_rule"
SOURCE_SIMILARITY = "similarity"
SOURCE_LLM = "llm"
SOURCE_LLM_ROOT = "llm_root"  # DoNI: the LLM judged the root URL of no domain


@dataclass
class SeedDecision:
    domain: Optional[str]   # a domain, NONE_LABEL, or None (abstained)
    confidence: float
    source: str
    similarity: float       # best cosine similarity to a domain description
    runner_up: str
    margin: float


def heldout(doc_id: str, fraction: float) -> bool:
    """Deterministic held-out split by doc_id hash: the same doc is held out in every run."""
    if fraction <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big")
    return (h / 2**64) < fraction


class SeedLabeller:
    def __init__(self, taxonomy: Taxonomy, encoder, min_similarity: float, margin: float,
                 negative_max_similarity: float):
        self.taxonomy = taxonomy
        self.encoder = encoder
        self.min_similarity = min_similarity
        self.margin = margin
        self.negative_max_similarity = negative_max_similarity
        self.rules = taxonomy.host_rules()
        self._prototypes: Optional[np.ndarray] = None

    @property
    def prototypes(self) -> np.ndarray:
        if self._prototypes is None:
            self._prototypes = self.encoder.encode([d.prompt_text() for d in self.taxonomy.domains])
        return self._prototypes

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings @ self.prototypes.T

    def decide(self, urls: Sequence[str], embeddings: np.ndarray) -> list[SeedDecision]:
        names = self.taxonomy.names
        sims = self.similarities(embeddings) if len(urls) else np.zeros((0, len(names)))
        out = []
        for url, row in zip(urls, sims):
            order = np.argsort(-row, kind="stable")
            best, second = int(order[0]), int(order[1]) if len(order) > 1 else int(order[0])
            margin = float(row[best] - row[second])
            hit = match_host(host_of(url), self.rules)
            if hit:
                out.append(SeedDecision(hit, 1.0, SOURCE_HOST, float(row[best]), names[second], margin))
            elif row[best] >= self.min_similarity and margin >= self.margin:
                # Margins of MiniLM similarities rarely exceed 0.2: scale so 0.2 -> confidence 1.
                conf = float(min(1.0, margin / 0.2))
                out.append(SeedDecision(names[best], round(conf, 4), SOURCE_SIMILARITY, float(row[best]), names[second], margin))
            elif row[best] < self.negative_max_similarity:
                conf = float(min(1.0, (self.negative_max_similarity - row[best]) / 0.1 + 0.5))
                out.append(SeedDecision(NONE_LABEL, round(conf, 4), SOURCE_SIMILARITY, float(row[best]), names[best], margin))
            else:
                out.append(SeedDecision(None, 0.0, "abstain", float(row[best]), names[second], margin))
        return out


def seed_sets(decisions: Sequence[SeedDecision], domains: Sequence[str]) -> dict[str, dict]:
    """Per domain: DoI and DoNI seed counts and the DoI seeds' mean confidence."""
    labelled = [d for d in decisions if d.domain is not None]
    out = {}
    for name in domains:
        doi = [d.confidence for d in labelled if d.domain == name]
        out[name] = {"doi": len(doi), "doni": len(labelled) - len(doi),
                     "doi_mean_confidence": round(float(np.mean(doi)), 4) if doi else 0.0}
    return out

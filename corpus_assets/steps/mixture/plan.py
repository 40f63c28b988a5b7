"""The mixture plan: how many tokens each source gives, and which of its documents.

Weights are shares of the OUTPUT tokens: source i is asked for ``w_i * budget`` tokens.
A source with ``n_i`` available tokens gives ``floor(asked / n_i)`` full passes over its
documents, then a seeded sample of documents (lowest seeded hash of the doc id first,
independent of file order) filling the remainder: documents that would overshoot it are
passed over while smaller ones fit, so the gap to the asked tokens is about one small
document either way (a slight preference for shorter documents in the last, partial
epoch only). Asking more than ``epoch_cap * n_i`` is an error naming the source; nothing is
ever silently short.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Sequence


class EpochCapError(ValueError):
    """A source asked for more tokens than its epoch cap allows."""


def unit_hash(*parts) -> float:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def temperature_weights(available: dict[str, int], temperature: float) -> dict[str, float]:
    """p_i ∝ n_i^(1/T) over available tokens (T = 1: natural shares; larger T: flatter)."""
    # In log space: n ** (1/T) overflows a float for small T (2,000 ** 1000).
    logs = {name: math.log(n) / temperature for name, n in available.items() if n > 0}
    if not logs:
        raise ValueError("temperature sampling: no source has any tokens")
    top = max(logs.values())
    powered = {name: (math.exp(logs[name] - top) if name in logs else 0.0) for name in available}
    total = sum(powered.values())
    return {name: p / total for name, p in powered.items()}


def asked_tokens(weights: dict[str, float], budget: int) -> dict[str, int]:
    """Integer token targets summing to the budget (largest remainders get the spare ones)."""
    raw = {name: w * budget for name, w in weights.items()}
    floors = {name: int(math.floor(v)) for name, v in raw.items()}
    spare = budget - sum(floors.values())
    for name in sorted(raw, key=lambda n: (floors[n] - raw[n], n))[:spare]:
        floors[name] += 1
    return floors


@dataclass
class SourcePlan:
    """Which documents one source contributes: every document ``full_epochs`` times, plus
    ``partial`` (doc ids) once more."""

    name: str
    available_docs: int
    available_tokens: int
    asked: int
    full_epochs: int = 0
    partial: set = field(default_factory=set)
    tokens: int = 0
    docs: int = 0

    @property
    def epochs(self) -> float:
        return self.tokens / self.available_tokens if self.available_tokens else 0.0

    def copies(self, doc_id: str) -> int:
        return self.full_epochs + (1 if doc_id in self.partial else 0)


def plan_source(name: str, counts: Sequence[tuple[str, int]], asked: int, epoch_cap: float, seed) -> SourcePlan:
    """``counts``: (doc id, tokens) of every usable document of the source."""
    available = sum(t for _, t in counts)
    plan = SourcePlan(name, len(counts), available, asked)
    if asked <= 0:
        return plan
    if available <= 0:
        raise EpochCapError(f"mixture source {name}: asked for {asked} tokens but it has no tokens "
                            "(no usable documents in the partitions read)")
    if asked > epoch_cap * available:
        raise EpochCapError(
            f"mixture source {name}: asked for {asked} tokens but it has {available} tokens; its epoch cap "
            f"{epoch_cap:g} allows at most {int(epoch_cap * available)} ({asked / available:.2f} epochs asked). "
            "Lower its weight or the budget, raise its epoch_cap, or add partitions.")
    plan.full_epochs = asked // available
    remainder = asked - plan.full_epochs * available
    plan.tokens = plan.full_epochs * available
    plan.docs = plan.full_epochs * len(counts)
    if remainder:
        # Seeded order; a document that would overshoot the remainder is passed over while
        # smaller ones still fit, then the smallest passed-over one is added if that lands
        # closer to the remainder: |achieved - asked| is at most about one small document.
        passed_over: list[tuple[int, str]] = []
        for doc_id, tokens in sorted(counts, key=lambda c: (unit_hash(seed, name, c[0]), c[0])):
            if remainder <= 0:
                break
            if tokens <= 0:
                continue
            if tokens > remainder:
                passed_over.append((tokens, doc_id))
                continue
            plan.partial.add(doc_id)
            plan.tokens += tokens
            plan.docs += 1
            remainder -= tokens
        if remainder > 0 and passed_over:
            tokens, doc_id = min(passed_over)
            if tokens - remainder < remainder:
                plan.partial.add(doc_id)
                plan.tokens += tokens
                plan.docs += 1
    return plan

"""The mixture plan: how many tokens each source gives, and which of its documents.

Weights are shares of the OUTPUT tokens: source i is asked for ``w_i * budget`` tokens.
A source with ``n_i`` available tokens gives ``floor(asked / n_i)`` full passes over its
documents, then a partial pass: its documents in a seeded-hash order (``blake2b(seed,
source, doc id)``: deterministic per seed, independent of file order and of length), taken
until the asked tokens are reached, the document that reaches them included. So a source
always reaches what it was asked, over by less than one document.

``max_overshoot`` bounds that overshoot (the stage gives each source an equal part of the
share tolerance): a document that would put the source more than ``max_overshoot`` over is
passed over and the scan goes on in the same seeded order. That can only happen to the last
document or so of the pass (while the remainder is larger than a document it always fits),
so the sample is the seeded prefix but for at most about one document's tokens. If no
document of the rest of the order fits, the plan fails naming the source, its tokens and
the tokens asked; so does asking more than ``epoch_cap * n_i``. Nothing is ever silently
short.

(Passing over EVERY document that would overshoot at all, and filling with smaller ones,
lands closer to the asked tokens but samples the last pass by length: a source of long and
short documents would give mostly its short ones.)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Optional, Sequence


class MixturePlanError(ValueError):
    """A source that cannot give the tokens asked of it, within its epoch cap and the
    overshoot allowed; the message names the source, its tokens and the tokens asked."""


class EpochCapError(MixturePlanError):
    """A source asked for more tokens than its epoch cap allows."""


def unit_hash(*parts) -> float:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def temperature_weights(available: dict[str, int], temperature: float) -> dict[str, float]:
    """p_i ∝ n_i^(1/T) over available tokens (T = 1: natural shares; larger T: flatter)."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature sampling: temperature must be a finite number > 0, not {temperature!r}")
    # In log space: n ** (1/T) overflows a float for small T (2,000 ** 1000).
    logs = {name: math.log(n) / temperature for name, n in available.items() if n > 0}
    if not all(math.isfinite(v) for v in logs.values()):
        # log(n) / T past the float range (T near 1e-308): inf - inf would be NaN shares.
        raise ValueError(f"temperature sampling: temperature {temperature!r} is too small to compute shares with")
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


def plan_source(name: str, counts: Sequence[tuple[str, int]], asked: int, epoch_cap: float, seed,
                max_overshoot: Optional[int] = None) -> SourcePlan:
    """``counts``: (doc id, tokens) of every usable document of the source; ``max_overshoot``:
    the most tokens the source may give beyond ``asked`` (None: no limit)."""
    available = sum(t for _, t in counts if t > 0)
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
        # remainder < available, so without a bound one pass in this order always reaches it.
        slack = math.inf if max_overshoot is None else max_overshoot
        for doc_id, tokens in sorted(counts, key=lambda c: (unit_hash(seed, name, c[0]), c[0])):
            if tokens <= 0 or tokens - remainder > slack:
                continue
            plan.partial.add(doc_id)
            plan.tokens += tokens
            plan.docs += 1
            remainder -= tokens
            if remainder <= 0:
                break
        if remainder > 0:
            raise MixturePlanError(
                f"mixture source {name}: asked for {asked} tokens, it has {available} tokens in {len(counts)} "
                f"documents; its documents cannot reach {asked} within the {max_overshoot} tokens over allowed "
                f"(the share tolerance's part for this source); {remainder} short with the documents that fit. "
                "Its documents are long for what is asked: raise its weight or the budget, or the mixture's "
                "share_tolerance.")
    return plan

"""The contract every processing step follows.

A document is a plain ``dict`` (one row of a Parquet document table). A step looks at
one document at a time and either keeps it (possibly annotating or rewriting it) or
names the reason it is removed. Nothing here imports Dagster: steps are plain Python so
they can be tested alone and reused outside the orchestrator.

``run_steps`` chains steps over a stream of documents and keeps, per step, the counts
that the retention metadata is built from: documents and characters in and out, and
removals by reason. The conservation law ``docs_in == docs_out + docs_removed`` holds
by construction, and ``StepStats.check`` verifies it anyway.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

Document = dict

# Called for every removed document: (document, step name, reason, detail).
RemovalSink = Callable[[Document, str, str, str], None]


@dataclass
class StepStats:
    """Counts for one step over one partition."""

    step: str
    docs_in: int = 0
    docs_out: int = 0
    chars_in: int = 0
    chars_out: int = 0
    removed_by_reason: Counter = field(default_factory=Counter)

    @property
    def docs_removed(self) -> int:
        return sum(self.removed_by_reason.values())

    def check(self) -> Optional[str]:
        """Return a description of a broken conservation law, or None when it holds."""
        if self.docs_in != self.docs_out + self.docs_removed:
            return (
                f"{self.step}: docs_in={self.docs_in} != docs_out={self.docs_out}"
                f" + docs_removed={self.docs_removed}"
            )
        return None

    def merge(self, other: "StepStats") -> None:
        self.docs_in += other.docs_in
        self.docs_out += other.docs_out
        self.chars_in += other.chars_in
        self.chars_out += other.chars_out
        self.removed_by_reason.update(other.removed_by_reason)

    def to_dict(self) -> dict:
        return {
            "step": self.step,
            "docs_in": self.docs_in,
            "docs_out": self.docs_out,
            "docs_removed": self.docs_removed,
            "chars_in": self.chars_in,
            "chars_out": self.chars_out,
            "removed_by_reason": dict(sorted(self.removed_by_reason.items())),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "StepStats":
        return cls(
            step=d["step"],
            docs_in=d["docs_in"],
            docs_out=d["docs_out"],
            chars_in=d["chars_in"],
            chars_out=d["chars_out"],
            removed_by_reason=Counter(d.get("removed_by_reason", {})),
        )


def html_of(doc: Document) -> str:
    """The document's ``html`` as text ("" when absent). HtmlDecode stores text; raw
    bytes (a table written by another tool) are read as UTF-8 with replacement."""
    html = doc.get("html")
    if isinstance(html, (bytes, bytearray)):
        html = bytes(html).decode("utf-8", errors="replace")
    return html or ""


class Step:
    """One processing step: subclasses set ``name`` and implement ``apply``.

    ``apply`` returns ``None`` to keep the document (it may add columns or rewrite
    ``text`` in place) or a short reason string to remove it. It may also return a
    ``(reason, detail)`` tuple when a free-text detail helps answer "why was this
    page dropped?" (an exception message, a score).
    """

    name: str = "step"
    # Which fields' lengths count as the document's characters going in and coming
    # out (extraction reads ``html`` and writes ``text``).
    chars_in_field: str = "text"
    chars_out_field: str = "text"

    def apply(self, doc: Document):  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (models, pools). Called once after the stream ends."""


def _chars(doc: Document, field_name: str) -> int:
    value = doc.get(field_name)
    return len(value) if value else 0


def run_step(
    step: Step, docs: Iterable[Document], on_removed: RemovalSink, stats: StepStats
) -> Iterator[Document]:
    """Stream ``docs`` through one step, counting into ``stats``."""
    for doc in docs:
        stats.docs_in += 1
        stats.chars_in += _chars(doc, step.chars_in_field)
        verdict = step.apply(doc)
        if verdict is None:
            stats.docs_out += 1
            stats.chars_out += _chars(doc, step.chars_out_field)
            yield doc
            continue
        reason, detail = verdict if isinstance(verdict, tuple) else (verdict, "")
        stats.removed_by_reason[reason] += 1
        on_removed(doc, step.name, reason, detail)


def run_steps(
    steps: list[Step], docs: Iterable[Document], on_removed: RemovalSink
) -> tuple[Iterator[Document], list[StepStats]]:
    """Chain ``steps`` lazily. The stats fill in as the returned iterator is consumed."""
    all_stats = [StepStats(step.name) for step in steps]
    stream: Iterable[Document] = docs
    for step, stats in zip(steps, all_stats):
        stream = run_step(step, stream, on_removed, stats)
    return iter(stream), all_stats

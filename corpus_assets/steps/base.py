"""The contract every processing step follows.

A document is a plain ``dict`` (one row of a Parquet document table). A step looks at
one document at a time and either keeps it (possibly annotating or rewriting it) or
names the reason it is removed. Nothing here imports Dagster: steps are plain Python so
they can be tested alone and reused outside the orchestrator.

``run_steps`` chains steps over a stream of documents and keeps, per step, the counts
that the retention metadata is built from: documents and characters in and out, and
removals by reason. The conservation law ``docs_in == docs_out + docs_removed`` holds
by construction, and ``StepStats.check`` verifies it anyway.

An exception raised by a step on one document removes that document (reason
``step_error``, detail the exception type and message) instead of failing the partition:
one odd page must not block a shard, and the re-run that follows would fail the same way.
``StepErrorPolicy`` decides when so many documents failed that the step itself is broken
(a missing model, a bug); ``check_step_errors`` then raises ``StepErrorLimitExceeded``.
"""

from __future__ import annotations

import hashlib
import os
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

from corpus_assets.steps.setting_types import Fraction, PositiveInt

Document = dict

# Called for every removed document: (document, step name, reason, detail).
RemovalSink = Callable[[Document, str, str, str], None]

STEP_ERROR = "step_error"


@dataclass(frozen=True)
class StepErrorPolicy:
    """When documents removed as ``step_error`` mean the step is broken, not the pages.

    A step fails its partition when more than ``max_error_share`` of the documents it saw
    raised, and at least ``min_errors`` did or every one did. So a tiny shard with one odd
    page passes, a one-document shard whose page raises fails (every document did), and a
    large shard fails on a pattern, not on a handful. ``max_error_share: 1.0`` never fails.
    """

    max_error_share: Fraction = 0.05
    min_errors: PositiveInt = 3

    def __post_init__(self):
        if not 0.0 <= self.max_error_share <= 1.0:
            raise ValueError(f"max_error_share must be between 0 and 1, not {self.max_error_share!r}")
        if self.min_errors < 1:
            raise ValueError(f"min_errors must be >= 1, not {self.min_errors!r}")

    def exceeded(self, errors: int, docs_in: int) -> bool:
        if errors <= 0 or docs_in <= 0:
            return False
        return errors / docs_in > self.max_error_share and (errors >= self.min_errors or errors == docs_in)


class StepErrorLimitExceeded(RuntimeError):
    """Too many documents raised in one step: the step, not the data, is likely broken."""


@dataclass
class StepStats:
    """Counts for one step over one partition."""

    step: str
    docs_in: int = 0
    docs_out: int = 0
    chars_in: int = 0
    chars_out: int = 0
    removed_by_reason: Counter = field(default_factory=Counter)
    # The first exception a document raised in this step (for the failure message; the
    # ledger holds every one). Not part of stats.json.
    first_error: str = field(default="", compare=False)

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
    # The columns a kept document gains (name -> Python type: str, int, float, bool, bytes,
    # list[...]) and loses here: an empty table's schema is derived from them.
    output_columns: dict = {}
    dropped_columns: tuple = ()

    def apply(self, doc: Document):  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (models, pools). Called once after the stream ends."""


def _chars(doc: Document, field_name: str) -> int:
    value = doc.get(field_name)
    return len(value) if value else 0


def describe_exception(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, cut to ``limit`` characters."""
    message = " ".join(str(exc).split())
    return (f"{type(exc).__name__}: {message}" if message else type(exc).__name__)[:limit]


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {os.path.basename(last.filename)}:{last.lineno} in {last.name})"


def run_step(
    step: Step, docs: Iterable[Document], on_removed: RemovalSink, stats: StepStats
) -> Iterator[Document]:
    """Stream ``docs`` through one step, counting into ``stats``. Only ``step.apply`` is
    guarded: an exception from the incoming stream (an upstream step, a failing read)
    is not this document's fault and propagates."""
    for doc in docs:
        stats.docs_in += 1
        stats.chars_in += _chars(doc, step.chars_in_field)
        try:
            verdict = step.apply(doc)
        except MemoryError:
            raise  # the process is in trouble, not the page: let the run fail and retry
        except Exception as exc:
            detail = describe_exception(exc)
            if not stats.first_error:
                stats.first_error = (f"{detail}{_where(exc)} on doc_id={doc.get('doc_id', '')!r}"
                                     f" url={str(doc.get('url', ''))[:200]!r}")
            stats.removed_by_reason[STEP_ERROR] += 1
            on_removed(doc, step.name, STEP_ERROR, detail)
            continue
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


def check_step_errors(all_stats: list[StepStats], policy: StepErrorPolicy, where: str = "") -> None:
    """Raise ``StepErrorLimitExceeded`` for the first step whose ``step_error`` removals
    exceed ``policy``; the message names the step, the count, the share and the first
    exception."""
    for stats in all_stats:
        errors = stats.removed_by_reason.get(STEP_ERROR, 0)
        if policy.exceeded(errors, stats.docs_in):
            raise StepErrorLimitExceeded(
                f"{where + ': ' if where else ''}step {stats.step!r} raised on {errors} of "
                f"{stats.docs_in} documents ({errors / stats.docs_in:.1%}; the partition fails above "
                f"step_errors.max_error_share={policy.max_error_share} once min_errors="
                f"{policy.min_errors} or every document failed). First: {stats.first_error}"
            )


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks (the one file digest of the project:
    store objects, LM references, mixture and fine-tuning source files)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()

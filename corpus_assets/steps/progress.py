"""Progress lines for long steps: documents done and the rate, at intervals.

A shard of a real dump takes minutes to hours; without these lines a run's log page is
silent until the end. The assets pass their Dagster logger (``context.log``) down to the
stage, which ticks a ``ProgressLog`` once per document; a line is written at most every
``progress.interval_seconds`` (and once at the end). Plain Python, no Dagster import: any
object with an ``info(str)`` method is a logger, None logs nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from corpus_assets.steps.setting_types import NonNegativeFloat


@dataclass(frozen=True)
class ProgressConfig:
    """interval_seconds: the least time between two progress lines of one stage (0: a
    line per document, for tests)."""

    interval_seconds: NonNegativeFloat = 30.0


class ProgressLog:
    """Counts documents done and logs ``<what>: N documents done (R docs/s), K kept`` when
    ``interval_seconds`` have passed since the last line."""

    def __init__(self, log: Any, what: str, interval_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.log, self.what, self.interval, self.clock = log, what, float(interval_seconds), clock
        self.started = self.last = clock()
        self.done = self.kept = 0
        self.lines = 0

    def tick(self, kept: bool) -> None:
        self.advance(1, int(bool(kept)))

    def advance(self, done: int, kept: int) -> None:
        """``done`` more documents, ``kept`` of them kept (a batch at a time)."""
        self.done += done
        self.kept += kept
        if self.log is not None:
            now = self.clock()
            if now - self.last >= self.interval:
                self._write(now)

    def _write(self, now: float, final: bool = False) -> None:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        self.log.info(f"{self.what}: {self.done:,} documents {'done in total' if final else 'done'} "
                      f"({rate:,.1f} docs/s over {elapsed:,.0f}s), {self.kept:,} kept")
        self.last = now
        self.lines += 1

    def finish(self) -> None:
        if self.log is not None:
            self._write(self.clock(), final=True)


def progress_for(log: Optional[Any], what: str, config: Optional[ProgressConfig]) -> ProgressLog:
    return ProgressLog(log, what, (config or ProgressConfig()).interval_seconds)

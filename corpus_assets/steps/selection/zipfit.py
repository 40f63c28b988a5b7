"""ZIP-FIT (arXiv 2410.18194): rank candidates by how well they compress together with
examples of a target task.

    NCD(x, y) = (C(x+y) - min(C(x), C(y))) / max(C(x), C(y))
    alignment(x) = mean over target examples y of (1 - NCD(x, y))

``C`` is the length of ``gzip.compress`` at ``level``; ``x + y`` is the candidate then the
target example, with no separator (as the reference code ``stair-lab/ZIP-FIT`` does).

Fast path, and the exact equivalence it relies on. A gzip member is a 10-byte header (no
file name), a raw DEFLATE stream and an 8-byte trailer, so ``C(s) = 18 + D(s)`` with ``D``
the raw-deflate length (``zlib.compressobj(level, DEFLATED, -15)``). For levels 1-9,
zlib's deflate with ``Z_NO_FLUSH`` emits the same stream whatever the input chunking, so
``D(x + y) = len(o.compress(x)) + len(o'.compress(y)) + len(o'.flush())`` where ``o'`` is
``o.copy()`` after ``x`` (``test_selection_steps.py`` checks byte-exact lengths). The LZ77
match search over ``x`` runs once per candidate; each pair pays for ``y``, a state copy
(~256 KiB, whatever the input) and the Huffman coding of the last, still open block, which
holds up to 16K symbols of ``x``. At level 0 (stored blocks) the block framing depends on
the chunking (lengths differ by 5-byte block headers), so level 0 compresses ``x + y``
whole, and so do candidates under ``REUSE_MIN_BYTES``, for which a fresh compression is
cheaper than the copy (same lengths either way).

Level 0 is the reference package's default; it stores without compressing, so C(s) is a
function of len(s) alone and the "alignment" ranks candidates by length, not content
(``level0_score`` writes that function down). This project defaults to level 6.

Nothing here imports Dagster.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import zlib
from collections import deque
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

GZIP_OVERHEAD = 18  # 10-byte header without a file name + CRC32 and ISIZE
DEFAULT_LEVEL = 6
# Below this candidate size, compressing x + y from scratch is cheaper than copying the
# compressor state (zlib's deflateCopy copies ~256 KiB whatever the input size, and the
# final block still encodes x's pending symbols). Measured crossover on the benchmark
# pool's GSM8K and HumanEval examples: 1.5-2.5 KB (docs/selection.md).
REUSE_MIN_BYTES = 2048


def gzip_len(data: bytes, level: int = DEFAULT_LEVEL) -> int:
    """``len(gzip.compress(data, compresslevel=level))``, without building the header."""
    return GZIP_OVERHEAD + len(zlib.compress(data, level, -15))


def ncd(c_x: int, c_y: int, c_xy: int) -> float:
    """Normalized compression distance from the three compressed lengths."""
    return (c_xy - min(c_x, c_y)) / max(c_x, c_y)


class TargetSet:
    """Target examples encoded and compressed once."""

    def __init__(self, examples: Sequence[str], level: int = DEFAULT_LEVEL):
        if not 0 <= level <= 9:
            raise ValueError(f"compression level must be 0..9, not {level}")
        if not examples:
            raise ValueError("ZIP-FIT needs at least one target example")
        self.level = level
        # surrogatepass: a lone surrogate ("\ud800", which JSON allows) is bytes like any other
        self.encoded = [e.encode("utf-8", "surrogatepass") for e in examples]
        self.sizes = np.array([gzip_len(b, level) for b in self.encoded], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.encoded)

    def pair_lengths(self, candidate: str) -> tuple[int, np.ndarray]:
        """``C(x)`` and ``C(x + y)`` for every target example ``y``."""
        x = candidate.encode("utf-8", "surrogatepass")
        level, encoded = self.level, self.encoded
        joint = np.empty(len(encoded), dtype=np.int64)
        if level == 0 or len(x) < REUSE_MIN_BYTES:
            compress = zlib.compress
            for j, y in enumerate(encoded):
                joint[j] = len(compress(x + y, level, -15))
            joint += GZIP_OVERHEAD
            return gzip_len(x, level), joint
        state = zlib.compressobj(level, zlib.DEFLATED, -15)
        base = GZIP_OVERHEAD + len(state.compress(x))
        c_x = base + len(state.copy().flush())
        copy = state.copy
        for j, y in enumerate(encoded):
            cont = copy()
            joint[j] = base + len(cont.compress(y)) + len(cont.flush())
        return c_x, joint

    def alignment(self, candidate: str) -> float:
        """Mean over target examples of 1 - NCD(candidate, example)."""
        c_x, joint = self.pair_lengths(candidate)
        lo = np.minimum(c_x, self.sizes)
        hi = np.maximum(c_x, self.sizes)
        return float(np.mean(1.0 - (joint - lo) / hi))


def level0_score(candidate_bytes: int, target_bytes: Sequence[int]) -> float:
    """The level-0 alignment computed from byte lengths alone. Stored DEFLATE is the data
    plus a 5-byte header per stored block, and how zlib splits a whole input into blocks
    depends on its length only; so a run of zero bytes of the same lengths gives the same
    score as any content. The tests use it to show the degeneration."""
    x = candidate_bytes
    c_x = gzip_len(b"\0" * x, 0)
    scores = []
    for y in target_bytes:
        c_y = gzip_len(b"\0" * y, 0)
        c_xy = gzip_len(b"\0" * (x + y), 0)
        scores.append(1.0 - ncd(c_x, c_y, c_xy))
    return float(np.mean(scores))


# -- scoring a stream of candidates across processes --------------------------------------

_WORKER_TARGETS: Optional[TargetSet] = None


def _init_worker(examples: list[str], level: int) -> None:
    global _WORKER_TARGETS
    _WORKER_TARGETS = TargetSet(examples, level)


def _score_batch(texts: list[str]) -> tuple[np.ndarray, int, float]:
    """Scores of a batch, the worker's pid and its CPU seconds so far, start-up and target
    set included (a forkserver's children are not ours to reap, so their CPU time must be
    reported this way; the parent keeps the last figure per pid)."""
    targets = _WORKER_TARGETS
    scores = np.array([targets.alignment(t) for t in texts], dtype=np.float64)
    return scores, os.getpid(), time.process_time()


def _bounded_ordered_map(pool, fn, batches: Iterable[list], window: int) -> Iterator:
    """``pool.imap`` that reads its input lazily: at most ``window`` batches in flight,
    so memory stays bounded whatever the pool size (``Pool.imap`` drains its input)."""
    pending: deque = deque()
    for batch in batches:
        pending.append(pool.apply_async(fn, (batch,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def score_candidates(
    texts: Iterable[str],
    examples: Sequence[str],
    level: int = DEFAULT_LEVEL,
    workers: int = 1,
    batch_size: int = 64,
    stats: Optional[dict] = None,
) -> np.ndarray:
    """ZIP-FIT alignment of every candidate, in input order. ``texts`` is consumed lazily in
    batches; with ``workers > 1`` batches are scored in worker processes (the target set
    is built once per worker), at most ``2 * workers`` batches in flight."""
    def batched() -> Iterator[list[str]]:
        batch: list[str] = []
        for t in texts:
            batch.append(t or "")
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    parts: list[np.ndarray] = []
    if workers <= 1:
        targets = TargetSet(list(examples), level)
        parts = [np.array([targets.alignment(t) for t in b], dtype=np.float64) for b in batched()]
    else:
        # Not fork: the Dagster run process has threads (a fork can inherit a held lock).
        # Workers import this module only (zlib, numpy).
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(list(examples), level)) as pool:
            results = list(_bounded_ordered_map(pool, _score_batch, batched(), 2 * workers))
            pool.close()
            pool.join()
        parts = [scores for scores, _, _ in results]
        if stats is not None:
            cpu_by_worker: dict[int, float] = {}
            for _, pid, cpu in results:
                cpu_by_worker[pid] = max(cpu, cpu_by_worker.get(pid, 0.0))
            stats["worker_cpu_seconds"] = sum(cpu_by_worker.values())
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first; ties go to the earlier candidate."""
    k = max(0, min(k, len(scores)))
    order = np.lexsort((np.arange(len(scores)), -scores))
    return order[:k]


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)

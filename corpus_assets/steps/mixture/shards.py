"""Interleaving sources and writing training shards (Parquet and JSONL.zst).

The interleave draws the next document's source with probability proportional to the
tokens that source still has to give (a seeded generator), so every stretch of the output
mixes the sources in about the planned shares and all of them run out together; within a
source, documents come in its stored order (streamed, never all in memory). Each shard's
rows are then shuffled with a seeded generator before writing: memory holds one shard.

Same rows + same seed = the same bytes: Parquet through pyarrow with fixed settings, and
JSON lines with fixed key order through one zstd frame at a fixed level.
"""

from __future__ import annotations

import json
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

SHARD_SCHEMA = pa.schema([
    ("text", pa.string()), ("id", pa.string()), ("source", pa.string()), ("lineage_id", pa.string()),
    ("url", pa.string()), ("domain", pa.string()), ("token_count", pa.int64()),
])
COLUMNS = [f.name for f in SHARD_SCHEMA]
STRING_COLUMNS = [f.name for f in SHARD_SCHEMA if f.type == pa.string()]


def _row(row: dict) -> dict:
    """The row with every column present and of its one type: a missing string (a JSONL
    source has no url) is "", never null. Readers that infer a schema per file (Hugging
    Face ``datasets`` on JSON lines) would type an all-null column as null in one shard and
    string in another, then refuse to concatenate them."""
    out = {c: row.get(c) for c in COLUMNS}
    for c in STRING_COLUMNS:
        if out[c] is None:
            out[c] = ""
    return out


def interleave(streams: dict[str, Iterator[dict]], remaining_docs: dict[str, int], seed: int) -> Iterator[dict]:
    """Rows of all ``streams``, the next source drawn ∝ the documents it still has to give.
    (Drawing ∝ remaining tokens would drain sources of long documents first: each draw of
    theirs takes more tokens. ∝ documents, each source's tokens go at the rate of its
    remaining tokens, so all of them end together.)"""
    rng = np.random.default_rng(seed)
    names = sorted(n for n in streams if remaining_docs.get(n, 0) > 0)
    left = {n: remaining_docs[n] for n in names}
    while names:
        weights = np.array([max(left[n], 0) for n in names], dtype=np.float64)
        total = weights.sum()
        name = names[int(rng.choice(len(names), p=weights / total))] if total > 0 else names[0]
        row = next(streams[name], None)
        if row is None:
            names.remove(name)
            continue
        left[name] -= 1
        yield row


def shard_batches(rows: Iterator[dict], shard_tokens: int, seed: int) -> Iterator[list[dict]]:
    """Consecutive groups of rows of about ``shard_tokens`` tokens, each shuffled (seeded).
    A last group under half a shard joins the one before it: a tail of a few documents
    would be a shard of one source (memory holds two shards)."""
    rng = np.random.default_rng([seed, 1])
    held: list[dict] = []
    batch, tokens = [], 0
    for row in rows:
        batch.append(row)
        tokens += row["token_count"]
        if tokens >= shard_tokens:
            if held:
                yield [held[i] for i in rng.permutation(len(held))]
            held, batch, tokens = batch, [], 0
    if batch and held and tokens < shard_tokens / 2:
        held, batch = held + batch, []
    for group in (held, batch):
        if group:
            yield [group[i] for i in rng.permutation(len(group))]


def write_parquet(rows: list[dict], path: str) -> None:
    table = pa.Table.from_pylist([_row(r) for r in rows], schema=SHARD_SCHEMA)
    pq.write_table(table, path, compression="zstd", row_group_size=1024, write_statistics=False)


def write_jsonl_zst(rows: list[dict], path: str, level: int) -> None:
    body = "".join(json.dumps(_row(r), ensure_ascii=False) + "\n" for r in rows)
    with open(path, "wb") as fh:
        fh.write(zstandard.ZstdCompressor(level=level, write_checksum=True).compress(body.encode("utf-8")))

"""Partitions: dumps arrive over time (dynamic); shards are a fixed count from settings.

Multi-partition keys order dimensions by name, so a shard partition's key reads
``CC-MAIN-2024-10|000`` (dump, then shard).
"""

from __future__ import annotations

import dagster as dg

from corpus_assets.crawl import shard_key

DUMP_DIM = "dump"
SHARD_DIM = "shard"

dump_partitions = dg.DynamicPartitionsDefinition(name=DUMP_DIM)


def shard_keys(num_shards: int) -> list[str]:
    return [shard_key(i, num_shards) for i in range(num_shards)]


def shard_partitions_def(num_shards: int) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {DUMP_DIM: dump_partitions, SHARD_DIM: dg.StaticPartitionsDefinition(shard_keys(num_shards))}
    )


# Shard-level assets read the dump-level manifest: each (dump, shard) maps to its dump.
shard_to_dump = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=DUMP_DIM)


def shard_partition_key(dump: str, shard: str) -> str:
    """The key of one (dump, shard) partition, e.g. ``CC-MAIN-2024-10|000``."""
    return str(dg.MultiPartitionKey({DUMP_DIM: dump, SHARD_DIM: shard}))


def split_shard_key(context: dg.AssetExecutionContext) -> tuple[str, str]:
    keys = context.partition_key.keys_by_dimension
    return keys[DUMP_DIM], keys[SHARD_DIM]

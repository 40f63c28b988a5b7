"""Partitions: dumps arrive over time (dynamic); shards are a fixed count from settings.

Multi-partition keys order dimensions by name, so a shard partition's key reads
``CC-MAIN-2024-10|000`` (dump, then shard).

A dump name becomes a folder of every asset, so it is validated wherever one enters: the
crawl sensor never adds a bad one, and an asset refuses a bad partition key before it
writes anything. Common Crawl's names (``CC-MAIN-2024-10``) and a lab's own dumps are
allowed; see ``dump_name_problem``.
"""

from __future__ import annotations

import re
from typing import Optional

import dagster as dg

from corpus_assets.crawl import DUMP_NAME, shard_key

DUMP_DIM = "dump"
SHARD_DIM = "shard"

dump_partitions = dg.DynamicPartitionsDefinition(name=DUMP_DIM)

# A lab's own dump: letters, digits, '.', '_' and '-', starting with a letter or digit (so
# never '.', '..' or a hidden name), at most 100 characters. No '|' (the multi-partition
# key separator), no '/', no blank, nothing a shell or a URL would need to escape.
OWN_DUMP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# A real Common Crawl name: the YYYY-WW names start with CC-MAIN-2013-20 (older crawls are
# named otherwise), and WW is an ISO week, 01..53. Matched with fullmatch: ``$`` would
# also match before a final newline.
CC_YEARS = range(2013, 2100)
CC_WEEKS = range(1, 54)


class InvalidDumpName(ValueError):
    """A dump name that cannot be a partition: it would escape or alias the corpus's folders."""


def dump_name_problem(name: object) -> Optional[str]:
    """Why ``name`` cannot be a dump, or None. A name that starts like Common Crawl's
    (``CC-MAIN-``) must be one exactly, ``CC-MAIN-YYYY-WW``: crawl order (``dump_sort_key``)
    would put a misspelt one after every real dump."""
    if not isinstance(name, str) or not OWN_DUMP_NAME.fullmatch(name):
        return (f"invalid dump name {name!r}: expected Common Crawl's CC-MAIN-YYYY-WW or a name of letters, "
                "digits, '.', '_' and '-' that starts with a letter or digit (at most 100 characters)")
    if name.upper().startswith("CC-MAIN") and not (
        DUMP_NAME.fullmatch(name) and int(name[8:12]) in CC_YEARS and int(name[13:15]) in CC_WEEKS
    ):
        return (f"invalid dump name {name!r}: a Common Crawl dump name reads CC-MAIN-YYYY-WW, a year from "
                f"{CC_YEARS[0]} and an ISO week 01..53 (e.g. CC-MAIN-2024-10)")
    return None


def validate_dump_name(name: str) -> str:
    problem = dump_name_problem(name)
    if problem:
        raise InvalidDumpName(problem)
    return name


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
    """(dump, shard) of the run's partition; a bad dump name fails here, before any write."""
    keys = context.partition_key.keys_by_dimension
    return validate_dump_name(keys[DUMP_DIM]), keys[SHARD_DIM]

"""Where every artifact lives: Parquet tables and small JSON files under one root URI.

The root is a local folder by default and ``s3://bucket/prefix`` in production; both go
through the same ``CorpusStore`` methods, so assets never know which one they write to.

Writes are atomic. A table is written to a local temporary file first and only then
published: ``os.replace`` into place on a local disk, a single ``PutObject`` upload on S3
(an S3 object becomes visible whole or not at all). A run killed half-way leaves no
half-written partition behind, so re-running it is always clean.

Reads stream record batches, so a shard of any size is processed in bounded memory.
Nothing here imports Dagster.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_COMPRESSION = "zstd"
# Rows per Parquet row group: large enough for good compression, small enough that a
# reader holds only a few MB at a time.
ROW_GROUP_ROWS = 1024


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``bucket``, ``a/b``)."""
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


class _LocalBackend:
    def __init__(self, root: str):
        self.root = Path(root).expanduser().resolve()

    def describe(self, rel: str) -> str:
        return str(self.root / rel)

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def staging_dir(self, rel: str) -> str:
        # Same folder as the target so os.replace is a rename on one filesystem.
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return str(target.parent)

    def publish(self, local_tmp: str, rel: str) -> None:
        os.replace(local_tmp, self.root / rel)

    @contextmanager
    def local_copy(self, rel: str) -> Iterator[str]:
        path = self.root / rel
        if not path.exists():
            raise FileNotFoundError(f"no such artifact: {path}")
        yield str(path)

    def list(self, rel_prefix: str) -> list[str]:
        base = self.root / rel_prefix
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file()
        )

    def delete_prefix(self, rel_prefix: str) -> None:
        shutil.rmtree(self.root / rel_prefix, ignore_errors=True)


class _S3Backend:
    def __init__(self, root: str, client: Any):
        if client is None:
            raise ValueError(f"an S3 client is needed for the store root {root}")
        self.bucket, self.prefix = split_s3_uri(root)
        self.client = client

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def describe(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self._key(rel)}"

    def exists(self, rel: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
            return True
        except ClientError:
            return False

    def staging_dir(self, rel: str) -> str:
        return tempfile.gettempdir()

    def publish(self, local_tmp: str, rel: str) -> None:
        try:
            self.client.upload_file(local_tmp, self.bucket, self._key(rel))
        finally:
            os.unlink(local_tmp)

    @contextmanager
    def local_copy(self, rel: str) -> Iterator[str]:
        fd, tmp = tempfile.mkstemp(suffix=Path(rel).suffix)
        os.close(fd)
        try:
            try:
                self.client.download_file(self.bucket, self._key(rel), tmp)
            except Exception as exc:  # botocore raises ClientError(404) here
                raise FileNotFoundError(f"no such artifact: {self.describe(rel)}") from exc
            yield tmp
        finally:
            os.unlink(tmp)

    def list(self, rel_prefix: str) -> list[str]:
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(rel_prefix)):
            out.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(out)

    def delete_prefix(self, rel_prefix: str) -> None:
        for rel in self.list(rel_prefix):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(rel))


class TableWriter:
    """Appends rows to one Parquet file with a fixed schema, in row groups."""

    def __init__(self, path: str, schema: Optional[pa.Schema]):
        self._path = path
        self._schema = schema
        self._writer: Optional[pq.ParquetWriter] = None
        self._pending: list[dict] = []
        self.rows = 0

    def write(self, row: dict) -> None:
        self._pending.append(row)
        if len(self._pending) >= ROW_GROUP_ROWS:
            self.flush()

    def write_many(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self.write(row)

    def write_table(self, table: pa.Table) -> None:
        """Append a whole Arrow table (columnar data: no per-row dicts)."""
        self.flush()
        if self._schema is None:
            self._schema = table.schema
        table = table.select(self._schema.names).cast(self._schema)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._path, self._schema, compression=PARQUET_COMPRESSION)
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += table.num_rows

    def flush(self) -> None:
        if not self._pending:
            return
        if self._schema is None:
            # Infer once from the first batch; every later batch is cast to it.
            self._schema = pa.Table.from_pylist(self._pending).schema
        table = pa.Table.from_pylist(self._pending, schema=self._schema)
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self._path, self._schema, compression=PARQUET_COMPRESSION
            )
        self._writer.write_table(table)
        self.rows += len(self._pending)
        self._pending = []

    def close(self) -> None:
        self.flush()
        if self._writer is None:
            # An empty partition is still a partition: write a file with the schema.
            schema = self._schema or pa.schema([])
            pq.write_table(schema.empty_table(), self._path, compression=PARQUET_COMPRESSION)
        else:
            self._writer.close()


@dataclass
class CorpusStore:
    """All artifacts of the corpus under ``root`` (a folder or ``s3://bucket/prefix``).

    ``s3_client`` is a boto3 S3 client; the Dagster resource builds it with dagster-aws.
    """

    root: str
    s3_client: Any = None

    def __post_init__(self) -> None:
        if self.root.startswith("s3://"):
            self._backend = _S3Backend(self.root, self.s3_client)
        else:
            self._backend = _LocalBackend(self.root)

    # -- naming ---------------------------------------------------------------------
    @staticmethod
    def partition_dir(asset: str, *partition_parts: str) -> str:
        return "/".join([asset, *partition_parts])

    def uri(self, rel: str) -> str:
        return self._backend.describe(rel)

    def exists(self, rel: str) -> bool:
        return self._backend.exists(rel)

    def list(self, rel_prefix: str) -> list[str]:
        return self._backend.list(rel_prefix)

    def delete_prefix(self, rel_prefix: str) -> None:
        self._backend.delete_prefix(rel_prefix)

    # -- writing --------------------------------------------------------------------
    @contextmanager
    def table_writer(self, rel: str, schema: Optional[pa.Schema] = None) -> Iterator[TableWriter]:
        """Write a Parquet table; it is published only if the block ends without error."""
        fd, tmp = tempfile.mkstemp(
            prefix=".tmp-", suffix=".parquet", dir=self._backend.staging_dir(rel)
        )
        os.close(fd)
        writer = TableWriter(tmp, schema)
        try:
            yield writer
            writer.close()
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self._backend.publish(tmp, rel)

    def write_json(self, rel: str, obj: Any) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self._backend.staging_dir(rel))
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1, sort_keys=True)
        self._backend.publish(tmp, rel)

    # -- reading --------------------------------------------------------------------
    def read_json(self, rel: str) -> Any:
        with self._backend.local_copy(rel) as path, open(path) as fh:
            return json.load(fh)

    def iter_rows(
        self, rel: str, columns: Optional[list[str]] = None, batch_size: int = ROW_GROUP_ROWS
    ) -> Iterator[dict]:
        """Stream rows of a table, one record batch in memory at a time."""
        with self._backend.local_copy(rel) as path:
            parquet = pq.ParquetFile(path)
            wanted = None
            if columns is not None:
                present = set(parquet.schema_arrow.names)
                wanted = [c for c in columns if c in present]
            for batch in parquet.iter_batches(batch_size=batch_size, columns=wanted):
                yield from batch.to_pylist()

    def iter_batches(
        self, rel: str, columns: Optional[list[str]] = None, batch_size: int = ROW_GROUP_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """Stream record batches of the named columns (columnar readers: band keys). A
        table without rows yields nothing: an empty partition's file may have no columns."""
        with self._backend.local_copy(rel) as path:
            parquet = pq.ParquetFile(path)
            if parquet.metadata.num_rows == 0:
                return
            yield from parquet.iter_batches(batch_size=batch_size, columns=columns)

    def read_table(self, rel: str, columns: Optional[list[str]] = None,
                   filters: Optional[list[tuple]] = None) -> pa.Table:
        """Read a whole (small) table: manifests, ledgers, reports. ``filters`` (pyarrow's
        ``[(column, op, value)]``) keeps only matching rows, skipping row groups that
        cannot match."""
        with self._backend.local_copy(rel) as path:
            return pq.read_table(path, columns=columns, filters=filters)

    def row_count(self, rel: str) -> int:
        with self._backend.local_copy(rel) as path:
            return pq.ParquetFile(path).metadata.num_rows

"""Where every artifact lives: Parquet tables and small JSON files under one root URI.

The root is a local folder by default and ``s3://bucket/prefix`` in production; both go
through the same ``CorpusStore`` methods, so assets never know which one they write to.

**A partition is published as a whole.** A stage writes its files (say ``documents.parquet``,
``removed.parquet`` and ``stats.json``) inside ``store.publish_partition(folder)``. Each file
is staged, then stored under a content-addressed object name beside the others
(``documents.<sha256 prefix>.parquet``), invisible to readers; when the block ends without
error, ONE small pointer object, ``_partition.json``, is written last. It names the object
behind every logical file, with its byte size, SHA-256 and (for tables) row count. Readers
resolve ``folder/documents.parquet`` through the pointer, so they see the old partition or
the new one, never a mix: a run killed between two writes, or an S3 upload that fails
half-way, leaves the old pointer and so the old, complete partition. After the pointer is
written, every object of the folder it does not name (an older version, a killed run's
``.tmp-*`` staging file) is deleted. Identical output gets identical object names, so a
re-run that produces the same tables leaves them where they were.

Readers refuse a partition whose parts disagree (``PartitionIntegrityError``): an object
missing or of another size than the pointer says, a table with another row count, a JSON
file whose content is not the one published, an unreadable pointer.

Folders without a pointer (corpora written before publications, or plain ``table_writer``
calls outside any publication) are read and written as plain files, each write atomic on
its own (temporary file, then rename or a single S3 upload). A write outside a publication
into a published folder amends the partition: a new pointer with that one file replaced.

Every path component is checked: no ``..``, ``.``, empty or blank-edged component, no
control character or backslash. Nothing can be written outside the root, and two names
never alias one folder. Files are created with mode ``0666`` less the process umask, as
any other writer's are.

Reads stream record batches, so a shard of any size is processed in bounded memory.
Nothing here imports Dagster.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.parse
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_COMPRESSION = "zstd"
# Rows per Parquet row group: large enough for good compression, small enough that a
# reader holds only a few MB at a time.
ROW_GROUP_ROWS = 1024

# The object written last when a partition is published; the leading underscore keeps it
# out of pyarrow.dataset's file discovery.
POINTER_NAME = "_partition.json"
POINTER_FORMAT = 1
TMP_PREFIX = ".tmp-"
# Hex digits of the SHA-256 in an object's name: 64 bits, plenty within one folder.
OBJECT_HASH_CHARS = 16
# A local staging file names its host and process (``.tmp-<host>-<pid>-<uuid>``), so a
# publication deletes those of dead processes of this host at once and leaves a live
# writer's alone (two runs of one partition at the same time); one it cannot judge (from
# another host sharing the folder) is deleted once it is this old.
STALE_TMP_SECONDS = 3600
_TMP_OWNER = re.compile(r"^\.tmp-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{32}")


class PartitionIntegrityError(RuntimeError):
    """A published partition whose parts disagree (pointer, objects, stats): re-materialize it."""


# -- roots and paths ------------------------------------------------------------------------

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
# Control characters and the backslash (a path separator elsewhere) never belong in a name.
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def is_s3_uri(uri: str) -> bool:
    """``s3://...`` in any letter case (URI schemes are case-insensitive, RFC 3986)."""
    return uri[:5].lower() == "s3://"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``bucket``, ``a/b``)."""
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


def parse_root(root: str) -> tuple[str, str]:
    """(``"local"`` or ``"s3"``, the normalized root). A root that starts like a URL
    (a scheme of two or more letters and a colon) must be ``s3://bucket[/prefix]`` or a
    ``file:`` URL of this machine; any other scheme is an error, never a local folder named
    ``gs:``. A local folder whose name has a colon is written ``./name:x``."""
    match = _SCHEME.match(root)
    if not match:
        return "local", root
    scheme, rest = match.group(1).lower(), root[match.end():]
    if scheme == "s3":
        bucket, _, prefix = rest[2:].partition("/") if rest.startswith("//") else ("", "", "")
        if not bucket:
            raise ValueError(f"corpus root {root!r}: an S3 root is s3://bucket or s3://bucket/prefix")
        prefix = prefix.strip("/")
        if prefix:
            check_rel_path(prefix, what="S3 prefix of the corpus root")
        return "s3", f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if scheme == "file":
        # RFC 8089: file:///abs, file://localhost/abs and file:/abs name a local path.
        if rest.startswith("//"):
            host, _, path = rest[2:].partition("/")
            if host.lower() not in ("", "localhost"):
                raise ValueError(f"corpus root {root!r}: a file: URL must name this machine (file:///path)")
            path = "/" + path
        elif rest.startswith("/"):
            path = rest
        else:
            raise ValueError(f"corpus root {root!r}: a file: URL needs an absolute path (file:///path)")
        return "local", urllib.parse.unquote(path)
    raise ValueError(
        f"corpus root {root!r}: unknown URL scheme {match.group(1)!r}; the corpus store writes to "
        f"a local folder, file:///path or s3://bucket/prefix (a folder whose name has a colon: ./{root})"
    )


def check_rel_path(rel: str, what: str = "store path") -> str:
    """``rel`` if every ``/``-separated component is a plain name, else ValueError."""
    if not isinstance(rel, str):
        raise ValueError(f"refusing {what} {rel!r}: not a string")
    for part in rel.split("/"):
        if part in ("", ".", "..") or part != part.strip() or _BAD_CHARS.search(part):
            raise ValueError(
                f"refusing {what} {rel!r}: component {part!r} is empty, '.', '..', has blank "
                "edges or a control character or backslash (a path must stay inside the corpus root "
                "and no two names may alias one folder)"
            )
    return rel


def _split(rel: str) -> tuple[str, str]:
    folder, _, name = rel.rpartition("/")
    return folder, name


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _object_name(name: str, sha: str) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name}.{sha[:OBJECT_HASH_CHARS]}"
    return f"{stem}.{sha[:OBJECT_HASH_CHARS]}.{ext}"


def _sha256_file(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _new_file(path: str) -> None:
    """Create an empty file the way ``open(path, "w")`` would: mode 0666 less the umask
    (``mkstemp``'s 0600 would hide the corpus from everyone but its writer)."""
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))


# -- backends: physical objects --------------------------------------------------------------

class _LocalBackend:
    def __init__(self, root: str):
        self.root = Path(root).expanduser().resolve()

    def describe(self, rel: str) -> str:
        return str(self.root / rel) if rel else str(self.root)

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def size(self, rel: str) -> Optional[int]:
        try:
            return (self.root / rel).stat().st_size
        except FileNotFoundError:
            return None

    def read_bytes(self, rel: str) -> Optional[bytes]:
        try:
            return (self.root / rel).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def new_tmp(self, folder: str, suffix: str) -> str:
        # In the target's folder, so publishing is a rename on one filesystem.
        target = self.root / folder
        target.mkdir(parents=True, exist_ok=True)
        path = str(target / f"{TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}{suffix}")
        _new_file(path)
        return path

    def is_stale_tmp(self, rel: str) -> bool:
        """Is this staging file a leftover (its writer dead), not a live writer's?"""
        owner = _TMP_OWNER.match(_split(rel)[1])
        if owner and owner.group("host") == socket.gethostname():
            return not _process_alive(int(owner.group("pid")))
        try:
            return time.time() - (self.root / rel).stat().st_mtime > STALE_TMP_SECONDS
        except FileNotFoundError:
            return False

    def put(self, local_tmp: str, rel: str) -> None:
        try:
            os.replace(local_tmp, self.root / rel)
        except BaseException:
            _unlink_quiet(local_tmp)
            raise

    @contextmanager
    def local_copy(self, rel: str) -> Iterator[str]:
        path = self.root / rel
        if not path.is_file():
            raise FileNotFoundError(f"no such artifact: {path}")
        yield str(path)

    def list(self, rel_prefix: str) -> list[str]:
        base = self.root / rel_prefix if rel_prefix else self.root
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())

    def list_dir(self, folder: str) -> list[str]:
        base = self.root / folder
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_file())

    def delete(self, rel: str) -> None:
        _unlink_quiet(str(self.root / rel))

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
        return self.size(rel) is not None

    def size(self, rel: str) -> Optional[int]:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(rel))["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def read_bytes(self, rel: str) -> Optional[bytes]:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def new_tmp(self, folder: str, suffix: str) -> str:
        # Staged on this machine; nothing in the bucket until the single upload.
        fd, path = tempfile.mkstemp(prefix="corpus-staging-", suffix=suffix)
        os.close(fd)
        return path

    def is_stale_tmp(self, rel: str) -> bool:
        return True  # never written by this store: any such object is someone's leftover

    def put(self, local_tmp: str, rel: str) -> None:
        # One upload: an S3 object becomes visible whole or not at all.
        try:
            self.client.upload_file(local_tmp, self.bucket, self._key(rel))
        finally:
            _unlink_quiet(local_tmp)

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
            _unlink_quiet(tmp)

    def _keys(self, key_prefix: str, delimiter: bool) -> list[str]:
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        kwargs = {"Bucket": self.bucket, "Prefix": key_prefix, **({"Delimiter": "/"} if delimiter else {})}
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in paginator.paginate(**kwargs):
            out.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(out)

    def list(self, rel_prefix: str) -> list[str]:
        return self._keys(self._key(rel_prefix) if rel_prefix else (f"{self.prefix}/" if self.prefix else ""), False)

    def list_dir(self, folder: str) -> list[str]:
        base = f"{self._key(folder)}/" if folder else (f"{self.prefix}/" if self.prefix else "")
        return [_split(rel)[1] for rel in self._keys(base, True)]

    def delete(self, rel: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(rel))

    def delete_prefix(self, rel_prefix: str) -> None:
        for rel in self.list(rel_prefix):
            self.delete(rel)


# -- writing tables ------------------------------------------------------------------------------

class TableWriter:
    """Appends rows to one Parquet file with a fixed schema, in row groups.

    ``empty_schema`` is the schema a table that received no row is written with when no
    ``schema`` was given (an inferred schema needs a row): a file without columns would
    break a dataset scan that meets it first. Set it any time before the writer closes."""

    def __init__(self, path: str, schema: Optional[pa.Schema], empty_schema: Optional[pa.Schema] = None):
        self._path = path
        self._schema = schema
        self.empty_schema = empty_schema
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
            schema = self._schema or self.empty_schema or pa.schema([])
            pq.write_table(schema.empty_table(), self._path, compression=PARQUET_COMPRESSION)
        else:
            self._writer.close()


class RowStream:
    """The rows of one table, streamed; an iterator like a generator. ``schema`` (of the
    columns read) is known once iteration has started, so a stage that consumed its input
    knows its upstream's columns even when there was no row."""

    def __init__(self, rows: Callable[["RowStream"], Iterator[dict]]):
        self.schema: Optional[pa.Schema] = None
        self._rows = rows(self)

    def __iter__(self) -> "RowStream":
        return self

    def __next__(self) -> dict:
        return next(self._rows)

    def close(self) -> None:
        self._rows.close()


# -- publications ---------------------------------------------------------------------------------

class _Publication:
    """The files of one partition being written; committed by one pointer write."""

    def __init__(self, store: "CorpusStore", folder: str, files: dict):
        self.store = store
        self.folder = folder
        self.files = files
        self.created: list[str] = []  # objects this publication stored (removed if it fails)

    def add(self, name: str, local_tmp: str, rows: Optional[int]) -> None:
        backend = self.store._backend
        try:
            size = os.path.getsize(local_tmp)
            sha = _sha256_file(local_tmp)
        except BaseException:
            _unlink_quiet(local_tmp)
            raise
        obj = _object_name(name, sha)
        rel = _join(self.folder, obj)
        try:
            present = backend.size(rel) == size
        except BaseException:
            _unlink_quiet(local_tmp)
            raise
        if present:
            # Same content as an object already there (an identical re-run): keep it.
            _unlink_quiet(local_tmp)
        else:
            backend.put(local_tmp, rel)
            self.created.append(rel)
        entry = {"object": obj, "bytes": size, "sha256": sha}
        if rows is not None:
            entry["rows"] = rows
        self.files[name] = entry

    def commit(self) -> dict:
        backend = self.store._backend
        for name, entry in self.files.items():
            if backend.size(_join(self.folder, entry["object"])) != entry["bytes"]:
                raise PartitionIntegrityError(
                    f"publishing {backend.describe(self.folder)}: {name} ({entry['object']}) vanished before "
                    "the commit; was the same partition being written by another run at the same time?"
                )
        files = dict(sorted(self.files.items()))
        version = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:OBJECT_HASH_CHARS]
        pointer = {"format": POINTER_FORMAT, "partition": self.folder, "version": version,
                   "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files}
        tmp = backend.new_tmp(self.folder, ".json")
        with open(tmp, "w") as fh:
            json.dump(pointer, fh, indent=1, sort_keys=True)
        pointer_rel = _join(self.folder, POINTER_NAME)
        try:
            backend.put(tmp, pointer_rel)
        except BaseException:
            # An upload can fail after the object landed; then it is committed after all.
            try:
                committed = (self.store.read_pointer(self.folder) or {}).get("version") == version
            except Exception:
                committed = False
            if not committed:
                raise
        self._clean(set(entry["object"] for entry in files.values()))
        return pointer

    def _clean(self, keep: set[str]) -> None:
        """Delete every object of the folder the pointer does not name: older versions,
        legacy unversioned files, a killed run's objects and staging files (``.tmp-*``)
        whose writer is gone. Best effort: whatever fails to go now goes with the next
        publication. A run of the same partition at the same time that wrote other
        content finds its objects gone and fails at its commit, saying so."""
        backend = self.store._backend
        try:
            names = backend.list_dir(self.folder)
        except Exception:
            return
        for name in names:
            if name == POINTER_NAME or name in keep:
                continue
            if name.startswith(TMP_PREFIX) and not backend.is_stale_tmp(_join(self.folder, name)):
                continue
            try:
                backend.delete(_join(self.folder, name))
            except Exception:
                pass

    def discard(self) -> None:
        for rel in self.created:
            try:
                self.store._backend.delete(rel)
            except Exception:
                pass


def publishes(folder_template: str) -> Callable:
    """Decorator: run a stage function inside ``store.publish_partition(folder)``, the
    folder formatted from the function's arguments (``"minhash_buckets/{dump}"``); the
    function must take the store as ``store``. A one-line way to publish a stage's files
    as one partition."""

    def wrap(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            store = bound.arguments["store"]
            with store.publish_partition(folder_template.format(**bound.arguments)):
                return fn(*args, **kwargs)

        return run

    return wrap


# -- the store --------------------------------------------------------------------------------------

@dataclass
class CorpusStore:
    """All artifacts of the corpus under ``root`` (a folder, ``file:///path`` or
    ``s3://bucket/prefix``).

    ``s3_client`` is a boto3 S3 client; the Dagster resource builds it with dagster-aws.
    """

    root: str
    s3_client: Any = None
    _open: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kind, self.root = parse_root(self.root)
        if kind == "s3":
            self._backend = _S3Backend(self.root, self.s3_client)
        else:
            self._backend = _LocalBackend(self.root)

    # -- naming ---------------------------------------------------------------------
    @staticmethod
    def partition_dir(asset: str, *partition_parts: str) -> str:
        return "/".join([asset, *partition_parts])

    def uri(self, rel: str) -> str:
        """Where ``rel`` is stored now: the current object of a published partition."""
        check_rel_path(rel)
        folder, name = _split(rel)
        pointer = self.read_pointer(folder)
        if pointer is not None and name in pointer["files"]:
            return self._backend.describe(_join(folder, pointer["files"][name]["object"]))
        return self._backend.describe(rel)

    def exists(self, rel: str) -> bool:
        check_rel_path(rel)
        folder, name = _split(rel)
        pointer = self.read_pointer(folder)
        if pointer is not None:
            return name in pointer["files"]
        return self._backend.exists(rel)

    def list(self, rel_prefix: str, physical: bool = False) -> list[str]:
        """Files under ``rel_prefix``: the logical files (a published partition's names,
        not its objects), or with ``physical`` every stored object."""
        prefix = rel_prefix.rstrip("/")
        if prefix:
            check_rel_path(prefix)
        objects = self._backend.list(prefix)
        if physical:
            return objects
        by_folder: dict[str, list[str]] = {}
        for rel in objects:
            folder, name = _split(rel)
            by_folder.setdefault(folder, []).append(name)
        out = []
        for folder, names in by_folder.items():
            if POINTER_NAME in names:
                pointer = self.read_pointer(folder) or {"files": {}}
                out.extend(_join(folder, n) for n in pointer["files"])
            else:
                out.extend(_join(folder, n) for n in names)
        return sorted(out)

    def delete_prefix(self, rel_prefix: str) -> None:
        prefix = rel_prefix.rstrip("/")
        check_rel_path(prefix)
        self._backend.delete_prefix(prefix)

    def published_paths(self, rel_prefix: str, name: str) -> list[str]:
        """The current object behind every ``<folder>/<name>`` under ``rel_prefix``, in
        folder order: local paths or ``s3://`` URIs to hand to ``pyarrow.dataset``. Stale
        objects of a folder (before its next publication cleans them) are never listed."""
        out = []
        for rel in self.list(rel_prefix):
            if _split(rel)[1] == name:
                out.append(self.uri(rel))
        return out

    # -- publication ----------------------------------------------------------------
    def read_pointer(self, folder: str) -> Optional[dict]:
        """The pointer of a published partition, or None for a folder without one."""
        rel = _join(folder, POINTER_NAME)
        data = self._backend.read_bytes(rel)
        if data is None:
            return None
        problem = None
        try:
            pointer = json.loads(data)
        except ValueError as exc:
            pointer, problem = None, f"not JSON ({exc})"
        if problem is None:
            problem = _pointer_problem(pointer)
        if problem:
            raise PartitionIntegrityError(
                f"unreadable partition pointer {self._backend.describe(rel)}: {problem}; re-materialize the partition"
            )
        return pointer

    def partition_version(self, folder: str) -> Optional[str]:
        pointer = self.read_pointer(check_rel_path(folder))
        return pointer["version"] if pointer else None

    @contextmanager
    def publish_partition(self, folder: str, _amend: bool = False) -> Iterator[_Publication]:
        """Publish the files written under ``folder`` in this block as ONE new version of
        the partition: ``table_writer`` and ``write_json`` calls for ``folder/<name>``
        stage their files, and the pointer naming them all is written when the block ends
        without error (on an exception, nothing changes and the staged objects are
        removed). Reads inside the block see the partition as it was before it."""
        folder = check_rel_path(folder.rstrip("/"), what="partition folder")
        for other in self._open:
            if other == folder:
                raise ValueError(f"partition {folder} is already being published")
            if other.startswith(folder + "/") or folder.startswith(other + "/"):
                raise ValueError(f"partition {folder} would be inside partition {other}, being published")
        base = (self.read_pointer(folder) or {"files": {}})["files"] if _amend else {}
        publication = _Publication(self, folder, dict(base))
        self._open[folder] = publication
        try:
            yield publication
        except BaseException:
            del self._open[folder]
            publication.discard()
            raise
        del self._open[folder]
        try:
            publication.commit()
        except BaseException:
            publication.discard()
            raise

    @contextmanager
    def _target(self, rel: str) -> Iterator[Optional[_Publication]]:
        """The publication a write to ``rel`` belongs to: the open one of its folder, a
        one-file amendment when its folder is published, or None for a plain file."""
        folder, name = _split(rel)
        if name == POINTER_NAME or name.startswith(TMP_PREFIX):
            raise ValueError(f"refusing store path {rel!r}: {name!r} is a name the store reserves")
        if folder in self._open:
            yield self._open[folder]
            return
        for other in self._open:
            if folder.startswith(other + "/"):
                raise ValueError(
                    f"{rel} is inside partition {other}, being published: a partition's files sit directly in its folder"
                )
        if self.read_pointer(folder) is not None:
            with self.publish_partition(folder, _amend=True) as publication:
                yield publication
        else:
            yield None

    @contextmanager
    def _staged(self, rel: str, suffix: str) -> Iterator[tuple[str, dict]]:
        """A local file to fill; stored at ``rel`` when the block ends without error.
        The block may set ``info["rows"]`` (tables)."""
        check_rel_path(rel)
        with self._target(rel) as publication:
            folder = _split(rel)[0]
            tmp = self._backend.new_tmp(folder, suffix)
            info: dict = {}
            try:
                yield tmp, info
            except BaseException:
                _unlink_quiet(tmp)
                raise
            if publication is not None:
                publication.add(_split(rel)[1], tmp, info.get("rows"))
            else:
                self._backend.put(tmp, rel)

    # -- writing --------------------------------------------------------------------
    @contextmanager
    def table_writer(self, rel: str, schema: Optional[pa.Schema] = None,
                     empty_schema: Optional[pa.Schema] = None) -> Iterator[TableWriter]:
        """Write a Parquet table; it is published only if the block ends without error."""
        with self._staged(rel, ".parquet") as (tmp, info):
            writer = TableWriter(tmp, schema, empty_schema)
            yield writer
            writer.close()
            info["rows"] = writer.rows

    @contextmanager
    def file_writer(self, rel: str, suffix: str) -> Iterator[tuple[str, dict]]:
        """A local file to fill with any bytes (a shard in a format pyarrow does not write);
        stored at ``rel`` like a table is. Set ``info["rows"]`` for a Parquet file."""
        with self._staged(rel, suffix) as staged:
            yield staged

    def write_json(self, rel: str, obj: Any) -> None:
        with self._staged(rel, ".json") as (tmp, _):
            with open(tmp, "w") as fh:
                json.dump(obj, fh, indent=1, sort_keys=True)

    # -- reading --------------------------------------------------------------------
    def _resolve(self, rel: str) -> tuple[str, Optional[dict]]:
        check_rel_path(rel)
        folder, name = _split(rel)
        pointer = self.read_pointer(folder)
        if pointer is None:
            return rel, None
        entry = pointer["files"].get(name)
        if entry is None:
            raise FileNotFoundError(
                f"no such artifact: {self._backend.describe(rel)} (the published partition holds "
                f"{sorted(pointer['files'])})"
            )
        return _join(folder, entry["object"]), entry

    @contextmanager
    def _open_copy(self, rel: str) -> Iterator[tuple[str, Optional[dict]]]:
        """A local path of ``rel``'s current object, checked against the pointer."""
        with ExitStack() as stack:
            for attempt in range(2):
                physical, entry = self._resolve(rel)
                try:
                    path = stack.enter_context(self._backend.local_copy(physical))
                    break
                except FileNotFoundError:
                    if entry is None:
                        raise
                    # A newer publication may have replaced the object between reading
                    # the pointer and the object: follow the new pointer once.
                    if attempt == 1 or self._resolve(rel)[0] == physical:
                        raise PartitionIntegrityError(
                            f"{self._backend.describe(rel)}: the partition's pointer names "
                            f"{entry['object']}, which is missing; re-materialize the partition"
                        ) from None
            if entry is not None:
                size = os.path.getsize(path)
                if size != entry["bytes"]:
                    raise PartitionIntegrityError(
                        f"{self._backend.describe(rel)}: {entry['object']} holds {size} bytes, the partition's "
                        f"pointer says {entry['bytes']}; re-materialize the partition"
                    )
            yield path, entry

    def _check_rows(self, rel: str, entry: Optional[dict], rows: int) -> None:
        if entry is not None and "rows" in entry and entry["rows"] != rows:
            raise PartitionIntegrityError(
                f"{self._backend.describe(rel)}: the partition's pointer says {entry['rows']} rows, "
                f"its table holds {rows}; re-materialize the partition"
            )

    def _parquet(self, rel: str, path: str, entry: Optional[dict]) -> pq.ParquetFile:
        parquet = pq.ParquetFile(path)
        self._check_rows(rel, entry, parquet.metadata.num_rows)
        return parquet

    def read_json(self, rel: str) -> Any:
        with self._open_copy(rel) as (path, entry):
            data = Path(path).read_bytes()
        if entry is not None and hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise PartitionIntegrityError(
                f"{self._backend.describe(rel)}: {entry['object']} is not the content that was published "
                "(SHA-256 differs from the partition's pointer); re-materialize the partition"
            )
        return json.loads(data)

    def iter_rows(
        self, rel: str, columns: Optional[list[str]] = None, batch_size: int = ROW_GROUP_ROWS
    ) -> RowStream:
        """Stream rows of a table, one record batch in memory at a time."""
        check_rel_path(rel)

        def rows(stream: RowStream) -> Iterator[dict]:
            with self._open_copy(rel) as (path, entry):
                parquet = self._parquet(rel, path, entry)
                wanted = None
                if columns is not None:
                    present = set(parquet.schema_arrow.names)
                    wanted = [c for c in columns if c in present]
                schema = parquet.schema_arrow
                stream.schema = pa.schema([schema.field(c) for c in wanted]) if wanted is not None else schema
                for batch in parquet.iter_batches(batch_size=batch_size, columns=wanted):
                    yield from batch.to_pylist()

        return RowStream(rows)

    def iter_batches(
        self, rel: str, columns: Optional[list[str]] = None, batch_size: int = ROW_GROUP_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """Stream record batches of the named columns (columnar readers: band keys). A
        table without rows yields nothing: an empty partition's file may have no columns."""
        with self._open_copy(rel) as (path, entry):
            parquet = self._parquet(rel, path, entry)
            if parquet.metadata.num_rows == 0:
                return
            yield from parquet.iter_batches(batch_size=batch_size, columns=columns)

    def read_table(self, rel: str, columns: Optional[list[str]] = None,
                   filters: Optional[list[tuple]] = None) -> pa.Table:
        """Read a whole (small) table: manifests, ledgers, reports. ``filters`` (pyarrow's
        ``[(column, op, value)]``) keeps only matching rows, skipping row groups that
        cannot match."""
        with self._open_copy(rel) as (path, entry):
            self._parquet(rel, path, entry)
            return pq.read_table(path, columns=columns, filters=filters)

    def row_count(self, rel: str) -> int:
        with self._open_copy(rel) as (path, entry):
            return self._parquet(rel, path, entry).metadata.num_rows

    def published_rows(self, rel: str) -> Optional[int]:
        """Rows of a published table as its partition's pointer records them (no read of
        the table), or None when ``rel`` is not a table of a published partition."""
        check_rel_path(rel)
        folder, name = _split(rel)
        pointer = self.read_pointer(folder)
        entry = pointer["files"].get(name) if pointer else None
        return entry.get("rows") if entry else None


def _pointer_problem(pointer: Any) -> Optional[str]:
    if not isinstance(pointer, dict) or not isinstance(pointer.get("files"), dict):
        return "no 'files' table"
    if pointer.get("format") != POINTER_FORMAT:
        return f"format {pointer.get('format')!r}, expected {POINTER_FORMAT}"
    if not isinstance(pointer.get("version"), str):
        return "no version"
    for name, entry in pointer["files"].items():
        if not isinstance(entry, dict):
            return f"entry {name!r} is not an object"
        obj = entry.get("object")
        try:
            if not isinstance(obj, str) or "/" in obj or obj == POINTER_NAME:
                raise ValueError(obj)
            check_rel_path(obj)
        except ValueError:
            return f"entry {name!r} names no object in the partition's folder ({obj!r})"
        if not isinstance(entry.get("bytes"), int) or not isinstance(entry.get("sha256"), str):
            return f"entry {name!r} has no byte size or SHA-256"
        if "rows" in entry and not isinstance(entry["rows"], int):
            return f"entry {name!r} has a row count that is not a number"
    return None

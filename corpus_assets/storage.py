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
written, every object of the folder that the current pointer does not name (an older
version, a killed run's objects and ``.tmp-*`` staging files) is deleted, except those
another publication still running has claimed (see ``_Publication``): two runs of one
partition at once both commit whole, the last pointer wins. Objects are always stored
anew, so a re-run repairs a damaged one; identical output gets identical names.

Readers refuse a partition whose parts disagree (``PartitionIntegrityError``): an object
missing, of another size or SHA-256 than the pointer says (checked on every whole read),
a table Parquet cannot decode, another row count, a pointer published for another folder
or unreadable, content-addressed objects without a pointer.

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

from corpus_assets.steps.base import file_sha256

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
# A live publication's claim, ``.tmp-<host>-<pid>-<uuid>.claim``: the objects it has stored
# and not yet named in a pointer. Another publication's cleanup leaves them alone while
# the claim's writer lives (same host: its process exists; another host: the claim is
# younger than STALE_TMP_SECONDS), so two runs of one partition at once both commit whole.
CLAIM_SUFFIX = ".claim"
# A content-addressed object's name, as ``_object_name`` makes it.
_OBJECT_NAME = re.compile(r"^[^/]+\.[0-9a-f]{%d}(\.[^./]+)?$" % OBJECT_HASH_CHARS)
# S3 staging files and read copies live on this machine, in one folder of the temp dir,
# named ``<host>-<pid>-<uuid><suffix>`` so a killed process's leftovers can be told apart.
STAGING_DIR = "corpus-staging"
_STAGING_OWNER = re.compile(r"^(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{32}")
# S3 bucket names (AWS rules, the part that matters here): 3-63 of [a-z0-9.-], starting and
# ending with a letter or digit, no "..".
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


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
    if not isinstance(root, str) or not root or root != root.strip() or re.search(r"[\x00-\x1f\x7f]", root):
        raise ValueError(f"corpus root {root!r}: empty, blank at an edge or has a control character")
    match = _SCHEME.match(root)
    if not match:
        return "local", root
    scheme, rest = match.group(1).lower(), root[match.end():]
    if scheme == "s3":
        bucket, _, prefix = rest[2:].partition("/") if rest.startswith("//") else ("", "", "")
        if not bucket:
            raise ValueError(f"corpus root {root!r}: an S3 root is s3://bucket or s3://bucket/prefix")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ValueError(f"corpus root {root!r}: {bucket!r} is not an S3 bucket name "
                             "(3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit)")
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
    return file_sha256(path)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _is_object_name(name: str) -> bool:
    return bool(_OBJECT_NAME.match(name)) and not name.startswith(TMP_PREFIX) and name != POINTER_NAME


def _is_claim(name: str) -> bool:
    return name.startswith(TMP_PREFIX) and name.endswith(CLAIM_SUFFIX)


def _owner_gone(match: Optional[re.Match], age: Optional[float]) -> bool:
    """Is the writer named in a staging or claim name (host, pid) gone? A process of this
    host is asked directly; one of another host is judged by the file's age."""
    if match and match.group("host") == socket.gethostname():
        return not _process_alive(int(match.group("pid")))
    return age is not None and age > STALE_TMP_SECONDS


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

    def age(self, rel: str) -> Optional[float]:
        try:
            return time.time() - (self.root / rel).stat().st_mtime
        except FileNotFoundError:
            return None

    def is_stale_tmp(self, rel: str) -> bool:
        """Is this staging file or claim a leftover (its writer dead), not a live writer's?"""
        return _owner_gone(_TMP_OWNER.match(_split(rel)[1]), self.age(rel))

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

    def age(self, rel: str) -> Optional[float]:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
        except ClientError:
            return None
        return time.time() - head["LastModified"].timestamp()

    _staging_cleaned = False

    def _staging_file(self, suffix: str) -> str:
        """A new file in this machine's staging folder. The first call of a store deletes
        the leftovers of dead processes there (a killed run's half upload or read copy)."""
        folder = Path(tempfile.gettempdir()) / STAGING_DIR
        folder.mkdir(parents=True, exist_ok=True)
        if not self._staging_cleaned:
            self._staging_cleaned = True
            for path in folder.iterdir():
                try:
                    age = time.time() - path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if _owner_gone(_STAGING_OWNER.match(path.name), age):
                    _unlink_quiet(str(path))
        path = str(folder / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}{suffix}")
        _new_file(path)
        return path

    def new_tmp(self, folder: str, suffix: str) -> str:
        # Staged on this machine; nothing in the bucket until the single upload.
        return self._staging_file(suffix)

    def is_stale_tmp(self, rel: str) -> bool:
        # Staging files never reach the bucket; claims do, named by their writer.
        return _owner_gone(_TMP_OWNER.match(_split(rel)[1]), self.age(rel))

    def put(self, local_tmp: str, rel: str) -> None:
        # One upload: an S3 object becomes visible whole or not at all.
        try:
            self.client.upload_file(local_tmp, self.bucket, self._key(rel))
        finally:
            _unlink_quiet(local_tmp)

    @contextmanager
    def local_copy(self, rel: str) -> Iterator[str]:
        tmp = self._staging_file(Path(rel).suffix)
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
            self._writer = pq.ParquetWriter(self._path, self._schema, compression=PARQUET_COMPRESSION,
                                            write_page_checksum=True)
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
                self._path, self._schema, compression=PARQUET_COMPRESSION, write_page_checksum=True
            )
        self._writer.write_table(table)
        self.rows += len(self._pending)
        self._pending = []

    def close(self) -> None:
        self.flush()
        if self._writer is None:
            # An empty partition is still a partition: write a file with the schema.
            schema = self._schema or self.empty_schema or pa.schema([])
            pq.write_table(schema.empty_table(), self._path, compression=PARQUET_COMPRESSION,
                           write_page_checksum=True)
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
    """The files of one partition being written; committed by one pointer write.

    Every object it stores is first named in its claim (``.tmp-<host>-<pid>-<uuid>.claim``
    in the folder), so a cleanup by another publication of the same folder, running at the
    same time, leaves it alone; the claim goes once the pointer is written and the folder
    cleaned."""

    def __init__(self, store: "CorpusStore", folder: str, files: dict):
        self.store = store
        self.folder = folder
        self.files = files
        self.created: list[str] = []  # objects this publication stored
        self.claim = _join(folder, f"{TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}{CLAIM_SUFFIX}")
        self.claimed: list[str] = []

    def _write_claim(self, objects: list[str]) -> None:
        backend = self.store._backend
        tmp = backend.new_tmp(self.folder, ".json")
        with open(tmp, "w") as fh:
            json.dump(objects, fh)
        backend.put(tmp, self.claim)
        self.claimed = objects

    def add(self, name: str, local_tmp: str, rows: Optional[int]) -> None:
        backend = self.store._backend
        try:
            size = os.path.getsize(local_tmp)
            sha = _sha256_file(local_tmp)
            obj = _object_name(name, sha)
            if obj not in self.claimed:
                self._write_claim(self.claimed + [obj])  # claimed before it exists
        except BaseException:
            _unlink_quiet(local_tmp)
            raise
        rel = _join(self.folder, obj)
        # Always stored, even when an object of that name is there: identical content
        # then, unless that object was damaged, and a re-run is how a partition is repaired.
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
        self._clean(None)
        return pointer

    def _protected(self, names: list[str]) -> Optional[set[str]]:
        """The objects nobody may delete now: those named by a live claim of another
        publication and by the current pointer. Claims are read BEFORE the pointer: a
        publication drops its claim only after writing its pointer, so each object is
        seen in one or the other. None when it cannot be told (then delete nothing)."""
        backend = self.store._backend
        keep: set[str] = set()
        try:
            for name in names:
                rel = _join(self.folder, name)
                if not _is_claim(name) or rel == self.claim or backend.is_stale_tmp(rel):
                    continue
                data = backend.read_bytes(rel)
                if data is not None:
                    keep.update(json.loads(data))
            keep.update(e["object"] for e in (self.store.read_pointer(self.folder) or {"files": {}})["files"].values())
        except Exception:
            return None
        return keep

    def _clean(self, only: Optional[list[str]]) -> None:
        """Delete the objects of the folder nobody needs (``only``: of these): older
        versions, legacy unversioned files, a killed run's objects, staging files and
        claims whose writer is gone; then this publication's claim. Best effort:
        whatever fails to go now goes with the next publication."""
        backend = self.store._backend
        try:
            names = backend.list_dir(self.folder)
        except Exception:
            names = []
        keep = self._protected(names)
        if only is not None:
            names = [n for n in names if _join(self.folder, n) in only]
        for name in names if keep is not None else []:
            rel = _join(self.folder, name)
            if name == POINTER_NAME or name in keep or rel == self.claim:
                continue
            if name.startswith(TMP_PREFIX) and not backend.is_stale_tmp(rel):
                continue
            try:
                backend.delete(rel)
            except Exception:
                pass
        if self.claimed:
            try:
                backend.delete(self.claim)
            except Exception:
                pass

    def discard(self) -> None:
        """A failed publication: remove what it stored, unless the current pointer or
        another live publication names it (identical content)."""
        self._clean(list(self.created))


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
    # Objects whose SHA-256 was checked: (path, size, mtime, inode) -> sha256.
    _verified: dict = field(default_factory=dict, init=False, repr=False, compare=False)

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
        if self._backend.exists(rel):
            return True
        self._check_unpublished(folder, self._backend.list_dir(folder))
        return False

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
                self._check_unpublished(folder, names)
                # Objects and staging files of a first publication in progress are no files yet.
                out.extend(_join(folder, n) for n in names if not _is_object_name(n) and not n.startswith(TMP_PREFIX))
        return sorted(out)

    def delete_prefix(self, rel_prefix: str) -> None:
        prefix = rel_prefix.rstrip("/")
        check_rel_path(prefix)
        self._backend.delete_prefix(prefix)

    def published_paths(self, rel_prefix: str, name: str, num_shards: Optional[int] = None) -> list[str]:
        """The current object behind every ``<folder>/<name>`` under ``rel_prefix``, in
        folder order: local paths or ``s3://`` URIs to hand to ``pyarrow.dataset``. Stale
        objects of a folder (before its next publication cleans them) are never listed.
        With ``num_shards``, only the shard folders of that count (``<asset>/<dump>/<shard>``
        whose shard is one of its keys): folders left by a run with another num_shards
        are left out (``ignored`` of ``published_paths_and_ignored`` names them)."""
        return self.published_paths_and_ignored(rel_prefix, name, num_shards)[0]

    def published_paths_and_ignored(self, rel_prefix: str, name: str,
                                    num_shards: Optional[int] = None) -> tuple[list[str], list[str]]:
        """``published_paths`` and the folders it left out (outside ``num_shards``' shards)."""
        from corpus_assets.crawl import shard_key

        current = {shard_key(i, num_shards) for i in range(num_shards)} if num_shards else None
        out, ignored = [], []
        for rel in self.list(rel_prefix):
            folder, base = _split(rel)
            if base != name:
                continue
            if current is not None and folder.rsplit("/", 1)[-1] not in current:
                ignored.append(folder)
                continue
            out.append(self.uri(rel))
        return out, ignored

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
        if problem is None and pointer.get("partition") != folder:
            problem = (f"it was published for partition {pointer.get('partition')!r}, not {folder!r} "
                       "(a folder moved or copied by hand?)")
        if problem:
            raise PartitionIntegrityError(
                f"unreadable partition pointer {self._backend.describe(rel)}: {problem}; re-materialize the partition"
            )
        return pointer

    def _check_unpublished(self, folder: str, names: list[str]) -> None:
        """A folder without a pointer holds plain files, or a first publication's objects
        while it runs (its claim or staging files are there). Content-addressed objects
        with neither mean the pointer was lost: refuse, never read it as absent."""
        objects = [n for n in names if _is_object_name(n)]
        if objects and not any(n.startswith(TMP_PREFIX) for n in names):
            raise PartitionIntegrityError(
                f"{self._backend.describe(folder)} holds published objects ({objects[:3]}) but no pointer "
                f"({POINTER_NAME}); re-materialize the partition"
            )

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

    def _check_content(self, rel: str, path: str, entry: dict) -> None:
        """The object's SHA-256 against the pointer's. Costs one pass over the file
        (hashlib runs at several hundred MB/s, far faster than decoding the table to
        rows); a local object checked once is not hashed again while it is unchanged."""
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns, st.st_ino)
        sha = self._verified.get(key)
        if sha is None:
            sha = _sha256_file(path)
            if isinstance(self._backend, _LocalBackend):
                self._verified[key] = sha
        if sha != entry["sha256"]:
            raise PartitionIntegrityError(
                f"{self._backend.describe(rel)}: {entry['object']} is not the content that was published "
                "(SHA-256 differs from the partition's pointer); re-materialize the partition"
            )

    @contextmanager
    def _open_copy(self, rel: str, verify: bool = False) -> Iterator[tuple[str, Optional[dict]]]:
        """A local path of ``rel``'s current object, checked against the pointer (with
        ``verify``, its content too)."""
        with ExitStack() as stack:
            for attempt in range(2):
                physical, entry = self._resolve(rel)
                try:
                    path = stack.enter_context(self._backend.local_copy(physical))
                    break
                except FileNotFoundError:
                    if entry is None:
                        self._check_unpublished(_split(rel)[0], self._backend.list_dir(_split(rel)[0]))
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
                if verify:
                    self._check_content(rel, path, entry)
            yield path, entry

    def _check_rows(self, rel: str, entry: Optional[dict], rows: int) -> None:
        if entry is not None and "rows" in entry and entry["rows"] != rows:
            raise PartitionIntegrityError(
                f"{self._backend.describe(rel)}: the partition's pointer says {entry['rows']} rows, "
                f"its table holds {rows}; re-materialize the partition"
            )

    @contextmanager
    def _decoding(self, rel: str, entry: Optional[dict], footer: bool = False) -> Iterator[None]:
        """A published table that cannot be decoded (a bad footer, a page whose CRC or
        compression frame fails: OSError) is a damaged partition, not a crash of the
        reader. Only while the footer is parsed is any Arrow error one: later, an
        ArrowInvalid may be the caller's (a filter on a column that does not exist)."""
        try:
            yield
        except (OSError, pa.ArrowException) as exc:
            if not footer and not isinstance(exc, OSError):
                raise
            if entry is None or isinstance(exc, FileNotFoundError):
                raise
            raise PartitionIntegrityError(
                f"{self._backend.describe(rel)}: {entry['object']} cannot be read ({type(exc).__name__}: "
                f"{str(exc)[:200]}); re-materialize the partition"
            ) from exc

    def _decoded(self, rel: str, entry: Optional[dict], batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        while True:
            with self._decoding(rel, entry):
                batch = next(batches, None)
            if batch is None:
                return
            yield batch

    def _parquet(self, rel: str, path: str, entry: Optional[dict]) -> pq.ParquetFile:
        # Page CRCs (written by TableWriter) are checked as pages are decoded: a flipped
        # byte is caught for the price of a CRC32, without hashing the whole object.
        with self._decoding(rel, entry, footer=True):
            parquet = pq.ParquetFile(path, page_checksum_verification=True)
        self._check_rows(rel, entry, parquet.metadata.num_rows)
        return parquet

    def read_json(self, rel: str) -> Any:
        with self._open_copy(rel, verify=True) as (path, entry):
            data = Path(path).read_bytes()
        return json.loads(data)

    def iter_rows(
        self, rel: str, columns: Optional[list[str]] = None, batch_size: int = ROW_GROUP_ROWS
    ) -> RowStream:
        """Stream rows of a table, one record batch in memory at a time."""
        check_rel_path(rel)

        def rows(stream: RowStream) -> Iterator[dict]:
            with self._open_copy(rel, verify=True) as (path, entry):
                parquet = self._parquet(rel, path, entry)
                wanted = None
                if columns is not None:
                    present = set(parquet.schema_arrow.names)
                    wanted = [c for c in columns if c in present]
                schema = parquet.schema_arrow
                stream.schema = pa.schema([schema.field(c) for c in wanted]) if wanted is not None else schema
                for batch in self._decoded(rel, entry, parquet.iter_batches(batch_size=batch_size, columns=wanted)):
                    yield from batch.to_pylist()

        return RowStream(rows)

    def iter_batches(
        self, rel: str, columns: Optional[list[str]] = None, batch_size: int = ROW_GROUP_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """Stream record batches of the named columns (columnar readers: band keys). A
        table without rows yields nothing: an empty partition's file may have no columns."""
        with self._open_copy(rel, verify=True) as (path, entry):
            parquet = self._parquet(rel, path, entry)
            if parquet.metadata.num_rows == 0:
                return
            yield from self._decoded(rel, entry, parquet.iter_batches(batch_size=batch_size, columns=columns))

    def read_table(self, rel: str, columns: Optional[list[str]] = None,
                   filters: Optional[list[tuple]] = None) -> pa.Table:
        """Read a whole (small) table: manifests, ledgers, reports. ``filters`` (pyarrow's
        ``[(column, op, value)]``) keeps only matching rows, skipping row groups that
        cannot match."""
        with self._open_copy(rel, verify=True) as (path, entry):
            self._parquet(rel, path, entry)
            with self._decoding(rel, entry):
                return pq.read_table(path, columns=columns, filters=filters, page_checksum_verification=True)

    def schema(self, rel: str) -> pa.Schema:
        """A stored table's columns (its footer only; nothing else is read)."""
        with self._open_copy(rel) as (path, entry):
            return self._parquet(rel, path, entry).schema_arrow

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

"""Reading a crawl laid out as Common Crawl lays it out.

A crawl source is a root that holds ``crawl-data/<DUMP>/warc.paths.gz`` (the list of the
dump's WARC files, one path per line, relative to the root) and the WARC files. Three
kinds of root are understood:

- a local folder (``/data/commoncrawl`` or ``../shared/data``),
- an S3 prefix (``s3://commoncrawl`` or ``s3://bucket/prefix``), read with a boto3 client,
- an HTTPS base (``https://data.commoncrawl.org``); HTTPS cannot list folders, so the dumps
  to watch are named in configuration.

A manifest is input, not trusted: a path in it must name a file inside the root
(``outside_root``); ``../../x`` or ``/etc/passwd`` is never opened, and the stage counts it
as a ``path_outside_root`` removal. An empty manifest is an error, not a dump of no files;
so is one above ``MAX_MANIFEST_BYTES``. ``identities`` says which file a path names, so the
stage can read a file listed twice under two spellings only once.

Shard assignment is a pure function of the manifest, so every process that reads the same
``warc.paths.gz`` agrees on which WARC files belong to which shard. Nothing here imports
Dagster.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Optional

from corpus_assets.storage import split_s3_uri

DUMP_NAME = re.compile(r"^CC-MAIN-\d{4}-\d{2}$")
MANIFEST_NAME = "warc.paths.gz"
# A manifest holds one short line per WARC file (CC-MAIN-2024-10: 90,000 lines, 13 MB
# inflated). Above these it is not a manifest, and reading it whole would exhaust memory.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
# The whitespace a manifest line may be padded with: ASCII only. str.strip() would also
# eat U+00A0, U+2028 and U+3000, which are legal in a file name and name another file.
_MANIFEST_PADDING = " \t\r\n\f\v"


class CrawlSourceError(RuntimeError):
    """A crawl source problem a user can fix (a missing folder, manifest or file).
    ``code`` says which, for a removal row: ``missing_file``, ``not_a_file``."""

    def __init__(self, message: str, code: str = "missing_file"):
        super().__init__(message)
        self.code = code


def manifest_path(dump: str) -> str:
    return f"crawl-data/{dump}/{MANIFEST_NAME}"


def dump_sort_key(dump: str) -> tuple[int, int, str]:
    """Crawl order: CC-MAIN-YYYY-WW sorts by year then week; other names after, by name."""
    match = re.match(r"^CC-MAIN-(\d{4})-(\d{2})$", dump)
    if match:
        return (int(match.group(1)), int(match.group(2)), dump)
    return (10**6, 0, dump)


def assign_shards(paths: list[str], num_shards: int) -> list[int]:
    """Contiguous blocks in manifest order: file i of n goes to shard i * num_shards // n.

    Contiguous (rather than round-robin) keeps neighbouring segments together, and the
    result depends only on the manifest and the shard count, never on timing or hashing
    salts. With fewer files than shards some shards are empty (and materialize empty).
    """
    n = len(paths)
    return [i * num_shards // n for i in range(n)] if n else []


def shard_key(index: int, num_shards: int) -> str:
    """Zero-padded shard name (``007``), wide enough for the configured count."""
    return str(index).zfill(max(3, len(str(num_shards - 1))))


@dataclass
class CrawlSource:
    """A crawl root; ``s3_client`` is a boto3 client (built with dagster-aws by the resource)."""

    root: str
    s3_client: Any = None
    # For HTTPS roots, which cannot be listed: the dumps to consider.
    dumps: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        # URI schemes are case-insensitive (RFC 3986): `S3://x` is a bucket, as it is for
        # the corpus root, never a local folder named `S3:`.
        for scheme in ("s3://", "http://", "https://"):
            if self.root[:len(scheme)].lower() == scheme:
                self.root = scheme + self.root[len(scheme):]
                break

    @property
    def kind(self) -> str:
        if self.root.startswith("s3://"):
            return "s3"
        if self.root.startswith(("http://", "https://")):
            return "http"
        return "local"

    def describe(self, rel: str = "") -> str:
        if self.kind == "local":
            return str(Path(self.root).expanduser() / rel)
        return f"{self.root.rstrip('/')}/{rel}"

    # -- listing --------------------------------------------------------------------
    def list_dumps(self) -> list[str]:
        """Dumps that have a ``warc.paths.gz``, in crawl order."""
        if self.kind == "local":
            base = Path(self.root).expanduser() / "crawl-data"
            if not base.is_dir():
                raise CrawlSourceError(f"crawl source has no crawl-data folder: {base}")
            found = [p.name for p in base.iterdir() if (p / MANIFEST_NAME).is_file()]
        elif self.kind == "s3":
            found = self._s3_list_dumps()
        else:
            found = [d for d in self.dumps if self._http_exists(manifest_path(d))]
        return sorted(found, key=dump_sort_key)

    def _s3_list_dumps(self) -> list[str]:
        bucket, prefix = split_s3_uri(self.root)
        base = f"{prefix}/crawl-data/" if prefix else "crawl-data/"
        dumps = []
        paginator = self.s3_client.get_paginator("list_objects_v2")
        # Delimiter listing returns one entry per dump folder, not every WARC file.
        for page in paginator.paginate(Bucket=bucket, Prefix=base, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                dump = common["Prefix"][len(base) :].strip("/")
                if self._s3_exists(bucket, f"{base}{dump}/{MANIFEST_NAME}"):
                    dumps.append(dump)
        return dumps

    def _s3_exists(self, bucket: str, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3_client.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError:
            return False

    def _http_exists(self, rel: str) -> bool:
        request = urllib.request.Request(self.describe(rel), method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=30):
                return True
        except (urllib.error.URLError, OSError):
            return False

    # -- containment ----------------------------------------------------------------
    def outside_root(self, rel: str) -> Optional[str]:
        """Why ``rel`` (a path from a manifest) does not name a file inside the root, or
        None when it does. Local: the path, symlinks followed, resolves inside the
        resolved root. S3 and HTTPS: a plain relative path with no ``.`` or ``..``
        segment (percent-encoded ones included for HTTPS, whose servers decode them), no
        backslash, and for HTTPS no query or fragment, so the key or URL stays under the
        prefix or base."""
        if not rel:
            return "empty path"
        if any(ord(c) < 32 or ord(c) == 127 for c in rel):
            return "control character in the path"
        if rel.startswith("/") or (self.kind == "local" and os.path.isabs(rel)):
            return "absolute path"
        if self.kind == "local":
            root = Path(self.root).expanduser()
            try:
                resolved_root = root.resolve()
                target = (root / rel).resolve()
            except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, say
                return f"cannot be resolved: {_why_unresolvable(exc)}"
            if target != resolved_root and resolved_root not in target.parents:
                return "resolves outside the crawl root"
            return None
        if "\\" in rel:
            return "backslash in the path"
        if self.kind == "http":
            if "?" in rel or "#" in rel:
                return "query or fragment in the path"
            segments = urllib.parse.unquote(rel).split("/")
        else:
            segments = rel.split("/")
        if any(seg in (".", "..") for seg in segments):
            return "'.' or '..' segment in the path"
        return None

    def path_problem(self, rel: str) -> Optional[tuple[str, str]]:
        """(removal code, detail) for a manifest path that is not read, or None:
        ``unreadable_path`` when the path cannot be resolved (a symlink loop inside the
        root: an operator's problem, not an escape), else ``path_outside_root``."""
        problem = self.outside_root(rel)
        if not problem:
            return None
        if problem.startswith("cannot be resolved"):
            return "unreadable_path", problem
        return "path_outside_root", problem

    def identities(self, rels: list[str]) -> list[str]:
        """What file each path names, for finding a file listed twice under two
        spellings: local paths resolved (``./p``, ``a/../p`` and an in-root symlink to ``p``
        are all ``p``); S3 keys and URLs as they are (no ``.`` or ``..`` segment passes
        ``outside_root``). Cheap enough for a whole manifest in every shard: folders are
        resolved once each (a dump has ~100), files with one ``lstat``."""
        if self.kind != "local":
            return list(rels)
        root = str(Path(self.root).expanduser())
        folders: dict[str, str] = {}
        out = []
        for rel in rels:
            try:
                folder, name = os.path.split(os.path.join(root, rel))
                if folder not in folders:
                    folders[folder] = os.path.realpath(folder)
                path = os.path.join(folders[folder], name)
                out.append(os.path.realpath(path) if os.path.islink(path) else os.path.normpath(path))
            except (OSError, ValueError):  # a NUL in the path: its own removal says so
                out.append(rel)
        return out

    def _inside(self, rel: str) -> None:
        problem = self.outside_root(rel)
        if problem:
            raise CrawlSourceError(f"refusing to read {rel!r}: {problem} ({self.root})")

    # -- reading --------------------------------------------------------------------
    def open(self, rel: str) -> BinaryIO:
        """A binary stream of a file under the root. Missing files, and paths that are not
        inside the root (never opened), raise CrawlSourceError."""
        self._inside(rel)
        if self.kind == "local":
            path = Path(self.root).expanduser() / rel
            try:
                if not path.is_file():
                    if path.exists():  # a folder, a FIFO (opening one would block), a device
                        raise CrawlSourceError(f"not a regular file: {str(path)[:300]}", "not_a_file")
                    raise CrawlSourceError(f"no such file in the crawl source: {path}")
                return open(path, "rb")
            except OSError as exc:  # a name too long, a permission: this file, not the run
                raise CrawlSourceError(f"cannot open {str(path)[:300]}: {type(exc).__name__}: {exc.strerror}") from exc
        if self.kind == "s3":
            from botocore.exceptions import ClientError

            bucket, prefix = split_s3_uri(self.root)
            key = f"{prefix}/{rel}" if prefix else rel
            try:
                return self.s3_client.get_object(Bucket=bucket, Key=key)["Body"]
            except ClientError as exc:
                raise CrawlSourceError(f"cannot read s3://{bucket}/{key}: {exc}") from exc
        try:
            return urllib.request.urlopen(self.describe(rel), timeout=60)
        except (urllib.error.URLError, OSError) as exc:
            raise CrawlSourceError(f"cannot read {self.describe(rel)}: {exc}") from exc

    def size(self, rel: str) -> Optional[int]:
        """Bytes of a file, where that is cheap to know (local and S3); None otherwise
        (and for a path outside the root, which is not even looked at)."""
        if self.outside_root(rel):
            return None
        if self.kind == "local":
            path = Path(self.root).expanduser() / rel
            try:
                return path.stat().st_size if path.is_file() else None
            except OSError:
                return None
        if self.kind == "s3":
            bucket, prefix = split_s3_uri(self.root)
            key = f"{prefix}/{rel}" if prefix else rel
            try:
                return int(self.s3_client.head_object(Bucket=bucket, Key=key)["ContentLength"])
            except Exception:
                return None
        return None

    def read_manifest(self, dump: str) -> list[str]:
        """The WARC paths listed in ``crawl-data/<dump>/warc.paths.gz``, in order. A
        manifest that lists no file (zero bytes, or empty once decompressed) raises: a dump
        of zero files would look like a finished, empty dump."""
        rel = manifest_path(dump)
        try:
            stream = self.open(rel)
        except CrawlSourceError as exc:
            raise CrawlSourceError(f"dump {dump} has no manifest: {self.describe(rel)}") from exc
        with stream:
            raw = stream.read(MAX_MANIFEST_BYTES + 1)
        too_big = f"manifest {self.describe(rel)} is more than {MAX_MANIFEST_BYTES} bytes"
        if len(raw) > MAX_MANIFEST_BYTES:
            raise CrawlSourceError(too_big + " compressed")
        try:
            # GzipFile reads every member, inflating only as far as asked: a gzip bomb
            # stops at the cap rather than filling memory.
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
                inflated = gz.read(MAX_MANIFEST_BYTES + 1)
            if len(inflated) > MAX_MANIFEST_BYTES:
                raise CrawlSourceError(too_big + " inflated: not a manifest")
            text = inflated.decode("utf-8-sig")  # -sig: a byte-order mark is not a path
        except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
            raise CrawlSourceError(f"unreadable manifest {self.describe(rel)}: {exc}") from exc
        del inflated
        # Lines end at "\n" only ("\r" is stripped as padding); U+2028 and U+0085 are not
        # line ends here, as str.splitlines() would take them to be.
        lines = (line.strip(_MANIFEST_PADDING) for line in text.split("\n"))
        paths = [line for line in lines if line]
        if not paths:
            raise CrawlSourceError(
                f"manifest {self.describe(rel)} lists no WARC file ({len(raw)} bytes): an empty "
                f"dump is refused; fix or remove the file")
        return paths


def _why_unresolvable(exc: BaseException) -> str:
    # Python < 3.13 raises RuntimeError("Symlink loop from ...") where 3.13 raises ELOOP.
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return "symlink loop"
    return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"

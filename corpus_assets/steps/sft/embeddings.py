"""A content-keyed cache of sentence embeddings, so that a recipe re-run (a new budget, new
thresholds, the demo run again) does not re-embed the samples it embedded before: on CPU the
encoder is most of a selection's time (docs/sft.md, "Speed").

One ``.npz`` per encoder key (a SHA-256 of the model folder's files, so a model re-saved or
fine-tuned in the same folder gets a new key -- issue 15 f04 --, the device and the character
cut) under the cache folder, holding a 16-byte BLAKE2b digest of each embedded (cut) text and
its vector. A digest found is read, the others are encoded and the file rewritten through a
temporary file renamed into place, under a lock file, after merging what another writer saved
meanwhile (two concurrent runs keep both runs' vectors). A cache file that cannot be read
(truncated, not a zip, wrong arrays: f08) or whose vectors have another dimension than the
encoder gives is logged and rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

CACHE_ENV = "CORPUS_SFT_EMBED_CACHE"
log = logging.getLogger(__name__)


def model_content_key(model_path) -> str:
    """A SHA-256 over the relative names and SHA-256s of the files under a model folder (a
    file: its own digest); "" when the path does not exist (a test's fake encoder). File
    digests are memoized by (path, size, mtime), so repeated runs do not rehash."""
    from corpus_assets.steps.lm.model import _file_digest

    path = Path(model_path)
    if path.is_file():
        return _file_digest(path)[:16]
    if not path.is_dir():
        return ""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(f"{f.relative_to(path).as_posix()}\0{_file_digest(f)}\n".encode())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "corpus_assets" / "sft_embeddings"


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class EmbeddingCache:
    def __init__(self, folder: Optional[Path], encoder_key: str):
        self.folder = Path(folder) if folder else default_cache_dir()
        self.path = self.folder / f"{hashlib.sha256(encoder_key.encode()).hexdigest()[:16]}.npz"
        self.hits = self.misses = 0

    def _load(self, warn: bool = True) -> dict[bytes, np.ndarray]:
        if not self.path.is_file():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as data:
                keys, vectors = data["keys"], data["vectors"]
                if keys.dtype != np.dtype("S16") or vectors.ndim != 2 or len(keys) != len(vectors):
                    raise ValueError(f"keys {keys.dtype} {keys.shape}, vectors {vectors.shape}")
                return dict(zip((bytes(k) for k in keys), vectors.astype(np.float32)))
        except Exception as exc:  # noqa: BLE001 - zipfile.BadZipFile, truncation, wrong arrays
            if warn:
                log.warning("embedding cache %s is damaged (%s: %s); rebuilding it (sft.embedding_cache_dir / %s)",
                            self.path, type(exc).__name__, exc, CACHE_ENV)
            return {}  # a damaged cache is rebuilt, never trusted

    @contextmanager
    def _locked(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            try:
                import fcntl

                fcntl.flock(lock, fcntl.LOCK_EX)
            except (ImportError, OSError):
                pass  # no advisory locks here: last writer wins, entries are only recomputed
            yield

    def _save(self, table: dict[bytes, np.ndarray]) -> None:
        with self._locked():
            on_disk = self._load(warn=False)  # what a concurrent writer saved meanwhile
            dim = next(iter(table.values())).shape[0] if table else None
            merged = {k: v for k, v in on_disk.items() if v.shape[0] == dim}
            merged.update(table)
            self._write(merged)

    def _write(self, table: dict[bytes, np.ndarray]) -> None:
        keys = np.array(list(table), dtype="S16")
        vectors = np.stack(list(table.values())).astype(np.float32)
        fd, tmp = tempfile.mkstemp(prefix=".emb-", suffix=".npz", dir=self.folder)
        os.close(fd)
        try:
            np.savez(tmp, keys=keys, vectors=vectors)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def embed(self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        digests = [_digest(t) for t in texts]
        table = self._load()
        missing = list(dict.fromkeys(d for d in digests if d not in table))
        self.hits, self.misses = len(digests) - sum(1 for d in digests if d not in table), len(missing)
        if missing:
            text_of = {d: t for d, t in zip(digests, texts)}
            vectors = np.asarray(encode([text_of[d] for d in missing]), dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[0] != len(missing):
                raise ValueError(f"the encoder returned {vectors.shape[0]} embeddings for {len(missing)} texts")
            cached_dims = {v.shape[0] for v in table.values()}
            if cached_dims and cached_dims != {vectors.shape[1]}:
                log.warning("embedding cache %s holds %s-d vectors, the encoder gives %d-d: rebuilding it",
                            self.path, sorted(cached_dims), vectors.shape[1])
                table = {}
                missing = list(dict.fromkeys(digests))
                self.hits, self.misses = 0, len(missing)
                vectors = np.asarray(encode([text_of[d] for d in missing]), dtype=np.float32)
                with self._locked():
                    self._write(dict(zip(missing, vectors)))
                table.update(zip(missing, vectors))
            else:
                table.update(zip(missing, vectors))
                self._save({d: table[d] for d in missing})
        if not digests:
            return np.zeros((0, 0), np.float32)
        return np.stack([table[d] for d in digests]).astype(np.float32)

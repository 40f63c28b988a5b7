"""A content-keyed cache of sentence embeddings, so that a recipe re-run (a new budget, new
thresholds, the demo run again) does not re-embed the samples it embedded before: on CPU the
encoder is most of a selection's time (docs/sft.md, "Speed").

One ``.npz`` per encoder key (the model folder, the device and the character cut) under the
cache folder, holding a 16-byte BLAKE2b digest of each embedded (cut) text and its vector.
A digest found is read, the others are encoded and the file rewritten through a temporary
file renamed into place (a concurrent writer loses only its own additions). Embeddings are a
function of the text and the model, so a cache hit is the same vector the encoder would give.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

CACHE_ENV = "CORPUS_SFT_EMBED_CACHE"


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

    def _load(self) -> dict[bytes, np.ndarray]:
        if not self.path.is_file():
            return {}
        try:
            with np.load(self.path) as data:
                return dict(zip((bytes(k) for k in data["keys"]), data["vectors"]))
        except (OSError, ValueError, KeyError, EOFError):
            return {}  # a damaged cache is rebuilt, never trusted

    def _save(self, table: dict[bytes, np.ndarray]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
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
            if vectors.shape[0] != len(missing):
                raise ValueError(f"the encoder returned {vectors.shape[0]} embeddings for {len(missing)} texts")
            table.update(zip(missing, vectors))
            self._save(table)
        if not digests:
            return np.zeros((0, 0), np.float32)
        return np.stack([table[d] for d in digests]).astype(np.float32)

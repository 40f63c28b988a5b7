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
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from corpus_assets.steps.lm.config import LmConfig, LmReference
from corpus_assets.steps.lm.kneser_ney import KneserNeyModel, OrderTable, perplexity
from corpus_assets.steps.lm.text import normalize_for_lm

# Bump when training changes what it writes: the cache key includes it.
LM_REVISION = "1"
CACHE_ENV = "CORPUS_LM_CACHE"
DATA_ENV = "CORPUS_LM_DATA"
UNK, BOS, EOS = 0, 1, 2


def default_data_dir() -> Path:
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[4] / "shared" / "data"


def cache_dir(config: LmConfig) -> Path:
    if config.cache_dir:
        return Path(config.cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "corpus_assets" / "lm"


def reference_file(reference: LmReference) -> Path:
    path = Path(reference.path).expanduser()
    return path if path.is_absolute() else default_data_dir() / path


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_key(config: LmConfig, reference: LmReference) -> str:
    """The cache key: the settings that shape the model, the reference's bytes and fields,
    and the estimator's revision (not the reference's path: a copy elsewhere is the same)."""
    payload = json.dumps({"settings": config.model_settings(), "language": reference.language,
                          "fields": list(reference.fields), "reference_sha256": _file_digest(reference_file(reference)),
                          "revision": LM_REVISION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def reference_lines(reference: LmReference, max_chars: int = 0) -> Iterator[str]:
    """The reference's non-empty normalized lines (the first ``max_chars`` characters of
    them when > 0). A record that is not a JSON object, or a field that is not text, is
    skipped: a reference corpus is trusted input, but one bad line must not stop training."""
    path = reference_file(reference)
    opener = gzip.open if path.suffix == ".gz" else open
    used = 0
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            for name in reference.fields:
                value = record.get(name)
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


class NgramLanguageModel:
    """A trained model folder: ``sp.model`` (SentencePiece), ``lm.arpa``, ``tables.npz``
    (the estimator's tables) and ``model.json`` (settings, figures)."""

    def __init__(self, folder: Path, backend: str = "auto"):
        import sentencepiece

        self.folder = Path(folder)
        self.info = json.loads((self.folder / "model.json").read_text())
        self.order = int(self.info["order"])
        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(self.folder / "sp.model"))
        self.kenlm = None
        if backend in ("auto", "kenlm"):
            try:
                import kenlm
            except ImportError:
                if backend == "kenlm":
                    raise
            else:
                self.kenlm = kenlm.Model(str(self.folder / "lm.arpa"))
        self.tables: Optional[KneserNeyModel] = None
        if self.kenlm is None:
            self.tables = _load_tables(self.folder / "tables.npz", self.info)
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
            self.tables = _load_tables(self.folder / "tables.npz", self.info)
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


def _load_tables(path: Path, info: dict) -> KneserNeyModel:
    data = np.load(path)
    model = KneserNeyModel(info["order"], info["vocab_size"], BOS, EOS, UNK)
    model.tables = [OrderTable(data[f"ids{n}"], data[f"logp{n}"], data[f"bo{n}"], tuple(d), bool(f))
                    for n, d, f in zip(range(1, info["order"] + 1), info["discounts"], info["discounts_fell_back"])]
    model.vocabulary_size = info["vocabulary_size"]
    return model


def train_lines(lines: list[str], folder: Path, order: int, vocab_size: int, extra: Optional[dict] = None) -> dict:
    """Train SentencePiece and the n-gram model on normalized ``lines``; write the folder's
    files (sp.model, lm.arpa, tables.npz, model.json). Returns the model.json figures."""
    import sentencepiece

    started = time.perf_counter()
    # CCNet trains a unigram SentencePiece model per language. hard_vocab_limit off: a
    # small reference yields fewer pieces instead of failing.
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(folder / "sp"), vocab_size=vocab_size,
        model_type="unigram", character_coverage=0.9999, unk_id=UNK, bos_id=BOS, eos_id=EOS, pad_id=-1,
        hard_vocab_limit=False, num_threads=1, minloglevel=2, max_sentence_length=1 << 16,
    )
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
    }
    (folder / "model.json").write_text(json.dumps(info, indent=2))
    return info


def train(config: LmConfig, reference: LmReference, folder: Path) -> dict:
    """Train on the language's reference corpus (the cached, settings-keyed model)."""
    lines = list(reference_lines(reference, config.max_reference_chars))
    if not lines:
        raise ValueError(f"lm reference for {reference.language!r} ({reference_file(reference)}) has no text"
                         f" in fields {list(reference.fields)}")
    return train_lines(lines, folder, config.order, config.vocab_size, {
        "language": reference.language, "reference": str(reference_file(reference)),
        "reference_fields": list(reference.fields), "settings": config.model_settings()})


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


def load_or_train(config: LmConfig, language: str) -> NgramLanguageModel:
    """The language's model, trained into the cache the first time. Training writes a
    temporary folder renamed into place, so a crash or a concurrent trainer never leaves
    a half-written model behind (the loser of a race discards its copy)."""
    folder = model_folder(config, language)
    if not (folder / "model.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            train(config, config.reference(language), scratch)
            try:
                os.rename(scratch, folder)
            except OSError:
                if not (folder / "model.json").is_file():
                    raise
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
    return NgramLanguageModel(folder, config.backend)


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

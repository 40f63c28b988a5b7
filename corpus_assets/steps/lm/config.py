"""Settings of the shared n-gram language model (the ``lm`` section of the pipeline file).

One model per language, trained once on a reference corpus (CCNet: Wikipedia) and cached
under a folder named by a hash of everything that shapes it (these settings, the
reference file's bytes, the estimator's revision), so a settings change trains a new one
and an unchanged one is never retrained.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Optional

from pydantic import Field

from corpus_assets.steps.lm.kneser_ney import max_vocab_size
from corpus_assets.steps.setting_types import LanguageCode, NonNegativeInt

Order = Annotated[int, Field(ge=1, le=8)]
# SentencePiece needs a few pieces beyond its three specials
VocabSize = Annotated[int, Field(ge=8, le=1 << 16)]
Backend = Annotated[str, Field(pattern=r"^(auto|kenlm|numpy)$")]


@dataclass(frozen=True)
class LmReference:
    """A language's reference corpus: a JSONL(.gz) file; ``fields`` are joined by a newline.
    A relative ``path`` is under ``../shared/data`` beside the checkout (or
    ``$CORPUS_LM_DATA``)."""

    language: LanguageCode
    path: str
    fields: tuple[str, ...] = ("text",)

    def __post_init__(self):
        if isinstance(self.fields, str):
            object.__setattr__(self, "fields", (self.fields,))
        if not self.fields:
            raise ValueError(f"lm.references[{self.language}]: fields must name at least one field")


def _default_references() -> tuple[LmReference, ...]:
    return (LmReference("en", "reference/enwiki_articles.jsonl.gz", ("text",)),)


@dataclass(frozen=True)
class LmConfig:
    references: tuple[LmReference, ...] = field(default_factory=_default_references)
    # CCNet: 5-gram KenLM models
    order: Order = 5
    # SentencePiece unigram vocabulary. CCNet used larger ones on full Wikipedias; ids are
    # packed into 64 bits per n-gram, so order 5 allows at most 4,096 (order 4: 65,536).
    vocab_size: VocabSize = 4000
    # Reference characters used for training (0: all of the file).
    max_reference_chars: NonNegativeInt = 0
    # None: $CORPUS_LM_CACHE, else ~/.cache/corpus_assets/lm
    cache_dir: Optional[str] = None
    # Query engine: kenlm (CCNet's; the floor), numpy (the estimator's own tables, no
    # kenlm needed) or auto (kenlm when installed). All three give the same numbers.
    backend: Backend = "auto"

    def __post_init__(self):
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

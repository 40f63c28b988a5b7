"""corpus_assets: web crawls to LLM pretraining data as Dagster software-defined assets."""

__version__ = "0.1.0"

"""FineFineWeb's domain classification as plain steps (no Dagster): taxonomy, sentence
encoder, seed labellers (offline zero-shot + host rules; an OpenAI-compatible LLM),
fastText coarse recall, encoder + head fine recall, the rounds, and the analyses."""

from .config import DomainConfig
from .taxonomy import UNCLASSIFIED, Taxonomy, load_taxonomy

__all__ = ["DomainConfig", "Taxonomy", "UNCLASSIFIED", "load_taxonomy"]

"""Fine-tuning pool selection (docs/sft.md): the shape of the BetterMixture finalists'
recipes (Data-Juicer statistics, filters on them, exact + MinHash dedup, a quality score,
diversity selection under a token budget) as plain steps. Nothing here imports Dagster;
``corpus_assets/sft_stages.py`` runs them over stored partitions."""

"""The training mixture: token counting, the mixture plan (weights, budget, epochs), and
the shard writers. Plain Python; ``corpus_assets/mixture_stages.py`` reads the inputs and
calls these."""

"""Targeted selection: ZIP-FIT, DSIR, decontamination and the held-out n-gram LM.
Nothing in this package imports Dagster."""

"""Plain processing steps. Nothing in this package imports Dagster."""

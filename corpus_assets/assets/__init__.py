"""Dagster assets. Each one only wires: read upstream, call a stage, report metadata."""

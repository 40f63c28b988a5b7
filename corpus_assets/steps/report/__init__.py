"""The corpus report as plain Python (no Dagster): ``summary`` turns stored stats into the
funnel, removals, distributions and drift; ``render`` makes Markdown tables and PNG plots."""

"""RW-Filtered: quality signals (computed once) and the decisions made from them.

``signals``: :class:`SignalConfig`, :class:`QualitySignals` (step "quality_signals",
annotates only), :data:`SIGNAL_COLUMNS`, :func:`signals_fingerprint`.
``decisions``: :class:`FilterThresholds`, the filter steps, :func:`build_decision_steps`,
:func:`thresholds_fingerprint`. No Dagster import anywhere in this package.
"""

from corpus_assets.steps.quality.decisions import (
    DECISION_COLUMNS,
    REMOVAL_REASONS,
    C4Filter,
    FilterThresholds,
    FineWebFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    LineCorrections,
    PiiRedaction,
    build_decision_steps,
    thresholds_fingerprint,
)
from corpus_assets.steps.quality.signals import (
    PRESETS,
    SIGNAL_COLUMNS,
    SIGNAL_DEFAULTS,
    QualitySignals,
    SignalConfig,
    compute_signals,
    signal_arrow_schema,
    signals_fingerprint,
)

__all__ = [
    "DECISION_COLUMNS",
    "PRESETS",
    "REMOVAL_REASONS",
    "SIGNAL_COLUMNS",
    "SIGNAL_DEFAULTS",
    "C4Filter",
    "FilterThresholds",
    "FineWebFilter",
    "GopherQualityFilter",
    "GopherRepetitionFilter",
    "LineCorrections",
    "PiiRedaction",
    "QualitySignals",
    "SignalConfig",
    "build_decision_steps",
    "compute_signals",
    "signal_arrow_schema",
    "signals_fingerprint",
    "thresholds_fingerprint",
]

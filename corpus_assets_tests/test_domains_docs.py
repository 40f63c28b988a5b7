"""docs/domains.md states the settings' defaults as `name` (value): they match the code."""

from __future__ import annotations

import dataclasses
import re

from pathlib import Path
from corpus_assets.steps.domains.config import DomainConfig


def test_documented_defaults_match_the_code():
    text = (Path(__file__).resolve().parents[1] / "docs" / "domains.md").read_text()
    fields = {f.name: f.default for f in dataclasses.fields(DomainConfig)}
    stated = re.findall(r"`(\w+)` \(([\d.]+)\)", text)
    stated = [(name, float(value)) for name, value in stated if name in fields]
    assert {"seed_min_similarity", "seed_margin", "seed_negative_max_similarity"} <= {n for n, _ in stated}
    assert [(n, v) for n, v in stated if float(fields[n]) != v] == []

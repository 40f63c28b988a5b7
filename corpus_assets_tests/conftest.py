"""Shared fixtures. Tests that need the real sample data skip, with the reason, when
``../shared/data`` (beside the checkout) is absent; CI has it, so they run there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CORPUS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs the shared sample data at {path} (absent on this machine)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def sample_crawl(shared_data) -> Path:
    """Folder holding ``crawl-data/CC-MAIN-2024-10`` and ``crawl-data/CC-MAIN-2024-18``."""
    return _require(shared_data / "crawl-data").parent


@pytest.fixture(scope="session")
def edge_case_warcs(shared_data) -> Path:
    return _require(shared_data / "warc-edge-cases")


@pytest.fixture(scope="session")
def ut1_blocklists(shared_data) -> Path:
    return _require(shared_data / "blocklists" / "ut1")

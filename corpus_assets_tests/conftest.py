"""Shared fixtures. Tests that need the real sample data skip, with the reason, when
``../shared/data`` (beside the checkout) is absent; CI has it, so they run there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CORPUS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


# Fixtures that read ../shared/data. A test that uses any of them is marked skipped at
# collection, with the reason, when the folder is absent; when it is present, a missing
# part of it is an error (the fixtures assert), never a silent skip.
SHARED_FIXTURES = {"shared_data", "sample_crawl", "edge_case_warcs", "ut1_blocklists", "sample_run"}
SHARED_MISSING = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"needs the shared sample data at {SHARED_DATA} (absent on this machine)"
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SHARED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(SHARED_MISSING)


def _present(path: Path) -> Path:
    assert path.exists(), f"{path} is missing from the shared data"
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _present(SHARED_DATA)


@pytest.fixture(scope="session")
def sample_crawl(shared_data) -> Path:
    """Folder holding ``crawl-data/CC-MAIN-2024-10`` and ``crawl-data/CC-MAIN-2024-18``."""
    return _present(shared_data / "crawl-data").parent


@pytest.fixture(scope="session")
def edge_case_warcs(shared_data) -> Path:
    return _present(shared_data / "warc-edge-cases")


@pytest.fixture(scope="session")
def ut1_blocklists(shared_data) -> Path:
    return _present(shared_data / "blocklists" / "ut1")


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible HTTP server (moto's server mode) on loopback."""
    from moto.server import ThreadedMotoServer

    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture()
def s3_client(s3_endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture(scope="session")
def fixture_crawl(tmp_path_factory) -> Path:
    """The small crawl the project writes itself (no shared data needed)."""
    from corpus_assets.fixtures import build_fixture_crawl

    return build_fixture_crawl(tmp_path_factory.mktemp("fixture_crawl"))


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory, sample_crawl):
    """Both sample dumps through the whole pipeline, dedup included, once per session.
    Read-only for the tests that use it."""
    from types import SimpleNamespace

    from corpus_assets_tests.helpers import pipeline_run

    with pipeline_run(REPO_ROOT / "configs" / "sample.yaml", sample_crawl, tmp_path_factory.mktemp("sample_corpus"),
                      ["CC-MAIN-2024-10", "CC-MAIN-2024-18"]) as (defs, instance, config, store):
        yield SimpleNamespace(defs=defs, instance=instance, config=config, store=store)

"""Checks the production settings before starting the webserver, daemon or workers:

    python -m corpus_assets.ops_preflight

- ``$DAGSTER_PG_URL`` (deploy/dagster.postgres.yaml): SQLAlchemy needs the scheme
  ``postgresql+psycopg2://`` (or ``postgresql://``); the ``postgres://`` form that hosted
  databases print fails at instance load with a plugin error that names neither the
  variable nor the fix. Here it is refused with the corrected URL to export.
- ``$CORPUS_DASK_SCHEDULER``: the scheduler answers within a few seconds.

Exit status 0 when every set variable is usable, 1 otherwise (one line per problem).
docs/operations.md.
"""

from __future__ import annotations

import os
import sys
from typing import Optional
from urllib.parse import urlsplit

PG_URL_ENV = "DAGSTER_PG_URL"
GOOD_SCHEMES = ("postgresql", "postgresql+psycopg2")


def check_pg_url(url: str) -> Optional[str]:
    """None when ``url`` is a PostgreSQL URL SQLAlchemy accepts, else the problem with a hint
    (the corrected URL for the ``postgres://`` scheme). Never echoes the password."""
    parts = urlsplit(url.strip())
    if parts.scheme in GOOD_SCHEMES and parts.hostname:
        return None
    safe = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@") if parts.password else parts.netloc)
    if parts.scheme in ("postgres", "postgres+psycopg2"):
        fixed = safe._replace(scheme="postgresql+psycopg2").geturl()
        return (f"${PG_URL_ENV} uses the scheme {parts.scheme}://, which SQLAlchemy does not load "
                f"(NoSuchModuleError: sqlalchemy.dialects:postgres); export it as {fixed}"
                + (" (your password in place of ***)" if parts.password else ""))
    return (f"${PG_URL_ENV}={safe.geturl()!r} is not a PostgreSQL URL "
            f"(expected postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB)")


def main() -> int:
    problems = []
    url = os.environ.get(PG_URL_ENV, "").strip()
    if url:
        problem = check_pg_url(url)
        if problem:
            problems.append(problem)
    address = os.environ.get("CORPUS_DASK_SCHEDULER", "").strip()
    if address:
        import dask

        from corpus_assets.executors import DaskStepWaitError, connect

        try:
            with dask.config.set({"distributed.comm.timeouts.connect": "10s"}), connect(address) as client:
                workers = len(client.scheduler_info().get("workers", {}))
            print(f"CORPUS_DASK_SCHEDULER: {address} answers, {workers} worker(s)")
        except DaskStepWaitError as error:
            problems.append(str(error))
    for problem in problems:
        print(f"ops_preflight: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

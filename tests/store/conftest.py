"""Fixtures of the store tests: every test that takes `db_url` runs on SQLite and on PostgreSQL.

PostgreSQL is a real server: one throwaway cluster for the session (see ivr/testbed/postgres.py for
how it is started, also as root), a new database for each test. If it cannot start, the
PostgreSQL tests fail with the reason; they are never skipped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from ivr.flow.project import load_flows
from ivr.store.db import init_db
from ivr.testbed.postgres import PostgresServer, PostgresUnavailable, start_postgres

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    began = time.monotonic()
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL could not be started for the store tests: {exc}", pytrace=False)
    print(f"\nPostgreSQL {server.bindir.parent.name} started on 127.0.0.1:{server.port} "
          f"in {time.monotonic() - began:.2f} s")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    """A new, empty database: a file for SQLite, a database of the session's server for PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ivr.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def db(db_url):
    """`db_url` migrated to the newest schema: its Engine."""
    engine = init_db(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def line():
    """The example customer line: flows/ and config.yaml of the repository."""
    flows, config = load_flows([REPO / "flows"], REPO / "config.yaml")
    return flows, config

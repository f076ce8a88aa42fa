"""The migrations build exactly the schema of models.py, on SQLite and PostgreSQL; URLs resolve."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from ivr.settings.config import Config
from ivr.errors import StoreError
from ivr.store.db import create_db_engine, current_revision, database_url, head_revision, init_db, resolve_url
from ivr.store.models import Base


def test_migrated_schema_equals_the_models(db):
    with db.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []
    assert current_revision(db) == head_revision()


def test_every_qa_filter_has_an_index(db):
    indexes = {tuple(ix["column_names"]) for ix in inspect(db).get_indexes("calls")}
    for columns in [("started_at", "caller_digits"), ("department", "started_at"), ("agent", "started_at"),
                    ("outcome", "started_at"), ("survey_score", "started_at"), ("reviewed", "started_at"),
                    ("duration",), ("caller_digits",), ("uniqueid",)]:
        assert columns in indexes
    assert ("node", "flow", "call_id") in {tuple(ix["column_names"]) for ix in inspect(db).get_indexes("call_nodes")}
    assert ("tag", "call_id") in {tuple(ix["column_names"]) for ix in inspect(db).get_indexes("call_tags")}


def test_sqlite_keeps_a_calls_events_together(tmp_path):
    engine = init_db(f"sqlite:///{tmp_path / 'ivr.db'}")
    with engine.connect() as connection:
        sql = dict(connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all())
    for table in ("call_events", "call_nodes", "call_tags"):
        assert sql[table].rstrip().endswith("WITHOUT ROWID"), sql[table]
    engine.dispose()


def test_init_db_twice_is_harmless(db_url):
    init_db(db_url).dispose()
    engine = init_db(db_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_downgrade_removes_everything(db):
    from alembic import command

    from ivr.store.db import migration_config

    cfg = migration_config()
    with db.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "base")
    assert set(inspect(db).get_table_names()) <= {"alembic_version"}


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    engine = init_db(f"sqlite:///{tmp_path / 'ivr.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000
    engine.dispose()


def test_a_relative_sqlite_path_is_in_the_installation_folder(tmp_path):
    config = Config(raw={"database": "sqlite:///data/ivr.db"}, root=tmp_path)
    url = database_url(config)
    assert Path(url.database) == tmp_path / "data" / "ivr.db"
    engine = init_db(url)
    assert (tmp_path / "data" / "ivr.db").is_file()
    engine.dispose()


def test_default_database_is_sqlite_ivr_db_in_the_installation(tmp_path):
    assert Path(database_url(Config(root=tmp_path)).database) == tmp_path / "ivr.db"


def test_postgresql_urls_get_the_psycopg_driver_and_secrets_from_the_environment(monkeypatch):
    monkeypatch.setenv("IVR_DB_PASSWORD", "s3cret")
    url = resolve_url("postgresql://ivr:${IVR_DB_PASSWORD}@db.example/ivr")
    assert url.drivername == "postgresql+psycopg"
    assert url.password == "s3cret"


@pytest.mark.parametrize("url, message", [
    ("mysql://x@y/z", "unsupported database"),
    ("not a url", "not a database URL"),
    ("postgresql://ivr:${IVR_NO_SUCH_VAR}@db/ivr", "IVR_NO_SUCH_VAR"),
])
def test_bad_urls_are_store_errors(url, message):
    with pytest.raises(StoreError, match=message):
        resolve_url(url)


def test_an_unreachable_server_is_a_store_error():
    from tests_support import closed_port

    with pytest.raises(StoreError, match="cannot migrate"):
        init_db(create_db_engine(f"postgresql+psycopg://ivr@127.0.0.1:{closed_port()}/ivr",
                                 connect_args={"connect_timeout": 2}))


def test_the_newest_migration_is_read_without_alembic_as_alembic_reads_it():
    from ivr.store.db import newest_shipped

    assert newest_shipped() == head_revision()


def test_a_database_at_the_newest_schema_opens_without_loading_alembic(tmp_path):
    # a long-running server should not carry Alembic (some 11 MB) for a check that finds nothing to do
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    init_db(url).dispose()
    code = ("import sys; from ivr.store.db import init_db; init_db(sys.argv[1]).dispose(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))")
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    fresh = f"sqlite:///{tmp_path / 'new.db'}"  # a new database is migrated as before
    out = subprocess.run([sys.executable, "-c", code, fresh], capture_output=True, text=True, check=True).stdout
    assert "alembic" in out and current_revision(create_db_engine(fresh)) == head_revision()

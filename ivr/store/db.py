"""Opening the database: URLs, engines, sessions, and migrations to the newest schema.

config.yaml's `database:` is an SQLAlchemy URL. SQLite is the default
(`sqlite:///ivr.db`, a path relative to the installation folder, config.yaml's); for
PostgreSQL write `postgresql+psycopg://user:${IVR_DB_PASSWORD}@host/db` (a plain
`postgresql://` URL gets the psycopg driver too). `${NAME}` is read from the environment.

SQLite connections run in WAL mode (readers never wait for the writer), with foreign keys
on and a busy timeout, and with transactions begun by SQLAlchemy, so migrations are
transactional there too.

An SQLite database file holds password hashes, call data and the audit log: it is made
0640 before SQLite opens it (SQLite gives its -wal and -shm files the mode of the database
file), in folders made 0750; one found open to others is closed to them, with a warning
(`ivr.filemodes`).

`init_db(url)` brings a database to the newest schema with the Alembic migrations shipped
in `ivr/store/migrations` (no alembic.ini). A new migration, after a change of models.py:
`python -m ivr.store revision -m "what changed"`.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Optional, Union

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy import text as sql_text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from ivr.filemodes import close_to_others, create_private_file, private_dir
from ivr.settings.config import Config, expand_env
from ivr.errors import MissingSecret, StoreError
from ivr.events import jsonable

DEFAULT_URL = "sqlite:///ivr.db"
SQLITE_BUSY_MS = 5000  # a writer waits this long for another one before "database is locked"
MIGRATIONS = "ivr.store:migrations"

UrlLike = Union[str, URL]
log = logging.getLogger(__name__)


def database_url(config: Optional[Config] = None) -> URL:
    """The installation's database URL (config.yaml's `database:`, else SQLite ivr.db), resolved."""
    raw = (config.raw.get("database") if config is not None else None) or DEFAULT_URL
    if not isinstance(raw, str):
        raise StoreError(f"database in config.yaml must be a URL such as {DEFAULT_URL}, not {raw!r}")
    return resolve_url(raw, config.root if config is not None else None)


def resolve_url(url: UrlLike, root: Optional[Path] = None) -> URL:
    """`url` parsed, with ${NAME} expanded, the psycopg driver for PostgreSQL, and a relative
    SQLite path made absolute against `root` (the installation folder; default: cwd)."""
    if isinstance(url, str):
        try:
            url = make_url(expand_env(url))
        except MissingSecret as exc:
            raise StoreError(str(exc)) from None
        except ArgumentError as exc:
            raise StoreError(f"not a database URL: {exc}") from None
    backend = url.get_backend_name()
    if backend == "postgresql" and url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    elif url.drivername == "postgres":
        raise StoreError("write postgresql+psycopg://..., not postgres://...")
    if backend == "sqlite":
        if not _sqlite_in_memory(url) and not url.database.startswith("file:") and not Path(url.database).is_absolute():
            url = url.set(database=str((root or Path.cwd()) / url.database))
    elif backend != "postgresql":
        raise StoreError(f"unsupported database {backend!r}: use sqlite:///FILE or postgresql+psycopg://...")
    return url


def safe_url(url: UrlLike) -> str:
    """The URL as it may be logged: without the password."""
    return make_url(url).render_as_string(hide_password=True) if isinstance(url, str) else url.render_as_string(hide_password=True)


def _sqlite_in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in (url.database or "")


def json_dumps(value: Any) -> str:
    """JSON for the database: ASCII only, so untrusted text can never upset a driver."""
    return json.dumps(value, default=jsonable)


def create_db_engine(url: UrlLike, *, root: Optional[Path] = None, busy_ms: int = SQLITE_BUSY_MS,
                     **kwargs: Any) -> Engine:
    """An Engine for `url` (resolved with `resolve_url`), with SQLite's pragmas set."""
    url = resolve_url(url, root)
    kwargs.setdefault("json_serializer", json_dumps)
    if url.get_backend_name() == "sqlite":
        if not _sqlite_in_memory(url) and not url.database.startswith("file:"):
            _private_sqlite_file(Path(url.database))
        if _sqlite_in_memory(url):  # one shared connection, or each thread would see its own database
            kwargs.setdefault("poolclass", StaticPool)
            kwargs.setdefault("connect_args", {"check_same_thread": False})
        engine = create_engine(url, **kwargs)
        _sqlite_pragmas(engine, busy_ms, wal=not _sqlite_in_memory(url))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _private_sqlite_file(path: Path) -> None:
    """Make the database file 0640 before SQLite makes it 0644; close an old one to others."""
    try:
        private_dir(path.parent)
        create_private_file(path)
    except OSError as exc:  # SQLite's own error says it better when it opens the file
        log.debug("cannot prepare %s: %s", path, exc)
        return
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        said = close_to_others(part)
        if said:
            log.warning("the database: %s", said)


def _sqlite_pragmas(engine: Engine, busy_ms: int, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite's own BEGIN handling off: see _on_begin
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if wal:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; never corrupt
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # BEGIN IMMEDIATE (execution option sqlite_begin="IMMEDIATE") for a transaction that
        # reads, then writes: a deferred one that read before another connection wrote cannot
        # take the write lock later (SQLITE_BUSY at once, without the busy wait)
        mode = connection.get_execution_options().get("sqlite_begin", "")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def dialect_insert(name: str) -> Any:
    """The dialect's INSERT, which takes ON CONFLICT (SQLite, PostgreSQL)."""
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    raise StoreError(f"the database must be SQLite or PostgreSQL, not {name}")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on `engine` (objects stay readable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)


def migration_config(url: Optional[UrlLike] = None) -> Any:
    """Alembic's Config for the shipped migrations (no alembic.ini needed)."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS)
    if url is not None:  # for env.py when no connection is handed over (offline SQL)
        text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", text.replace("%", "%%"))
    return cfg


def init_db(url: Union[UrlLike, Engine], *, root: Optional[Path] = None) -> Engine:
    """Bring the database to the newest schema (creating it if new); return its Engine.

    Raises StoreError when the database cannot be reached or migrated.
    """
    engine = url if isinstance(url, Engine) else create_db_engine(url, root=root)
    if engine.url.get_backend_name() == "sqlite" and not _sqlite_in_memory(engine.url) \
            and not engine.url.database.startswith("file:"):
        private_dir(Path(engine.url.database).parent)
    if _at_newest(engine):  # the usual start: Alembic (some 11 MB to a long-running server) stays unloaded
        return engine
    from alembic import command

    cfg = migration_config()
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the database {safe_url(engine.url)}: {exc}") from exc
    return engine


def newest_shipped() -> str:
    """The newest migration shipped, read from the migration files' `revision` and
    `down_revision` lines (the one no other names as its predecessor) without Alembic."""
    revision = re.compile(r'^(down_revision|revision)\s*(?::[^=]*)?=\s*["\']?([\w]+|None)["\']?', re.M)
    revisions, predecessors = set(), set()
    for path in (Path(__file__).parent / "migrations" / "versions").glob("*.py"):
        found = dict((m.group(1), m.group(2)) for m in revision.finditer(path.read_text(encoding="utf-8")))
        revisions.add(found["revision"])
        predecessors.add(found.get("down_revision"))
    heads = revisions - predecessors
    assert len(heads) == 1, f"the shipped migrations have {len(heads)} heads"
    return heads.pop()


def _at_newest(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            found = connection.execute(sql_text("SELECT version_num FROM alembic_version")).scalars().all()
    except SQLAlchemyError:  # a new database (or one Alembic must look at): migrate
        return False
    return found == [newest_shipped()]


def current_revision(engine: Engine) -> Optional[str]:
    """The migration the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest migration shipped."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(migration_config()).get_current_head()
    assert head is not None
    return head


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())

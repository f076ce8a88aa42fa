"""The installation's database for the recordings commands, and the queries they share.

Opened like `ivr serve` opens it: config.yaml's `database:`, migrated to the newest schema
(Alembic) first. The live runtime writes to the same database at the same time, so the
commands keep their write transactions short: files are read between transactions.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence, TypeVar

from sqlalchemy import Engine

from ivr.settings.config import Config
from ivr.store.db import database_url, dialect_insert, init_db

T = TypeVar("T")
BATCH = 200  # files per transaction; also the size of IN (...) lists


def open_database(config: Config) -> Engine:
    """The installation's database, migrated to the newest schema (StoreError if it cannot be)."""
    return init_db(database_url(config), root=config.root)


def upsert_for(engine_or_conn: Any) -> Any:
    """The dialect's INSERT that takes ON CONFLICT (SQLite, PostgreSQL)."""
    return dialect_insert(engine_or_conn.dialect.name)


def batches(items: Iterable[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    """`items` in lists of `size`."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch

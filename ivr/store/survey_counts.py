"""The survey's sampling counter in the database (the engine's `SurveyCounter`, for live calls).

Each call reaching a survey node adds one to its row of `survey_counts` with one upsert
(`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`) in a transaction of its own: the row is
locked for the statement on PostgreSQL and the database is on SQLite (BEGIN IMMEDIATE), so
several engines on one database never count a call twice or lose one, and a restart of
`ivr serve` counts on where it stopped.

The statement runs on threads of this counter's own, never on the caller's event loop;
a database that hangs ties up those threads, not the loop or other work (the engine's
sampler stops waiting after its time-out and counts in memory meanwhile).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ivr.errors import StoreError
from ivr.store.db import dialect_insert, safe_url
from ivr.store.models import SurveyCount

THREADS = 2  # calls reach the survey one at a time, mostly; a hung database holds these only


class DatabaseSurveyCounter:
    """Counts the calls reaching each survey node in `survey_counts` (the database must be migrated)."""

    def __init__(self, engine: Engine, *, threads: int = THREADS, own_engine: bool = False):
        self.engine = engine
        self._own_engine = own_engine
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="survey-count")
        table = SurveyCount.__table__
        insert = dialect_insert(engine.dialect.name)(table).values(calls=1)
        self._statement = insert.on_conflict_do_update(
            index_elements=[table.c.flow, table.c.node], set_={"calls": table.c.calls + 1},
        ).returning(table.c.calls)

    def increment_now(self, flow: str, node: str) -> int:
        """Add one call to the count of `node` of `flow`; the new count. Blocks: not on the loop."""
        try:
            with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
                return int(conn.execute(self._statement, {"flow": flow, "node": node}).scalar_one())
        except SQLAlchemyError as exc:
            raise StoreError(f"survey count in {safe_url(self.engine.url)} failed: {exc}") from exc

    async def increment(self, flow: str, node: str) -> int:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.increment_now, flow, node)

    def close(self) -> None:
        """Stop the threads and close the engine if it is the counter's. A count still running on a
        hung database is not waited for: shutting down must not hang with it."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._own_engine:
            self.engine.dispose()

"""The webhook outbox's prune on a big table: batches against one DELETE.

Fills a fresh database with N delivered webhook rows older than `keep_delivered` (default
200,000: some six weeks of a 5,000-calls-a-day site's) and M that must stay (recent
deliveries and undelivered rows a year old), then times `prune_delivered` (1,000 rows a
transaction) with every DELETE timed on its own, checks what stayed, fills the table
again and times one single DELETE of the same rows: how long one transaction would hold
the table (on SQLite, the database's one write lock, which the call writer waits for at
most 5 s).

    .venv/bin/python bench/outbox_prune_bench.py                 # SQLite in a temp folder
    .venv/bin/python bench/outbox_prune_bench.py --postgres      # and a throwaway PostgreSQL, same run
    .venv/bin/python bench/outbox_prune_bench.py --url postgresql+psycopg://ivr@127.0.0.1:5432/ivr_bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402

from ivr.store import outbox  # noqa: E402
from ivr.store.db import init_db  # noqa: E402
from ivr.store.models import Call, WebhookDelivery  # noqa: E402
from ivr.store.outbox_prune import BATCH, prune_delivered  # noqa: E402

NOW = dt.datetime.now(dt.timezone.utc)
DAY = dt.timedelta(days=1)
CUTOFF = NOW - 30 * DAY
CHUNK = 10_000  # rows inserted per transaction while filling


def fill(db: sa.Engine, prefix: str, n: int, delivered: Optional[dt.datetime]) -> None:
    """`n` ended calls with their outbox rows, delivered at `delivered` (None: waiting)."""
    values: dict[str, Any] = ({"delivered_at": delivered, "attempts": 1, "last_status": 204} if delivered
                              else {"attempts": 9, "last_status": 503, "next_at": NOW + DAY})
    for start in range(0, n, CHUNK):
        ids = [f"{prefix}{i:07d}" for i in range(start, min(n, start + CHUNK))]
        created = (delivered or NOW - 365 * DAY) - dt.timedelta(minutes=1)
        with db.begin() as conn:
            conn.execute(sa.insert(Call.__table__), [{"id": i, "flow": "main", "started_at": created,
                                                      "outcome": "answered"} for i in ids])
            outbox.queue_ended(conn, ids, created)
            conn.execute(sa.update(WebhookDelivery).where(WebhookDelivery.call_id.in_(ids)).values(**values))


def fill_all(db: sa.Engine, old: int, stay: int) -> None:
    fill(db, "old", old, NOW - 40 * DAY)
    fill(db, "recent", stay - stay // 3, NOW - 5 * DAY)
    fill(db, "waiting", stay // 3, None)


def clear(db: sa.Engine) -> None:
    with db.begin() as conn:
        conn.execute(sa.delete(WebhookDelivery))
        conn.execute(sa.delete(Call))


def rows(db: sa.Engine) -> int:
    with db.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery)) or 0


class DeleteTimer:
    """The time of each DELETE statement the engine runs, from the driver's execute."""

    def __init__(self, db: sa.Engine):
        self.times: list[float] = []
        self._started = 0.0
        sa.event.listen(db, "before_cursor_execute", self._before)
        sa.event.listen(db, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, *args: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, conn, cursor, statement, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            self.times.append(time.perf_counter() - self._started)


def measure(url: str, old: int, stay: int) -> tuple[str, bool]:
    """The figures of one database, as printed lines; and whether the right rows stayed."""
    db = init_db(url)
    try:
        clear(db)
        fill_all(db, old, stay)
        timer = DeleteTimer(db)
        started = time.perf_counter()
        deleted, batches = prune_delivered(db, CUTOFF)
        batched = time.perf_counter() - started
        left = rows(db)
        each = sorted(timer.times)
        clear(db)
        fill_all(db, old, stay)
        started = time.perf_counter()
        with db.begin() as conn:
            conn.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.delivered_at < CUTOFF))
        single = time.perf_counter() - started
        clear(db)
    finally:
        db.dispose()
    ok = deleted == old and left == stay
    return (f"outbox prune on {db.dialect.name}: {old:,} old delivered rows, {stay:,} that stay\n"
            f"  batched   {deleted:,} deleted in {batches} batches of {BATCH:,} in {batched:.2f} s; "
            f"each DELETE p50 {statistics.median(each) * 1000:.1f} ms, max {each[-1] * 1000:.1f} ms\n"
            f"  single    one DELETE of the same rows: {single:.2f} s in one transaction\n"
            f"  kept      {left:,} rows (expected {stay:,}): {'ok' if ok else 'WRONG'}"), ok


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: SQLite in a temp folder)")
    parser.add_argument("--postgres", action="store_true",
                        help="also a throwaway PostgreSQL of the test bed, in the same run")
    parser.add_argument("--rows", type=int, default=200_000, help="old delivered rows to delete (default 200,000)")
    parser.add_argument("--stay", type=int, default=21_000, help="rows that must stay (default 21,000)")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="outbox-prune-") as folder:
        results.append(measure(args.url or f"sqlite:///{Path(folder) / 'bench.db'}", args.rows, args.stay))
    if args.postgres:
        from ivr.testbed.postgres import start_postgres

        server = start_postgres()
        try:
            results.append(measure(server.create_database(), args.rows, args.stay))
        finally:
            server.stop()
    for text, _ok in results:
        print(text)
    return 0 if all(ok for _text, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())

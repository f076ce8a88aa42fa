"""Retention of the CRM webhook's outbox: delivered rows older than config.yaml's
`crm.webhook.keep_delivered` (30 days by default) are deleted; undelivered rows never are,
whatever their age (they wait for the CRM).

A site with 5,000 calls a day adds 1.8 million rows a year, so the first prune of an old
table has much to delete. It deletes in batches, each its own short transaction, oldest
delivery first (the index on `delivered_at` finds them). One huge DELETE would hold
SQLite's one write lock for longer than the call writer waits for it (its records would
go to the spool), and on PostgreSQL be one long transaction that holds back vacuum and is
undone whole if the prune stops midway. On PostgreSQL each batch takes its rows `FOR
UPDATE SKIP LOCKED`, so two prunes at once (two `ivr web`, or one and a cron job) take
different rows and never wait on, or fail on, each other; the DELETE repeats the condition,
so a row an admin has just cleared to send again (`delivered_at` set to NULL) stays.

`ivr web` runs it every hour (ivr.web.housekeeping); `ivr webhook prune` from cron.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import Engine, and_, delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from ivr.errors import StoreError
from ivr.settings.config import Config
from ivr.store.db import database_url, init_db, safe_url
from ivr.store.models import WebhookDelivery, to_utc
from ivr.store.outbox import backlog

BATCH = 1000  # rows per transaction: a few milliseconds of locks on either database


@dataclass(frozen=True)
class PruneReport:
    keep: Optional[float]  # seconds a delivered row stays; None: kept for ever, nothing pruned
    cutoff: Optional[dt.datetime]  # rows delivered before this go
    dry_run: bool
    deleted: int = 0  # rows deleted (on a dry run: that would be)
    batches: int = 0  # transactions that deleted them
    undelivered: int = 0  # rows still waiting for the CRM, kept

    def summary(self) -> str:
        """One line: what went (or would go) and what stays."""
        if self.keep is None or self.cutoff is None:
            return ("crm.webhook.keep_delivered is null in config.yaml: delivered webhook rows are kept for ever; "
                    "nothing pruned")
        verb = "would delete" if self.dry_run else "deleted"
        return (f"{verb} {self.deleted} delivered webhook row(s) from before {self.cutoff:%Y-%m-%d %H:%M} UTC "
                f"(keep_delivered {_span(self.keep)}); {self.undelivered} undelivered kept")


def prune_outbox(config: Config, *, dry_run: bool = False, now: Optional[dt.datetime] = None,
                 engine: Optional[Engine] = None, batch: int = BATCH) -> PruneReport:
    """Delete the outbox's rows delivered longer than `crm.webhook.keep_delivered` ago (none
    with `dry_run`); the report. StoreError when the database fails: what was deleted by
    then stays deleted, the next prune goes on from there."""
    keep = config.crm.keep_delivered
    if keep is None:
        return PruneReport(None, None, dry_run)
    cutoff = (to_utc(now) if now else dt.datetime.now(dt.timezone.utc)) - dt.timedelta(seconds=keep)
    own_engine = engine is None
    db = engine if engine is not None else init_db(database_url(config), root=config.root)
    try:
        if dry_run:
            deleted, batches = count_delivered_before(db, cutoff), 0
        else:
            deleted, batches = prune_delivered(db, cutoff, batch=batch)
        return PruneReport(keep, cutoff, dry_run, deleted, batches, backlog(db))
    except SQLAlchemyError as exc:
        raise StoreError(f"webhook outbox prune: the database {safe_url(db.url)} failed: {exc}") from exc
    finally:
        if own_engine:
            db.dispose()


def prune_delivered(engine: Engine, before: dt.datetime, *, batch: int = BATCH) -> tuple[int, int]:
    """Delete rows delivered before `before`, `batch` rows per transaction; (rows, batches)."""
    W = WebhookDelivery
    old = _delivered_before(before)
    oldest = select(W.id).where(old).order_by(W.delivered_at, W.id).limit(batch)
    if engine.dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    # the condition again on the DELETE itself: PostgreSQL re-checks it on a row changed meanwhile
    statement = delete(W).where(W.id.in_(oldest.scalar_subquery()), old)
    deleted = batches = 0
    while True:
        with engine.begin() as conn:
            count = conn.execute(statement).rowcount
        deleted += count
        batches += 1 if count else 0
        # a short batch: nothing older is left, or another prune holds the rest (and deletes them)
        if count < batch:
            return deleted, batches


def count_delivered_before(engine: Engine, before: dt.datetime) -> int:
    """Rows a prune with this cutoff would delete."""
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(WebhookDelivery).where(_delivered_before(before))) or 0


def _delivered_before(before: dt.datetime) -> ColumnElement[bool]:
    W = WebhookDelivery
    return and_(W.delivered_at.is_not(None), W.delivered_at < to_utc(before))


def _span(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    return f"{days}d" if not rest else f"{int(seconds) // 3600}h"

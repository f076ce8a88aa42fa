"""Pending call-backs in the database: booking, claiming a try, its result, recovery.

The live line's scheduler (ivr.live.callbacks) works through these functions only, so
what it promises holds across restarts and several engines on one database:

- `book` stores a call-back while the caller is still on the line, with the node (the
  Asterisk, config.yaml asterisk.nodes) the call came from; nothing is dialled yet. The number must already be digits (with an optional leading '+'): it is checked
  again here, as it will reach a dial string.
- `claim` takes one pending call-back for one try: `UPDATE ... WHERE status = 'pending'`
  and the attempt row in one transaction (BEGIN IMMEDIATE on SQLite; the row lock on
  PostgreSQL, whose second UPDATE re-reads the status and finds it taken). Only the
  engine whose claim committed dials; a second engine, or a restarted one, never dials
  the same try.
- `finish` records what Asterisk said (OriginateResponse): answered -> done; anything
  else -> pending again after `retry_pause`, or failed after the last try.
- `recover` closes tries left ringing by an engine that stopped (a crash, a kill) as
  interrupted: counted as a try and retried after the pause, never redialled at once.
  Which engine's try it was does not matter (several engines may run on one host): a try
  is closed only once it cannot still ring, i.e. it began before `stale_before`, which the
  scheduler sets to now - (ring time + a margin).
- `expire` gives up on call-backs whose promise passed long ago (a closed weekend is
  waited out; a week is not); `cancel` is a person's decision, noted with their name.

Every function runs its own short transaction and blocks: call it off the event loop.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
import socket
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ivr.errors import StoreError
from ivr.store.db import safe_url
from ivr.store.models import Callback, CallbackAttempt

NUMBER = re.compile(r"\+?[0-9]{3,20}")
ANSWERED, BUSY, NO_ANSWER, FAILED, INTERRUPTED = "answered", "busy", "no answer", "failed", "interrupted"
PENDING, DIALLING, DONE, FAILED_STATUS, EXPIRED, CANCELLED = "pending", "dialling", "done", "failed", "expired", "cancelled"
OPEN_STATUSES = (PENDING, DIALLING)


@dataclass(frozen=True)
class Booking:
    """A call-back as the call booked it."""

    call_id: str
    number: str
    department: str
    queue: str
    place_at: dt.datetime
    booked_at: dt.datetime
    due_by: dt.datetime
    schedule: Optional[str] = None
    max_attempts: int = 3
    retry_pause: float = 300.0
    priority: int = 1
    node: Optional[str] = None  # the Asterisk whose queue it waits in (None: the only one)


@dataclass(frozen=True)
class Pending:
    """A pending call-back that may be tried now."""

    id: int
    number: str
    department: str
    queue: str
    schedule: Optional[str]
    place_at: dt.datetime
    due_by: dt.datetime
    attempts: int
    max_attempts: int


@dataclass(frozen=True)
class Claim:
    """One try, claimed: this engine dials it, nobody else."""

    callback_id: int
    attempt_id: int
    seq: int
    number: str
    queue: str
    priority: int
    reason: str


def default_owner() -> str:
    """This process, for the record of who dialled a try: host:pid:random (unique even for
    two engines on one host, or a pid reused after a restart)."""
    return f"{socket.gethostname() or 'ivr'}:{os.getpid()}:{secrets.token_hex(3)}"


class CallbackStore:
    """The call-backs of one database (migrated); `owner` names this engine in attempt rows.

    With several Asterisks each node's scheduler has a store of its `node`: it sees only
    that node's call-backs, and the first node's (`adopt` = every configured node's name)
    those of no node or of a node config.yaml no longer lists, so none is left behind.
    Without `node` the store sees them all (one Asterisk)."""

    def __init__(self, engine: Engine, owner: Optional[str] = None, *, node: Optional[str] = None,
                 adopt: Optional[tuple[str, ...]] = None):
        self.engine = engine
        self.owner = owner or default_owner()
        self.node = node
        self.adopt = adopt

    def _mine(self) -> Any:
        """The call-backs this store's scheduler dials (a WHERE clause)."""
        if self.node is None:
            return sa.true()
        mine = Callback.node == self.node
        if self.adopt is not None:
            mine = sa.or_(mine, Callback.node.is_(None), Callback.node.not_in(self.adopt))
        return mine

    def _begin(self) -> Any:
        return _transaction(self.engine)

    def _read(self) -> Any:
        return _transaction(self.engine, write=False)

    # --- the call's side ---------------------------------------------------------------------
    def book(self, booking: Booking) -> int:
        """Store a pending call-back; its id."""
        if not isinstance(booking.number, str) or not NUMBER.fullmatch(booking.number):
            raise StoreError("refused to book a call-back: the number is not 3 to 20 digits with an optional '+'")
        if booking.max_attempts < 1:
            raise StoreError("refused to book a call-back that may never be tried (max_attempts < 1)")
        row = {
            "call_id": booking.call_id, "number": booking.number, "department": booking.department,
            "queue": booking.queue, "schedule": booking.schedule, "place_at": booking.place_at,
            "booked_at": booking.booked_at, "due_by": booking.due_by, "status": PENDING, "attempts": 0,
            "max_attempts": booking.max_attempts, "retry_pause": float(booking.retry_pause),
            "priority": booking.priority, "next_at": booking.booked_at, "updated_at": booking.booked_at, "note": "",
            "node": booking.node,
        }
        with self._begin() as conn:
            return int(conn.execute(sa.insert(Callback).values(**row).returning(Callback.id)).scalar_one())

    # --- the scheduler's side -----------------------------------------------------------------
    def pending(self, now: dt.datetime, limit: int = 500) -> list[Pending]:
        """Pending call-backs whose pause is over, oldest place in line first, at most `limit`
        (read only: no write lock taken)."""
        query = (sa.select(Callback.id, Callback.number, Callback.department, Callback.queue, Callback.schedule,
                           Callback.place_at, Callback.due_by, Callback.attempts, Callback.max_attempts)
                 .where(Callback.status == PENDING, Callback.next_at <= now, self._mine())
                 .order_by(Callback.place_at, Callback.id).limit(limit))
        with self._read() as conn:
            return [Pending(**row) for row in conn.execute(query).mappings()]

    def claim(self, callback_id: int, reason: str, now: dt.datetime) -> Optional[Claim]:
        """Take one try of a pending call-back: None if another engine (or an earlier run) has
        it, or it is no longer pending. Committed before anything is dialled."""
        with self._begin() as conn:
            taken = conn.execute(
                sa.update(Callback)
                .where(Callback.id == callback_id, Callback.status == PENDING, Callback.next_at <= now)
                .values(status=DIALLING, attempts=Callback.attempts + 1, updated_at=now)
                .returning(Callback.attempts, Callback.number, Callback.queue, Callback.priority)
            ).first()
            if taken is None:
                return None
            attempt_id = conn.execute(sa.insert(CallbackAttempt).values(
                callback_id=callback_id, seq=taken.attempts, reason=reason, owner=self.owner, started_at=now,
                detail="").returning(CallbackAttempt.id)).scalar_one()
        return Claim(callback_id, int(attempt_id), int(taken.attempts), taken.number, taken.queue, int(taken.priority),
                     reason)

    def finish(self, attempt_id: int, result: str, now: dt.datetime, *, asterisk_reason: Optional[str] = None,
               uniqueid: Optional[str] = None, channel: Optional[str] = None, detail: str = "",
               retry_not_before: Optional[dt.datetime] = None) -> str:
        """Record a try's result; the call-back's status after it. The next try comes after the
        pause, and not before `retry_not_before` (a try that may still ring)."""
        with self._begin() as conn:
            closed = conn.execute(
                sa.update(CallbackAttempt).where(CallbackAttempt.id == attempt_id, CallbackAttempt.result.is_(None))
                .values(result=result, ended_at=now, asterisk_reason=asterisk_reason, uniqueid=uniqueid,
                        channel=channel, detail=detail[:500])
                .returning(CallbackAttempt.callback_id, CallbackAttempt.seq)).first()
            if closed is None:
                return self._late_result(conn, attempt_id, result, now, asterisk_reason, uniqueid, channel)
            return _after_try(conn, closed.callback_id, result, now, retry_not_before)

    def _late_result(self, conn: Any, attempt_id: int, result: str, now: dt.datetime, asterisk_reason: Optional[str],
                     uniqueid: Optional[str], channel: Optional[str]) -> str:
        """A result for a try already closed as interrupted (another engine recovered it while
        it rang): an answer still counts, as long as no later try was made."""
        attempt = conn.execute(sa.select(CallbackAttempt.callback_id, CallbackAttempt.seq)
                               .where(CallbackAttempt.id == attempt_id)).first()
        if attempt is None:
            raise StoreError(f"no call-back attempt {attempt_id}")
        if result == ANSWERED:
            conn.execute(sa.update(CallbackAttempt).where(CallbackAttempt.id == attempt_id)
                         .values(result=ANSWERED, asterisk_reason=asterisk_reason, uniqueid=uniqueid, channel=channel,
                                 detail="answered after it was taken for interrupted"))
            conn.execute(sa.update(Callback).where(Callback.id == attempt.callback_id, Callback.status == PENDING,
                                                   Callback.attempts == attempt.seq)
                         .values(status=DONE, finished_at=now, updated_at=now))
        return str(conn.execute(sa.select(Callback.status).where(Callback.id == attempt.callback_id)).scalar_one())

    def recover(self, now: dt.datetime, *, stale_before: dt.datetime) -> int:
        """Close as interrupted the open tries of any engine begun before `stale_before` (they
        cannot ring any more: their engine stopped, or lost the answer); how many. A try that
        may still ring is never closed, whoever's it is."""
        where = sa.and_(CallbackAttempt.result.is_(None), CallbackAttempt.started_at < stale_before)
        count = 0
        with self._begin() as conn:
            for attempt in conn.execute(sa.select(CallbackAttempt.id, CallbackAttempt.callback_id).where(where)).all():
                conn.execute(sa.update(CallbackAttempt).where(CallbackAttempt.id == attempt.id)
                             .values(result=INTERRUPTED, ended_at=now,
                                     detail="the engine stopped while the phone rang; tried again after the pause"))
                _after_try(conn, attempt.callback_id, INTERRUPTED, now)
                count += 1
        return count

    def expire(self, now: dt.datetime, after: dt.timedelta) -> int:
        """Pending call-backs whose promise passed more than `after` ago: expired; how many."""
        with self._begin() as conn:
            return conn.execute(
                sa.update(Callback).where(Callback.status == PENDING, Callback.due_by < now - after)
                .values(status=EXPIRED, finished_at=now, updated_at=now,
                        note=f"not dialled within {_hours(after)} of the promised time")).rowcount

    def cancel(self, callback_id: int, by: str, now: dt.datetime) -> bool:
        """Cancel a pending call-back (not one that rings now); whether it was pending."""
        with self._begin() as conn:
            return cancel(conn, callback_id, by, now)


def cancel(conn: Any, callback_id: int, by: str, now: dt.datetime) -> bool:
    """Cancel a pending call-back in the caller's transaction (a connection or a session, e.g.
    a web request's); whether it was pending."""
    return conn.execute(
        sa.update(Callback).where(Callback.id == callback_id, Callback.status == PENDING)
        .values(status=CANCELLED, finished_at=now, updated_at=now, note=f"cancelled by {by}"[:200])
    ).rowcount == 1


def _after_try(conn: Any, callback_id: int, result: str, now: dt.datetime,
               not_before: Optional[dt.datetime] = None) -> str:
    """The call-back's status after a try that ended with `result` (retried after the pause,
    not before `not_before`)."""
    row = conn.execute(sa.select(Callback.status, Callback.attempts, Callback.max_attempts, Callback.retry_pause)
                       .where(Callback.id == callback_id)).first()
    if row is None or row.status != DIALLING:
        return row.status if row is not None else CANCELLED
    if result == ANSWERED:
        values: dict[str, Any] = {"status": DONE, "finished_at": now}
    elif row.attempts >= row.max_attempts:
        values = {"status": FAILED_STATUS, "finished_at": now,
                  "note": f"not answered in {row.attempts} tr{'y' if row.attempts == 1 else 'ies'}; the last: {result}"}
    else:
        retry = now + dt.timedelta(seconds=row.retry_pause)
        values = {"status": PENDING, "next_at": max(retry, not_before) if not_before is not None else retry}
    conn.execute(sa.update(Callback).where(Callback.id == callback_id).values(updated_at=now, **values))
    return str(values["status"])


def _hours(span: dt.timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} h"


@contextlib.contextmanager
def _transaction(engine: Engine, write: bool = True) -> Iterator[Any]:
    """A connection in a transaction: one that writes takes the write lock at once (BEGIN
    IMMEDIATE on SQLite), one that only reads takes none (DEFERRED); a database error
    becomes a StoreError naming the database (without its password)."""
    try:
        with engine.connect().execution_options(sqlite_begin="IMMEDIATE" if write else "DEFERRED") as conn, \
                conn.begin():
            yield conn
    except SQLAlchemyError as exc:
        raise StoreError(f"call-backs in {safe_url(engine.url)}: {exc}") from exc


# --- what QA pages show --------------------------------------------------------------------------
def of_call(session: Session, call_id: str) -> list[Callback]:
    """The call-backs booked on a call, with their tries."""
    return list(session.scalars(sa.select(Callback).where(Callback.call_id == call_id).order_by(Callback.id)))


def counts(session: Session, start: dt.datetime, end: dt.datetime, department: Optional[str] = None) -> dict[str, int]:
    """How many call-backs booked in [start, end) (of one department) are in each status."""
    where = [Callback.booked_at >= start, Callback.booked_at < end]
    if department:
        where.append(Callback.department == department)
    query = sa.select(Callback.status, sa.func.count()).where(*where).group_by(Callback.status)
    found = {status: int(n) for status, n in session.execute(query).all()}
    return {status: found.get(status, 0) for status in (PENDING, DIALLING, DONE, FAILED_STATUS, EXPIRED, CANCELLED)}


def open_ones(session: Session, limit: int = 100, department: Optional[str] = None) -> Iterator[Callback]:
    """Call-backs still to be made (pending or ringing now), oldest place in line first."""
    query = sa.select(Callback).where(Callback.status.in_(OPEN_STATUSES))
    if department:
        query = query.where(Callback.department == department)
    query = query.order_by(Callback.place_at, Callback.id).limit(limit)
    return iter(session.scalars(query).all())

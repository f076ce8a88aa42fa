"""No call left open: the engines alive on a database, and the calls a dead one left open.

Each `ivr serve` registers itself as a row of `engines` (its id host:pid:random, the
machine it runs on, its pid) and beats every few seconds (`beat`: `seen_at` = now). Every
calls row its writer writes names it (`calls.engine_id`). A call without an outcome is in
progress, or its engine died with it (SIGKILL, a crash, power loss). `repair` tells the
two apart and closes the second kind as `interrupted` at the call's last stored event:
an `interrupted` event (where the call was, and why) and its `outcome` event are added,
and the row gets its outcome, end and duration, as if the engine had ended it then.

An engine is taken for dead, and its open calls closed, only when
- its heartbeat is older than `stale` seconds (whoever looks, from any host), or
- it ran on this machine (same host name, boot and pid namespace) and its process is gone:
  at start-up right after a kill there is no need to wait for its heartbeat to go stale.
A live engine's calls are never touched. Each dead engine is claimed by deleting its row
in the transaction that closes its calls (BEGIN IMMEDIATE on SQLite, the row lock on
PostgreSQL): two engines repairing at once never close a call twice, as the call-backs'
`claim` (ivr.store.callbacks) never dials a try twice. Calls with no engine (written before
engines were recorded) are closed only by an engine that finds no other engine alive.

Every function runs its own short transaction and blocks: call it off the event loop.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ivr import events as ev
from ivr.errors import StoreError
from ivr.store.callbacks import default_owner
from ivr.store import outbox
from ivr.store.db import safe_url
from ivr.store.models import Call, CallEvent, EngineBeat

HEARTBEAT = 5.0  # seconds between two heartbeats of an engine
# seconds without a heartbeat after which an engine is taken for dead: several beats missed,
# so a database that stalls for a few seconds does not make a live engine look dead
STALE = 30.0
CRASHED = "the engine stopped without ending the call (killed or crashed); closed at its last event"
LEGACY = "the engine that ran it stopped without ending it; closed at its last event when another engine started"


def this_machine() -> str:
    """The host name, boot and pid namespace of this process: two engines with the same one
    see each other's pids, so a pid that is gone means that engine is gone."""
    parts = [socket.gethostname() or "ivr"]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return "|".join(parts)


def process_gone(pid: int) -> bool:
    """Whether no process has this pid (on this machine). Our own pid is alive: another engine
    in this process (tests run several), whose heartbeat says the rest."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: alive
        return False
    return False


@dataclass(frozen=True)
class Repaired:
    """One dead engine whose open calls were closed."""

    engine: Optional[str]  # None: calls that named no engine
    calls: int
    last_seen: Optional[dt.datetime]


class EngineRegistry:
    """This engine's row in `engines` (a migrated database), its heartbeat, and the repair of
    the calls of engines that died."""

    def __init__(self, engine: Engine, owner: Optional[str] = None, *, stale: float = STALE, outbox: bool = False):
        self.engine = engine
        self.outbox = outbox  # the calls it closes are queued for the CRM webhook (ivr.store.outbox)
        self.id = owner or default_owner()
        self.machine = this_machine()
        self.stale = stale

    def register(self, now: Optional[dt.datetime] = None) -> None:
        now = now or _now()
        with self._begin() as conn:
            conn.execute(sa.delete(EngineBeat).where(EngineBeat.id == self.id))
            conn.execute(sa.insert(EngineBeat).values(id=self.id, host=self.machine, pid=os.getpid(), started_at=now,
                                                      seen_at=now))

    def beat(self, now: Optional[dt.datetime] = None) -> bool:
        """Say this engine is alive; False when its row was gone (another engine took it for
        dead after a long stall): it is made again."""
        now = now or _now()
        with self._begin() as conn:
            if conn.execute(sa.update(EngineBeat).where(EngineBeat.id == self.id).values(seen_at=now)).rowcount:
                return True
            conn.execute(sa.insert(EngineBeat).values(id=self.id, host=self.machine, pid=os.getpid(), started_at=now,
                                                      seen_at=now))
            return False

    def unregister(self) -> None:
        """This engine stops, its calls all ended: its row goes."""
        with self._begin() as conn:
            conn.execute(sa.delete(EngineBeat).where(EngineBeat.id == self.id))

    def repair(self, now: Optional[dt.datetime] = None) -> list[Repaired]:
        """Close as interrupted the open calls of every dead engine (see the module docstring)."""
        now = now or _now()
        stale_before = now - dt.timedelta(seconds=self.stale)
        done: list[Repaired] = []
        with self._begin() as conn:
            others = conn.execute(sa.select(EngineBeat.id, EngineBeat.host, EngineBeat.pid, EngineBeat.seen_at)
                                  .where(EngineBeat.id != self.id)).all()
            alive = 0
            for other in others:
                gone = other.seen_at < stale_before or (other.host == self.machine and process_gone(other.pid))
                if not gone:
                    alive += 1
                    continue
                # the claim: only the engine whose delete took the row closes its calls
                if conn.execute(sa.delete(EngineBeat).where(EngineBeat.id == other.id)).rowcount != 1:
                    continue
                closed = _close_open_calls(conn, Call.engine_id == other.id, now, CRASHED, other.id, self.outbox)
                done.append(Repaired(other.id, closed, other.seen_at))
            if not alive:
                closed = _close_open_calls(conn, sa.and_(Call.engine_id.is_(None), Call.source == "live"), now,
                                           LEGACY, None, self.outbox)
                if closed:
                    done.append(Repaired(None, closed, None))
        return done

    def _begin(self) -> Any:
        return _transaction(self.engine)


def _close_open_calls(conn: Any, whose: Any, now: dt.datetime, reason: str, engine_id: Optional[str],
                      queue_for_webhook: bool = False) -> int:
    calls = conn.execute(sa.select(Call.id, Call.started_at, Call.flow, Call.last_flow, Call.last_node, Call.department,
                                   Call.survey_score).where(whose, Call.outcome.is_(None))).all()
    if not calls:
        return 0
    last: dict[str, Any] = {}
    ids = [c.id for c in calls]
    for chunk in range(0, len(ids), 500):  # a bounded IN list
        some = ids[chunk:chunk + 500]
        newest = (sa.select(CallEvent.call_id, sa.func.max(CallEvent.seq).label("seq"))
                  .where(CallEvent.call_id.in_(some)).group_by(CallEvent.call_id).subquery())
        query = (sa.select(CallEvent.call_id, CallEvent.seq, CallEvent.t, CallEvent.flow, CallEvent.node)
                 .join(newest, sa.and_(CallEvent.call_id == newest.c.call_id, CallEvent.seq == newest.c.seq)))
        for row in conn.execute(query).mappings():  # mappings: a Row's `.t` is its tuple, not the column
            last[row["call_id"]] = row
    events, rows = [], []
    for call in calls:
        event = last.get(call.id)
        seq = event["seq"] + 1 if event is not None else 0
        t = float(event["t"]) if event is not None else 0.0
        flow = (event["flow"] if event is not None else None) or call.last_flow or call.flow
        node = (event["node"] if event is not None else None) or call.last_node
        told = {"reason": reason, **({"engine": engine_id} if engine_id else {})}
        events.append({"call_id": call.id, "seq": seq, "t": t, "type": ev.INTERRUPTED, "flow": flow, "node": node,
                       "data": told})
        events.append({"call_id": call.id, "seq": seq + 1, "t": t, "type": ev.OUTCOME, "flow": flow, "node": node,
                       "data": {"outcome": ev.Outcome.INTERRUPTED.value, "department": call.department,
                                "survey": call.survey_score, "duration": round(t, 3)}})
        rows.append({"cid": call.id, "ended": call.started_at + dt.timedelta(seconds=t), "seconds": t})
    conn.execute(sa.insert(CallEvent.__table__), events)
    table = Call.__table__
    conn.execute(sa.update(table).where(table.c.id == sa.bindparam("cid"), table.c.outcome.is_(None))
                 .values(outcome=ev.Outcome.INTERRUPTED.value, ended_at=sa.bindparam("ended"),
                         duration=sa.bindparam("seconds")), rows)
    if queue_for_webhook:
        outbox.queue_ended(conn, ids, now)
    return len(calls)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@contextlib.contextmanager
def _transaction(engine: Engine) -> Iterator[Any]:
    """A connection in a transaction that takes the write lock at once (BEGIN IMMEDIATE on
    SQLite); a database error becomes a StoreError naming the database (without its password)."""
    try:
        with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            yield conn
    except SQLAlchemyError as exc:
        raise StoreError(f"engines in {safe_url(engine.url)}: {exc}") from exc

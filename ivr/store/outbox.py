"""The CRM webhook's outbox: ended calls waiting to be posted, and what a deliverer does with them.

A row of `webhook_deliveries` is written in the very transaction that stores a call's end
(`queue_ended`, called by the call-records writer and by the repair of a dead engine's
calls), so a call is queued if and only if its end is stored: never lost, never twice
(the call id is unique; a second end of the same call adds nothing).

Deliverers, one in each `ivr serve`, share the table:
- `claim` takes due rows for one deliverer. On PostgreSQL it selects them `FOR UPDATE SKIP
  LOCKED`, so two engines claiming at once take different rows without waiting on each
  other; on SQLite the claim is one `BEGIN IMMEDIATE` transaction. Either way the claim is
  a lease (`claimed_until`), stored and committed before the POST, so no transaction stays
  open while the receiver thinks, and a deliverer that dies mid-POST leaves a row another
  takes once the lease has run out.
- `delivered` and `failed` end the lease: delivered for good, or due again after a pause.
- `payload` is the JSON body, built from the call as stored when it is sent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from sqlalchemy import Engine, and_, func, or_, select, update

from ivr import events as ev
from ivr.store.db import dialect_insert
from ivr.store.models import Call, CallEvent, Recording, WebhookDelivery

MAX_ERROR = 200  # characters of a failure's reason kept


@dataclass(frozen=True)
class Claimed:
    """A row a deliverer holds the lease of."""

    id: int
    call_id: str
    delivery_id: str
    attempts: int  # POSTs made before this one


def queue_ended(conn: Any, call_ids: Sequence[str], now: Optional[dt.datetime] = None) -> None:
    """Queue the calls (whose end this transaction stores) for the webhook; a call queued
    before is left as it is."""
    if not call_ids:
        return
    now = now or _now()
    rows = [{"call_id": call_id, "delivery_id": uuid.uuid4().hex, "created_at": now, "next_at": now, "attempts": 0}
            for call_id in dict.fromkeys(call_ids)]
    insert = dialect_insert(conn.dialect.name)
    conn.execute(insert(WebhookDelivery.__table__).on_conflict_do_nothing(index_elements=["call_id"]), rows)


def claim(engine: Engine, limit: int, lease: float, now: Optional[dt.datetime] = None) -> list[Claimed]:
    """Up to `limit` undelivered rows that are due and not leased, oldest due first, leased
    for `lease` seconds to the caller."""
    now = now or _now()
    W = WebhookDelivery
    due = (select(W.id, W.call_id, W.delivery_id, W.attempts)
           .where(W.delivered_at.is_(None), W.next_at <= now, or_(W.claimed_until.is_(None), W.claimed_until < now))
           .order_by(W.next_at, W.id).limit(limit))
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        due = due.with_for_update(skip_locked=True)
    options = {} if postgres else {"sqlite_begin": "IMMEDIATE"}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        rows = [Claimed(r.id, r.call_id, r.delivery_id, r.attempts) for r in conn.execute(due)]
        if rows:
            conn.execute(update(W).where(W.id.in_([r.id for r in rows]))
                         .values(claimed_until=now + dt.timedelta(seconds=lease)))
    return rows


def delivered(engine: Engine, row: Claimed, status: int, now: Optional[dt.datetime] = None) -> None:
    W = WebhookDelivery
    with engine.begin() as conn:
        conn.execute(update(W).where(W.id == row.id).values(
            delivered_at=now or _now(), claimed_until=None, attempts=W.attempts + 1, last_status=status,
            last_error=None))


def failed(engine: Engine, row: Claimed, status: Optional[int], reason: str, next_at: dt.datetime) -> None:
    """A POST that did not deliver: tried again from `next_at`. `reason` is short and holds no
    secret (the deliverer's words, or the receiver's status line)."""
    W = WebhookDelivery
    with engine.begin() as conn:
        conn.execute(update(W).where(W.id == row.id, W.delivered_at.is_(None)).values(
            next_at=next_at, claimed_until=None, attempts=W.attempts + 1, last_status=status,
            last_error=reason[:MAX_ERROR]))


def release(engine: Engine, rows: Sequence[Claimed]) -> None:
    """Hand back claimed rows that were not posted (the deliverer is stopping): due at once."""
    if rows:
        W = WebhookDelivery
        with engine.begin() as conn:
            conn.execute(update(W).where(W.id.in_([r.id for r in rows]), W.delivered_at.is_(None))
                         .values(claimed_until=None))


def backlog(engine: Engine) -> int:
    """Calls queued and not delivered yet."""
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(WebhookDelivery)
                           .where(WebhookDelivery.delivered_at.is_(None))) or 0


def payload(engine: Engine, row: Claimed, qa_url: Optional[str] = None) -> Optional[dict[str, Any]]:
    """The JSON body for the row's call, or None when the call is gone (deleted since)."""
    with engine.connect() as conn:
        call = conn.execute(select(Call.__table__).where(Call.id == row.call_id)).mappings().first()
        if call is None:
            return None
        # unpacked: a Row's `.t` is its tuple, not the column
        path = [{"flow": flow, "node": node, "at": round(t, 3)} for flow, node, t in conn.execute(
            select(CallEvent.flow, CallEvent.node, CallEvent.t)
            .where(CallEvent.call_id == row.call_id, CallEvent.type == ev.NODE_ENTERED).order_by(CallEvent.seq))]
        recording = conn.execute(
            select(Recording.id, Recording.path, Recording.duration)
            .where(Recording.call_id == row.call_id, Recording.deleted_at.is_(None),
                   and_(~Recording.path.startswith("voicemail/")))
            .order_by(Recording.id).limit(1)).first()
    body: dict[str, Any] = {
        "type": "call.ended",
        "delivery_id": row.delivery_id,
        "call": {
            "id": call["id"], "uniqueid": call["uniqueid"], "source": call["source"], "flow": call["flow"],
            "caller": {"number": call["caller"], "name": call["caller_name"]},
            "language": call["language"],
            "started_at": _iso(call["started_at"]), "ended_at": _iso(call["ended_at"]),
            "duration": call["duration"], "outcome": call["outcome"], "department": call["department"],
            "agent": call["agent"], "queue_wait": call["queue_wait"], "talk": call["talk"],
            "abandoned": call["abandoned"], "survey_score": call["survey_score"],
            "keys": call["keys"].split() if call["keys"] else [],  # sensitive input already masked
            "path": path,
            "last_node": {"flow": call["last_flow"], "node": call["last_node"]} if call["last_node"] else None,
            "recording": None,
            "qa_url": f"{qa_url}/calls/{_quote(call['id'])}" if qa_url else None,
        },
    }
    if recording is not None:
        body["call"]["recording"] = {
            "id": recording.id, "path": recording.path, "duration": recording.duration,
            "url": f"{qa_url}/recordings/{recording.id}/audio" if qa_url else None}
    return body


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _iso(moment: Optional[dt.datetime]) -> Optional[str]:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if moment is not None else None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)

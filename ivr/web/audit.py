"""The audit log: who played or downloaded which call, who logged in, scored, held, purged."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from flask import g, has_request_context, request

from ivr.store.models import AuditEntry
from ivr.web.context import db


def record(action: str, *, call_id: Optional[str] = None, recording_id: Optional[int] = None,
           detail: str = "", user: Optional[str] = None, commit: bool = True) -> AuditEntry:
    """One entry by the request's user (or `user`), from the request's address."""
    if user is None and has_request_context() and g.get("user") is not None:
        user = g.user.name
    entry = AuditEntry(at=dt.datetime.now(dt.timezone.utc), user=user, action=action, call_id=call_id,
                       recording_id=recording_id, detail=detail[:500],
                       address=request.remote_addr if has_request_context() else None)
    session = db()
    if commit and has_request_context() and request.method == "GET" and session.in_transaction():
        # a page that only read so far: end that read first, so the write below waits its
        # turn for SQLite's lock instead of failing on a snapshot another writer has passed
        session.commit()
    session.add(entry)
    if commit:
        session.commit()
    return entry

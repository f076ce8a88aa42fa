"""The QA app's read-only JSON API, for a CRM or a report to read what QA staff see.

    GET /api/v1/calls?<the calls list's filters>   the calls list: its filters, sort and pages
    GET /api/v1/calls/<call_id>                     one call: its facts, events, recordings, tags, scorecards
    GET /api/v1/scorecards?<the calls list's filters>&after=<id>   scorecards of the calls that match
    GET /api/v1/audit?after=<id>                    the audit log (admins only, as its page)

Every request carries `Authorization: Bearer <token>` (ivr.web.tokens; made on the API
tokens page, ivr.web.token_pages, or by `ivr users token create NAME`), and is allowed what the token's user may see in the pages: the same roles
(`ivr.web.security`). No cookie and no CSRF token; nothing here writes but a token's last
use. Errors are JSON: {"status": 401, "error": "Unauthorized", "message": "..."}.

Pages: the calls list pages as the page does, by an opaque cursor (`next`, `previous`:
pass one as `after` or `before`); scorecards and the audit log newest first by id (pass
`next` as `after`). Filters the page would show as wrong are a 400 naming each field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from flask import Blueprint, abort, jsonify, request, url_for
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from ivr.store.models import AuditEntry, Call, CallEvent, CallTag, Hold, Recording, Review
from ivr.web.calls import encode_cursor, parse_filters
from ivr.web.context import context, db
from ivr.web.search import CallFilters, conditions, search
from ivr.web.security import api, roles

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PAGE = 100  # scorecards and audit entries per page
CALL_FIELDS = ("id", "uniqueid", "source", "flow", "caller", "caller_name", "language", "started_at", "ended_at",
               "duration", "outcome", "department", "agent", "queue_wait", "talk", "abandoned", "survey_score",
               "last_flow", "last_node", "keys", "reviewed")


@bp.after_request
def _no_store(response: Any) -> Any:
    response.headers["Cache-Control"] = "no-store"  # call data stays off caches
    return response


@bp.route("/calls")
@api
@roles("qa", "admin")
def calls() -> Any:
    filters = _filters(request.args)
    page = search(db(), filters)
    return jsonify(
        calls=[_call_row(row) for row in page.rows],
        next=encode_cursor(page.next, filters.sort) if page.next else None,
        previous=encode_cursor(page.previous, filters.sort) if page.previous else None,
        filters=dict(filters.args))


@bp.route("/calls/<call_id>")
@api
@roles("qa", "admin")
def call(call_id: str) -> Any:
    row = db().get(Call, call_id)
    if row is None:
        abort(404, description="There is no call with this id.")
    events = db().scalars(select(CallEvent).where(CallEvent.call_id == call_id).order_by(CallEvent.seq))
    recordings = db().scalars(select(Recording).where(Recording.call_id == call_id).order_by(Recording.id))
    tags = db().scalars(select(CallTag.tag).where(CallTag.call_id == call_id).order_by(CallTag.tag))
    reviews = db().scalars(select(Review).where(Review.call_id == call_id).order_by(Review.id))
    hold = db().get(Hold, call_id)
    return jsonify(call={
        **_call_row(row),
        "channel": row.channel, "flow_version": row.flow_version,
        "events": [e.to_dict() for e in events],
        "recordings": [_recording(r) for r in recordings],
        "tags": list(tags),
        "scorecards": [_review(r) for r in reviews],
        "hold": {"reason": hold.reason, "placed_by": hold.placed_by, "placed_at": _time(hold.placed_at)}
        if hold is not None else None,
    })


@bp.route("/scorecards")
@api
@roles("qa", "admin")
def scorecards() -> Any:
    after = _id_arg("after")
    filters = _filters(MultiDict([(k, v) for k, v in request.args.items(multi=True) if k not in ("after", "before")]))
    query = (select(Review, Call).join(Call, Call.id == Review.call_id).where(*conditions(filters))
             .order_by(Review.id.desc()).limit(PAGE + 1))
    if after is not None:
        query = query.where(Review.id < after)
    rows = db().execute(query).all()
    more, rows = len(rows) > PAGE, rows[:PAGE]
    return jsonify(scorecards=[{**_review(review), "call": _call_summary(c)} for review, c in rows],
                   next=rows[-1][0].id if more else None, filters=dict(filters.args))


@bp.route("/audit")
@api
@roles("admin")
def audit_log() -> Any:
    after = _id_arg("after")
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(PAGE + 1)
    if after is not None:
        query = query.where(AuditEntry.id < after)
    rows = list(db().scalars(query))
    more, rows = len(rows) > PAGE, rows[:PAGE]
    return jsonify(entries=[{"id": e.id, "at": _time(e.at), "user": e.user, "action": e.action, "call_id": e.call_id,
                             "recording_id": e.recording_id, "address": e.address, "detail": e.detail} for e in rows],
                   next=rows[-1].id if more else None)


# --- reading the request ------------------------------------------------------------------------
def _filters(args: Any) -> CallFilters:
    filters = parse_filters(args, context().config.timezone)
    if filters.errors:
        response = jsonify(status=400, error="Bad Request", message="Some filters are not valid.",
                           fields=dict(filters.errors))
        response.status_code = 400
        abort(response)
    return filters


def _id_arg(name: str) -> Optional[int]:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        abort(400, description=f"{name} must be the id a page gave as next, not {raw[:20]!r}")
    return int(raw)


# --- the JSON of each thing ---------------------------------------------------------------------
def _call_row(row: Any) -> dict[str, Any]:
    # a list row has the list's columns (ivr.web.search.LIST_COLUMNS), a Call all of them
    values = row._mapping if hasattr(row, "_mapping") else {name: getattr(row, name) for name in CALL_FIELDS}
    out = {name: _value(values[name]) for name in CALL_FIELDS if name in values}
    out["url"] = url_for("api.call", call_id=row.id)
    out["page"] = url_for("call.show", call_id=row.id)
    return out


def _call_summary(row: Call) -> dict[str, Any]:
    return {"id": row.id, "started_at": _time(row.started_at), "caller": row.caller, "department": row.department,
            "agent": row.agent, "outcome": row.outcome, "url": url_for("api.call", call_id=row.id)}


def _recording(r: Recording) -> dict[str, Any]:
    return {"id": r.id, "path": r.path, "duration": r.duration, "size": r.size, "checksum": r.checksum,
            "created_at": _time(r.created_at), "deleted_at": _time(r.deleted_at),
            "audio": url_for("call.audio", recording_id=r.id) if r.deleted_at is None else None}


def _review(r: Review) -> dict[str, Any]:
    return {"id": r.id, "call_id": r.call_id, "reviewer": r.reviewer, "scores": r.scores, "total": r.total,
            "notes": r.notes, "created_at": _time(r.created_at), "updated_at": _time(r.updated_at)}


def _value(value: Any) -> Any:
    return _time(value) if isinstance(value, dt.datetime) else value


def _time(moment: Optional[dt.datetime]) -> Optional[str]:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if moment is not None else None

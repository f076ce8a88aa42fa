"""CSV exports of the calls list and of the scorecards, with the list's filters.

    GET /exports/calls.csv?<the calls list's filters>        exports.calls       every call that matches
    GET /exports/scorecards.csv?<the calls list's filters>   exports.scorecards  every scorecard of those calls

The calls page links to both with its search; the reports page to the scorecards of its
date range. The file is streamed: rows are read in chunks (keyset pages, as the list
reads them) and sent as they come, so a year of calls costs the app no more memory than
a page. Times are in the installation's time zone, as the pages show them.

The text in a cell can come from a caller (number, name) or a reviewer (notes): a cell
that a spreadsheet would take for a formula (it starts with = + - @, a tab or a carriage
return) is written with a leading apostrophe, which spreadsheets show as text. Each export
is an audit entry (who took which calls out of the app).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any, Iterable, Iterator, Optional

from flask import Blueprint, Response, abort, request, stream_with_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.store.models import Call, Review
from ivr.web import audit
from ivr.web.calls import parse_filters
from ivr.web.context import context, db
from ivr.web.search import CallFilters, calls_query, conditions, segments
from ivr.web.security import roles

bp = Blueprint("exports", __name__, url_prefix="/exports")
CHUNK = 500  # rows read per query
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CALL_COLUMNS = ("id", "started_at", "caller", "caller_name", "language", "department", "agent", "outcome",
                "duration", "queue_wait", "talk", "survey_score", "keys", "reviewed", "source")


def safe_cell(value: Any) -> Any:
    """A cell as a spreadsheet must see it: text that would start a formula is made plain text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@bp.route("/calls.csv")
@roles("qa", "admin")
def calls() -> Any:
    filters = _filters()
    zone = context().config.timezone
    audit.record("export", detail=f"calls.csv {_described(filters)}")
    session_factory = context().sessions

    def rows() -> Iterator[list[Any]]:
        yield list(CALL_COLUMNS)
        with session_factory() as session:  # the request's session closes when the view returns
            for row in _all_calls(session, filters):
                yield [_local(getattr(row, name), zone) for name in CALL_COLUMNS]

    return _csv("calls", rows())


@bp.route("/scorecards.csv")
@roles("qa", "admin")
def scorecards() -> Any:
    filters = _filters()
    config = context().config
    criteria = list(config.qa.criteria)
    zone = config.timezone
    audit.record("export", detail=f"scorecards.csv {_described(filters)}")
    session_factory = context().sessions

    def rows() -> Iterator[list[Any]]:
        yield (["review_id", "call_id", "call_started_at", "caller", "department", "agent", "outcome", "reviewer",
                "total_percent"] + criteria + ["notes", "reviewed_at", "updated_at"])
        with session_factory() as session:
            last: Optional[int] = None
            while True:
                query = (select(Review, Call).join(Call, Call.id == Review.call_id).where(*conditions(filters))
                         .order_by(Review.id.desc()).limit(CHUNK))
                if last is not None:
                    query = query.where(Review.id < last)
                chunk = session.execute(query).all()
                for review, call in chunk:
                    scores = review.scores or {}
                    yield ([review.id, call.id, _local(call.started_at, zone), call.caller, call.department,
                            call.agent, call.outcome, review.reviewer,
                            None if review.total is None else round(review.total * 100, 1)]
                           + [scores.get(key, "n/a") for key in criteria]
                           + [review.notes, _local(review.created_at, zone), _local(review.updated_at, zone)])
                if len(chunk) < CHUNK:
                    return
                last = chunk[-1][0].id
                session.expunge_all()

    return _csv("scorecards", rows())


def _all_calls(session: Session, filters: CallFilters) -> Iterator[Any]:
    """Every call of the search in the list's order, read a chunk at a time by its keyset."""
    for segment, (_, keys) in enumerate(segments(filters.sort)):
        cursor: Optional[tuple[Any, ...]] = None
        while True:
            chunk = session.execute(calls_query(filters, segment=segment, cursor=cursor, limit=CHUNK)).all()
            yield from chunk
            if len(chunk) < CHUNK:
                break
            cursor = tuple(getattr(chunk[-1], k.key) for k in keys)


def _filters() -> CallFilters:
    filters = parse_filters(request.args, context().config.timezone)
    if filters.errors:
        fields = "; ".join(f"{name}: {message}" for name, message in filters.errors.items())
        abort(400, description=f"The search has filters that are not valid ({fields}); fix them on the calls page.")
    return filters


def _described(filters: CallFilters) -> str:
    return "&".join(f"{name}={value}" for name, value in filters.args) or "all calls"


def _local(value: Any, zone: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    return value


def _csv(name: str, rows: Iterable[list[Any]]) -> Response:
    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        yield "\ufeff"  # a byte-order mark: spreadsheets then read the file as UTF-8 (Polish names)
        for row in rows:
            writer.writerow([safe_cell(cell) for cell in row])
            if buffer.tell() > 16_384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    stamp = dt.datetime.now(context().config.timezone).strftime("%Y-%m-%d-%H%M")
    response = Response(stream_with_context(lines()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response

"""The calls list: search, filter, sort and page through every call.

The query string is the search (a link to a search can be shared, the back button works):
`parse_filters` reads it into `ivr.web.search.CallFilters`, keeping a bad value out of the
search and reporting it beside its field; `ivr.web.search` turns the filters into SQL. A
page never counts its matches (on a million calls that alone can take longer than the
page): it knows whether a next page exists, and calls.js asks /calls/count for the number,
counted up to 1,000.

Query-string names: from, to (dates of the installation's time zone; `to` inclusive),
caller (digits the number contains), department, agent, outcome, min_duration and
max_duration (seconds or m:ss), keys and keys_at=start, node (flow:node), nps
(promoter/passive/detractor/scored), nps_min, nps_max, tag (repeatable: any of them),
reviewed (yes/no), source (live/simulated), sort (started/duration/wait/talk/nps), dir
(desc/asc), after / before (a page's cursor).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any, Callable, Iterable, Optional
from zoneinfo import ZoneInfo

from flask import Blueprint, jsonify, render_template, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.events import Outcome
from ivr.settings.config import Config
from ivr.store.models import SOURCES, Call, CallTag
from ivr.web.context import context, db
from ivr.web.search import COUNT_CAP, SORTS, CallFilters, Cursor, count_capped, search, sort_keys
from ivr.web.security import roles

bp = Blueprint("calls", __name__, url_prefix="/calls")
MAX_TEXT = 100
MAX_OPTIONS = 200  # distinct agents or tags offered in a drop-down
OUTCOME_LABELS = {"answered": "answered", "abandoned": "abandoned", "voicemail": "voicemail",
                  "self_service": "self-service (solved in IVR)", "callback": "callback",
                  "unanswered": "unanswered", "failed": "failed"}
NPS_GROUPS = {"promoter": (9, 10), "passive": (7, 8), "detractor": (0, 6), "scored": (0, 10)}
_KEY = re.compile(r"^[0-9*#]{1,32}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")
_NUMBER = re.compile(r"^[0-9+()\-./ ]*$")


@bp.route("/")
@roles("qa", "admin")
def index() -> Any:
    ctx = context()
    filters = parse_filters(request.args, ctx.config.timezone)
    page = search(db(), filters)
    return render_template(
        "calls.html", filters=filters, page=page, errors=filters.errors, args=request.args,
        next_page=encode_cursor(page.next, filters.sort) if page.next else None,
        previous_page=encode_cursor(page.previous, filters.sort) if page.previous else None,
        tags=_tags_of([row.id for row in page.rows]), outcome_labels=OUTCOME_LABELS, count_label=count_label,
        outcomes=[(o, OUTCOME_LABELS.get(o, o)) for o in Outcome], sources=SOURCES, nps_groups=list(NPS_GROUPS),
        departments=_with(ctx.config.departments, request.args.get("department")),
        agents=_with(_agents(ctx.config, db()), request.args.get("agent")),
        all_tags=_with(_distinct(db(), CallTag.tag), *request.args.getlist("tag")),
        nodes=_nodes(ctx.flows(), request.args.get("node")))


@bp.route("/count")
@roles("qa", "admin")
def count() -> Any:
    """The matches of the search in the query string, up to COUNT_CAP (asked by calls.js)."""
    filters = parse_filters(request.args, context().config.timezone)
    total = count_capped(db(), filters, cap=COUNT_CAP)
    shown, capped = min(total, COUNT_CAP), total > COUNT_CAP
    return jsonify(count=shown, capped=capped, label=count_label(shown, capped, filters.narrowed))


def count_label(count: int, more: bool, narrowed: bool) -> str:
    """The heading's count: 1 call, 37 calls match, 1,000+ calls match."""
    one = count == 1 and not more
    matching = (" matches" if one else " match") if narrowed else ""
    return f"{count:,}{'+' if more else ''} call{'' if one else 's'}{matching}"


# --- the query string ---------------------------------------------------------------------------
def parse_filters(args: Any, zone: ZoneInfo) -> CallFilters:
    """A search from a query string (a MultiDict); bad values go to `errors`, not into the search."""
    errors: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    values: dict[str, Any] = {}

    def text(name: str) -> str:
        value = str(args.get(name) or "").strip()
        if len(value) > MAX_TEXT:
            errors[name] = f"at most {MAX_TEXT} characters"
            return ""
        return value

    def keep(name: str, shown: str, attr: str, value: Any) -> None:
        values[attr] = value
        pairs.append((name, shown))

    day_from, day_to = _date(text("from"), "from", errors), _date(text("to"), "to", errors)
    if day_from and day_to and day_to < day_from:
        errors["to"], day_to = "is before the start date", None
    if day_from:
        keep("from", day_from.isoformat(), "started_from", _midnight(day_from, zone))
    if day_to:
        keep("to", day_to.isoformat(), "started_before", _midnight(day_to + dt.timedelta(days=1), zone))
    caller = text("caller")
    digits = re.sub(r"\D", "", caller)
    if caller and (not _NUMBER.match(caller) or not digits):
        errors["caller"] = "the digits of a number, e.g. 601 or +48 22 123"
    elif digits:
        keep("caller", digits, "caller", digits)
    for name in ("department", "agent"):
        if value := text(name):
            keep(name, value, name, value)
    for name, allowed in (("outcome", tuple(Outcome)), ("source", SOURCES)):
        value = text(name)
        if value and value not in allowed:
            errors[name] = f"“{value}” is no {name}: one of {', '.join(allowed)}"
        elif value:
            keep(name, value, name, value)
    low = _seconds(text("min_duration"), "min_duration", errors)
    high = _seconds(text("max_duration"), "max_duration", errors)
    if low is not None and high is not None and high < low:
        errors["max_duration"], high = "is below the minimum", None
    for name, seconds in (("min_duration", low), ("max_duration", high)):
        if seconds is not None:
            keep(name, f"{seconds:g}", name, seconds)
    keys = text("keys")
    if keys and not all(_KEY.match(key) for key in keys.split()):
        errors["keys"] = "keys 0-9, * and # with spaces between, e.g. 1 3"
    elif keys:
        keep("keys", " ".join(keys.split()), "keys", tuple(keys.split()))
        if text("keys_at") == "start":
            keep("keys_at", "start", "keys_at_start", True)
    if node := text("node"):
        flow, _, name = node.rpartition(":")
        if not _NAME.match(name) or (flow and not _NAME.match(flow)):
            errors["node"] = "a node of the flows, e.g. main:sales"
        else:
            keep("node", node, "node", (flow or None, name))
    _nps(text, errors, pairs, values)
    tags = list(dict.fromkeys(t.strip() for t in args.getlist("tag") if t.strip()))
    if len(tags) > 20 or any(len(t) > MAX_TEXT for t in tags):
        errors["tag"] = f"up to 20 tags of {MAX_TEXT} characters"
    elif tags:
        pairs.extend(("tag", t) for t in tags)
        values["tags"] = tuple(tags)
    reviewed = text("reviewed")
    if reviewed in ("yes", "no"):
        keep("reviewed", reviewed, "reviewed", reviewed == "yes")
    elif reviewed:
        errors["reviewed"] = "yes or no"
    sort, direction = text("sort") or "started", text("dir") or "desc"
    if sort not in SORTS or direction not in ("asc", "desc"):
        errors["sort"] = f"sort by one of {', '.join(SORTS)}, asc or desc"
        sort, direction = "started", "desc"
    pairs += ([("sort", sort)] if sort != "started" else []) + ([("dir", direction)] if direction != "desc" else [])
    for name in ("after", "before"):
        if (raw := str(args.get(name) or "").strip()) and "after" not in values:
            cursor = decode_cursor(raw, sort) if len(raw) <= 1000 else None
            if cursor is None:
                errors["page"] = "This page link is broken or of another sort order: the first page is shown."
            else:
                values[name] = cursor
    return CallFilters(**values, sort=sort, descending=direction == "desc", args=tuple(pairs), errors=errors)


def _nps(text: Callable[[str], str], errors: dict[str, str], pairs: list[tuple[str, str]],
         values: dict[str, Any]) -> None:
    """A group of scores and/or min/max: together, the scores both allow."""
    low, high, given = 0, 10, False
    group = text("nps")
    if group and group not in NPS_GROUPS:
        errors["nps"] = f"one of {', '.join(NPS_GROUPS)}"
    elif group:
        pairs.append(("nps", group))
        (low, high), given = NPS_GROUPS[group], True
    bounds: dict[str, int] = {}
    for name in ("nps_min", "nps_max"):
        raw = text(name)
        if raw and (not raw.isascii() or not raw.isdigit() or int(raw) > 10):  # "²" is a digit to isdigit(), not to int()
            errors[name] = "a score from 0 to 10"
        elif raw:
            bounds[name] = int(raw)
    if bounds.get("nps_max", 10) < bounds.get("nps_min", 0):
        errors["nps_max"] = "is below the minimum"
        del bounds["nps_max"]
    pairs.extend((name, str(score)) for name, score in bounds.items())
    if given or bounds:
        values["nps_min"], values["nps_max"] = max(low, bounds.get("nps_min", 0)), min(high, bounds.get("nps_max", 10))


def _date(raw: str, name: str, errors: dict[str, str]) -> Optional[dt.date]:
    try:
        day = dt.date.fromisoformat(raw) if raw else None
    except ValueError:  # the date field cannot show what was typed: the message does
        errors[name] = f"“{raw}” is not a date: use YYYY-MM-DD"
        return None
    if day is not None and not 1970 <= day.year <= 2200:
        errors[name] = "out of range"
        return None
    return day


def _midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.timezone.utc)


def _seconds(raw: str, name: str, errors: dict[str, str]) -> Optional[float]:
    """Seconds written as 90, 90.5, 1:30 or 1:02:03."""
    if not raw:
        return None
    try:
        parts = [float(p) for p in raw.split(":")]
    except ValueError:
        parts = []
    if not parts or len(parts) > 3 or not all(0 <= p < 1e9 for p in parts):  # also NaN and inf
        errors[name] = "seconds (e.g. 90) or m:ss, not negative"
        return None
    total = 0.0
    for part in parts:
        total = total * 60 + part
    return total


def encode_cursor(cursor: Cursor, sort: str) -> str:
    """A cursor for a link: opaque (base64 of JSON), so nobody is tempted to edit it."""
    values = [v.isoformat() if isinstance(v, dt.datetime) else v for v in cursor.values]
    return base64.urlsafe_b64encode(json.dumps([sort, cursor.segment, values]).encode()).decode().rstrip("=")


def decode_cursor(text: str, sort: str) -> Optional[Cursor]:
    """The cursor of a link, if it is one of this sort order; each value is checked to be of
    its column's type before it is bound."""
    try:
        name, segment, values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        keys = sort_keys(sort, segment) if name == sort and type(segment) is int else None
        if keys is None or not isinstance(values, list) or len(values) != len(keys):
            return None
        return Cursor(segment, tuple(_typed(key, value) for key, value in zip(keys, values)))
    except (ValueError, TypeError, OverflowError):  # OverflowError: a time of year 1 moved to UTC
        return None


def _typed(column: Any, value: Any) -> Any:
    if column is Call.started_at:
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a time without its zone")
        return moment.astimezone(dt.timezone.utc)
    if column is Call.id:
        if not isinstance(value, str) or len(value) > 200:
            raise ValueError("not a call id")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a number")
    if not abs(value) <= 2 ** 53:  # NaN and inf too; a bigger int overflows the database's integer
        raise ValueError("not a number of a call")
    return value


# --- the page's drop-downs and tags ---------------------------------------------------------------
def _tags_of(call_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if call_ids:
        query = select(CallTag.call_id, CallTag.tag).where(CallTag.call_id.in_(call_ids)).order_by(CallTag.tag)
        for call_id, tag in db().execute(query):
            out.setdefault(call_id, []).append(tag)
    return out


def _agents(config: Config, session: Session) -> list[str]:
    """The agents of config.yaml's departments and every agent seen on a call."""
    return sorted({m for dep in config.departments.values() for m in dep.members} | set(_distinct(session, Call.agent)))


def _distinct(session: Session, column: Any, limit: int = MAX_OPTIONS) -> list[str]:
    """The distinct values of an indexed column, one index seek each (a loose index scan):
    SELECT DISTINCT would read the whole index, a million entries for the agents."""
    values: list[str] = []
    value = session.scalar(select(func.min(column)))
    while value is not None and len(values) < limit:
        values.append(value)
        value = session.scalar(select(func.min(column)).where(column > value))
    return values


def _with(options: Iterable[str], *current: Optional[str]) -> list[str]:
    """The options, and the values of a shared link that are no longer among them."""
    out = list(options)
    return out + [c for c in current if c and c not in out]


def _nodes(flows: Any, current: Optional[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(flow, [(value, node)]) of every flow for the "reached node" drop-down; the node of a
    shared link that the flows no longer have, under "other"."""
    if flows is None:
        return []
    groups = [(flow_id, [(f"{flow_id}:{name}", name) for name in sorted(flow.nodes)])
              for flow_id, flow in sorted(flows.flows.items())]
    if current and all(current != value for _, options in groups for value, _ in options):
        groups.append(("other", [(current, current)]))
    return groups

"""Scorecard reports: reviewed calls per agent and per department over a date range.

    GET /reports/?from=YYYY-MM-DD&to=YYYY-MM-DD   reports.index (default: the last 30 days)

The range is of the calls' dates (a review counts for the day its call was taken), in
local days of the installation's time zone, both ends included (as the calls list's
`from` and `to`, so a row links to its reviewed calls there). Every figure is
aggregated by the database in one grouped query per table (agent, department, all), so
the page costs the same three queries however many reviews there are:

- reviewed calls: calls with at least one scorecard; scorecards: how many there are
  (two reviewers of one call make two);
- average total: the mean of the scorecards' totals (each the share of possible points
  over the criteria that applied);
- per criterion: the mean score of the scorecards where it applied, as a share of the
  scale; the lowest of a row is its weakest criterion, highlighted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Optional

from flask import Blueprint, render_template, request
from sqlalchemy import Select, distinct, func, select

from ivr.store.models import Call, Review
from ivr.web.context import context, db
from ivr.web.security import roles

bp = Blueprint("reports", __name__, url_prefix="/reports")
DEFAULT_DAYS = 30
MAX_DAYS = 3660
YEARS = (1900, 2200)  # dates near year 1 or 9999 overflow when a day or a time zone is added


@dataclass(frozen=True)
class Row:
    name: Optional[str]  # the agent or department; None for calls without one
    calls: int
    reviews: int
    total: Optional[float]  # 0..1
    criteria: dict[str, Optional[float]]  # key -> 0..1 of the scale, None where never applicable

    @property
    def weakest(self) -> Optional[str]:
        scored = [(value, i, key) for i, (key, value) in enumerate(self.criteria.items()) if value is not None]
        if len(scored) < 2 or min(scored)[0] == max(scored)[0]:
            return None  # nothing stands out as weaker
        return min(scored)[2]


def date_range(args: Any, today: dt.date) -> tuple[dt.date, dt.date, list[str]]:
    """(first day, last day, problems) from ?from=&to=; the last 30 days by default."""
    problems: list[str] = []
    end = _date(args.get("to"), "end", problems) or today
    start = _date(args.get("from"), "start", problems) or end - dt.timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        problems.append("The start comes after the end; they were swapped.")
        start, end = end, start
    if (end - start).days > MAX_DAYS:
        problems.append(f"A report covers at most {MAX_DAYS} days.")
        start = end - dt.timedelta(days=MAX_DAYS)
    return start, end, problems


def _date(text: Optional[str], name: str, problems: list[str]) -> Optional[dt.date]:
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        problems.append(f"The {name} date “{text[:20]}” is not a date such as 2026-11-24; the default is used.")
        return None
    if not YEARS[0] <= day.year <= YEARS[1]:
        problems.append(f"The {name} date {day} is not within the years {YEARS[0]} to {YEARS[1]}; the default is used.")
        return None
    return day


def utc_bounds(start: dt.date, end: dt.date, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """From local midnight of `start` to local midnight after `end`, in UTC."""
    low = dt.datetime.combine(start, dt.time(), tzinfo=tz).astimezone(dt.timezone.utc)
    high = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.timezone.utc)
    return low, high


def aggregate(group: Any, criteria: list[str], scale: int, low: dt.datetime, high: dt.datetime) -> list[Row]:
    """One row per value of `group` (a Call column, or None for one row of everything)."""
    columns = [func.count(distinct(Review.call_id)), func.count(Review.id), func.avg(Review.total)]
    # an n/a criterion is absent from the JSON, so it is NULL here and avg() leaves it out
    columns += [func.avg(Review.scores[key].as_float()) for key in criteria]
    query: Select[Any] = (select(*([group] if group is not None else []), *columns)
                          .select_from(Review).join(Call, Call.id == Review.call_id)
                          .where(Call.started_at >= low, Call.started_at < high))
    if group is not None:
        query = query.group_by(group).order_by(group)
    rows = []
    for record in db().execute(query):
        values = list(record)
        name = values.pop(0) if group is not None else None
        calls, reviews, total, *means = values
        if not reviews:
            continue
        rows.append(Row(name, calls, reviews, total,
                        {key: (mean / scale if mean is not None else None) for key, mean in zip(criteria, means)}))
    return rows


@bp.route("/")
@roles("qa", "admin")
def index() -> Any:
    qa = context().config.qa
    tz = context().config.timezone
    start, end, problems = date_range(request.args, dt.datetime.now(tz).date())
    low, high = utc_bounds(start, end, tz)
    criteria = list(qa.criteria)
    agents = aggregate(Call.agent, criteria, qa.scale, low, high)
    departments = aggregate(Call.department, criteria, qa.scale, low, high)
    overall = aggregate(None, criteria, qa.scale, low, high)
    return render_template("reports.html", start=start, end=end, problems=problems, qa=qa, agents=agents,
                           departments=departments, overall=overall[0] if overall else None,
                           timezone=str(tz))

"""The dashboard's figures: calls of a date range counted per local day and outcome in SQL.

Definitions (the page states them too):
    calls            calls that started in the range (by local day of `started_at`)
    reached a queue  calls with a queue wait recorded (at least one transfer ended: answered,
                     timed out or abandoned)
    abandonment      abandoned calls (the caller left a queue before an agent answered) /
                     calls that reached a queue; hang-ups in the menus are not in it
    average wait     mean `queue_wait` (summed over every transfer of the call) of calls that
                     reached a queue, abandoned ones included
    handle time      mean talk time with agents of answered calls (hold and wrap-up are not
                     recorded, so they are not in it)
    service level    answered calls with a queue wait of 20 s or less / calls that reached a queue
    NPS              % promoters (9-10) - % detractors (0-6) of the survey answers
    IVR share        calls with outcome self_service / calls that have ended (have an outcome)

Days are the installation's local days (its first schedule's time zone), so a day bucket is
`started_at` shifted by the zone's UTC offset. The offset changes at DST, so the range is cut
into stretches of one offset and the shift is a CASE over those stretches: the same buckets
on SQLite (text times) and PostgreSQL (timestamptz), with Python's zone rules on both.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Optional

from sqlalchemy import Date, Integer, and_, case, cast, func, literal_column, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ivr.events import Outcome
from ivr.store.models import Call

UTC = dt.timezone.utc
SERVICE_LEVEL_SECONDS = 20
IN_PROGRESS = "in_progress"  # the outcome shown for calls that have not ended
OUTCOME_ORDER = (*Outcome, IN_PROGRESS)


@dataclass(frozen=True)
class Scope:
    """The calls a dashboard looks at: local days `first`..`last` (inclusive), maybe one
    department and one source."""

    first: dt.date
    last: dt.date
    zone: dt.tzinfo
    department: Optional[str] = None
    source: Optional[str] = None

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) in UTC: local midnight of the first day to local midnight after the last."""
        return local_midnight(self.first, self.zone), local_midnight(self.last + dt.timedelta(days=1), self.zone)

    def conditions(self) -> list[ColumnElement[bool]]:
        start, end = self.bounds()
        where = [Call.started_at >= start, Call.started_at < end]
        if self.department:
            where.append(Call.department == self.department)
        if self.source:
            where.append(Call.source == self.source)
        return where

    def key(self) -> tuple[Any, ...]:
        return (self.first, self.last, str(self.zone), self.department, self.source)


def local_midnight(day: dt.date, zone: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(UTC)


def offset_stretches(zone: dt.tzinfo, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, int]]:
    """[(from, UTC offset in seconds)] covering [start, end): a new entry where the offset changes."""
    def offset(moment: dt.datetime) -> int:
        return int(moment.astimezone(zone).utcoffset().total_seconds())  # type: ignore[union-attr]

    stretches = [(start, offset(start))]
    hour = dt.timedelta(hours=1)
    moment = start
    while moment < end:
        later = min(moment + hour, end)
        if offset(later) != stretches[-1][1]:
            low, high = moment, later  # offsets change on whole seconds: bisect to the second
            while high - low > dt.timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == stretches[-1][1] else (low, middle)
            stretches.append((high.replace(microsecond=0), offset(high)))
        moment = later
    return stretches


def local_day(column: Any, dialect: str, stretches: list[tuple[dt.datetime, int]]) -> ColumnElement[Any]:
    """The local day of a UTC time column, as SQL of `dialect` (text 'YYYY-MM-DD' or a date)."""
    offset: ColumnElement[Any]
    if len(stretches) == 1:
        offset = literal_column(str(int(stretches[0][1])), Integer)
    else:
        offset = case(*[(column < begins, seconds) for (begins, _), (_, seconds) in zip(stretches[1:], stretches)],
                      else_=stretches[-1][1])
    if dialect == "sqlite":  # stored as UTC text; date() takes the shift as a modifier
        return func.date(column, func.printf("%+d seconds", offset))
    if dialect == "postgresql":
        return cast(func.timezone("UTC", column) + cast(offset, Integer) * literal_column("interval '1 second'"), Date)
    raise ValueError(f"the dashboard supports SQLite and PostgreSQL, not {dialect}")


@dataclass
class Tally:
    """Sums over some calls (a day, or the whole range); the rates are None without a denominator."""

    calls: int = 0
    ended: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    queued: int = 0
    abandoned: int = 0
    wait_sum: float = 0.0
    answered: int = 0
    talked: int = 0
    talk_sum: float = 0.0
    within_sl: int = 0
    surveyed: int = 0
    promoters: int = 0
    detractors: int = 0

    def add(self, other: "Tally") -> None:
        for name in ("calls", "ended", "queued", "abandoned", "wait_sum", "answered", "talked", "talk_sum",
                     "within_sl", "surveyed", "promoters", "detractors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for outcome, count in other.by_outcome.items():
            self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + count

    @property
    def abandonment(self) -> Optional[float]:
        return self.abandoned / self.queued if self.queued else None

    @property
    def average_wait(self) -> Optional[float]:
        return self.wait_sum / self.queued if self.queued else None

    @property
    def handle_time(self) -> Optional[float]:
        return self.talk_sum / self.talked if self.talked else None

    @property
    def service_level(self) -> Optional[float]:
        return self.within_sl / self.queued if self.queued else None

    @property
    def nps(self) -> Optional[float]:
        return 100.0 * (self.promoters - self.detractors) / self.surveyed if self.surveyed else None

    @property
    def passives(self) -> int:
        return self.surveyed - self.promoters - self.detractors

    @property
    def self_service(self) -> int:
        return self.by_outcome.get(Outcome.SELF_SERVICE, 0)

    @property
    def ivr_share(self) -> Optional[float]:
        return self.self_service / self.ended if self.ended else None


@dataclass
class Figures:
    scope: Scope
    total: Tally
    days: list[tuple[dt.date, Tally]]  # every day of the range, in order, empty days included


def figures(session: Session | Connection, scope: Scope) -> Figures:
    """The dashboard's figures for `scope`: one GROUP BY (day, outcome) query."""
    dialect = session.get_bind().dialect.name if isinstance(session, Session) else session.dialect.name
    start, end = scope.bounds()
    flag = lambda condition: func.sum(case((condition, 1), else_=0))  # noqa: E731 - a count of matching calls
    rows = (select(local_day(Call.started_at, dialect, offset_stretches(scope.zone, start, end)).label("day"),
                   Call.outcome.label("outcome"), Call.abandoned.label("abandoned"),
                   Call.queue_wait.label("queue_wait"), Call.talk.label("talk"), Call.survey_score.label("score"))
            .where(and_(*scope.conditions()))
            .subquery())
    # grouped over a subquery: PostgreSQL then sees the day as one column, not two copies of an expression
    query = (select(rows.c.day, rows.c.outcome, func.count(),
                    func.count(rows.c.queue_wait),
                    flag(and_(rows.c.abandoned, rows.c.queue_wait.is_not(None))),
                    func.coalesce(func.sum(rows.c.queue_wait), 0.0),
                    func.count(case((rows.c.outcome == Outcome.ANSWERED, rows.c.talk))),
                    func.coalesce(func.sum(case((rows.c.outcome == Outcome.ANSWERED, rows.c.talk))), 0.0),
                    flag(and_(rows.c.outcome == Outcome.ANSWERED, rows.c.queue_wait <= SERVICE_LEVEL_SECONDS)),
                    func.count(rows.c.score), flag(rows.c.score >= 9), flag(rows.c.score <= 6))
             .group_by(rows.c.day, rows.c.outcome))
    per_day: dict[dt.date, Tally] = {day: Tally() for day in scope.days}
    for day, outcome, calls, queued, abandoned, wait_sum, talked, talk_sum, within, surveyed, promoters, detractors \
            in session.execute(query):
        day = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)[:10])
        tally = per_day.get(day)
        if tally is None:  # cannot happen unless the zone rules disagree at a range edge
            continue
        tally.add(Tally(calls=calls, ended=calls if outcome else 0, by_outcome={outcome or IN_PROGRESS: calls},
                        queued=queued, abandoned=int(abandoned or 0), wait_sum=float(wait_sum or 0),
                        answered=calls if outcome == Outcome.ANSWERED else 0, talked=talked,
                        talk_sum=float(talk_sum or 0), within_sl=int(within or 0), surveyed=surveyed,
                        promoters=int(promoters or 0), detractors=int(detractors or 0)))
    total = Tally()
    for tally in per_day.values():
        total.add(tally)
    return Figures(scope, total, sorted(per_day.items()))

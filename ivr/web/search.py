"""The SQL of the calls list: a search (`CallFilters`) -> one SQLAlchemy select per page.

`calls_query(filters, ...)` is pure (no database needed); `search(session, filters)` runs it
for one page and is what both the web view (`ivr.web.calls`, which reads the filters from
the query string) and bench/search_bench.py call. Plain SQLAlchemy throughout, so the same
code runs on SQLite and PostgreSQL; each filter is shaped to use an index of
`ivr.store.models`:
    dates             the started_at range
    caller            digits contained in caller_digits: the few numbers that contain them,
                      found in ix_calls_caller_digits, then their calls; or, when the digits
                      are common, checked inside the (started_at, caller_digits) index as
                      it is walked newest first
    department, agent, outcome, reviewed, one NPS score   their (column, started_at) index
    duration          ix_calls_duration
    node, tag         call_nodes / call_tags: IN (the calls of their own index) when rare,
                      else EXISTS, a primary-key probe of each call walked
    keys, source, several NPS scores   checked on the calls the order's index leads to
Which shape a search takes is decided by `probe_hints`, from counts that stop early. Pages
are keyset pages (a cursor is the sort key of the row at the edge), never OFFSET, and
matches are only ever counted up to COUNT_CAP.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional, Sequence

from sqlalchemy import ColumnElement, Integer, Select, and_, exists, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from ivr.store.models import Call, CallNode, CallTag

PAGE = 50
COUNT_CAP = 1000  # counting every match of a broad search would read the whole table
RARE = 5000  # a node or tag on fewer calls is read from its own index (IN), not probed per call
SORTED_FEW = 20_000  # fewer matches are read and sorted; more are found walking the sort's index
NUMBERS = 200  # digits in the numbers of more calls than this are searched by walking the dates instead
# The lower bound of started_at when no date is given. A range on started_at, even one that
# holds every call, makes SQLite (which prices a LIMIT poorly) walk the date index newest
# first and stop after a page, rather than read every match of a filter with no index (or
# a wide range of another index) and sort them all. PostgreSQL knows better and is not
# misled by it.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
SORTS: dict[str, Any] = {"started": Call.started_at, "duration": Call.duration, "wait": Call.queue_wait,
                         "talk": Call.talk, "nps": Call.survey_score}
# the measures an index begins with (duration, NPS): their order can be walked
INDEXED_SORTS = tuple(name for name, column in SORTS.items() if column is not Call.started_at and any(
    index.columns.keys()[0] == column.key for index in Call.__table__.indexes))
LIST_COLUMNS = (Call.id, Call.started_at, Call.caller, Call.caller_name, Call.language, Call.department,
                Call.agent, Call.outcome, Call.duration, Call.queue_wait, Call.talk, Call.survey_score,
                Call.keys, Call.reviewed, Call.source)


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the part of the order (see `segments`) and the row's sort key there."""

    segment: int
    values: tuple[Any, ...]


@dataclass(frozen=True)
class CallFilters:
    """One search of the calls list; None or empty means "any"."""

    started_from: Optional[dt.datetime] = None  # UTC, inclusive
    started_before: Optional[dt.datetime] = None  # UTC, exclusive
    caller: str = ""  # digits the number contains
    department: str = ""
    agent: str = ""
    outcome: str = ""
    min_duration: Optional[float] = None
    max_duration: Optional[float] = None
    keys: tuple[str, ...] = ()  # key tokens in a row, each a whole key
    keys_at_start: bool = False  # the call's keys begin with them (else: anywhere)
    node: Optional[tuple[Optional[str], str]] = None  # (flow, or None for any; node)
    nps_min: Optional[int] = None
    nps_max: Optional[int] = None
    tags: tuple[str, ...] = ()  # any of them
    reviewed: Optional[bool] = None
    source: str = ""
    sort: str = "started"  # a key of SORTS
    descending: bool = True
    after: Optional[Cursor] = None  # the page after this row
    before: Optional[Cursor] = None  # the page before this row
    args: tuple[tuple[str, str], ...] = ()  # the query string it was read from (its valid part)
    errors: Mapping[str, str] = field(default_factory=dict)  # field name -> what is wrong with it

    def link_args(self, **changes: Optional[str]) -> dict[str, list[str]]:
        """The query string of this search (no cursor) with `changes`; None drops a name."""
        out: dict[str, list[str]] = {}
        for name, value in self.args:
            out.setdefault(name, []).append(value)
        for name, value in changes.items():
            out.pop(name, None)
            if value is not None:
                out[name] = [value]
        return out

    @property
    def narrowed(self) -> bool:
        return any(name not in ("sort", "dir") for name, _ in self.args)


@dataclass(frozen=True)
class Hints:
    """What the data says about a search (see `probe_hints`)."""

    rare: frozenset[str] = frozenset()  # of "node", "tag": read from their own index
    by_sort_index: bool = False  # walk the sort measure's index (else: read the matches, sort them)
    numbers: Optional[tuple[str, ...]] = None  # the caller numbers holding the digits, when few


@dataclass
class Page:
    rows: list[Any]
    next: Optional[Cursor] = None  # where the page after begins, in the sort order
    previous: Optional[Cursor] = None  # where the page before ends; None on the first page
    count: Optional[int] = None  # every match, when this page holds them all


class text_position(FunctionElement):  # noqa: N801 - used as a function in queries
    """Where `needle` first occurs in `haystack` (1-based; 0: nowhere): standard POSITION(),
    and instr() on SQLite, which lacks it (faster there than LIKE '%..%', and no wildcards)."""

    type = Integer()
    inherit_cache = True
    name = "position"


@compiles(text_position)
def _position(element: text_position, compiler: Any, **kw: Any) -> str:
    haystack, needle = list(element.clauses)
    return f"POSITION({compiler.process(needle, **kw)} IN {compiler.process(haystack, **kw)})"


@compiles(text_position, "sqlite")
def _position_sqlite(element: text_position, compiler: Any, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


# --- the WHERE terms ----------------------------------------------------------------------------
def conditions(filters: CallFilters, hints: Hints = Hints(), *, counting: bool = False,
               walking: Any = None) -> list[ColumnElement[bool]]:
    """The WHERE terms of a search, ANDed. `counting`: for a count, which keeps no order.
    `walking`: the sort measure whose index the query walks; the other indexed columns are
    then wrapped in coalesce(), which hides their indexes so that neither database prefers
    reading one of them whole and sorting it (`probe_hints` found the matches dense)."""
    f = filters
    hide = (lambda column, blank: func.coalesce(column, blank)) if walking is not None else (lambda column, _: column)
    where = _dates(f, hide(Call.started_at, EPOCH))
    if f.caller and hints.numbers is not None:
        where.append(Call.caller_digits.in_(hints.numbers))
    elif f.caller:
        where.append(text_position(Call.caller_digits, f.caller) > 0)
    for column, value in ((Call.department, f.department), (Call.agent, f.agent), (Call.outcome, f.outcome)):
        if value:
            where.append(hide(column, "") == value)
    if f.source:
        where.append(Call.source == f.source)
    # a call without a duration (still running) matches neither bound: the blank of each
    # hidden column lies outside its bound
    shorter = Call.duration if walking is Call.duration else hide(Call.duration, -1.0)
    longer = Call.duration if walking is Call.duration else hide(Call.duration, float("inf"))
    where += [shorter >= f.min_duration] if f.min_duration is not None else []
    where += [longer <= f.max_duration] if f.max_duration is not None else []
    if f.keys:
        sequence = " ".join(f.keys)
        if f.keys_at_start:
            where.append(or_(Call.keys == sequence, Call.keys.startswith(sequence + " ", autoescape=True)))
        else:  # whole keys: "1 1" is in "2 1 1 0", not in "1 10"
            where.append((literal(" ") + Call.keys + " ").contains(f" {sequence} ", autoescape=True))
    for name, calls in (("node", _node_calls(f)), ("tag", _tag_calls(f))):
        if calls is not None:
            probe = exists(calls.where(calls.selected_columns[0] == Call.id))
            where.append(Call.id.in_(calls) if name in hints.rare else probe)
    if f.nps_min is not None or f.nps_max is not None:
        where.append(_nps_condition(f, counting, walking))
    if f.reviewed is not None:
        where.append(hide(Call.reviewed, False) == f.reviewed)
    return where


def _dates(f: CallFilters, column: Any = Call.started_at) -> list[ColumnElement[bool]]:
    return ([column >= f.started_from] if f.started_from is not None else []) + \
        ([column < f.started_before] if f.started_before is not None else [])


def _nps_condition(f: CallFilters, counting: bool = False, walking: Any = None) -> ColumnElement[bool]:
    """One score: its index. Several, on the newest-first list: "+ 0" hides the score index, so
    they are checked on each call walked; a tenth of calls are scored, so a group of scores
    comes every few dozen calls, where reading the group whole from the score index and
    sorting it reads tens of thousands (the path SQLite takes without statistics)."""
    low, high = f.nps_min if f.nps_min is not None else 0, f.nps_max if f.nps_max is not None else 10
    indexed = counting or walking is Call.survey_score or (walking is None and (low == high or f.sort != "started"))
    score = Call.survey_score if indexed else Call.survey_score + 0
    return score == low if low == high else score.in_(range(low, high + 1))


def _node_calls(f: CallFilters) -> Optional[Select]:
    if f.node is None:
        return None
    flow, node = f.node
    return select(CallNode.call_id).where(CallNode.node == node, *([CallNode.flow == flow] if flow else []))


def _tag_calls(f: CallFilters) -> Optional[Select]:
    return select(CallTag.call_id).where(CallTag.tag.in_(f.tags)) if f.tags else None


# --- the order and the page ---------------------------------------------------------------------
def segments(sort: str) -> list[tuple[Any, list[Any]]]:
    """The sort order as parts listed one after the other: (the measure the part's calls have,
    or None; the order keys). Sorting by a measure lists the calls that have it, then those
    without (newest first): each part walks an index one way on both databases, where NULLS
    LAST would order differently on each, and give up the index on SQLite."""
    column = SORTS[sort]
    if column is Call.started_at:
        return [(None, [Call.started_at, Call.id])]
    return [(column, [column, Call.started_at, Call.id]), (None, [Call.started_at, Call.id])]


def calls_query(filters: CallFilters, *, segment: int = 0, cursor: Optional[Sequence[Any]] = None,
                backward: bool = False, limit: int = PAGE + 1, hints: Hints = Hints()) -> Select:
    """The rows of one part (`segment`) of the search's order that come after `cursor` (the sort
    key of the row before them), or before it, in reverse order, when `backward`."""
    measure, keys = segments(filters.sort)[segment]
    walking = measure if measure is not None and filters.sort in INDEXED_SORTS and hints.by_sort_index else None
    if measure is not None and walking is None and filters.sort in INDEXED_SORTS:
        keys = [measure + 0] + keys[1:]  # read the matches by the filters' indexes and sort them
    query = select(*LIST_COLUMNS).where(*conditions(filters, hints, walking=walking))
    if measure is not None:
        query = query.where(measure.is_not(None))
    elif SORTS[filters.sort] is not Call.started_at:
        query = query.where(SORTS[filters.sort].is_(None))
    if walking is None and filters.started_from is None:
        query = query.where(Call.started_at >= EPOCH)
    descending = filters.descending != backward
    if cursor is not None:
        query = query.where(_past(keys, cursor, descending))
    return query.order_by(*[k.desc() if descending else k.asc() for k in keys]).limit(limit)


def _past(keys: list[Any], values: Sequence[Any], descending: bool) -> ColumnElement[bool]:
    """(k1, k2, ..) after (v1, v2, ..), written out, with k1 <= v1 (or >=) on its own so that
    both databases read it as a range of the index."""
    after = (lambda k, v: k < v) if descending else (lambda k, v: k > v)
    terms = [and_(*[k == v for k, v in zip(keys[:i], values[:i])], after(keys[i], values[i]))
             for i in range(len(keys))]
    return and_(keys[0] <= values[0] if descending else keys[0] >= values[0], or_(*terms))


# --- what the data says -------------------------------------------------------------------------
def probe_hints(session: Session, filters: CallFilters) -> Hints:
    """How to answer this search, from counts that stop early: milliseconds, but for a number
    over all dates a read of the whole (narrow) caller_digits index, 60-100 ms a million calls:
    - the caller numbers that contain the digits, when at most NUMBERS calls have them;
    - sorted by an indexed measure (duration, NPS): walk its index when the filters leave at
      least SORTED_FEW calls (they come often enough on the walk), else read the matches and
      sort them. A number and simulated calls count as few (simulated calls are the exception);
    - a node or tag is read from its own index (IN) when on fewer than RARE calls, or fewer
      than SORTED_FEW when the matches are read whole anyway; else probed per call (EXISTS)."""
    numbers = None
    if filters.caller and filters.started_from is None:
        # calls rather than DISTINCT numbers: a quarter faster, and as telling
        found = session.scalars(select(Call.caller_digits).where(text_position(Call.caller_digits, filters.caller) > 0)
                                .limit(NUMBERS + 1)).all()
        numbers = tuple(sorted(set(found))) if len(found) <= NUMBERS else None
    cap = max(RARE, SORTED_FEW)
    counts = {name: _capped(session, query, cap) for name, query in (("node", _node_calls(filters)),
                                                                      ("tag", _tag_calls(filters))) if query is not None}
    walk = filters.sort in INDEXED_SORTS and not (
        filters.caller or filters.source == "simulated" or any(n < SORTED_FEW for n in counts.values()))
    indexed = _indexed_conditions(filters)
    if walk and indexed:
        walk = _capped(session, select(literal(1)).where(*indexed), SORTED_FEW) >= SORTED_FEW
    read_whole = filters.sort != "started" and not walk
    rare = frozenset(name for name, n in counts.items() if n < (SORTED_FEW if read_whole else RARE))
    return Hints(rare, walk, numbers)


def _indexed_conditions(f: CallFilters) -> list[ColumnElement[bool]]:
    """The terms of the filters that have an index (how many calls they leave: read from it)."""
    terms = _dates(f) + [column == value for column, value in
                         ((Call.department, f.department), (Call.agent, f.agent), (Call.outcome, f.outcome)) if value]
    terms += [Call.reviewed == f.reviewed] if f.reviewed is not None else []
    terms += [_nps_condition(f, counting=True)] if f.nps_min is not None or f.nps_max is not None else []
    terms += [Call.duration >= f.min_duration] if f.min_duration is not None else []
    return terms + ([Call.duration <= f.max_duration] if f.max_duration is not None else [])


def _capped(session: Session, query: Select, cap: int) -> int:
    return session.scalar(select(func.count()).select_from(query.limit(cap).subquery())) or 0


def count_capped(session: Session, filters: CallFilters, hints: Optional[Hints] = None,
                 cap: Optional[int] = None) -> int:
    """The matches, counted up to cap + 1 (more than cap, COUNT_CAP by default: show "cap+")."""
    hints = probe_hints(session, filters) if hints is None else hints
    cap = COUNT_CAP if cap is None else cap
    where = conditions(filters, hints, counting=True)
    if filters.started_from is None:
        where.append(Call.started_at >= EPOCH)  # a walk of the date index, not of the table
    return _capped(session, select(literal(1)).where(*where), cap + 1)


def search(session: Session, filters: CallFilters, hints: Optional[Hints] = None) -> Page:
    """One page of the search: up to PAGE rows in its order and where the pages around it
    begin; `count` is set when the page holds every match (else ask `count_capped`)."""
    hints = probe_hints(session, filters) if hints is None else hints  # the page cursors play no part
    if filters.before is not None:
        found = _collect(session, filters, hints, filters.before, backward=True)
        if len(found) <= PAGE:  # back at the start: the first page, full
            return search(session, replace(filters, before=None), hints)
        found = found[:PAGE][::-1]
        return Page([row for row, _ in found], next=found[-1][1], previous=found[0][1])
    found = _collect(session, filters, hints, filters.after, backward=False)
    more, found = len(found) > PAGE, found[:PAGE]
    page = Page([row for row, _ in found], next=found[-1][1] if more else None,
                previous=found[0][1] if found and filters.after is not None else None)
    if filters.after is None and not more:
        page.count = len(page.rows)
    return page


def _collect(session: Session, filters: CallFilters, hints: Hints, cursor: Optional[Cursor],
             backward: bool) -> list[tuple[Any, Cursor]]:
    """Up to PAGE + 1 rows, each with its cursor, from `cursor` on (or back), across the parts."""
    parts = segments(filters.sort)
    start = cursor.segment if cursor is not None else (len(parts) - 1 if backward else 0)
    found: list[tuple[Any, Cursor]] = []
    for segment in (range(start, -1, -1) if backward else range(start, len(parts))):
        keys = parts[segment][1]
        query = calls_query(filters, segment=segment, cursor=cursor.values if cursor and segment == start else None,
                            backward=backward, limit=PAGE + 1 - len(found), hints=hints)
        found += [(row, Cursor(segment, tuple(getattr(row, k.key) for k in keys))) for row in session.execute(query)]
        if len(found) > PAGE:
            break
    return found


def sort_keys(sort: str, segment: int) -> Optional[list[Any]]:
    """The columns of a cursor's values, or None for a part the sort does not have."""
    parts = segments(sort)
    return parts[segment][1] if 0 <= segment < len(parts) else None


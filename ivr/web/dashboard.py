"""The dashboard: figures and charts of a date range, the call-backs (booked in the range by
status, and the ones still to be made), and the menu tree with the callers' branches.

    GET /dashboard/?days=7|30|90
    GET /dashboard/?from=2026-11-01&to=2026-11-30&department=sales&source=live
    GET /dashboard/menu?from=...&to=...[&fragment=1]     the menu tree of the same range

The range is local days of the installation (inclusive), the last 30 days unless asked
otherwise. A bad value is shown on the page (status 400) instead of figures, never a 500.
The figures come from `ivr.web.metrics` (definitions there and on the page), the menu tree
from `ivr.web.menu_usage` and `ivr.web.menu_graph`. Counting the tree reads every event of
the range's calls, seconds for a few hundred thousand calls, so the dashboard does not wait
for it: static/dashboard.js fetches /menu (a link opens it without scripts). The counts are
kept per day (half an hour for a day that is over, two minutes for today), the drawing two
minutes per range, filters and flow version; a tree counted already shows on the dashboard at once.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from flask import Blueprint, current_app, render_template, request, url_for
from markupsafe import Markup

from ivr.errors import IvrError
from ivr.events import Outcome
from ivr.store import callbacks as callback_store
from ivr.store.models import SOURCES
from ivr.web import charts, menu_graph
from ivr.web.context import context, db
from ivr.web.menu_usage import NodeCounts, TtlCache, Usage, usage_by_day
from ivr.web.metrics import IN_PROGRESS, OUTCOME_ORDER, SERVICE_LEVEL_SECONDS, Figures, Scope, figures
from ivr.web.security import roles

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")
PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
MAX_DAYS = 366
MENU_CACHE_SECONDS = 120.0
YEARS = (1900, 2200)  # dates near year 1 or 9999 overflow when a day or a time zone is added
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
OUTCOME_LABELS = {Outcome.ANSWERED: "answered", Outcome.ABANDONED: "abandoned", Outcome.VOICEMAIL: "voicemail",
                  Outcome.CALLBACK: "callback", Outcome.SELF_SERVICE: "self-service",
                  Outcome.UNANSWERED: "unanswered", Outcome.FAILED: "failed", Outcome.INTERRUPTED: "interrupted",
                  IN_PROGRESS: "in progress"}


@dataclass
class Choice:
    """What the query string asked for, as the form shows it again, and what is wrong with it."""

    first: Optional[dt.date] = None
    last: Optional[dt.date] = None
    days: Optional[int] = None  # the preset, when one was used
    department: str = ""
    source: str = ""
    raw: dict[str, str] = field(default_factory=dict)  # the values as typed, for the form
    errors: list[str] = field(default_factory=list)


def read_choice(args: Mapping[str, str], today: dt.date) -> Choice:
    choice = Choice(raw={name: str(args.get(name, ""))[:100].strip() for name in ("from", "to", "days")})
    typed_from, typed_to, days = choice.raw["from"], choice.raw["to"], choice.raw["days"]

    def date(name: str, text: str) -> Optional[dt.date]:
        try:
            day = dt.date.fromisoformat(text) if text else None
        except ValueError:
            choice.errors.append(f"{name}: “{text}” is not a date; write it as YYYY-MM-DD.")
            return None
        if day is not None and not YEARS[0] <= day.year <= YEARS[1]:
            choice.errors.append(f"{name}: {day} is not within the years {YEARS[0]} to {YEARS[1]}.")
            return None
        return day

    first, last = date("From", typed_from), date("To", typed_to)
    if typed_from or typed_to:
        if not choice.errors:
            last = last or (max(today, first) if first else today)
            first = first or last - dt.timedelta(days=DEFAULT_DAYS - 1)
    else:
        number = DEFAULT_DAYS
        if days:
            if days.isascii() and days.isdigit() and int(days) in PRESETS:  # "²" is a digit to isdigit(), not to int()
                number = int(days)
            else:
                choice.errors.append(f"Days: “{days}” is not one of the presets ({', '.join(map(str, PRESETS))}).")
        choice.days = number
        first, last = today - dt.timedelta(days=number - 1), today
    if first and last and not choice.errors:
        if last < first:
            choice.errors.append("To is before From: the range would be empty.")
        elif (last - first).days + 1 > MAX_DAYS:
            choice.errors.append(f"The range is {(last - first).days + 1} days; at most {MAX_DAYS} are shown at once.")
    choice.first, choice.last = first, last
    department = str(args.get("department", "")).strip()
    if department and not _NAME.match(department):
        choice.errors.append("Department: a department's name has letters, digits, _ and - only.")
    else:
        choice.department = department
    source = str(args.get("source", "")).strip()
    if source and source not in SOURCES:
        choice.errors.append(f"Source: one of {', '.join(SOURCES)}, or all.")
    else:
        choice.source = source
    return choice


def _scope_or_errors() -> tuple[Optional[Scope], dict[str, Any]]:
    """The request's Scope (None when its query string is bad) and what every page shows."""
    config = context().config
    zone = config.timezone
    choice = read_choice(request.args, dt.datetime.now(zone).date())
    departments = sorted(set(config.departments) | ({choice.department} if choice.department else set()))
    page = dict(choice=choice, presets=PRESETS, departments=departments, sources=SOURCES, zone=str(zone),
                sl_seconds=SERVICE_LEVEL_SECONDS, outcome_labels=OUTCOME_LABELS)
    if choice.errors:
        return None, page
    assert choice.first is not None and choice.last is not None
    scope = Scope(choice.first, choice.last, zone, choice.department or None, choice.source or None)
    return scope, dict(page, scope=scope, range_args=range_args(scope))


@bp.route("/")
@roles("qa", "admin")
def index() -> Any:
    scope, page = _scope_or_errors()
    if scope is None:
        return render_template("dashboard.html", **page), 400
    found = figures(db(), scope)
    # the menu tree reads every event of the range's calls: seconds on a big range, so the page
    # comes first and dashboard.js fetches the tree, unless it is counted already
    menu = _menu_cache().peek(_menu_key(scope))
    return render_template("dashboard.html", **page, figures=found, charts=day_charts(found), menu=menu,
                           callbacks=callback_figures(scope))


OPEN_CALLBACKS_SHOWN = 50


def callback_figures(scope: Scope) -> dict[str, Any]:
    """Call-backs booked in the range by status, and those still to be made (whenever booked)."""
    start, end = scope.bounds()
    return {"counts": callback_store.counts(db(), start, end, scope.department),
            "open": list(callback_store.open_ones(db(), OPEN_CALLBACKS_SHOWN + 1, scope.department)),
            "shown": OPEN_CALLBACKS_SHOWN}


@bp.route("/menu")
@roles("qa", "admin")
def menu() -> Any:
    """The menu tree of a range: a page of its own, or (?fragment=1) the part dashboard.js puts in."""
    scope, page = _scope_or_errors()
    fragment = request.args.get("fragment") == "1"
    if scope is None:
        return render_template("dashboard_menu_page.html", **page), 400
    view = _menu_cache().get_or_make(_menu_key(scope), lambda: _make_menu(scope, context().flows()))
    return render_template("dashboard_menu.html" if fragment else "dashboard_menu_page.html", **page, menu=view)


def range_args(scope: Scope) -> dict[str, str]:
    """The dashboard's filters as the calls list reads them (search.py: from, to, department, source)."""
    args = {"from": scope.first.isoformat(), "to": scope.last.isoformat()}
    if scope.department:
        args["department"] = scope.department
    if scope.source:
        args["source"] = scope.source
    return args


def day_charts(found: Figures) -> list[charts.Chart]:
    days = [day for day, _ in found.days]
    tallies = [tally for _, tally in found.days]
    present = [o for o in OUTCOME_ORDER if found.total.by_outcome.get(o)]
    percent = lambda v: f"{v * 100:.1f}%"  # noqa: E731
    return [
        charts.stacked_bars(
            "calls", "Calls per day", "Calls that started each day, stacked by how they ended.",
            days, [(f"o-{o}", OUTCOME_LABELS.get(o, o), [t.by_outcome.get(o, 0) for t in tallies]) for o in present],
            "Calls"),
        charts.bars(
            "abandonment", "Abandonment rate per day",
            "Abandoned calls over calls that reached a queue, each day; the dashed line is the whole range.",
            days, [t.abandonment for t in tallies], "Abandoned", percent, "bar-bad", "no call reached a queue",
            overall=found.total.abandonment, floor=0.05),
        charts.bars(
            "wait", "Average queue wait per day",
            "Mean seconds in queue of the calls that reached a queue, each day; the dashed line is the whole range.",
            days, [t.average_wait for t in tallies], "Seconds", lambda v: f"{v:,.0f} s", "bar-wait",
            "no call reached a queue", overall=found.total.average_wait, floor=10),
    ]


@dataclass
class MenuView:
    usage: Usage
    drawings: list[tuple[str, Markup]]  # (flow id, sanitized SVG)
    tree: Optional[list[menu_graph.TreeItem]]  # when the drawings could not be made
    reason: Optional[str]  # why not

    def node_rows(self) -> list[tuple[str, str, NodeCounts]]:
        rows = [(flow, node, c) for (flow, node), c in self.usage.nodes.items()
                if c.entered or c.hangups or c.timeouts or c.invalid]
        return sorted(rows, key=lambda row: (-row[2].entered, row[0], row[1]))

    def edge_rows(self) -> list[tuple[Optional[str], Optional[str], str, str, str, int]]:
        rows = [(*key, n) for key, n in self.usage.edges.items()]
        return sorted(rows, key=lambda row: (-row[5], str(row[0]), str(row[1]), row[2], row[3], row[4]))


def _menu_cache() -> TtlCache:
    return current_app.extensions.setdefault("ivr.dashboard.menu", TtlCache(MENU_CACHE_SECONDS))


def _day_cache() -> TtlCache:
    # a year of days for a few filters; an entry is a few hundred numbers
    return current_app.extensions.setdefault("ivr.dashboard.days", TtlCache(size=4000))


def _menu_key(scope: Scope) -> tuple[Any, ...]:
    flows = context().flows()
    return scope.key(), tuple(sorted((f.id, f.version) for f in flows.flows.values())) if flows is not None else None


def _make_menu(scope: Scope, flows: Any) -> MenuView:
    """Counted and drawn; kept a little while per range, filters and flow versions (`_menu_key`)."""
    counts = usage_by_day(db(), scope, _day_cache())
    calls_url = url_for("calls.index")
    args = range_args(scope)

    def link(flow: str, node: str) -> str:
        return url_for("calls.index", node=f"{flow}:{node}", **args)

    if flows is None:
        return MenuView(counts, [], menu_graph.tree(None, counts, link),
                        "The flows could not be loaded (the server log says why), so the menu tree cannot be "
                        "drawn; here is what callers did, from the call records.")
    # the flow most callers started in first
    order = sorted(flows.flows.values(), key=lambda f: (-counts.node(f.id, f.start).entered, f.id))
    try:
        drawings = [(f.id, Markup(menu_graph.draw(f, counts, link, calls_url))) for f in order]
    except IvrError as exc:
        return MenuView(counts, [], menu_graph.tree(flows, counts, link),
                        f"The menu tree cannot be drawn: {exc}. Here are the same counts as a list.")
    return MenuView(counts, drawings, None, None)

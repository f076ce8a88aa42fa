"""Scorecard reports: per agent and per department over local dates, averages over the
criteria that applied, the weakest criterion, links to the calls list, a constant number
of queries however many reviews there are."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event

from ivr.store.models import Call, Review

from .support import make_installation

UTC = dt.timezone.utc
QA = {"scale": 4, "criteria": {"greeting": "Greeting", "solution": "Solution proposed", "logged": "Case logged"}}
NOVEMBER = "/reports/?from=2026-11-01&to=2026-11-30"


@pytest.fixture
def installation(tmp_path: Path) -> Path:
    """A scorecard of three criteria scored 0..4, so the expected figures are easy to follow."""
    return make_installation(tmp_path, qa=QA)


class Cells(HTMLParser):
    """The text of each table cell by (table id, row key, column): row key is the row's
    data-agent/data-department value, column the cell's data-criterion or data-field."""

    def __init__(self, html: str):
        super().__init__()
        self.cells: dict[tuple[str, str, str], str] = {}
        self.classes: dict[tuple[str, str, str], str] = {}
        self.links: dict[tuple[str, str], str] = {}
        self._table = self._row = ""
        self._cell: Optional[tuple[str, str, str]] = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id", "")
        elif tag == "tr":
            self._row = a.get("data-agent", a.get("data-department", ""))
        elif tag == "td" and ("data-criterion" in a or "data-field" in a):
            self._cell = (self._table, self._row, a.get("data-criterion") or a.get("data-field"))
            self.cells[self._cell] = ""
            self.classes[self._cell] = a.get("class", "")
        elif tag == "a" and self._table:
            self.links[(self._table, self._row)] = a["href"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self.cells[self._cell] += data

    def row(self, table: str, key: str) -> dict[str, str]:
        return {col: " ".join(text.split()) for (t, k, col), text in self.cells.items() if (t, k) == (table, key)}


def call(session, call_id: str, at: dt.datetime, agent: Optional[str], department: Optional[str]) -> None:
    session.add(Call(id=call_id, flow="main", started_at=at, agent=agent, department=department,
                     outcome="answered" if agent else "self_service", reviewed=True))


def review(session, call_id: str, reviewer: str, scores: dict[str, int], total: Optional[float]) -> None:
    now = dt.datetime.now(UTC)
    session.add(Review(call_id=call_id, reviewer=reviewer, scores=scores, total=total, notes="",
                       created_at=now, updated_at=now))


@pytest.fixture
def known(ctx) -> None:
    with ctx.sessions() as s:
        call(s, "c1", dt.datetime(2026, 11, 10, 10, tzinfo=UTC), "PJSIP/101", "sales")
        call(s, "c2", dt.datetime(2026, 11, 12, 9, tzinfo=UTC), "PJSIP/101", "sales")
        call(s, "c3", dt.datetime(2026, 11, 12, 11, tzinfo=UTC), "PJSIP/102", "support")
        call(s, "c4", dt.datetime(2026, 11, 13, 8, tzinfo=UTC), None, None)  # self-service
        call(s, "c5", dt.datetime(2026, 10, 31, 22, 59, tzinfo=UTC), "PJSIP/101", "sales")  # 23:59 on 31 Oct in Warsaw
        call(s, "c6", dt.datetime(2026, 11, 30, 23, 30, tzinfo=UTC), "PJSIP/102", "support")  # 1 Dec in Warsaw
        call(s, "c7", dt.datetime(2026, 10, 31, 23, 0, tzinfo=UTC), "PJSIP/103", "support")  # 1 Nov, 00:00 in Warsaw
        s.flush()
        review(s, "c1", "qa", {"greeting": 4, "solution": 2, "logged": 4}, 10 / 12)
        review(s, "c1", "admin", {"greeting": 2, "solution": 2}, 4 / 8)  # logged: n/a
        review(s, "c2", "qa", {"greeting": 4, "solution": 4, "logged": 0}, 8 / 12)
        review(s, "c3", "qa", {"greeting": 3, "logged": 1}, 4 / 8)  # solution: n/a
        review(s, "c4", "qa", {"greeting": 4, "solution": 4, "logged": 4}, 1.0)
        review(s, "c5", "qa", {"greeting": 0, "solution": 0, "logged": 0}, 0.0)
        review(s, "c6", "qa", {"greeting": 0, "solution": 0, "logged": 0}, 0.0)
        review(s, "c7", "qa", {"greeting": 2, "solution": 2, "logged": 2}, 0.5)
        s.commit()


def test_reports_aggregate_per_agent_over_the_criteria_that_applied(login, known):
    response = login("qa").get(NOVEMBER)
    assert response.status_code == 200
    cells = Cells(response.get_data(as_text=True))
    # c1 (two scorecards) and c2; c5 is 31 October in Warsaw
    assert cells.row("report-agents", "PJSIP/101") == {
        "calls": "2", "reviews": "3", "total": "67%",  # (10/12 + 4/8 + 8/12) / 3
        "greeting": "83%",  # (4 + 2 + 4) / 3 of 4
        "solution": "67%",  # (2 + 2 + 4) / 3 of 4
        "logged": "50% weakest",  # (4 + 0) / 2 of 4: n/a is left out, not a zero
    }
    assert "weakest" in cells.classes[("report-agents", "PJSIP/101", "logged")]
    assert "weakest" not in cells.classes[("report-agents", "PJSIP/101", "greeting")]
    # c3 only: c6 is 1 December in Warsaw
    assert cells.row("report-agents", "PJSIP/102") == {
        "calls": "1", "reviews": "1", "total": "50%", "greeting": "75%", "solution": "n/a", "logged": "25% weakest"}
    # c7 began at midnight of 1 November in Warsaw: the first day of the range
    assert cells.row("report-agents", "PJSIP/103")["calls"] == "1"
    # the self-service call has no agent: all equal, so nothing is the weakest
    assert cells.row("report-agents", "") == {
        "calls": "1", "reviews": "1", "total": "100%", "greeting": "100%", "solution": "100%", "logged": "100%"}


def test_reports_aggregate_per_department_and_overall(login, known):
    html = login("admin").get(NOVEMBER).get_data(as_text=True)
    cells = Cells(html)
    assert cells.row("report-departments", "sales") == cells.row("report-agents", "PJSIP/101")
    support = cells.row("report-departments", "support")  # c3 and c7
    assert support == {"calls": "2", "reviews": "2", "total": "50%", "greeting": "62%", "solution": "50%",
                       "logged": "38% weakest"}  # (3+2)/2, 2/1, (1+2)/2 of 4
    overall = re.sub(r"\s+", " ", re.search(r'<p id="report-overall">(.*?)</p>', html, re.S).group(1))
    # c1..c4 and c7: 6 scorecards, (10/12 + 1/2 + 8/12 + 1/2 + 1 + 1/2) / 6
    assert overall == "5 reviewed calls, 6 scorecards, average total <strong>67%</strong>."


def test_each_row_links_to_its_reviewed_calls_in_the_range(login, known):
    cells = Cells(login("qa").get(NOVEMBER).get_data(as_text=True))
    link = urlsplit(cells.links[("report-agents", "PJSIP/101")])
    assert link.path == "/calls/"
    assert parse_qs(link.query) == {"agent": ["PJSIP/101"], "reviewed": ["yes"], "from": ["2026-11-01"],
                                    "to": ["2026-11-30"]}
    department = urlsplit(cells.links[("report-departments", "support")])
    assert parse_qs(department.query)["department"] == ["support"]
    assert ("report-agents", "") not in cells.links  # no agent: nothing to filter by


def test_the_default_range_is_the_last_30_days(login, ctx):
    now = dt.datetime.now(UTC)
    with ctx.sessions() as s:
        call(s, "recent", now - dt.timedelta(days=3), "PJSIP/101", "sales")
        call(s, "old", now - dt.timedelta(days=45), "PJSIP/102", "support")
        s.flush()
        review(s, "recent", "qa", {"greeting": 4, "solution": 4, "logged": 4}, 1.0)
        review(s, "old", "qa", {"greeting": 0, "solution": 0, "logged": 0}, 0.0)
        s.commit()
    html = login("qa").get("/reports/").get_data(as_text=True)
    cells = Cells(html)
    assert cells.row("report-agents", "PJSIP/101")["calls"] == "1"
    assert cells.row("report-agents", "PJSIP/102") == {}
    assert re.search(r'id="report-from" name="from" value="(\d{4}-\d\d-\d\d)"', html)


def test_a_range_without_scorecards_says_so(login, known):
    html = login("qa").get("/reports/?from=2025-01-01&to=2025-01-31").get_data(as_text=True)
    assert 'id="report-empty"' in html and "report-agents" not in html


@pytest.mark.parametrize("query, message, start, end", [
    ("?from=yesterday&to=2026-11-30", "The start date “yesterday” is not a date", "2026-11-01", "2026-11-30"),
    ("?from=2026-11-30&to=2026-11-01", "The start comes after the end; they were swapped.", "2026-11-01", "2026-11-30"),
    ("?from=1900-01-01&to=2026-11-30", "A report covers at most", "2016-11-", "2026-11-30"),
    ("?from=0001-01-01&to=2026-11-30", "The start date 0001-01-01 is not within the years", "2026-11-01", "2026-11-30"),
])
def test_bad_dates_are_explained_and_replaced(login, known, query, message, start, end):
    response = login("qa").get("/reports/" + query)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and message in html
    assert re.search(rf'name="from" value="{start}', html) and f'name="to" value="{end}"' in html


@pytest.mark.parametrize("query", ["?from=2026-11-01&to=9999-12-31", "?to=0001-01-05", "?to=9999-12-31"])
def test_dates_at_the_ends_of_the_calendar_are_explained_not_a_500(login, known, query):
    response = login("qa").get("/reports/" + query)
    assert response.status_code == 200 and "is not within the years 1900 to 2200" in response.get_data(as_text=True)


def _queries(app, client, url: str) -> int:
    engine = app.extensions["ivr"].engine
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(statements)


def test_the_report_costs_the_same_queries_for_many_reviews(app, login, known, ctx):
    client = login("qa")
    few = _queries(app, client, NOVEMBER)
    with ctx.sessions() as s:
        for i in range(300):
            call(s, f"bulk{i}", dt.datetime(2026, 11, 20, tzinfo=UTC), f"PJSIP/2{i % 30:02d}", f"dept{i % 7}")
        s.flush()
        for i in range(300):
            review(s, f"bulk{i}", "qa", {"greeting": i % 5, "solution": 2, "logged": 3}, 0.5)
        s.commit()
    many = _queries(app, client, NOVEMBER)
    assert many == few
    cells = Cells(client.get(NOVEMBER).get_data(as_text=True))
    assert cells.row("report-agents", "PJSIP/200")["calls"] == "10"
    assert cells.row("report-departments", "dept0")["calls"] == "43"  # i % 7 == 0 for 43 of 300


def test_reports_need_a_log_in(app):
    response = app.test_client().get("/reports/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")

"""CSV exports: the calls list and the scorecards with the list's filters, every match however
many (read in chunks), cells a spreadsheet would run as formulas made text, the links on the
calls and reports pages, each export in the audit log."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from html import unescape

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ivr.store.models import AuditEntry, Call, Review
from ivr.web import exports
from ivr.web.exports import safe_cell

T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.timezone.utc)  # 10:00 in Warsaw


def seed(engine, n: int) -> None:
    rows = [{"id": f"c{i:04d}", "flow": "main", "caller": f"4822555{i:04d}", "caller_digits": f"4822555{i:04d}",
             "started_at": T0 + dt.timedelta(minutes=i), "duration": 30.0 + i, "outcome": "answered",
             "department": "sales" if i % 2 else "support", "keys": "1 1", "source": "live", "reviewed": False,
             "abandoned": False} for i in range(n)]
    with Session(engine) as s:
        s.execute(insert(Call), rows)
        s.commit()


def rows_of(response) -> list[list[str]]:
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_the_calls_csv_holds_every_match_of_the_filters_in_the_lists_order(login, ctx, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK", 7)  # several chunks, and one that ends exactly at a chunk's edge
    seed(ctx.engine, 29)
    client = login("qa")
    response = client.get("/exports/calls.csv?department=sales")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert re.fullmatch(r'attachment; filename="calls-\d{4}-\d\d-\d\d-\d{4}\.csv"', response.headers["Content-Disposition"])
    rows = rows_of(response)
    assert rows[0] == list(exports.CALL_COLUMNS)
    assert [r[0] for r in rows[1:]] == [f"c{i:04d}" for i in range(27, 0, -2)]  # newest first, sales only
    assert rows[1][1] == "2026-11-24 10:27:00"  # the installation's time (Warsaw), as the pages show it
    everything = rows_of(client.get("/exports/calls.csv?sort=duration&dir=asc"))
    assert [r[0] for r in everything[1:]] == [f"c{i:04d}" for i in range(29)]
    with Session(ctx.engine) as s:
        details = s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "export")).all()
    assert details == ["calls.csv department=sales", "calls.csv sort=duration&dir=asc"]


def test_cells_that_would_be_formulas_are_made_text():
    assert [safe_cell(v) for v in ("=HYPERLINK(\"http://x\")", "+48 22 555", "-1+1", "@SUM(A1)", "\tx", "\rx",
                                   "Jan", "", 5, None)] == \
        ["'=HYPERLINK(\"http://x\")", "'+48 22 555", "'-1+1", "'@SUM(A1)", "'\tx", "'\rx", "Jan", "", 5, None]


def test_a_callers_name_and_a_reviewers_notes_reach_the_csv_as_text(login, ctx):
    with Session(ctx.engine) as s:
        s.add(Call(id="evil", flow="main", caller="+48225550000", caller_digits="48225550000",
                   caller_name='=cmd|" /C calc"!A0', started_at=T0, outcome="answered", department="sales"))
        s.add(Review(call_id="evil", reviewer="qa", scores={"greeting": 5}, total=0.9, notes="@SUM(1+1)*cmd",
                     created_at=T0, updated_at=T0))
        s.commit()
    client = login("qa")
    [_, call] = rows_of(client.get("/exports/calls.csv"))
    assert call[2] == "'+48225550000" and call[3] == '\'=cmd|" /C calc"!A0'
    [head, card] = rows_of(client.get("/exports/scorecards.csv"))
    assert head[:9] == ["review_id", "call_id", "call_started_at", "caller", "department", "agent", "outcome",
                        "reviewer", "total_percent"]
    assert card[1] == "evil" and card[8] == "90.0" and card[head.index("greeting")] == "5"
    assert card[head.index("diagnosis")] == "n/a" and card[head.index("notes")] == "'@SUM(1+1)*cmd"


def test_the_scorecards_csv_takes_the_lists_filters(login, ctx):
    seed(ctx.engine, 6)
    with Session(ctx.engine) as s:
        for i in range(6):
            s.add(Review(call_id=f"c{i:04d}", reviewer="qa", scores={}, total=None, notes="", created_at=T0,
                         updated_at=T0))
        s.commit()
    client = login("admin")
    rows = rows_of(client.get("/exports/scorecards.csv?department=support&from=2026-11-24&to=2026-11-24"))
    assert [r[1] for r in rows[1:]] == ["c0004", "c0002", "c0000"] and rows[1][8] == ""
    assert rows_of(client.get("/exports/scorecards.csv?from=2026-11-25"))[1:] == []
    bad = client.get("/exports/scorecards.csv?outcome=won")
    assert bad.status_code == 400 and "outcome" in bad.get_data(as_text=True)


def test_the_pages_link_to_the_exports_of_what_they_show(login, ctx):
    seed(ctx.engine, 2)
    client = login("qa")
    page = client.get("/calls/?department=sales&outcome=answered").get_data(as_text=True)
    found = {ident: unescape(href) for href, ident in re.findall(r'href="([^"]+)" id="(export-[a-z]+)"', page)}
    assert found == {"export-calls": "/exports/calls.csv?department=sales&outcome=answered",
                     "export-scorecards": "/exports/scorecards.csv?department=sales&outcome=answered"}
    report = client.get("/reports/?from=2026-11-01&to=2026-11-30").get_data(as_text=True)
    found = {ident: unescape(href) for href, ident in re.findall(r'href="([^"]+)" id="(export-[a-z]+)"', report)}
    assert found == {"export-scorecards": "/exports/scorecards.csv?from=2026-11-01&to=2026-11-30"}


def test_an_export_needs_a_log_in(app):
    response = app.test_client().get("/exports/calls.csv")
    assert response.status_code == 302 and "/login" in response.headers["Location"]

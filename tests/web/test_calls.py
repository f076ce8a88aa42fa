"""The calls list, on calls of flows/main.yaml simulated and written by the real CallWriter:
every filter and combinations against an oracle written in Python over the stored rows,
sorting, keyset pages both ways, bad input shown beside its field, escaping and masking,
roles, the count, the query plans (an index for each filter) and the same answers on
PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import pytest
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from ivr.channels.scripted import QueueScript, ScriptedChannel
from ivr.clock import VirtualClock
from ivr.engine import Engine
from ivr import events as ev
from ivr.engine.sampling import SurveySampler
from ivr.flow.project import load_flows
from ivr.simulation.simulate import parse_time
from ivr.store import Call, CallNode, CallTag, CallWriter, init_db
from ivr.web import calls as view
from ivr.web import search as finder

from .support import make_installation

REPO = Path(__file__).resolve().parents[2]
ZONE = ZoneInfo("Europe/Warsaw")
HOSTILE_NAME = "<script>alert('x')</script> \"Bob\" & O'Brien"
HOSTILE_NUMBER = "+48 22 <b>7</b> 00"

# id, keys, local time (+01:00), queue, survey asked, caller, caller name, source
CALLS: list[tuple[str, str, str, list[Any], bool, str, Optional[str], str]] = [
    ("c01", "1 1 10#", "2026-11-23T09:05", [QueueScript("answered", 20, 300, "PJSIP/101")], True, "+48 22 123 45 67", None, "live"),
    ("c02", "1 2", "2026-11-23T11:30", [QueueScript("abandoned", 45)], False, "+48 601 200 300", "Anna", "live"),
    ("c03", "1 3 90012345# 3#", "2026-11-24T10:00", [QueueScript("answered", 35, 120, "PJSIP/104")], True, "+48 22 555 66 77", None, "live"),
    ("c04", "2 4 1", "2026-11-24T11:00", [], False, "+48 601 999 888", None, "live"),
    ("c05", "1 4 2 #", "2026-11-24T11:20", [], False, "0048 12 345 67 89", None, "live"),
    ("c06", "1 0 5#", "2026-11-24T14:00", [QueueScript("answered", 10, 200, "PJSIP/100")], True, HOSTILE_NUMBER, HOSTILE_NAME, "live"),
    ("c07", "", "2026-11-24T00:30", [], False, "+48 601 200 301", None, "live"),  # just after local midnight
    ("c08", "", "2026-12-25T10:00", [], False, "+48 22 123 45 67", None, "live"),
    ("c09", "1 1 1 1", "2026-11-25T10:00", [QueueScript("timeout"), QueueScript("timeout")], False, "+48 33 111 22 33", None, "live"),
    ("c10", "1 1 -", "2026-11-25T10:30", [QueueScript("timeout"), QueueScript("timeout")], False, "+48 33 111 22 34", None, "live"),
    ("c11", "2 1 7#", "2026-11-26T10:00", [QueueScript("answered", 5, 60, "PJSIP/102")], True, "+44 20 7946 0000", "Jo", "live"),
    ("c12", "1 hangup", "2026-11-26T12:00", [], False, "+48 601 200 300", "Anna", "live"),
    ("c13", "1 2", "2026-11-27T10:00", [QueueScript("timeout")], False, "+48 500 000 001", None, "simulated"),
    ("c14", "1 1", "2026-11-27T10:05", [QueueScript("answered", 15, 100, "PJSIP/102")], True, "+48 500 000 002", None, "simulated"),
    ("c15", "1 0", "2026-11-27T11:00", [QueueScript("answered", 25, 90, "PJSIP/100")], False, "+48 500 000 003", None, "live"),
]
RUNNING = "c15"  # its outcome never came: a call still in progress (no duration)
TAGS = {"c01": ["praise"], "c03": ["complaint", "escalated"], "c06": ["training"], "c11": ["complaint"]}
REVIEWED = {"c01", "c06"}


def write_calls(engine, installation: Path) -> None:
    flows, config = load_flows([installation.parent / "flows"], installation)
    writers = {source: CallWriter(engine, source=source) for source in ("live", "simulated")}
    for call_id, keys, at, queue, survey, caller, name, source in CALLS:
        sink = writers[source].submit
        if call_id == RUNNING:
            sink = lambda event, write=sink: None if event.type == ev.OUTCOME else write(event)  # noqa: E731
        runner = Engine(flows, config, sampler=SurveySampler(start=9) if survey else SurveySampler())
        channel = ScriptedChannel(keys, VirtualClock(parse_time(f"{at}:00+01:00")), queue)
        details = {"caller_name": name, "source": source} if name else None
        asyncio.run(runner.run(channel, "main", caller=caller, clock=channel.clock, call_id=call_id,
                               on_event=sink, details=details))
    for writer in writers.values():
        assert writer.close(10)
    with Session(engine) as session:
        for call_id, tags in TAGS.items():
            session.add_all(CallTag(call_id=call_id, tag=tag) for tag in tags)
        for call in session.scalars(select(Call).where(Call.id.in_(REVIEWED))):
            call.reviewed = True
        session.commit()


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """A database with the calls, written once for the module and copied for each test."""
    folder = tmp_path_factory.mktemp("calls")
    config = make_installation(folder)
    engine = init_db(f"sqlite:///{folder / 'ivr.db'}")
    write_calls(engine, config)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the file that is copied
    engine.dispose()
    return folder / "ivr.db"


@pytest.fixture
def installation(tmp_path, written) -> Path:
    """The web tests' installation (conftest.py), its database holding the calls."""
    config = make_installation(tmp_path)
    shutil.copyfile(written, tmp_path / "ivr.db")
    return config


@pytest.fixture
def calls(ctx) -> dict[str, dict[str, Any]]:
    """The stored calls, as the oracle sees them: columns, the nodes reached, tags."""
    return stored(ctx.engine)


def stored(engine) -> dict[str, dict[str, Any]]:
    with Session(engine) as session:
        rows = {c.id: {col.name: getattr(c, col.name) for col in Call.__table__.columns} for c in session.scalars(select(Call))}
        for node in session.scalars(select(CallNode)):
            rows[node.call_id].setdefault("nodes", set()).add(f"{node.flow}:{node.node}")
        for tag in session.scalars(select(CallTag)):
            rows[tag.call_id].setdefault("tags", set()).add(tag.tag)
    assert len(rows) == len(CALLS)
    return rows


def listed(client, query: Any = "") -> list[str]:
    """The call ids of the list page, in order."""
    response = client.get("/calls/?" + (query if isinstance(query, str) else urlencode(query, doseq=True)))
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return re.findall(r'class="open" href="/calls/([^"]+)"', response.get_data(as_text=True))


def newest_first(rows: dict[str, dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> list[str]:
    return [r["id"] for r in sorted(rows.values(), key=lambda r: (r["started_at"], r["id"]), reverse=True) if keep(r)]


def local_day(row: dict[str, Any]) -> dt.date:
    return row["started_at"].astimezone(ZONE).date()


def has_keys(keys: str, wanted: str, at_start: bool = False) -> bool:
    tokens, seq = keys.split(), wanted.split()
    starts = [0] if at_start else range(len(tokens))
    return any(tokens[i:i + len(seq)] == seq for i in starts)


FILTERS: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    ("from=2026-11-24", lambda r: local_day(r) >= dt.date(2026, 11, 24)),
    ("to=2026-11-23", lambda r: local_day(r) <= dt.date(2026, 11, 23)),
    ("from=2026-11-24&to=2026-11-24", lambda r: local_day(r) == dt.date(2026, 11, 24)),
    ("caller=601+200", lambda r: "601200" in r["caller_digits"]),
    ("caller=%2B48+22", lambda r: "4822" in r["caller_digits"]),
    ("caller=0000", lambda r: "0000" in r["caller_digits"]),
    ("department=sales", lambda r: r["department"] == "sales"),
    ("department=backup", lambda r: r["department"] == "backup"),
    ("agent=PJSIP/102", lambda r: r["agent"] == "PJSIP/102"),
    *[(f"outcome={o}", lambda r, o=o: r["outcome"] == o) for o in ev.Outcome],
    ("min_duration=200", lambda r: r["duration"] is not None and r["duration"] >= 200),
    ("max_duration=1:00", lambda r: r["duration"] is not None and r["duration"] <= 60),
    ("min_duration=100&max_duration=300", lambda r: r["duration"] is not None and 100 <= r["duration"] <= 300),
    ("keys=1+1", lambda r: has_keys(r["keys"], "1 1")),
    ("keys=1+1&keys_at=start", lambda r: has_keys(r["keys"], "1 1", at_start=True)),
    ("keys=1", lambda r: has_keys(r["keys"], "1")),
    ("keys=0", lambda r: has_keys(r["keys"], "0")),  # a whole key: not the 0 of a score of 10
    ("keys=4+2", lambda r: has_keys(r["keys"], "4 2")),
    ("keys=2&keys_at=start", lambda r: has_keys(r["keys"], "2", at_start=True)),
    ("node=main:faq", lambda r: "main:faq" in r.get("nodes", ())),
    ("node=main:sales", lambda r: "main:sales" in r.get("nodes", ())),
    ("node=main:holiday_notice", lambda r: "main:holiday_notice" in r.get("nodes", ())),
    ("node=faq:delivery_times", lambda r: "faq:delivery_times" in r.get("nodes", ())),
    ("node=survey", lambda r: any(n.endswith(":survey") for n in r.get("nodes", ()))),
    ("nps=promoter", lambda r: r["survey_score"] is not None and r["survey_score"] >= 9),
    ("nps=passive", lambda r: r["survey_score"] in (7, 8)),
    ("nps=detractor", lambda r: r["survey_score"] is not None and r["survey_score"] <= 6),
    ("nps=scored", lambda r: r["survey_score"] is not None),
    ("nps_min=4&nps_max=8", lambda r: r["survey_score"] is not None and 4 <= r["survey_score"] <= 8),
    ("nps_max=3", lambda r: r["survey_score"] is not None and r["survey_score"] <= 3),
    ("tag=complaint", lambda r: "complaint" in r.get("tags", ())),
    ("tag=praise&tag=training", lambda r: bool({"praise", "training"} & r.get("tags", set()))),
    ("reviewed=yes", lambda r: r["reviewed"]),
    ("reviewed=no", lambda r: not r["reviewed"]),
    ("source=simulated", lambda r: r["source"] == "simulated"),
    ("source=live", lambda r: r["source"] == "live"),
]


def combined(*queries: str) -> tuple[str, Callable[[dict[str, Any]], bool]]:
    """A search of several filters: the calls each of them keeps."""
    alone = dict(FILTERS)
    return "&".join(queries), lambda r: all(alone[q](r) for q in queries)


FILTERS += [
    combined("from=2026-11-24&to=2026-11-24", "outcome=answered"),
    combined("department=sales", "agent=PJSIP/102", "nps=passive"),
    combined("caller=601+200", "outcome=abandoned", "reviewed=no"),
    combined("node=main:sales", "min_duration=200", "keys=1+1"),
    combined("tag=complaint", "nps=detractor", "from=2026-11-24"),
    combined("source=simulated", "department=sales"),
    combined("from=2026-11-24&to=2026-11-24", "keys=1", "reviewed=no"),
]


def test_the_calls_are_varied(calls):
    """The oracle is only as good as the data: every filter must have calls on both sides."""
    assert {r["outcome"] for r in calls.values()} >= {"answered", "abandoned", "voicemail", "self_service", "callback", None}
    assert calls["c03"]["keys"] == "1 3 ******** 3" and calls["c01"]["keys"] == "1 1 10"
    assert calls[RUNNING]["duration"] is None
    assert len({r["department"] for r in calls.values()}) >= 4 and len({r["survey_score"] for r in calls.values()}) >= 4


@pytest.mark.parametrize("query, keep", FILTERS, ids=[q for q, _ in FILTERS])
def test_each_filter_and_combination_narrows_to_exactly_its_calls(login, calls, query, keep):
    expected = newest_first(calls, keep)
    assert listed(login("qa"), query) == expected
    assert 0 < len(expected) < len(calls) or query.startswith("outcome=")  # the filter really narrows


def test_the_list_shows_every_call_newest_first_with_its_columns(login, calls):
    client = login("admin")
    assert listed(client) == newest_first(calls, lambda r: True)
    page = client.get("/calls/").get_data(as_text=True)
    assert "field-error" not in page and "aria-invalid" not in page  # no complaint about a search not made
    assert "self-service (solved in IVR)" in page and 'class="badge answered"' in page
    assert "in progress" in page  # the running call
    assert "2026-11-24 00:30" in page  # local time, not UTC (23:30 the day before)
    assert "5:56" in page  # c01's duration through |duration
    assert '<span class="badge tag">escalated</span>' in page and 'title="reviewed"' in page
    assert f"{len(calls)} calls" in page  # all on one page: counted exactly, for free


def in_order(rows: dict[str, dict[str, Any]], sort: str, direction: str,
             keep: Callable[[dict[str, Any]], bool] = lambda r: True) -> list[str]:
    """The order of a sort: calls with the measure by it (ties by time and id), then the others newest first."""
    column = {"started": "started_at", "duration": "duration", "wait": "queue_wait", "talk": "talk", "nps": "survey_score"}[sort]
    desc = direction == "desc"
    having = sorted((r for r in rows.values() if r[column] is not None and keep(r)),
                    key=lambda r: (r[column], r["started_at"], r["id"]), reverse=desc)
    lacking = newest_first(rows, lambda r: r[column] is None and keep(r))
    return [r["id"] for r in having] + (lacking if desc else lacking[::-1])


@pytest.mark.parametrize("sort", ["started", "duration", "wait", "talk", "nps"])
@pytest.mark.parametrize("direction", ["desc", "asc"])
def test_sorting_lists_calls_with_the_measure_first_then_the_others_newest_first(login, calls, sort, direction):
    assert listed(login("qa"), f"sort={sort}&dir={direction}") == in_order(calls, sort, direction)


@pytest.mark.parametrize("query", ["", "sort=duration", "sort=nps&dir=asc", "sort=wait&dir=asc", "department=sales&sort=talk",
                                   "outcome=answered&dir=asc", "from=2026-11-24&sort=duration&dir=asc"])
def test_pages_walk_forward_and_back_through_every_match_once(login, calls, monkeypatch, query):
    monkeypatch.setattr(finder, "PAGE", 3)
    client = login("qa")
    whole, pages, url = [], [], "/calls/?" + query
    while url:
        body = client.get(url).get_data(as_text=True)
        ids = re.findall(r'class="open" href="/calls/([^"]+)"', body)
        assert 0 < len(ids) <= 3
        pages.append(ids)
        whole += ids
        found = re.search(r'rel="next" href="([^"]+)"', body)
        url = html.unescape(found.group(1)) if found else None
    monkeypatch.setattr(finder, "PAGE", 50)
    assert whole == listed(client, query)  # each once, in order
    monkeypatch.setattr(finder, "PAGE", 3)
    for page in reversed(pages[:-1]):  # and back, a page at a time
        back = re.search(r'rel="prev" href="([^"]+)"', body)
        assert back, "a later page links to the one before"
        body = client.get(html.unescape(back.group(1))).get_data(as_text=True)
        assert re.findall(r'class="open" href="/calls/([^"]+)"', body) == page
    assert 'rel="prev"' not in body  # the first page again
    if len(pages) > 1:
        assert "3+ calls" in body and "data-count-url" in body


def test_links_keep_the_search(login, calls):
    body = login("qa").get("/calls/?department=sales&tag=complaint&tag=praise&keys=1+1").get_data(as_text=True)
    sort_link = html.unescape(re.search(r'href="([^"]*sort=duration[^"]*)"', body).group(1))
    assert "department=sales" in sort_link and "tag=complaint" in sort_link and "tag=praise" in sort_link and "keys=1+1" in sort_link
    assert 'value="sales" selected' in body and 'value="1 1"' in body


BAD = [
    ("from", "2026-13-01", "“2026-13-01” is not a date"),
    ("to", "yesterday", "not a date"),
    ("min_duration", "-5", "not negative"),
    ("max_duration", "abc", "not negative"),
    ("outcome", "exploded", "“exploded” is no outcome"),
    ("source", "fax", "“fax” is no source"),
    ("caller", "bob", "digits"),
    ("keys", "1 x 3", "keys 0-9"),
    ("nps", "fan", "one of promoter"),
    ("nps_min", "11", "0 to 10"),
    ("nps_max", "²", "0 to 10"),
    ("reviewed", "maybe", "yes or no"),
    ("node", "main:<x>", "a node of the flows"),
    ("department", "x" * 300, "at most 100"),
]


@pytest.mark.parametrize("name, value, message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_is_shown_beside_its_field_and_the_other_filters_still_apply(login, calls, name, value, message):
    client = login("qa")
    response = client.get("/calls/?" + urlencode({name: value, "agent": "PJSIP/101" if name != "agent" else ""}))
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'<span class="field-error" id="error-{name}">' in body and html.escape(message, quote=True) in body
    assert 'aria-invalid="true" aria-describedby="error-' + name in body
    assert re.findall(r'class="open" href="/calls/([^"]+)"', body) == newest_first(calls, lambda r: r["agent"] == "PJSIP/101")


def test_contradictions_and_broken_links_are_reported_not_crashed(login, calls):
    client = login("qa")
    body = client.get("/calls/?from=2026-11-25&to=2026-11-24&min_duration=300&max_duration=100").get_data(as_text=True)
    assert "is before the start date" in body and "is below the minimum" in body
    assert re.findall(r'class="open" href="/calls/([^"]+)"', body) == newest_first(
        calls, lambda r: local_day(r) >= dt.date(2026, 11, 25) and (r["duration"] or 0) >= 300)
    for cursor in ("garbage", "W10", view.encode_cursor(finder.Cursor(0, ("x", "y")), "started"),
                   view.encode_cursor(finder.Cursor(0, (1, "c01")), "duration"), "e30" * 50,
                   view.encode_cursor(finder.Cursor(0, (10 ** 30, "2026-11-24T10:00:00+00:00", "c01")), "duration"),
                   view.encode_cursor(finder.Cursor(0, (float("nan"), "2026-11-24T10:00:00+00:00", "c01")), "duration"),
                   view.encode_cursor(finder.Cursor(1, ("0001-01-01T00:00:00+14:00", "c01")), "duration")):
        for name in ("after", "before"):
            response = client.get(f"/calls/?{name}={cursor}&sort=duration")
            assert response.status_code == 200 and "page link is broken" in response.get_data(as_text=True)
    assert client.get("/calls/?sort=loudness&dir=sideways").status_code == 200
    assert client.get("/calls/?tag=" + "&tag=".join(str(i) for i in range(30))).status_code == 200


def test_untrusted_caller_text_is_escaped_and_masked_digits_stay_masked(login, calls):
    body = login("qa").get("/calls/").get_data(as_text=True)
    assert HOSTILE_NAME not in body and "<script>alert" not in body and "<b>7</b>" not in body
    assert str(escape(HOSTILE_NAME)) in body and str(escape(HOSTILE_NUMBER)) in body
    assert "90012345" not in body
    assert '<span class="masked" title="masked input">********</span>' in body
    search_page = login("qa").get("/calls/?caller=%3Cscript%3E").get_data(as_text=True)
    assert "<script>" not in search_page.split("<main>")[1]


def test_qa_and_admin_may_search_anonymous_visitors_may_not(app, login, calls):
    for role in ("qa", "admin"):
        assert login(role).get("/calls/?outcome=answered").status_code == 200
        assert login(role).get("/calls/count?outcome=answered").status_code == 200
    anonymous = app.test_client()
    assert anonymous.get("/calls/").status_code == 302
    count = anonymous.get("/calls/count")
    assert count.status_code == 302 and "/login" in count.headers["Location"]


def test_the_count_is_capped(login, calls, monkeypatch):
    client = login("qa")
    answer = client.get("/calls/count?outcome=answered").get_json()
    assert answer == {"count": 6, "capped": False, "label": "6 calls match"}
    monkeypatch.setattr(view, "COUNT_CAP", 3)
    assert client.get("/calls/count?outcome=answered").get_json() == {"count": 3, "capped": True, "label": "3+ calls match"}
    assert client.get("/calls/count?caller=000&department=nowhere").get_json()["label"] == "0 calls match"
    assert client.get("/calls/count?agent=PJSIP/104").get_json()["label"] == "1 call matches"
    assert client.get("/calls/count").get_json()["label"] == "3+ calls"


def test_the_page_follows_the_content_security_policy(login, calls):
    response = login("qa").get("/calls/?from=bad")
    body = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", body) and " style=" not in body and "onclick" not in body.lower()
    assert '<script src="/static/calls.js" defer></script>' in body


def test_dates_are_days_of_the_installation_time_zone():
    filters = view.parse_filters(MultiDict({"from": "2026-07-01", "to": "2026-11-24", "min_duration": "1:02:03"}), ZONE)
    assert filters.started_from == dt.datetime(2026, 6, 30, 22, 0, tzinfo=dt.timezone.utc)  # summer time
    assert filters.started_before == dt.datetime(2026, 11, 24, 23, 0, tzinfo=dt.timezone.utc)  # winter time
    assert filters.min_duration == 3723 and not filters.errors


# --- query plans --------------------------------------------------------------------------------
WALK = finder.Hints(by_sort_index=True)  # many matches: walk the sort measure's index
PLANS = [  # query, hints, index the plan must use
    ("", finder.Hints(), "ix_calls_started_at_caller_digits"),
    ("from=2026-11-24", finder.Hints(), "ix_calls_started_at_caller_digits"),
    ("caller=601", finder.Hints(), "ix_calls_started_at_caller_digits"),
    ("department=sales", finder.Hints(), "ix_calls_department_started_at"),
    ("agent=PJSIP/101&from=2026-11-01", finder.Hints(), "ix_calls_agent_started_at"),
    ("outcome=failed", finder.Hints(), "ix_calls_outcome_started_at"),
    ("reviewed=no", finder.Hints(), "ix_calls_reviewed_started_at"),
    ("nps_min=3&nps_max=3", finder.Hints(), "ix_calls_survey_score_started_at"),
    ("nps=detractor", finder.Hints(), "ix_calls_started_at_caller_digits"),
    ("min_duration=600", finder.Hints(), "ix_calls_started_at_caller_digits"),
    ("keys=1+3", finder.Hints(), "ix_calls_started_at_caller_digits"),
    ("source=live", finder.Hints(), "ix_calls_started_at_caller_digits"),
    ("node=main:faq", finder.Hints(), "call_nodes USING PRIMARY KEY"),
    ("node=main:holiday_notice", finder.Hints(frozenset({"node"})), "ix_call_nodes_node_flow_call_id"),
    ("tag=escalated", finder.Hints(frozenset({"tag"})), "ix_call_tags_tag_call_id"),
    ("tag=escalated", finder.Hints(), "call_tags USING PRIMARY KEY"),
    ("caller=601200300", finder.Hints(numbers=("48601200300",)), "ix_calls_caller_digits (caller_digits=?)"),
    ("sort=duration", WALK, "ix_calls_duration"),
    ("sort=nps&dir=asc", WALK, "ix_calls_survey_score_started_at"),
    ("sort=duration&department=sales&from=2026-11-01&nps=promoter", WALK, "ix_calls_duration"),
    ("sort=nps&outcome=answered&reviewed=no", WALK, "ix_calls_survey_score_started_at"),
    ("sort=duration&department=sales", finder.Hints(), "ix_calls_department_started_at"),
    ("sort=nps&agent=PJSIP/101", finder.Hints(), "ix_calls_agent_started_at"),
    ("sort=wait&from=2026-11-20", finder.Hints(), "ix_calls_started_at_caller_digits"),
]


@pytest.mark.parametrize("query, hints, index", PLANS, ids=[f"{q or 'all'}-{i}" for i, (q, _, _) in enumerate(PLANS)])
def test_every_filter_is_answered_from_an_index(ctx, query, hints, index):
    """On a fresh installation's SQLite (no ANALYZE statistics), as on a big one."""
    filters = view.parse_filters(MultiDict(parse_qsl(query)), ZONE)
    assert not filters.errors
    with ctx.engine.connect() as conn:
        sql = finder.calls_query(filters, hints=hints).compile(ctx.engine, compile_kwargs={"literal_binds": True})
        plan = " / ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    assert index in plan, plan
    assert not re.search(r"SCAN calls(?! USING)", plan), plan  # never a read of the whole table
    if (filters.sort == "started" and not hints.rare and hints.numbers is None) or hints.by_sort_index:
        assert "FOR ORDER BY" not in plan.replace("FOR RIGHT PART OF ORDER BY", ""), plan  # the index gives the order


# --- PostgreSQL ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres():
    from ivr.testbed import postgres as pgserver

    try:
        server = pgserver.start_postgres()
    except pgserver.PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL could not be started: {exc}", pytrace=False)
    yield server
    server.stop()


# Each way a search can be answered (see probe_hints), forced by its thresholds:
SHAPES = {"read by the filters' indexes and sorted": dict(RARE=10**9, SORTED_FEW=10**9, NUMBERS=10**9),
          "walked along the order's index": dict(RARE=0, SORTED_FEW=0, NUMBERS=0)}
SORTED = ["", "&sort=duration", "&sort=nps&dir=asc", "&sort=wait"]


def check_answers(session: Session, calls: dict[str, dict[str, Any]], monkeypatch) -> int:
    """Every filter, sorted each way, in every shape of query: the oracle's calls, in its order."""
    checked = 0
    for shape, knobs in SHAPES.items():
        for name, value in knobs.items():
            monkeypatch.setattr(finder, name, value)
        for (query, keep), sort in ((f, s) for f in FILTERS for s in SORTED):
            filters = view.parse_filters(MultiDict(parse_qsl(query + sort)), ZONE)
            by = dict(parse_qsl(sort)).get("sort", "started")
            expected = in_order(calls, by, dict(parse_qsl(sort)).get("dir", "desc"), keep)
            page = finder.search(session, filters)
            assert [r.id for r in page.rows] == expected, (shape, query + sort, finder.probe_hints(session, filters))
            assert finder.count_capped(session, filters) == len(expected), (shape, query + sort)
            checked += 1
    return checked


def test_every_shape_of_query_gives_the_same_answers(ctx, calls, monkeypatch):
    with Session(ctx.engine) as session:
        assert check_answers(session, calls, monkeypatch) == 2 * len(FILTERS) * len(SORTED)


def test_postgresql_gives_the_same_answers(postgres, installation, calls, monkeypatch):
    url = postgres.create_database()
    engine = init_db(url)
    try:
        write_calls(engine, installation)
        with Session(engine) as session:
            check_answers(session, calls, monkeypatch)
            for sort in finder.SORTS:
                for direction in ("asc", "desc"):
                    filters = view.parse_filters(MultiDict({"sort": sort, "dir": direction}), ZONE)
                    assert [r.id for r in finder.search(session, filters).rows] == in_order(calls, sort, direction)
    finally:
        engine.dispose()
        postgres.drop_database(url)

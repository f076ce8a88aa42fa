"""The dashboard: figures, charts and the menu tree over calls written by the real CallWriter
from simulated calls of flows/main.yaml at known times (Europe/Warsaw days)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import insert
from werkzeug.datastructures import MultiDict

from ivr.channels.scripted import QueueScript as Q
from ivr.settings.config import load_config
from ivr.engine import Engine
from ivr.engine.sampling import SurveySampler
from ivr.flow.model import FlowSet
from ivr.flow.project import compile_text, load_flows
from ivr.simulation.simulate import parse_time, simulate
from ivr.store import CallWriter
from ivr.store.models import Call, CallNode
from ivr.web import create_app, menu_usage
from ivr.web.calls import parse_filters
from ivr.web.menu_graph import draw, sanitize_svg, tree
from ivr.web.menu_usage import NodeCounts, Usage, usage
from ivr.web.metrics import Scope, figures, offset_stretches
from ivr.web.users import add_user

from .support import PASSWORDS, REPO, csrf_of, log_in, make_installation

WARSAW = "+01:00"  # late November: CET
# (call id, local start, keys, queue, source) -> the expected figures below
CALLS = [
    ("a", "2026-11-23T10:00", "1 1 9#", [Q("answered", wait=10, talk=200)], "live"),  # sales, promoter
    ("b", "2026-11-23T11:00", "1 7 0 6#", [Q("answered", wait=30, talk=100)], "live"),  # invalid key, detractor
    ("c", "2026-11-23T12:00", "1 hangup", [], "live"),  # hangs up in the main menu
    ("i", "2026-11-23T15:00", "1 0 7#", [Q("answered", wait=25, talk=120)], "live"),  # operator, passive
    ("d", "2026-11-24T10:00", "1 2", [Q("abandoned", wait=50)], "live"),  # hangs up in the complaints queue
    ("e", "2026-11-24T11:00", "1 2", [Q("timeout")], "live"),  # 300 s in the queue, then voicemail
    ("f", "2026-11-24T12:00", "1 - 4 1 #", [], "live"),  # a time-out, then the FAQ: self-service
    ("g", "2026-11-24T13:00", "1 1 10#", [Q("answered", wait=20, talk=300)], "simulated"),  # promoter
    ("h", "2026-11-24T00:30", "", [], "live"),  # after hours: voicemail; 23:30 UTC the day before
    ("old", "2026-11-20T10:00", "1 1", [Q("answered")], "live"),  # before the range
    ("late", "2026-11-25T00:10", "", [], "live"),  # after the range (23:10 UTC on the 24th)
]
RANGE = {"from": "2026-11-23", "to": "2026-11-24"}


def write_calls(ctx, installation: Path, calls=CALLS) -> dict[str, Any]:
    flows, config = load_flows([installation.parent / "flows"], installation)
    writers = {source: CallWriter(ctx.engine, source=source) for source in ("live", "simulated")}
    done = {}
    for call_id, at, keys, queue, source in calls:
        engine = Engine(flows, config, sampler=SurveySampler(start=9))  # the first call of a sampler is asked
        done[call_id] = simulate(engine, "main", keys=keys, caller="+48 22 123 45 67", at=parse_time(at + WARSAW),
                                 queue=queue, on_event=writers[source].submit, call_id=call_id).call
    for writer in writers.values():
        assert writer.close()
    return done


def page(client, path: str = "/dashboard/", **args: str):
    response = client.get(path, query_string=args)
    return response, response.get_data(as_text=True)


def menu_svgs(html: str) -> list[str]:
    return re.findall(r"<svg[^>]*class=\"menu-tree\".*?</svg>", html, re.S)


def scope_of(ctx, first="2026-11-23", last="2026-11-24", **kw) -> Scope:
    return Scope(dt.date.fromisoformat(first), dt.date.fromisoformat(last), ctx.config.timezone, **kw)


# --- PostgreSQL: the store tests' throwaway server ------------------------------------------------
def _pgserver():
    from ivr.testbed import postgres

    return postgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[Any]:
    pg = _pgserver()
    try:
        server = pg.start_postgres()
    except pg.PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL could not be started: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_app(request, tmp_path):
    """The app on SQLite and on PostgreSQL, no calls yet; (app, installation)."""
    changes = {}
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        changes["database"] = server.create_database()
    installation = make_installation(tmp_path, **changes)
    app = create_app(load_config(installation), testing=True)
    yield app, installation
    app.extensions["ivr"].engine.dispose()
    if "database" in changes:
        server.drop_database(changes["database"])


# --- the figures -----------------------------------------------------------------------------------
def test_the_figures_are_exactly_right_on_sqlite_and_postgresql(any_db_app):
    app, installation = any_db_app
    ctx = app.extensions["ivr"]
    write_calls(ctx, installation)
    with ctx.sessions() as session:
        found = figures(session, scope_of(ctx))
    t = found.total
    assert [(day.isoformat(), d.calls) for day, d in found.days] == [("2026-11-23", 4), ("2026-11-24", 5)]
    assert t.calls == t.ended == 9
    assert t.by_outcome == {"answered": 4, "abandoned": 2, "voicemail": 2, "self_service": 1}
    assert (t.queued, t.abandoned, t.abandonment) == (6, 1, 1 / 6)  # c hung up in a menu: not in the rate
    assert t.average_wait == (10 + 30 + 25 + 50 + 300 + 20) / 6
    assert t.handle_time == (200 + 100 + 120 + 300) / 4
    assert (t.within_sl, t.service_level) == (2, 2 / 6)  # a (10 s) and g (20 s); i waited 25 s
    assert (t.surveyed, t.promoters, t.passives, t.detractors) == (4, 2, 1, 1)  # 9 and 10; 7; 6
    assert t.nps == 25.0  # (2 - 1) / 4
    assert t.ivr_share == 1 / 9
    day1, day2 = (d for _, d in found.days)
    assert (day1.queued, day1.abandonment, day2.queued, day2.abandonment) == (3, 0.0, 3, 1 / 3)
    assert day2.by_outcome == {"abandoned": 1, "voicemail": 2, "self_service": 1, "answered": 1}
    with ctx.sessions() as session:
        counts = usage(session, scope_of(ctx))
    assert counts.node("main", "main_menu") == NodeCounts(entered=8, hangups=1, timeouts=1, invalid=1)
    assert counts.edge("main", "main_menu", "1", "sales") == 2
    assert counts.edges[("main", "faq", "goto", "faq", "faq_menu")] == 1


def test_days_are_local_days_across_the_change_of_clocks(any_db_app):
    app, _ = any_db_app
    ctx = app.extensions["ivr"]
    local = {  # Warsaw leaves summer time at 03:00 CEST on 25 October 2026 (01:00 UTC)
        "2026-10-24T23:30+02:00": "2026-10-24", "2026-10-25T00:30+02:00": "2026-10-25",
        "2026-10-25T02:59+02:00": "2026-10-25", "2026-10-25T02:01+01:00": "2026-10-25",
        "2026-10-25T23:59+01:00": "2026-10-25", "2026-10-26T00:00+01:00": "2026-10-26",
    }
    with ctx.engine.begin() as conn:
        conn.execute(insert(Call), [{"id": f"dst{i}", "flow": "main", "outcome": "answered",
                                     "started_at": dt.datetime.fromisoformat(at)} for i, at in enumerate(local)])
    with ctx.sessions() as session:
        found = figures(session, scope_of(ctx, first="2026-10-24", last="2026-10-26"))
    assert [(day.isoformat(), d.calls) for day, d in found.days] == [("2026-10-24", 1), ("2026-10-25", 4), ("2026-10-26", 1)]
    zone = ctx.config.timezone
    start, end = dt.datetime(2026, 10, 20, tzinfo=dt.timezone.utc), dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    assert offset_stretches(zone, start, end) == [(start, 7200), (dt.datetime(2026, 10, 25, 1, tzinfo=dt.timezone.utc), 3600)]


def test_the_page_shows_the_figures_and_charts(app, ctx, installation, login):
    write_calls(ctx, installation)
    response, html = page(login("qa"), **RANGE)
    assert response.status_code == 200
    tile = lambda name: re.search(rf'id="tile-{name}".*?class="figure">([^<]*)<', html, re.S).group(1)  # noqa: E731
    assert (tile("calls"), tile("abandonment"), tile("wait"), tile("handle")) == ("9", "16.7%", "1:12", "3:00")
    assert (tile("service"), tile("nps"), tile("ivr")) == ("33.3%", "+25", "11.1%")
    assert "1 of 6 calls that reached a queue" in html and "of 4 survey answers" in html
    # the charts: accessible SVG, values in tooltips, the same numbers in a table
    assert html.count('role="img"') == 3 and 'aria-labelledby="chart-calls-title chart-calls-desc"' in html
    assert "<title>2026-11-23: answered 3 of 4</title>" in html
    assert "<title>2026-11-24: 33.3%</title>" in html and "<title>2026-11-23: 0.0%</title>" in html
    assert "<title>whole range 16.7%</title>" in html
    assert "<title>2026-11-24: 123 s</title>" in html  # (50 + 300 + 20) / 3
    assert re.search(r"<td>2026-11-24</td><td class=\"num\">5</td>", html)
    # the Content-Security-Policy allows no inline script or style
    assert re.findall(r"<script[^>]*>(.*?)</script>", html, re.S) == [""] and " style=" not in html
    assert '<script src="/static/dashboard.js" defer>' in html


def test_department_and_source_narrow_every_figure(app, ctx, installation, login):
    write_calls(ctx, installation)
    client = login("qa")
    _, html = page(client, department="complaints", **RANGE)
    assert "2 calls from 2026-11-23 to 2026-11-24" in html and "1 of 2 calls that reached a queue" in html
    with ctx.sessions() as session:
        complaints = figures(session, scope_of(ctx, department="complaints")).total
        simulated = figures(session, scope_of(ctx, source="simulated")).total
        live = figures(session, scope_of(ctx, source="live")).total
        one_day = figures(session, scope_of(ctx, first="2026-11-24")).total
        tree_counts = usage(session, scope_of(ctx, department="complaints"))
    assert (complaints.calls, complaints.abandonment, complaints.average_wait) == (2, 0.5, 175.0)
    assert (simulated.calls, simulated.by_outcome, live.calls) == (1, {"answered": 1}, 8)
    assert one_day.calls == 5 and one_day.by_outcome.get("abandoned") == 1
    assert tree_counts.node("main", "main_menu").entered == 2
    assert tree_counts.node("main", "complaints") == NodeCounts(entered=2, hangups=1)
    _, html = page(client, source="simulated", **RANGE)
    assert "1 call from" in html and "simulated calls only" in html


def test_the_default_range_is_the_last_30_days_and_presets_change_it(app, ctx, login):
    client = login("qa")
    today = dt.datetime.now(ctx.config.timezone).date()
    response, html = page(client)
    assert response.status_code == 200
    assert f'value="{(today - dt.timedelta(days=29)).isoformat()}"' in html and f'value="{today.isoformat()}"' in html
    _, html = page(client, days="7")
    assert f'value="{(today - dt.timedelta(days=6)).isoformat()}"' in html
    assert 'href="/dashboard/?days=90"' in html


# --- the menu tree ---------------------------------------------------------------------------------
def test_the_menu_tree_counts_branches_hang_ups_and_time_outs(app, ctx, installation, login):
    write_calls(ctx, installation)
    with ctx.sessions() as session:
        counts = usage(session, scope_of(ctx))
    assert counts.node("main", "welcome").entered == 9
    assert counts.node("main", "main_menu") == NodeCounts(entered=8, hangups=1, timeouts=1, invalid=1)
    assert counts.node("main", "complaints") == NodeCounts(entered=2, hangups=1)
    assert counts.node("main", "sales") == NodeCounts(entered=2)
    main = {(src, via, dst): n for (ff, src, via, tf, dst), n in counts.edges.items() if ff == tf == "main"}
    assert main[("language", "1", "main_menu")] == 8
    assert (main[("main_menu", "1", "sales")], main[("main_menu", "2", "complaints")]) == (2, 2)
    assert (main[("main_menu", "0", "operator")], main[("main_menu", "4", "faq")]) == (2, 1)
    assert main[("open_check", "closed", "after_hours")] == 1 and main[("complaints", "timeout", "complaints_voicemail")] == 1
    assert counts.edges[(None, None, "start", "main", "welcome")] == 9
    assert counts.edges[("main", "faq", "goto", "faq", "faq_menu")] == 1
    assert counts.node("faq", "anything_else").entered == 1

    client = login("qa")
    _, html = page(client, **RANGE)
    # not counted yet: the dashboard leaves the tree to dashboard.js, with a link for no script
    assert not menu_svgs(html)
    assert 'data-menu-src="/dashboard/menu?fragment=1&amp;from=2026-11-23&amp;to=2026-11-24"' in html
    assert 'href="/dashboard/menu?from=2026-11-23&amp;to=2026-11-24"' in html
    response, fragment = page(client, "/dashboard/menu", fragment="1", **RANGE)
    assert response.status_code == 200 and "<html" not in fragment and fragment.lstrip().startswith("<section")
    svgs = menu_svgs(fragment)
    assert len(svgs) == 2  # main and faq
    assert menu_svgs(page(client, "/dashboard/menu", **RANGE)[1]) == svgs  # its own page
    assert menu_svgs(page(client, **RANGE)[1]) == svgs  # counted now: the dashboard shows it at once
    main_svg = svgs[0]
    ET.fromstring(main_svg)  # well-formed
    assert "main_menu" in main_svg and "entered 8 · hung up 1 · time-outs 1 · invalid 1" in main_svg
    assert "1 · 2 callers" in main_svg and "2 · 2 callers" in main_svg and "0 · 2 callers" in main_svg
    assert "4 · 1 caller<" in main_svg  # one caller: no plural
    assert "entered 2 · hung up 1" in main_svg  # complaints
    assert 'href="/calls/?node=main:main_menu&amp;from=2026-11-23&amp;to=2026-11-24"' in main_svg
    # the calls list reads the link as the same node and range
    link = re.search(r'href="/calls/\?(node=main:complaints[^"]*)"', main_svg).group(1).replace("&amp;", "&")
    asked = parse_filters(MultiDict(parse_qsl(link)), ctx.config.timezone)
    assert not asked.errors and asked.node == ("main", "complaints")
    assert (asked.started_from, asked.started_before) == scope_of(ctx).bounds()
    assert "from main:faq" in svgs[1] and "goto · 1 caller" in svgs[1]
    assert "<script" not in main_svg and " id=" not in main_svg and "onload" not in main_svg


def test_the_menu_tree_is_counted_a_day_at_a_time_and_kept_a_while(app, ctx, installation, login, monkeypatch):
    write_calls(ctx, installation)
    counted = []
    monkeypatch.setattr(menu_usage, "usage", lambda session, scope: counted.append(scope.first) or usage(session, scope))
    client = login("qa")
    for _ in range(3):
        assert page(client, "/dashboard/menu", fragment="1", **RANGE)[0].status_code == 200
    assert len(counted) == 2  # one count per day, then kept
    page(client, "/dashboard/menu", department="sales", **RANGE)  # other filters: counted anew
    assert len(counted) == 4
    _, html = page(client, "/dashboard/menu", **{"from": "2026-11-24", "to": "2026-11-25"})
    assert counted[4:] == [dt.date(2026, 11, 25)]  # the 24th is kept from before
    # the main menu on the 24th: d, e, f (a time-out) and g; the 25th's one call came after hours
    assert "main_menu" in html and "entered 4 · time-outs 1<" in html
    for name in ("ivr.dashboard.menu", "ivr.dashboard.days"):  # a while later: counted again
        later = app.extensions[name].clock() + menu_usage.SETTLED_DAY_SECONDS + 1
        monkeypatch.setattr(app.extensions[name], "clock", lambda later=later: later)
    page(client, "/dashboard/menu", **RANGE)
    assert len(counted) == 7


def test_a_day_that_is_over_is_kept_longer_than_today(ctx, installation):
    write_calls(ctx, installation)
    cache = menu_usage.TtlCache(size=100)
    scope = scope_of(ctx)
    with ctx.sessions() as session:
        during = dt.datetime(2026, 11, 24, 15, tzinfo=dt.timezone.utc)  # the 24th is today
        first = menu_usage.usage_by_day(session, scope, cache, now=during)
        assert first.node("main", "main_menu").entered == 8 and first.edge("main", "main_menu", "1", "sales") == 2
        start = cache.clock()
        cache.clock = lambda: start + menu_usage.OPEN_DAY_SECONDS + 1
        expired = [key[1] for key, (until, _) in cache._items.items() if until <= cache.clock()]
        assert expired == [dt.date(2026, 11, 24)]  # the 23rd is over: kept longer
        again = menu_usage.usage_by_day(session, scope, cache, now=during)
    assert again == first


def test_without_graphviz_the_counts_are_an_indented_list(app, ctx, installation, login, monkeypatch, tmp_path):
    write_calls(ctx, installation)
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on it
    response, html = page(login("qa"), "/dashboard/menu", **RANGE)
    assert response.status_code == 200
    assert "Graphviz is not installed" in html and 'class="menu-tree"' not in html
    listing = html[html.index('id="menu-list"'):]
    assert re.search(r"1 · 2 callers →</span>\s*<a href=\"/calls/\?node=main:sales[^\"]*\">main:sales</a>", listing)
    assert re.search(r">main:main_menu</a>\s*<span class=\"muted\">entered 8 · hung up 1 · time-outs 1 · invalid 1", listing)


def test_when_the_flows_do_not_load_the_tree_comes_from_the_call_records(app, ctx, installation, login):
    write_calls(ctx, installation)
    (installation.parent / "flows" / "main.yaml").write_text("flow: main\nnodes: [broken\n", encoding="utf-8")
    response, html = page(login("qa"), "/dashboard/menu", **RANGE)
    assert response.status_code == 200 and ctx.flows() is None
    assert "The flows could not be loaded" in html and 'class="menu-tree"' not in html
    assert re.search(r"1 · 2 callers →</span>\s*<a href=\"/calls/\?node=main:sales[^\"]*\">main:sales</a>", html)
    with ctx.sessions() as session:
        items = tree(None, usage(session, scope_of(ctx)), lambda f, n: f"/calls/?node={f}:{n}")
    [root] = items
    assert (root.flow, root.node, root.callers) == ("main", "welcome", 9)
    menu = root.children[0].children[0].children[0].children[0]  # open_check, vip_check, language, main_menu
    assert (menu.node, menu.via, menu.callers) == ("main_menu", "1", 8)
    assert {(c.node, c.via, c.callers) for c in menu.children} >= {("sales", "1", 2), ("complaints", "2", 2)}


def test_hostile_names_are_escaped_for_dot_and_in_the_svg(app, ctx, login, monkeypatch):
    base = load_flows([REPO / "flows"], REPO / "config.yaml")[0]["main"]
    start, end = 'a"<b>\\N', "c'&</text><script>alert(1)</script>"
    welcome = dataclasses.replace(base.nodes["welcome"], name=start, next=end)
    goodbye = dataclasses.replace(base.nodes["goodbye"], name=end)
    flow = dataclasses.replace(base, id='x"y<svg onload=alert(1)>', start=start, nodes={start: welcome, end: goodbye})
    with ctx.engine.begin() as conn:
        conn.execute(insert(Call), [{"id": "z", "flow": flow.id, "started_at": dt.datetime(2026, 11, 23, 9, tzinfo=dt.timezone.utc),
                                     "outcome": "abandoned", "last_flow": flow.id, "last_node": end}])
        conn.execute(insert(CallNode), [{"call_id": "z", "flow": flow.id, "node": n, "t": 0.0} for n in (start, end)])
    monkeypatch.setattr(ctx, "flows", lambda: FlowSet({flow.id: flow}))
    response, html = page(login("qa"), "/dashboard/menu", **RANGE)
    assert response.status_code == 200
    [svg] = menu_svgs(html)
    root = ET.fromstring(svg)
    texts = " ".join(t.text or "" for t in root.iter("text"))
    assert start in texts and end in texts and "hung up 1" in texts  # the names drawn as written, \N not expanded
    assert not [e for e in root.iter() if e.tag in ("script", "foreignObject")]
    assert not [a for e in root.iter() for a in e.attrib if a.startswith("on")]
    assert "<script>" not in html and "<svg onload" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # in the tables, autoescaped


def test_a_route_pattern_with_quotes_and_brackets_labels_its_edge_safely():
    flow = compile_text(
        "flow: main\nlanguages: [en]\nstart: r\nprompts: {bye: {en: Goodbye.}}\nnodes:\n"
        "  r: {type: route, when: [{caller: '^\"><img src=x onerror=alert(1)>', next: bye}], otherwise: bye}\n"
        "  bye: {type: hangup, prompt: bye}\n")
    counts = Usage(nodes={("main", "r"): NodeCounts(entered=3)}, edges={
        ("main", "r", 'caller ~ ^"><img src=x onerror=alert(1)>', "main", "bye"): 2})
    svg = draw(flow, counts, lambda f, n: f"/calls/?node={f}:{n}", "/calls/")
    root = ET.fromstring(svg)
    labels = [t.text for t in root.iter("text")]
    assert 'caller ~ ^"><img src=x onerror=alert(1)> · 2 callers' in labels
    assert not [e for e in root.iter() if e.tag == "img"]
    assert not [a for e in root.iter() for a in e.attrib if a.startswith("on")]


def test_the_sanitizer_keeps_shapes_and_local_links_only():
    hostile = """<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10pt" viewBox="0 0 10 10" onload="alert(1)">
<script>alert(2)</script><style>* { background: url(http://evil/) }</style>
<g id="node1" class="node x&quot;" style="fill:red"><title>ok</title>
 <a xlink:href="javascript:alert(3)" xlink:title="tip"><text x="1" onclick="alert(4)">js</text></a>
 <a xlink:href="/calls/?node=main:x"><polygon fill="url(http://evil/#p)" points="0,0 1,1"/></a>
 <a xlink:href="//evil.example/calls/"><text>offsite</text></a>
 <image href="http://evil/x.png"/><foreignObject><div>html</div></foreignObject><use href="#node1"/>
</g></svg>"""
    root = ET.fromstring(sanitize_svg(hostile, "/calls/", "label"))
    tags = {e.tag for e in root.iter()}
    assert tags <= {"svg", "g", "title", "text", "a", "polygon"}
    attributes = {name for e in root.iter() for name in e.attrib}
    assert not {a for a in attributes if a.startswith("on")} and "style" not in attributes and "id" not in attributes
    assert [a.get("href") for a in root.iter("a")] == ["/calls/?node=main:x"]
    assert root.find(".//polygon").get("fill") is None and root.get("aria-label") == "label"
    assert root.find("g").get("class") == "mt-node"


# --- bad input, access -----------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    ({"from": "2026-13-01"}, "is not a date"),
    ({"from": "<script>alert(1)</script>"}, "&lt;script&gt;alert(1)&lt;/script&gt;” is not a date"),
    ({"from": "2026-11-24", "to": "2026-11-01"}, "To is before From"),
    ({"from": "2020-01-01", "to": "2026-01-01"}, "at most 366 are shown"),
    ({"days": "1000"}, "is not one of the presets"),
    ({"days": "²"}, "is not one of the presets"),
    ({"from": "9999-12-30", "to": "9999-12-31"}, "9999-12-30 is not within the years"),
    ({"from": "9999-12-31"}, "9999-12-31 is not within the years"),
    ({"to": "0001-01-01"}, "0001-01-01 is not within the years"),
    ({"source": "robots"}, "Source: one of live, simulated"),
    ({"department": "x\"><script>"}, "a department&#39;s name has letters"),
])
def test_bad_input_is_shown_not_a_500(login, args, message):
    client = login("qa")
    for path in ("/dashboard/", "/dashboard/menu"):
        response, html = page(client, path, **args)
        assert response.status_code == 400
        assert message in html and 'id="dash-errors"' in html and "<script>alert" not in html


# here for any_db_app: PostgreSQL refuses a NUL in any string, which was a 500 on every page
@pytest.mark.parametrize("url", ["/calls/?department=a%00", "/calls/?tag=%00", "/calls/count?agent=%00", "/calls/a%00b",
                                 "/admin/audit?user=%00", "/dashboard/?department=%00", "/reports/?from=%00"])
def test_a_nul_character_is_refused_on_every_database(any_db_app, url):
    app, _ = any_db_app
    add_user(app.extensions["ivr"].engine, "admin", PASSWORDS["admin"], "admin")
    client = app.test_client()
    assert log_in(client, "admin", PASSWORDS["admin"]).status_code == 302
    assert client.get(url).status_code == 400
    anonymous = app.test_client()
    page = anonymous.get("/login").get_data(as_text=True)
    refused = anonymous.post("/login", data={"name": "admin\x00", "password": "x", "csrf_token": csrf_of(page)})
    assert refused.status_code == 400


def test_anonymous_visitors_are_sent_to_log_in(app):
    for path in ("/dashboard/?days=7", "/dashboard/menu?fragment=1"):
        response = app.test_client().get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=/dashboard/")


def test_admins_may_open_it_too(login):
    assert page(login("admin"))[0].status_code == 200

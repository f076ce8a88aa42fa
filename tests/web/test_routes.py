"""Every route of the app, swept: who may reach it, and how a stranger is turned away.
A route added later without an entry here fails this test, so its access rule gets decided."""

from __future__ import annotations

import datetime as dt

import pytest

from ivr.store.models import Call

CALL = "1700000009.1"
# rule -> (method, the URL to try, roles that get it, status for them)
EXPECTED = {
    "/login": ("GET", "/login", {"anonymous", "qa", "admin"}, 200),
    "/logout": ("POST", "/logout", {"qa", "admin"}, 302),
    "/": ("GET", "/", {"qa", "admin"}, 302),
    "/calls/": ("GET", "/calls/", {"qa", "admin"}, 200),
    "/calls/count": ("GET", "/calls/count", {"qa", "admin"}, 200),
    "/calls/<call_id>": ("GET", f"/calls/{CALL}", {"qa", "admin"}, 200),
    "/calls/<call_id>/review": ("POST", f"/calls/{CALL}/review", {"qa", "admin"}, None),
    "/calls/<call_id>/release": ("POST", f"/calls/{CALL}/release", {"qa", "admin"}, None),
    "/calls/<call_id>/callbacks/<int(max=2147483647):callback_id>/cancel":
        ("POST", f"/calls/{CALL}/callbacks/1/cancel", {"admin"}, 404),
    "/recordings/<int(max=9223372036854775807):recording_id>/audio": ("GET", "/recordings/1/audio", {"qa", "admin"}, 404),
    "/reports/": ("GET", "/reports/", {"qa", "admin"}, 200),
    "/dashboard/": ("GET", "/dashboard/", {"qa", "admin"}, 200),
    "/dashboard/menu": ("GET", "/dashboard/menu", {"qa", "admin"}, 200),
    "/admin/audit": ("GET", "/admin/audit", {"admin"}, 200),
    # API tokens: each user their own, an admin everyone's (ownership: test_token_pages.py)
    "/tokens/": ("GET", "/tokens/", {"qa", "admin"}, 200),
    "/tokens/new": ("POST", "/tokens/new", {"qa", "admin"}, 422),
    "/tokens/<int(max=2147483647):token_id>": ("GET", "/tokens/1", {"qa", "admin"}, 404),
    "/tokens/<int(max=2147483647):token_id>/revoke": ("POST", "/tokens/1/revoke", {"qa", "admin"}, 404),
    # health is open to a balancer; /metrics to this host (the test client's 127.0.0.1) or a token
    "/health/live": ("GET", "/health/live", {"anonymous", "qa", "admin"}, 200),
    "/health/ready": ("GET", "/health/ready", {"anonymous", "qa", "admin"}, 200),
    "/metrics": ("GET", "/metrics", {"anonymous", "qa", "admin"}, 200),
    "/exports/calls.csv": ("GET", "/exports/calls.csv", {"qa", "admin"}, 200),
    "/exports/scorecards.csv": ("GET", "/exports/scorecards.csv", {"qa", "admin"}, 200),
    # the JSON API takes a Bearer token only: a session cookie opens none of it (tokens: test_api.py)
    "/api/v1/calls": ("GET", "/api/v1/calls", set(), 401),
    "/api/v1/calls/<call_id>": ("GET", f"/api/v1/calls/{CALL}", set(), 401),
    "/api/v1/scorecards": ("GET", "/api/v1/scorecards", set(), 401),
    "/api/v1/audit": ("GET", "/api/v1/audit", set(), 401),
}


@pytest.fixture
def a_call(ctx):
    with ctx.sessions() as session:
        session.add(Call(id=CALL, flow="main", started_at=dt.datetime(2026, 11, 20, 9, tzinfo=dt.timezone.utc),
                         duration=30.0, outcome="self_service"))
        session.commit()


def test_every_route_is_in_this_table(app):
    rules = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    assert rules == set(EXPECTED)


@pytest.mark.parametrize("rule", sorted(EXPECTED))
@pytest.mark.parametrize("who", ["anonymous", "qa", "admin"])
def test_who_reaches_each_route(app, login, a_call, rule, who):
    method, url, allowed, status = EXPECTED[rule]
    client = app.test_client() if who == "anonymous" else login(who)
    data = {"csrf_token": getattr(client, "csrf", "")}
    response = client.get(url) if method == "GET" else client.post(url, data=data)
    if url.startswith("/api/"):
        assert response.status_code == 401 and response.is_json, (url, response.status_code)
    elif who in allowed:
        assert response.status_code < 500
        if status is not None:
            assert response.status_code == status, (url, response.status_code)
        else:  # a form posted empty: refused with its message, never a crash
            assert response.status_code in (302, 400, 422), (url, response.status_code)
    elif who == "anonymous":
        # pages send a stranger to the log-in page; form posts and audio are refused outright
        expected = (302,) if method == "GET" and "recordings" not in url else (400, 401)
        assert response.status_code in expected, (url, response.status_code)
    else:
        assert response.status_code == 403, (url, response.status_code)

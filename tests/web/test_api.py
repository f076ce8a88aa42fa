"""The read-only JSON API (/api/v1): Bearer tokens made by `ivr users token create`, stored
hashed and revocable; the pages' roles; the calls list's filters and pages; one call with its
events and scorecards; scorecards; JSON errors (401, 403, 404, 400, 429)."""

from __future__ import annotations

import datetime as dt

from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.cli import cli
from ivr.store.models import ApiToken, AuditEntry, Call, CallEvent, Review
from ivr.web.tokens import create_token, revoke_token
from ivr.web.users import set_active

T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.timezone.utc)


def seed(engine, n: int = 60) -> None:
    """n calls a minute apart: every third to sales, the rest to support; a scorecard on two."""
    with Session(engine) as s:
        for i in range(n):
            s.add(Call(id=f"c{i:03d}", uniqueid=f"17000.{i}", flow="main", caller=f"4822555{i:04d}",
                       caller_digits=f"4822555{i:04d}", started_at=T0 + dt.timedelta(minutes=i),
                       ended_at=T0 + dt.timedelta(minutes=i, seconds=40), duration=40.0,
                       department="sales" if i % 3 == 0 else "support", outcome="answered", keys="1 1"))
        s.add(CallEvent(call_id="c000", seq=0, t=0.0, type="call_started", flow="main", node=None,
                        data={"caller": "48225550000", "language": "pl"}))
        for call_id, reviewer, total in (("c000", "qa", 0.8), ("c001", "admin", 0.4)):
            s.add(Review(call_id=call_id, reviewer=reviewer, scores={"greeting": 4}, total=total, notes="ok",
                         created_at=T0, updated_at=T0))
        s.commit()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_without_a_valid_token_the_api_answers_401_in_json_and_never_takes_the_session(app, ctx, users, login):
    seed(ctx.engine, 3)
    client = app.test_client()
    for headers in ({}, {"Authorization": "Basic cWE6cWE="}, bearer("ivr_not-a-token"), bearer("")):
        response = client.get("/api/v1/calls", headers=headers)
        assert response.status_code == 401 and response.is_json, headers
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="ivr"'
        assert response.get_json()["message"]
    # logged in through the form: the cookie opens the pages, not the API
    assert login("qa").get("/api/v1/calls").status_code == 401
    with Session(ctx.engine) as s:  # each wrong token is counted, the token itself never stored
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "token_failed")).all()
        assert len(entries) == 1 and "not-a-token" not in entries[0].detail


def test_a_token_acts_as_its_user_with_the_pages_roles(app, ctx, users):
    seed(ctx.engine, 3)
    _, qa = create_token(ctx.engine, "qa", "crm sync")
    _, admin = create_token(ctx.engine, "admin", "reports")
    client = app.test_client()
    assert client.get("/api/v1/calls", headers=bearer(qa)).status_code == 200
    denied = client.get("/api/v1/audit", headers=bearer(qa))  # the audit log is an admin's page
    assert denied.status_code == 403 and denied.get_json()["message"] == "The role qa may not use this."
    assert client.get("/api/v1/audit", headers=bearer(admin)).status_code == 200
    with Session(ctx.engine) as s:  # stored hashed: the token is nowhere in the database
        stored = s.scalars(select(ApiToken.token_hash)).all()
        assert qa not in stored and admin not in stored and all(len(h) == 64 for h in stored)


def test_a_revoked_token_and_a_disabled_user_are_refused(app, ctx, users):
    info, token = create_token(ctx.engine, "qa", "crm sync")
    client = app.test_client()
    assert client.get("/api/v1/calls", headers=bearer(token)).status_code == 200
    set_active(ctx.engine, "qa", False)
    assert client.get("/api/v1/calls", headers=bearer(token)).status_code == 401
    set_active(ctx.engine, "qa", True)
    revoke_token(ctx.engine, info.id)
    assert client.get("/api/v1/calls", headers=bearer(token)).status_code == 401


def test_the_calls_list_has_the_pages_filters_and_pages(app, ctx, users):
    seed(ctx.engine, 60)
    _, token = create_token(ctx.engine, "qa", "crm sync")
    client = app.test_client()
    first = client.get("/api/v1/calls", headers=bearer(token)).get_json()
    assert len(first["calls"]) == 50 and first["calls"][0]["id"] == "c059" and first["previous"] is None
    assert first["calls"][0]["started_at"] == "2026-11-24T09:59:00Z" and first["calls"][0]["url"] == "/api/v1/calls/c059"
    second = client.get("/api/v1/calls", query_string={"after": first["next"]}, headers=bearer(token)).get_json()
    assert [c["id"] for c in second["calls"]] == [f"c{i:03d}" for i in range(9, -1, -1)] and second["next"] is None
    sales = client.get("/api/v1/calls", query_string={"department": "sales", "sort": "started", "dir": "asc"},
                       headers=bearer(token)).get_json()
    assert [c["id"] for c in sales["calls"]] == [f"c{i:03d}" for i in range(0, 60, 3)]
    assert sales["filters"] == {"department": "sales", "dir": "asc"}
    bad = client.get("/api/v1/calls", query_string={"outcome": "won", "from": "yesterday"}, headers=bearer(token))
    assert bad.status_code == 400 and set(bad.get_json()["fields"]) == {"outcome", "from"}


def test_one_call_with_its_events_and_scorecards_and_a_404_for_none(app, ctx, users):
    seed(ctx.engine, 3)
    _, token = create_token(ctx.engine, "qa", "crm sync")
    client = app.test_client()
    call = client.get("/api/v1/calls/c000", headers=bearer(token)).get_json()["call"]
    assert call["uniqueid"] == "17000.0" and call["department"] == "sales" and call["ended_at"] == "2026-11-24T09:00:40Z"
    assert [e["type"] for e in call["events"]] == ["call_started"]
    assert [(s["reviewer"], s["total"]) for s in call["scorecards"]] == [("qa", 0.8)]
    missing = client.get("/api/v1/calls/nope", headers=bearer(token))
    assert missing.status_code == 404 and missing.get_json() == {
        "status": 404, "error": "Not Found", "message": "There is no call with this id."}
    assert client.get("/api/v1/nothing-here", headers=bearer(token)).get_json()["status"] == 404
    cards = client.get("/api/v1/scorecards", query_string={"department": "support"}, headers=bearer(token)).get_json()
    assert [(s["call_id"], s["reviewer"]) for s in cards["scorecards"]] == [("c001", "admin")]
    assert client.get("/api/v1/scorecards", query_string={"after": "x"}, headers=bearer(token)).status_code == 400


def test_wrong_tokens_from_one_address_are_limited_like_log_ins(app, ctx, users):
    _, token = create_token(ctx.engine, "qa", "crm sync")
    client = app.test_client()
    for _ in range(20):
        assert client.get("/api/v1/calls", headers=bearer("ivr_guess")).status_code == 401
    locked = client.get("/api/v1/calls", headers=bearer(token))  # even a good one, from this address, for now
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "900"
    other = app.test_client()
    assert other.get("/api/v1/calls", headers=bearer(token), environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 200


def test_ivr_users_token_create_shows_the_token_once_list_and_revoke(app, ctx, users, installation):
    run = CliRunner().invoke(cli, ["--config", str(installation), "users", "token", "create", "qa", "--label", "crm"])
    assert run.exit_code == 0, run.output
    token = run.stdout.strip()
    assert token.startswith("ivr_") and len(token) > 40
    client = app.test_client()
    assert client.get("/api/v1/calls", headers=bearer(token)).status_code == 200
    listed = CliRunner().invoke(cli, ["--config", str(installation), "users", "token", "list"])
    assert listed.output.startswith(f"1\tqa\tcrm\t{token[:12]}…") and token not in listed.output
    revoked = CliRunner().invoke(cli, ["--config", str(installation), "users", "token", "revoke", "1"])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert client.get("/api/v1/calls", headers=bearer(token)).status_code == 401
    unknown = CliRunner().invoke(cli, ["--config", str(installation), "users", "token", "create", "nobody"])
    assert unknown.exit_code != 0 and "no user 'nobody'" in unknown.output
    with Session(ctx.engine) as s:
        assert s.scalar(select(func.count()).select_from(ApiToken)) == 1

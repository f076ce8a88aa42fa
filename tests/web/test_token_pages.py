"""The API tokens page (/tokens/): an admin lists, makes and revokes every user's tokens, a qa
user their own; the token is shown once, in the answer to the form only, and works against
/api/v1 at once; a revoked one is refused; every make and revoke is an audit entry, from the
page as from `ivr users token`; bad input is a message on the page, never a 500."""

from __future__ import annotations

import html
import logging
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.cli import cli
from ivr.store.models import ApiToken, AuditEntry
from ivr.web.tokens import MAX_LABEL, create_token

from .support import csrf_of

TOKEN = re.compile(r'id="token-value" class="mono" value="(ivr_[A-Za-z0-9_-]+)"')


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make(client, label: str, user: str | None = None):
    data = {"csrf_token": client.csrf, "label": label}
    if user is not None:
        data["user"] = user
    return client.post("/tokens/new", data=data)


def shown_token(response) -> str:
    found = TOKEN.search(response.get_data(as_text=True))
    assert found, response.get_data(as_text=True)
    return found.group(1)


def audit(ctx, action: str) -> list[AuditEntry]:
    with Session(ctx.engine) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_an_admin_makes_a_token_for_a_user_shown_once_and_usable_at_once(app, ctx, login, caplog):
    admin = login("admin")
    with caplog.at_level(logging.DEBUG):
        response = make(admin, "crm sync", user="qa")
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"  # the page with the token stays off disk caches
    token = shown_token(response)
    page = response.get_data(as_text=True)
    assert "it is shown this once" in page and 'id="token-copy"' in page and "Authorization: Bearer" in page
    assert token not in caplog.text
    # usable against the API at once, as the qa user (the audit log is an admin's: 403)
    api = app.test_client()
    assert api.get("/api/v1/calls", headers=bearer(token)).status_code == 200
    assert api.get("/api/v1/audit", headers=bearer(token)).status_code == 403
    # never shown again: the list and the token's page have its first characters only
    for url in ("/tokens/", "/tokens/1"):
        again = admin.get(url).get_data(as_text=True)
        assert token not in again and f"{token[:12]}…" in again and "crm sync" in again
    with admin.session_transaction() as session:  # nor kept in the session cookie (flash messages)
        assert token not in repr(dict(session))
    with Session(ctx.engine) as s:
        assert token not in s.scalars(select(ApiToken.token_hash)).all()
    [entry] = audit(ctx, "token_create")
    assert (entry.user, entry.address) == ("admin", "127.0.0.1")
    assert entry.detail == f"token 1 of qa (crm sync), {token[:12]}…" and token not in entry.detail


def test_a_revoked_token_is_refused_and_revoking_asks_first(app, ctx, login):
    admin = login("admin")
    token = shown_token(make(admin, "reports"))
    api = app.test_client()
    assert api.get("/api/v1/calls", headers=bearer(token)).status_code == 200
    listed = admin.get("/tokens/").get_data(as_text=True)
    assert 'href="/tokens/1" class="token-revoke">Revoke…' in listed  # a link to the question, not the act
    question = admin.get("/tokens/1").get_data(as_text=True)
    assert "Revoke this token?" in question and 'action="/tokens/1/revoke"' in question
    assert api.get("/api/v1/calls", headers=bearer(token)).status_code == 200  # asking revokes nothing
    done = admin.post("/tokens/1/revoke", data={"csrf_token": csrf_of(question)})
    assert done.status_code == 302 and done.headers["Location"].endswith("/tokens/")
    assert "is revoked: requests with it are refused" in admin.get("/tokens/").get_data(as_text=True)
    assert api.get("/api/v1/calls", headers=bearer(token)).status_code == 401
    [entry] = audit(ctx, "token_revoke")
    assert (entry.user, entry.detail) == ("admin", f"token 1 of admin (reports), {token[:12]}…")
    # a second time (a second click, another admin meanwhile): said on the page, nothing changes
    twice = admin.post("/tokens/1/revoke", data={"csrf_token": admin.csrf})
    assert twice.status_code == 409
    assert "API token 1 of admin (reports) was revoked already" in twice.get_data(as_text=True)
    assert len(audit(ctx, "token_revoke")) == 1
    assert "Revoke this token?" not in admin.get("/tokens/1").get_data(as_text=True)


def test_forms_without_the_csrf_token_are_refused(ctx, login):
    admin = login("admin")
    create_token(ctx.engine, "qa", "crm")
    assert admin.post("/tokens/new", data={"label": "x"}).status_code == 400
    assert admin.post("/tokens/1/revoke", data={"csrf_token": "forged"}).status_code == 400
    with Session(ctx.engine) as s:
        rows = s.scalars(select(ApiToken)).all()
        assert len(rows) == 1 and rows[0].revoked_at is None
    assert audit(ctx, "token_revoke") == []


@pytest.mark.parametrize("label, message", [
    ("", "a token's label says what it is for"),
    ("   ", "a token's label says what it is for"),
    ("x" * (MAX_LABEL + 1), f"1-{MAX_LABEL} characters on one line"),
    ("two\nlines", "on one line"),
])
def test_a_bad_label_is_a_message_on_the_page(ctx, login, label, message):
    admin = login("admin")
    response = make(admin, label)
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 422 and message in page and 'id="tokens-error"' in page
    assert "token-value" not in page
    with Session(ctx.engine) as s:
        assert s.scalars(select(ApiToken)).all() == []
    assert audit(ctx, "token_create") == []


def test_an_unknown_user_is_a_message_on_the_page(ctx, login):
    response = make(login("admin"), "crm", user="nobody")
    assert response.status_code == 422 and "no user &#39;nobody&#39;" in response.get_data(as_text=True)


def test_a_qa_user_sees_makes_and_revokes_their_own_tokens_only(app, ctx, login):
    _, admins = create_token(ctx.engine, "admin", "admin's")
    qa = login("qa")
    listed = qa.get("/tokens/").get_data(as_text=True)
    assert "admin&#39;s" not in listed and 'name="user"' not in listed  # no one else's, no choice of user
    assert qa.get("/tokens/1").status_code == 404  # another's token: not even told it exists
    assert qa.post("/tokens/1/revoke", data={"csrf_token": qa.csrf}).status_code == 404
    assert app.test_client().get("/api/v1/calls", headers=bearer(admins)).status_code == 200
    refused = make(qa, "mine", user="admin")
    assert refused.status_code == 403
    token = shown_token(make(qa, "mine"))
    assert app.test_client().get("/api/v1/calls", headers=bearer(token)).status_code == 200
    listed = qa.get("/tokens/").get_data(as_text=True)
    assert "mine" in listed and 'id="token-2"' in listed and 'id="token-1"' not in listed
    assert qa.post("/tokens/2/revoke", data={"csrf_token": qa.csrf}).status_code == 302
    assert app.test_client().get("/api/v1/calls", headers=bearer(token)).status_code == 401
    assert [(e.user, e.action) for e in audit(ctx, "token_create") + audit(ctx, "token_revoke")] == \
        [(None, "token_create"), ("qa", "token_create"), ("qa", "token_revoke")]


def test_an_admin_sees_every_users_tokens_and_the_navigation_links_them(ctx, login):
    create_token(ctx.engine, "qa", "crm sync")
    create_token(ctx.engine, "admin", "reports")
    admin = login("admin")
    page = admin.get("/tokens/").get_data(as_text=True)
    assert 'id="token-1"' in page and 'id="token-2"' in page and 'name="user"' in page
    assert '<a href="/tokens/" aria-current="page">API tokens</a>' in page
    assert '<a href="/tokens/" >API tokens</a>' in login("qa").get("/calls/").get_data(as_text=True)


def test_the_command_line_audits_as_the_page_does_and_says_a_second_revoke(ctx, installation, users):
    made = CliRunner().invoke(cli, ["--config", str(installation), "users", "token", "create", "qa", "--label", "crm"])
    assert made.exit_code == 0, made.output
    revoke = ["--config", str(installation), "users", "token", "revoke", "1"]
    assert CliRunner().invoke(cli, revoke).exit_code == 0
    again = CliRunner().invoke(cli, revoke)
    assert again.exit_code != 0 and "API token 1 of qa (crm) was revoked already" in again.output
    [created], [revoked] = audit(ctx, "token_create"), audit(ctx, "token_revoke")
    assert (created.user, created.address, revoked.user) == (None, None, None)  # (system): the command line
    assert created.detail.startswith("token 1 of qa (crm), ivr_") and made.stdout.strip() not in created.detail


def test_a_label_is_text_on_every_page_never_markup(ctx, login):
    admin = login("admin")
    label = '<img src=x onerror="alert(1)">'
    made = make(admin, label).get_data(as_text=True)
    listed = admin.get("/tokens/").get_data(as_text=True)
    question = admin.get("/tokens/1").get_data(as_text=True)
    revoked = admin.post("/tokens/1/revoke", data={"csrf_token": admin.csrf}, follow_redirects=True).get_data(as_text=True)
    for page in (made, listed, question, revoked):
        assert label not in page and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page


def test_admins_revoking_one_token_at_once_revoke_it_once(ctx, login):
    from concurrent.futures import ThreadPoolExecutor

    create_token(ctx.engine, "qa", "crm sync")
    clients = [login("admin") for _ in range(6)]
    with ThreadPoolExecutor(len(clients)) as pool:
        codes = list(pool.map(lambda c: c.post("/tokens/1/revoke", data={"csrf_token": c.csrf}).status_code, clients))
    assert sorted(codes) == [302] + [409] * 5  # one revokes; the others are told, none fails
    assert len(audit(ctx, "token_revoke")) == 1

"""Log-in, roles on every route, CSRF, rate limiting, cookies, headers, `ivr users`."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ivr.cli import cli
from ivr.settings.config import load_config
from ivr.store.models import AuditEntry, User
from ivr.web import create_app
from ivr.web.security import MAX_FAILURES_PER_NAME
from ivr.web.users import set_active, set_password

from .support import PASSWORDS, csrf_of, log_in, make_installation


def _audit(ctx, action):
    with ctx.sessions() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_anonymous_visitors_are_sent_to_the_log_in_page(app):
    client = app.test_client()
    response = client.get("/calls/?outcome=answered")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/calls/")
    assert client.get("/login").status_code == 200


def test_log_in_goes_to_the_page_asked_for_and_is_audited(app, users, ctx):
    client = app.test_client()
    response = log_in(client, "qa", users["qa"], next="/dashboard/")
    assert (response.status_code, response.headers["Location"]) == (302, "/dashboard/")
    assert client.get("/dashboard/").status_code == 200
    [entry] = _audit(ctx, "login")
    assert entry.user == "qa" and entry.address == "127.0.0.1"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
                                    "/\t/evil.example", "/calls/\r\nSet-Cookie: x=1"])
def test_log_in_never_redirects_off_site(app, users, target):
    response = log_in(app.test_client(), "qa", users["qa"], next=target)
    assert response.headers["Location"] == "/calls/"


def test_a_wrong_password_or_name_is_refused_alike_and_audited(app, users, ctx):
    client = app.test_client()
    wrong_password = log_in(client, "qa", "not-the-password")
    wrong_name = log_in(client, "nobody", "not-the-password")
    for response in (wrong_password, wrong_name):
        assert response.status_code == 401
        assert "Wrong user name or password." in response.get_data(as_text=True)
    assert [e.detail for e in _audit(ctx, "login_failed")] == ["qa", "nobody"]
    assert client.get("/calls/").status_code == 302  # still not logged in


def test_repeated_failures_lock_the_name_even_for_the_right_password(app, users, ctx):
    client = app.test_client()
    for _ in range(MAX_FAILURES_PER_NAME):
        assert log_in(client, "qa", "guess-guess-guess").status_code == 401
    locked = log_in(client, "qa", users["qa"])
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "Too many failed log-ins" in locked.get_data(as_text=True)
    # another user is not locked by it
    assert log_in(app.test_client(), "admin", users["admin"]).status_code == 302
    # the window passes: the failures age out
    with ctx.sessions() as s:
        for entry in s.scalars(select(AuditEntry).where(AuditEntry.action == "login_failed")):
            entry.at -= dt.timedelta(minutes=16)
        s.commit()
    assert log_in(client, "qa", users["qa"]).status_code == 302


def test_every_route_declares_its_roles(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "_ivr_public", False) or getattr(view, "_ivr_roles", None), f"{rule} declares no roles"
    public = {rule.rule for rule in app.url_map.iter_rules() if getattr(app.view_functions[rule.endpoint], "_ivr_public", False)}
    # the health paths and /metrics, which decides by the client's address or token (tests/web/test_health.py)
    assert public == {"/login", "/health/live", "/health/ready", "/metrics"}


def test_a_route_without_roles_is_closed_to_everyone(app, login):
    @app.route("/forgotten")
    def forgotten():
        return "open?"

    assert login("admin").get("/forgotten").status_code == 403


def test_the_audit_log_is_for_admins_only(login):
    assert login("qa").get("/admin/audit").status_code == 403
    page = login("admin").get("/admin/audit")
    assert page.status_code == 200 and "login" in page.get_data(as_text=True)


@pytest.mark.parametrize("page", ["99999999999999999999", "-5", "x"])
def test_any_page_number_of_the_audit_log_gives_a_page(login, page):
    assert login("admin").get(f"/admin/audit?page={page}").status_code == 200


def test_a_post_without_the_csrf_token_is_refused(app, login):
    client = login("qa")
    assert client.post("/logout").status_code == 400
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/calls/").status_code == 200  # still logged in
    assert client.post("/logout", data={"csrf_token": client.csrf}).status_code == 302
    assert client.get("/calls/").status_code == 302


def test_the_log_in_form_needs_its_csrf_token_too(app, users):
    client = app.test_client()
    client.get("/login")
    response = client.post("/login", data={"name": "qa", "password": users["qa"]})
    assert response.status_code == 400


def test_logging_in_starts_a_new_session(app, users):
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as session:
        before = session["csrf"]
    log_in(client, "qa", users["qa"])
    with client.session_transaction() as session:
        assert session["csrf"] != before and session["uid"]


def test_a_new_password_or_a_disabled_account_ends_open_sessions(app, login, ctx):
    client = login("qa")
    set_password(ctx.engine, "qa", "another-password-2")
    assert client.get("/calls/").status_code == 302
    client = login("admin")
    set_active(ctx.engine, "admin", False)
    assert client.get("/calls/").status_code == 302
    assert log_in(app.test_client(), "admin", PASSWORDS["admin"]).status_code == 401


def test_cookies_and_headers(app, users):
    client = app.test_client()
    response = log_in(client, "qa", users["qa"])
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # served on 127.0.0.1
    page = client.get("/calls/")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"


def test_cookies_are_secure_when_the_app_listens_beyond_this_machine(tmp_path):
    config = make_installation(tmp_path, web={"host": "0.0.0.0", "port": 8080})
    app = create_app(load_config(config), testing=True)
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_the_session_key_is_made_once_and_kept_private(tmp_path, monkeypatch):
    monkeypatch.delenv("IVR_WEB_SECRET", raising=False)
    config = make_installation(tmp_path, web={"host": "127.0.0.1", "port": 5000, "secret_key": "${IVR_WEB_SECRET}"})
    first = create_app(load_config(config)).config["SECRET_KEY"]
    assert first == create_app(load_config(config)).config["SECRET_KEY"] and len(first) >= 32
    assert (tmp_path / ".cache" / "web.secret").stat().st_mode & 0o077 == 0
    monkeypatch.setenv("IVR_WEB_SECRET", "k" * 40)
    assert create_app(load_config(config)).config["SECRET_KEY"] == "k" * 40


def test_a_session_key_written_into_config_yaml_is_an_error_that_does_not_echo_it(tmp_path):
    config = make_installation(tmp_path, web={"secret_key": "hunter2-hunter2"})
    result = CliRunner().invoke(cli, ["--config", str(config), "validate", str(tmp_path / "flows")])
    assert result.exit_code == 1
    assert "secret_key must name an environment variable" in result.output and "hunter2" not in result.output
    assert "config.yaml:" in result.output


# --- ivr users ----------------------------------------------------------------------------------
def test_users_add_from_stdin_and_the_account_logs_in(tmp_path):
    config = make_installation(tmp_path)
    run = CliRunner().invoke(cli, ["--config", str(config), "users", "add", "anna", "--role", "qa", "--password-stdin"],
                             input="a-long-password\n")
    assert run.exit_code == 0, run.output
    assert "user anna added (qa)" in run.output and "a-long-password" not in run.output
    app = create_app(load_config(config), testing=True)
    with app.extensions["ivr"].sessions() as s:
        user = s.scalar(select(User).where(User.name == "anna"))
        assert user.role == "qa" and "a-long-password" not in user.password_hash
    assert log_in(app.test_client(), "anna", "a-long-password").status_code == 302


def test_users_add_asks_twice_for_the_password(tmp_path):
    config = make_installation(tmp_path)
    run = CliRunner().invoke(cli, ["--config", str(config), "users", "add", "boss", "--role", "admin"],
                             input="a-long-password\na-long-password\n")
    assert run.exit_code == 0, run.output
    listed = CliRunner().invoke(cli, ["--config", str(config), "users", "list"])
    assert listed.output.split() == ["boss", "admin", "active"]


@pytest.mark.parametrize("args, stdin, message", [
    (["anna", "--role", "qa"], "short\n", "too short"),
    (["bad name", "--role", "qa"], "a-long-password\n", "must be 1-64 letters"),
    (["anna", "--role", "root"], "a-long-password\n", "Invalid value for '--role'"),
    (["anna", "--role", "qa"], "", "nothing came on standard input"),
])
def test_users_add_refuses_bad_input_clearly(tmp_path, args, stdin, message):
    config = make_installation(tmp_path)
    run = CliRunner().invoke(cli, ["--config", str(config), "users", "add", *args, "--password-stdin"], input=stdin)
    assert run.exit_code != 0 and message in run.output


def test_users_add_refuses_a_taken_name(tmp_path):
    config = make_installation(tmp_path)
    add = ["--config", str(config), "users", "add", "anna", "--role", "qa", "--password-stdin"]
    assert CliRunner().invoke(cli, add, input="a-long-password\n").exit_code == 0
    again = CliRunner().invoke(cli, add, input="a-long-password\n")
    assert again.exit_code == 1 and "exists already" in again.output


def test_a_damaged_kept_session_key_is_a_clear_error(tmp_path, monkeypatch):
    from ivr.errors import WebError

    monkeypatch.delenv("IVR_WEB_SECRET", raising=False)
    config = make_installation(tmp_path, web={"host": "127.0.0.1", "port": 5000, "secret_key": "${IVR_WEB_SECRET}"})
    key = tmp_path / ".cache" / "web.secret"
    key.parent.mkdir()
    key.write_text("")
    key.chmod(0o600)
    with pytest.raises(WebError, match="too short or readable by others"):
        create_app(load_config(config))
    key.unlink()
    assert len(create_app(load_config(config)).config["SECRET_KEY"]) >= 32  # made anew


def test_parallel_guesses_cannot_pass_the_limit(app, users, ctx):
    from concurrent.futures import ThreadPoolExecutor

    def guess(_):
        return log_in(app.test_client(), "qa", "guess-guess-guess").status_code

    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(guess, range(12)))
    assert codes.count(401) == MAX_FAILURES_PER_NAME and codes.count(429) == 12 - MAX_FAILURES_PER_NAME
    locked = _audit(ctx, "login_locked")
    assert all(e.user is None and e.detail == "qa" for e in locked)  # not shown as the user's own doing


def test_behind_a_proxy_the_client_address_is_the_forwarded_one(tmp_path):
    from ivr.web.users import add_user

    plain = create_app(load_config(make_installation(tmp_path / "a")), testing=True)
    proxied = create_app(load_config(make_installation(tmp_path / "b", web={"host": "127.0.0.1", "port": 5000, "proxies": 1})),
                         testing=True)
    for app in (plain, proxied):
        add_user(app.extensions["ivr"].engine, "qa", PASSWORDS["qa"], "qa")
        client = app.test_client()
        page = client.get("/login")
        client.post("/login", data={"name": "qa", "password": PASSWORDS["qa"], "csrf_token": csrf_of(page.get_data(as_text=True))},
                    headers={"X-Forwarded-For": "203.0.113.7"})
    addresses = []
    for app in (plain, proxied):
        with app.extensions["ivr"].sessions() as s:
            addresses.append(s.scalar(select(AuditEntry.address).where(AuditEntry.action == "login")))
    assert addresses == ["127.0.0.1", "203.0.113.7"]  # a header anyone can send counts only behind a proxy


def test_logging_out_ends_a_copied_session_cookie_too(app, login):
    client = login("qa")
    with client.session_transaction() as stolen:
        copy = dict(stolen)
    thief = app.test_client()
    with thief.session_transaction() as session:
        session.update(copy)
    assert thief.get("/calls/").status_code == 200  # the copy works while the user is logged in
    time.sleep(0.01)  # the log-out moment lies after the log-in moment
    assert client.post("/logout", data={"csrf_token": client.csrf}).status_code == 302
    assert thief.get("/calls/").status_code == 302  # and no longer once they logged out
    assert login("qa").get("/calls/").status_code == 200  # a new log-in works

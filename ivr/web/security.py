"""The rules in front of every route of the QA web app.

- Roles, failing closed: each view says who may use it (`@roles("qa", "admin")`, or
  `@public` for the log-in page); a view that says nothing is refused to everyone, so a
  new route can never be open by mistake.
- Log-in: the session holds the user's id and a fingerprint of their password hash, so a
  changed password or a disabled account ends every session of that user.
- CSRF: every POST, PUT, PATCH and DELETE carries the session's token (form field
  `csrf_token` or header `X-CSRF-Token`); without it the request is refused (400).
- Log-in rate limiting: failed log-ins are audit entries; 5 for one user name or 20 from
  one address within 15 minutes lock further attempts until the window has passed. The
  count is the database's, so it holds across several web apps on one database; attempts
  at one name go one at a time across them (`one_attempt_at_a_time`).
- Headers: a strict Content-Security-Policy (scripts and styles from the app only: no
  inline script or style attribute), no framing, no sniffing, no referrer.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets
from typing import Any, Callable, Optional, TypeVar
from urllib.parse import urlsplit

from flask import Flask, abort, g, redirect, render_template, request, session, url_for
from sqlalchemy import func, select, text
from werkzeug.security import check_password_hash, generate_password_hash

from ivr.store.models import ROLES, AuditEntry, User
from ivr.web.context import close_db, db

F = TypeVar("F", bound=Callable[..., Any])
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
LOCK_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_ADDRESS = 20
MIN_PASSWORD = 10


@functools.cache
def _dummy_hash() -> str:
    """Checked when a user name is unknown, so that a wrong name takes as long as a wrong
    password. Made when an app is created (install_security), not at import: hashing takes
    0.1 s, which every `ivr` command would pay."""
    return generate_password_hash(secrets.token_hex(16))


# --- roles -------------------------------------------------------------------------------------
def roles(*allowed: str) -> Callable[[F], F]:
    """Who may use the view: a subset of ROLES."""
    unknown = set(allowed) - set(ROLES)
    if unknown or not allowed:
        raise ValueError(f"roles must be some of {ROLES}, not {allowed}")

    def mark(view: F) -> F:
        view._ivr_roles = frozenset(allowed)  # type: ignore[attr-defined]
        return view

    return mark


def public(view: F) -> F:
    view._ivr_public = True  # type: ignore[attr-defined]
    return view


def api(view: F) -> F:
    """A view of the JSON API (ivr.web.api): its user comes from an `Authorization: Bearer`
    token (ivr.web.tokens), never from the session cookie, so it needs no CSRF token; its
    roles are declared with `roles` as a page's are, and its errors are JSON."""
    view._ivr_api = True  # type: ignore[attr-defined]
    return view


def current_user() -> Optional[User]:
    return g.get("user")


# --- passwords ---------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    return generate_password_hash(password)  # scrypt, salted


def password_fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def verify(user: Optional[User], password: str) -> bool:
    if user is None or not user.active:
        check_password_hash(_dummy_hash(), password)
        return False
    return check_password_hash(user.password_hash, password)


def log_in(user: User) -> None:
    session.clear()  # a new session on log-in: no fixation
    session.permanent = True
    session["uid"] = user.id
    session["pw"] = password_fingerprint(user.password_hash)
    session["csrf"] = secrets.token_urlsafe(32)
    session["at"] = dt.datetime.now(dt.timezone.utc).timestamp()


def failures_recently(name: str, address: Optional[str], now: Optional[dt.datetime] = None) -> tuple[int, int]:
    """Failed log-ins in the lock window: (for this name, from this address)."""
    since = (now or dt.datetime.now(dt.timezone.utc)) - LOCK_WINDOW
    base = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "login_failed", AuditEntry.at >= since)
    by_name = db().scalar(base.where(AuditEntry.detail == name)) or 0
    by_address = db().scalar(base.where(AuditEntry.address == address)) or 0 if address else 0
    return by_name, by_address


def one_attempt_at_a_time(name: str) -> None:
    """Hold the log-ins of `name` to one at a time across every web app on the database, until
    the request's transaction ends (the failure is recorded and committed): otherwise guesses
    sent to two apps at once would all pass the count before either failure is stored. A
    form post on SQLite holds the database's write lock from its first statement already
    (ivr.web.context.db); on PostgreSQL a transaction-scoped advisory lock keyed by the name."""
    session = db()
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(b"ivr-login:" + name.encode()).digest()[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def locked_out(name: str, address: Optional[str]) -> bool:
    by_name, by_address = failures_recently(name, address)
    return by_name >= MAX_FAILURES_PER_NAME or by_address >= MAX_FAILURES_PER_ADDRESS


# --- CSRF --------------------------------------------------------------------------------------
def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _csrf_ok() -> bool:
    expected = session.get("csrf")
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    return bool(expected) and hmac.compare_digest(str(expected), str(sent))


def safe_next(target: Optional[str]) -> Optional[str]:
    """A local path to go back to after log-in; anything else (another site) is dropped."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in target):  # a line break cannot go into Location: a 500
        return None
    return target


# --- the gate in front of every request -------------------------------------------------------
def _has_nul() -> bool:
    """A NUL in the path, query string or form: PostgreSQL refuses it in any string (a 500)."""
    return "\x00" in request.path or any("\x00" in name or "\x00" in value
                                          for name, value in request.values.items(multi=True))


def _gate() -> Any:
    if _has_nul():
        abort(400, description="The address or the form holds a NUL character, which no page accepts.")
    view = current_app_view()
    if view is None:  # 404 or 405: Flask answers those itself
        return None
    if getattr(view, "_ivr_public", False) or request.endpoint == "static":
        if request.method in UNSAFE_METHODS and not _csrf_ok():
            abort(400, description="The form has expired or did not come from this site. Reload the page and try again.")
        return None
    allowed = getattr(view, "_ivr_roles", None)
    if not allowed:
        abort(403, description="This page declares no roles, so no one may open it.")
    if getattr(view, "_ivr_api", False):
        g.user = _token_user()
        if g.user.role not in allowed:
            abort(403, description=f"The role {g.user.role} may not use this.")
        return None
    user = _session_user()
    if user is None:
        if request.method == "GET" and request.endpoint != "call.audio":  # a player gets no log-in page
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        abort(401, description="Log in first.")
    g.user = user
    if user.role not in allowed:
        abort(403, description="Your role may not open this page.")
    if request.method in UNSAFE_METHODS and not _csrf_ok():
        abort(400, description="The form has expired or did not come from this site. Reload the page and try again.")
    return None


def current_app_view() -> Optional[Callable[..., Any]]:
    from flask import current_app

    return current_app.view_functions.get(request.endpoint or "")


def _session_user() -> Optional[User]:
    uid = session.get("uid")
    if not isinstance(uid, int):
        return None
    user = db().get(User, uid)
    if user is None or not user.active or session.get("pw") != password_fingerprint(user.password_hash):
        session.clear()
        return None
    began = session.get("at")
    if user.sessions_after is not None and (not isinstance(began, (int, float)) or began < user.sessions_after.timestamp()):
        session.clear()  # logged out since: this cookie may be a copy
        return None
    return user


def _token_user() -> User:
    """The user of the request's API token; 401 without a valid one, 429 after too many wrong ones."""
    from ivr.web import audit, tokens

    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        abort(401, description="Send an API token: Authorization: Bearer <token> (made on the QA app's API tokens "
                               "page, /tokens/, or by ivr users token create NAME)")
    if tokens.failures_from(db(), request.remote_addr) >= tokens.MAX_FAILURES_PER_ADDRESS:
        seconds = int(tokens.LOCK_WINDOW.total_seconds())
        abort(429, description=f"Too many wrong API tokens from this address. Try again in {seconds // 60} minutes.")
    user = tokens.user_of(db(), token)
    if user is None:
        audit.record(tokens.TOKEN_FAILED)  # the address is the entry's; never the token sent
        abort(401, description="This API token is not valid: unknown, revoked, or its user is disabled.")
    return user


def _headers(response: Any) -> Any:
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if "uid" in session and request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")  # pages with call data stay off disk caches
    return response


def _error(exc: Any) -> Any:
    code = getattr(exc, "code", 500) or 500
    if request.path.startswith("/api/"):  # the JSON API answers in JSON, whatever went wrong
        from flask import jsonify

        response = jsonify(status=code, error=getattr(exc, "name", "Error"),
                           message=getattr(exc, "description", "") or "")
        if code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="ivr"'
        if code == 429:
            response.headers["Retry-After"] = str(int(LOCK_WINDOW.total_seconds()))
        return response, code
    return render_template("error.html", code=code, name=getattr(exc, "name", "Error"),
                           description=getattr(exc, "description", "")), code


def install_security(app: Flask) -> None:
    _dummy_hash()  # now, so that the first unknown name takes no longer than later ones
    app.before_request(_gate)
    app.after_request(_headers)
    app.teardown_appcontext(close_db)
    app.jinja_env.globals.update(csrf_token=csrf_token, current_user=current_user)
    for code in (400, 401, 403, 404, 405, 413, 416, 429):
        app.register_error_handler(code, _error)

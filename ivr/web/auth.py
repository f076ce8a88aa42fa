"""Log-in and log-out."""

from __future__ import annotations

import datetime as dt
import threading

from flask import Blueprint, redirect, render_template, request, session, url_for
from sqlalchemy import select

from ivr.store.models import User
from ivr.web import audit
from ivr.web.context import db
from ivr.web.security import (LOCK_WINDOW, current_user, locked_out, log_in, one_attempt_at_a_time, public, roles,
                              safe_next, verify)

bp = Blueprint("auth", __name__)
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _name_lock(name: str) -> threading.Lock:
    with _locks_guard:
        if len(_locks) > 10_000:  # names typed by anyone: never let the table grow without end
            _locks.clear()
        return _locks.setdefault(name, threading.Lock())


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    next_page = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=next_page, error=None)
    name = request.form.get("name", "").strip()[:64]
    password = request.form.get("password", "")
    # one attempt at a time per name in this process: parallel guesses would all pass the
    # check before any failure is counted
    with _name_lock(name):
        one_attempt_at_a_time(name)  # and across processes: other web apps on the same database
        if locked_out(name, request.remote_addr):
            audit.record("login_locked", detail=name)
            seconds = int(LOCK_WINDOW.total_seconds())
            page = render_template("login.html", next=next_page,
                                   error=f"Too many failed log-ins. Try again in {seconds // 60} minutes.")
            return page, 429, {"Retry-After": str(seconds)}
        user = db().scalar(select(User).where(User.name == name)) if name else None
        if not verify(user, password):
            audit.record("login_failed", detail=name)
            return render_template("login.html", next=next_page, error="Wrong user name or password."), 401
    log_in(user)
    audit.record("login", user=user.name)
    return redirect(next_page or url_for("calls.index"))


@bp.route("/logout", methods=["POST"])
@roles("qa", "admin")
def logout():
    """Ends every session of the user, on every device: the session lives in a signed
    cookie, and only a moment stored with the user can make a copy of it worthless."""
    user = current_user()
    if user is not None:
        user.sessions_after = dt.datetime.now(dt.timezone.utc)
    audit.record("logout")
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/")
@roles("qa", "admin")
def home():
    return redirect(url_for("calls.index"))

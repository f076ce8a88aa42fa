"""Admin pages: the audit log of plays, downloads, log-ins, scores, holds and purges."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from sqlalchemy import select

from ivr.store.models import AuditEntry
from ivr.web.context import db
from ivr.web.security import roles

bp = Blueprint("admin", __name__, url_prefix="/admin")
PAGE = 100
MAX_PAGE = 1_000_000  # a bigger page's offset overflows the database's integer


@bp.route("/audit")
@roles("admin")
def audit():
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    action = request.args.get("action", "").strip()
    user = request.args.get("user", "").strip()
    call = request.args.get("call", "").strip()
    if action:
        query = query.where(AuditEntry.action == action)
    if user:
        query = query.where(AuditEntry.user == user)
    if call:
        query = query.where(AuditEntry.call_id == call)
    page = min(max(1, request.args.get("page", 1, type=int) or 1), MAX_PAGE)
    entries = list(db().scalars(query.limit(PAGE + 1).offset((page - 1) * PAGE)))
    return render_template("audit.html", entries=entries[:PAGE], page=page, more=len(entries) > PAGE,
                           action=action, user=user, call=call)

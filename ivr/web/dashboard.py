"""Placeholder of the dashboard pages (being built)."""

from __future__ import annotations

from flask import Blueprint

from ivr.web.security import roles

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


@bp.route("/")
@roles("qa", "admin")
def index():
    return "dashboard"

"""Placeholder of the reports pages (being built)."""

from __future__ import annotations

from flask import Blueprint

from ivr.web.security import roles

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.route("/")
@roles("qa", "admin")
def index():
    return "reports"

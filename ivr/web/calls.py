"""Placeholder of the calls pages (being built)."""

from __future__ import annotations

from flask import Blueprint

from ivr.web.security import roles

bp = Blueprint("calls", __name__, url_prefix="/calls")


@bp.route("/")
@roles("qa", "admin")
def index():
    return "calls"

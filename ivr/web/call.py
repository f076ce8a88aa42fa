"""Placeholder of the call page (being built)."""

from __future__ import annotations

from flask import Blueprint

from ivr.web.security import roles

bp = Blueprint("call", __name__, url_prefix="/calls")


@bp.route("/<call_id>")
@roles("qa", "admin")
def show(call_id: str):
    return call_id

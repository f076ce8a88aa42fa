"""The API tokens page: the tokens of the JSON API listed, made and revoked in the browser.

    GET  /tokens/                    tokens.index    the tokens (an admin: everyone's; qa: their own)
    POST /tokens/new                 tokens.create   make one; the answer shows it, once
    GET  /tokens/<id>                tokens.show     one token, and the button that revokes it
    POST /tokens/<id>/revoke         tokens.revoke   revoke it

The rules are the pages' (ivr.web.security) plus ownership, as with holds: an admin sees,
makes and revokes the tokens of every user; a qa user only their own, since a token acts
with its user's role and gives nothing the user cannot open in the pages. A token of
another user is 404 to a qa user, so its existence is not told.

The token itself is in the answer to the form post only: never in a redirect, the flash
messages (they travel in the signed, not encrypted, session cookie) or the log, and the page
is sent `no-store`. Making and revoking go through ivr.web.tokens, as `ivr users token`
does, which writes the audit entry in the same transaction.
"""

from __future__ import annotations

from typing import Any, Optional

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from ivr.errors import WebError
from ivr.store.models import User
from ivr.web import tokens
from ivr.web.context import db
from ivr.web.security import current_user, roles

bp = Blueprint("tokens", __name__, url_prefix="/tokens")
MAX_ID = 2147483647  # a bigger id overflows the database's integer: it routes nowhere (404)


def _is_admin() -> bool:
    user = current_user()
    return user is not None and user.role == "admin"


def _visible(token_id: int) -> tokens.TokenInfo:
    """The token, if the user may see it; 404 otherwise (a qa user: their own only)."""
    info = tokens.token_info(db(), token_id)
    user = current_user()
    if info is None or user is None or not (_is_admin() or info.user == user.name):
        abort(404, description="There is no such API token among yours.")
    return info


def _owners() -> list[tuple[str, str, bool]]:
    """(name, role, active) of every user, for an admin's "for user" choice."""
    return [tuple(row) for row in db().execute(select(User.name, User.role, User.active).order_by(User.name))]


def _list_page(error: str = "", label: str = "", owner: Optional[str] = None, status: int = 200) -> Any:
    user = current_user()
    admin = _is_admin()
    listed = tokens.list_tokens(db(), None if admin else user.name)
    listed.sort(key=lambda t: (t.revoked_at is not None, -t.id))  # the working ones first, newest first
    return render_template("tokens.html", tokens=listed, admin=admin, owners=_owners() if admin else [],
                           owner=owner or user.name, label=label, error=error, max_label=tokens.MAX_LABEL), status


@bp.route("/")
@roles("qa", "admin")
def index() -> Any:
    return _list_page()


@bp.route("/new", methods=["POST"])
@roles("qa", "admin")
def create() -> Any:
    user = current_user()
    label = request.form.get("label", "")
    owner = request.form.get("user", "").strip() or user.name
    if owner != user.name and not _is_admin():
        abort(403, description="You may make API tokens for yourself only; an admin makes them for others.")
    try:
        info, token = tokens.create_token(db(), owner, label, by=user.name, address=request.remote_addr)
    except WebError as exc:
        db().rollback()
        return _list_page(error=str(exc), label=label[:tokens.MAX_LABEL], owner=owner[:64], status=422)
    return render_template("token_made.html", info=info, token=token), 201


@bp.route(f"/<int(max={MAX_ID}):token_id>")
@roles("qa", "admin")
def show(token_id: int) -> Any:
    return render_template("token.html", info=_visible(token_id))


@bp.route(f"/<int(max={MAX_ID}):token_id>/revoke", methods=["POST"])
@roles("qa", "admin")
def revoke(token_id: int) -> Any:
    info = _visible(token_id)
    user = current_user()
    try:
        tokens.revoke_token(db(), info.id, by=user.name, address=request.remote_addr)
    except WebError as exc:  # revoked already (by someone else meanwhile, or a second click)
        return _list_page(error=str(exc), status=409)
    flash(f"API token {info.id} of {info.user} ({info.name}) is revoked: requests with it are refused from now on.",
          "success")
    return redirect(url_for("tokens.index"))

"""Tokens of the QA app's JSON API: made per user, shown once, stored hashed, revocable.

A token is `ivr_` and 32 random bytes (URL-safe base64). Only its SHA-256 is stored: the
token is as random as a key, so a slow password hash would add nothing but a delay to
every API request. A request sends it as `Authorization: Bearer <token>`; it acts as its
user, with the user's role, while the user is active and the token not revoked.

Failed tokens are limited as failed log-ins are: each is an audit entry
(`token_failed`, with the client's address), and an address with 20 in 15 minutes gets
429 until the window has passed, so tokens cannot be guessed at speed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from ivr.errors import WebError
from ivr.store.models import ApiToken, AuditEntry, User

PREFIX = "ivr_"
SHOWN = 12  # characters of a token kept in clear, to tell tokens apart in a list
MAX_LABEL = 100
TOKEN_FAILED = "token_failed"  # the audit action of a wrong token
MAX_FAILURES_PER_ADDRESS = 20
LOCK_WINDOW = dt.timedelta(minutes=15)
# last_used_at is written at most this often per token: an API client polling every second
# must not turn every read into a write
TOUCH_EVERY = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user: str
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: Optional[dt.datetime]
    revoked_at: Optional[dt.datetime]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(engine: Engine, user_name: str, label: str) -> tuple[TokenInfo, str]:
    """A new token of the user: its row, and the token itself (shown once, never stored)."""
    label = label.strip()
    if not label or len(label) > MAX_LABEL or any(ord(c) < 32 for c in label):
        raise WebError(f"a token's name says what it is for, 1-{MAX_LABEL} characters on one line, such as \"crm sync\"")
    token = PREFIX + secrets.token_urlsafe(32)
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.name == user_name))
        if user is None:
            raise WebError(f"no user {user_name!r} (ivr users list shows them)")
        row = ApiToken(user_id=user.id, name=label, token_hash=digest(token), prefix=token[:SHOWN],
                       created_at=_now())
        session.add(row)
        session.commit()
        return _info(row, user.name), token


def list_tokens(engine: Engine, user_name: Optional[str] = None) -> list[TokenInfo]:
    with Session(engine) as session:
        query = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
        if user_name is not None:
            query = query.where(User.name == user_name)
        return [_info(row, name) for row, name in session.execute(query)]


def revoke_token(engine: Engine, token_id: int) -> TokenInfo:
    """Revoke for good: requests with it get 401 from now on."""
    with Session(engine) as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise WebError(f"no API token {token_id} (ivr users token list shows them)")
        if row.revoked_at is None:
            row.revoked_at = _now()
            session.commit()
        name = session.scalar(select(User.name).where(User.id == row.user_id)) or ""
        return _info(row, name)


def user_of(session: Session, token: str, now: Optional[dt.datetime] = None) -> Optional[User]:
    """The active user of a valid, unrevoked token; None otherwise."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    wanted = digest(token)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == wanted))
    # the lookup is by the hash (an index seek); the comparison once more in constant time
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, wanted):
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    now = now or _now()
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        session.commit()
    return user


def failures_from(session: Session, address: Optional[str], now: Optional[dt.datetime] = None) -> int:
    if not address:
        return 0
    since = (now or _now()) - LOCK_WINDOW
    return session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == TOKEN_FAILED, AuditEntry.address == address, AuditEntry.at >= since)) or 0


def _info(row: ApiToken, user: str) -> TokenInfo:
    return TokenInfo(row.id, user, row.name, row.prefix, row.created_at, row.last_used_at, row.revoked_at)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)

"""Tokens of the QA app's JSON API: made per user, shown once, stored hashed, revocable.

A token is `ivr_` and 32 random bytes (URL-safe base64). Only its SHA-256 is stored: the
token is as random as a key, so a slow password hash would add nothing but a delay to
every API request. A request sends it as `Authorization: Bearer <token>`; it acts as its
user, with the user's role, while the user is active and the token not revoked.

Made and revoked the same way from the command line (`ivr users token`) and from the tokens
page (ivr.web.token_pages): `create_token` and `revoke_token` write the audit entry
(`token_create`, `token_revoke`) in the transaction that makes or revokes the token, so
neither path can change a token without its entry. The entry names the token by id, owner
and label, never by its value.

Failed tokens are limited as failed log-ins are: each is an audit entry
(`token_failed`, with the client's address), and an address with 20 in 15 minutes gets
429 until the window has passed, so tokens cannot be guessed at speed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Iterator, Optional, Union

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from ivr.errors import WebError
from ivr.store.models import ApiToken, AuditEntry, User

# an engine (the command line: a session of its own) or a session (a page's: its transaction,
# which on SQLite holds the write lock of a form post already, so a second connection would wait)
Store = Union[Engine, Session]
PREFIX = "ivr_"
SHOWN = 12  # characters of a token kept in clear, to tell tokens apart in a list
MAX_LABEL = 100
TOKEN_FAILED = "token_failed"  # the audit action of a wrong token
TOKEN_CREATE, TOKEN_REVOKE = "token_create", "token_revoke"  # audit actions
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


def check_label(label: str) -> str:
    """The label as stored (without surrounding spaces); WebError saying what is wrong."""
    label = label.strip()
    if not label or len(label) > MAX_LABEL or any(ord(c) < 32 or ord(c) == 127 for c in label):
        raise WebError(f"a token's label says what it is for, 1-{MAX_LABEL} characters on one line, "
                       "such as \"crm sync\"")
    return label


def create_token(store: Store, user_name: str, label: str, *, by: Optional[str] = None,
                 address: Optional[str] = None) -> tuple[TokenInfo, str]:
    """A new token of the user: its row, and the token itself (shown once, never stored).
    `by`: the web user who made it (None: the command line); `address`: their client's."""
    label = check_label(label)
    token = PREFIX + secrets.token_urlsafe(32)
    with _session(store) as session:
        user = session.scalar(select(User).where(User.name == user_name))
        if user is None:
            raise WebError(f"no user {user_name!r} (ivr users list shows them)")
        now = _now()
        row = ApiToken(user_id=user.id, name=label, token_hash=digest(token), prefix=token[:SHOWN], created_at=now)
        session.add(row)
        session.flush()  # the row's id, for the audit entry
        session.add(_entry(TOKEN_CREATE, row, user.name, by, address, now))
        session.commit()
        return _info(row, user.name), token


def list_tokens(store: Store, user_name: Optional[str] = None) -> list[TokenInfo]:
    with _session(store) as session:
        query = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
        if user_name is not None:
            query = query.where(User.name == user_name)
        return [_info(row, name) for row, name in session.execute(query)]


def token_info(store: Store, token_id: int) -> Optional[TokenInfo]:
    with _session(store) as session:
        found = session.execute(select(ApiToken, User.name).join(User, User.id == ApiToken.user_id)
                                .where(ApiToken.id == token_id)).first()
        return _info(*found) if found is not None else None


def revoke_token(store: Store, token_id: int, *, by: Optional[str] = None,
                 address: Optional[str] = None) -> TokenInfo:
    """Revoke for good: requests with it get 401 from now on. A token revoked already is a
    WebError saying when: of two people revoking it at once, one does, the other is told."""
    with _session(store) as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise WebError(f"no API token {token_id} (ivr users token list shows them)")
        name = session.scalar(select(User.name).where(User.id == row.user_id)) or ""
        now = _now()
        # conditional, so that of two revokes at once exactly one changes the row and is audited
        done = session.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                               .values(revoked_at=now).execution_options(synchronize_session=False))
        if done.rowcount != 1:
            session.rollback()
            session.refresh(row)
            when = _utc(row.revoked_at).strftime("%Y-%m-%d %H:%M UTC") if row.revoked_at else "before"
            raise WebError(f"API token {token_id} of {name} ({row.name}) was revoked already, {when}")
        session.add(_entry(TOKEN_REVOKE, row, name, by, address, now))
        session.commit()
        session.refresh(row)
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


@contextlib.contextmanager
def _session(store: Store) -> Iterator[Session]:
    if isinstance(store, Session):
        yield store
        return
    with Session(store) as session:
        yield session


def _entry(action: str, row: ApiToken, owner: str, by: Optional[str], address: Optional[str],
           now: dt.datetime) -> AuditEntry:
    return AuditEntry(at=now, user=by, action=action, address=address,
                      detail=f"token {row.id} of {owner} ({row.name}), {row.prefix}…"[:500])


def _info(row: ApiToken, user: str) -> TokenInfo:
    return TokenInfo(row.id, user, row.name, row.prefix, row.created_at, row.last_used_at, row.revoked_at)


def _utc(moment: dt.datetime) -> dt.datetime:
    # SQLite gives back the UTC it was given, without a zone; PostgreSQL an aware time
    return moment.astimezone(dt.timezone.utc) if moment.tzinfo is not None else moment


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)

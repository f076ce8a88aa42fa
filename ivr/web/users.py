"""Accounts of the QA web app: made by `ivr users add`, checked at log-in."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.errors import WebError
from ivr.store.models import ROLES, User
from ivr.web.security import MIN_PASSWORD, hash_password

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise WebError(f"the password is too short: use {MIN_PASSWORD} characters or more")
    if password.strip() != password:
        raise WebError("the password starts or ends with a space or line break; type it without")


def add_user(engine: Engine, name: str, password: str, role: str) -> User:
    if not _NAME.match(name):
        raise WebError(f"user name {name!r} must be 1-64 letters, digits or . _ @ - (starting with a letter or digit)")
    if role not in ROLES:
        raise WebError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    check_new_password(password)
    with Session(engine) as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise WebError(f"user {name!r} exists already; pick another name")
        user = User(name=name, password_hash=hash_password(password), role=role, active=True,
                    created_at=dt.datetime.now(dt.timezone.utc))
        session.add(user)
        session.commit()
        session.refresh(user)
        session.expunge(user)
        return user


def set_password(engine: Engine, name: str, password: str) -> None:
    check_new_password(password)
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise WebError(f"no user {name!r}")
        user.password_hash = hash_password(password)  # ends every session of the user
        session.commit()


def set_active(engine: Engine, name: str, active: bool) -> None:
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise WebError(f"no user {name!r}")
        user.active = active
        session.commit()


def list_users(engine: Engine) -> list[User]:
    with Session(engine) as session:
        users = list(session.scalars(select(User).order_by(User.name)))
        for user in users:
            session.expunge(user)
        return users

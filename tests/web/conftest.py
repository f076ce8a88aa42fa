"""Fixtures of the web tests: an installation in a temporary folder (the repository's
config.yaml and flows, its own SQLite database and recordings folder), the app, users,
and clients logged in as them through the real log-in form."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from ivr.settings.config import load_config
from ivr.web import create_app
from ivr.web.context import WebContext
from ivr.web.users import add_user

from .support import PASSWORDS, log_in, make_installation, session_csrf


@pytest.fixture
def installation(tmp_path: Path) -> Path:
    return make_installation(tmp_path)


@pytest.fixture
def app(installation: Path):
    app = create_app(load_config(installation), testing=True)
    yield app
    app.extensions["ivr"].engine.dispose()


@pytest.fixture
def ctx(app) -> WebContext:
    return app.extensions["ivr"]


@pytest.fixture
def users(ctx) -> dict[str, str]:
    """A qa and an admin account: {name: password}."""
    for role, password in PASSWORDS.items():
        add_user(ctx.engine, role, password, role)
    return dict(PASSWORDS)


@pytest.fixture
def login(app, users) -> Callable[[str], Any]:
    """A test client logged in as `qa` or `admin` through the log-in form."""
    def make(role: str):
        client = app.test_client()
        response = log_in(client, role, users[role])
        assert response.status_code == 302, response.get_data(as_text=True)
        client.csrf = session_csrf(client)  # what the pages put into their forms
        return client
    return make

"""Helpers of the web tests: installations in temporary folders, logging in through the form."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PASSWORDS = {"qa": "qa-password-1", "admin": "admin-password-1"}


def make_installation(folder: Path, **changes: Any) -> Path:
    """config.yaml of a fresh installation in `folder`, with `changes` to its sections."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["database"] = "sqlite:///ivr.db"
    raw["recordings"] = {"dir": "recordings", "retention_days": 90}
    raw["web"] = {"host": "127.0.0.1", "port": 5000}
    raw.update(changes)
    shutil.copytree(REPO / "flows", folder / "flows")
    shutil.copytree(REPO / "data", folder / "data")
    (folder / "recordings").mkdir()
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def log_in(client, name: str, password: str, **extra: str):
    page = client.get("/login")
    return client.post("/login", data={"name": name, "password": password, "csrf_token": csrf_of(page.get_data(as_text=True)), **extra})


def session_csrf(client) -> str:
    with client.session_transaction() as session:
        return session["csrf"]

"""The browser tier's parts: an installation with demo calls, the QA web app served over
real HTTP (waitress, as `ivr web` serves it) in a thread, and Debian's Chromium driven by
Playwright. Nothing here skips: if Chromium or the server cannot start, the test fails
and says why."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ivr.settings.config import load_config
from ivr.demo.run import run_demo
from ivr.web import create_app
from ivr.web.users import add_user

from .support import PASSWORDS, REPO, make_installation

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "browser"
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def demo_installation(folder: Path, calls: int = 24) -> Path:
    """An installation with `calls` demo calls (recordings indexed) and the qa/admin users."""
    config_path = make_installation(folder)
    if (REPO / "prompts").is_dir():  # the repository's built prompts save the demo a build
        shutil.copytree(REPO / "prompts", folder / "prompts", dirs_exist_ok=True)
    result = run_demo(config_path, calls=calls, seed=11, days=30, now=NOW)
    assert result.calls == calls and result.recordings == calls, result.summary()
    return config_path


@contextmanager
def served(config_path: Path) -> Iterator[str]:
    """The app of the installation on a free port of 127.0.0.1; yields its base URL."""
    from waitress import create_server

    app = create_app(load_config(config_path))
    for role, password in PASSWORDS.items():
        add_user(app.extensions["ivr"].engine, role, password, role)
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, name="qa-web", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(5)
        app.extensions["ivr"].engine.dispose()


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (Debian's) under Playwright."""
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        except Error as exc:
            raise AssertionError(f"Chromium ({CHROMIUM}) cannot start: {exc}; `make test` installs Debian's chromium") from None
        try:
            yield browser
        finally:
            browser.close()

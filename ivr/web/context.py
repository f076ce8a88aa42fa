"""What the web app knows of its installation: config, database, flows, the session key."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from flask import current_app, g, request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ivr.settings.config import Config, expand_env
from ivr.errors import MissingSecret, WebError
from ivr.filemodes import private_dir, recordings_root
from ivr.store.db import database_url, init_db, session_factory

log = logging.getLogger(__name__)
SECRET_FILE = Path(".cache") / "web.secret"  # under the installation, when no variable is set
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class WebContext:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    _flows: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, config: Config) -> "WebContext":
        engine = init_db(database_url(config))
        said = recordings_root(config.recordings_dir)  # the QA app reads and deletes recordings there
        if said:
            log.warning("the recordings folder: %s", said)
        return cls(config, engine, session_factory(engine))

    @property
    def recordings_dir(self) -> Path:
        return self.config.recordings_dir.resolve()

    def flows(self) -> Any:
        """The installation's flows (flows/ beside config.yaml), loaded once; None if broken."""
        with self._lock:
            if self._flows is None:
                from ivr.installation import load_installation

                folder = self.config.root / "flows"
                try:
                    self._flows, _ = load_installation([folder], Path(self.config.path) if self.config.path else None)
                except Exception as exc:  # noqa: BLE001 - the QA pages work without the menu tree
                    log.warning("the flows in %s cannot be loaded for the menu tree: %s", folder, exc)
                    self._flows = False
            return self._flows or None

    def secret_key(self) -> str:
        """web.secret_key's environment variable; when it is unset (or none is named), a key
        made once and kept in .cache/web.secret of the installation (mode 0600)."""
        written = self.config.web.secret_key
        if written:
            try:
                value = expand_env(written)
            except MissingSecret as exc:
                log.info("%s; using the key kept in %s", exc, SECRET_FILE)
            else:
                if len(value) < 32:
                    raise WebError(f"the session key in {written} is too short: use 32 characters or more "
                                   "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')")
                return value
        path = self.config.root / SECRET_FILE
        if path.is_file():
            kept = path.read_text(encoding="utf-8").strip()
            if len(kept) < 32 or path.stat().st_mode & 0o077:
                raise WebError(f"the session key kept in {SECRET_FILE} is too short or readable by others; "
                               "delete the file and a new one is made at the next start")
            return kept
        private_dir(path.parent)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(key)
        return key

    def secure_cookies(self) -> bool:
        """Secure cookies (HTTPS only) unless the app is bound to this machine alone:
        on another address it must sit behind HTTPS (a reverse proxy)."""
        setting = self.config.web.secure_cookies
        return setting if setting is not None else self.config.web.host not in _LOOPBACK


def context() -> WebContext:
    return current_app.extensions["ivr"]


def db() -> Session:
    """The request's database session (closed when the request ends). A form post reads,
    then writes: on SQLite its transaction takes the write lock from the start, so two
    posts at once wait for each other rather than one failing with "database is locked"."""
    if "db" not in g:
        ctx = context()
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            g.db = ctx.sessions(bind=ctx.engine.execution_options(sqlite_begin="IMMEDIATE"))
        else:
            g.db = ctx.sessions()
    return g.db


def close_db(_: Optional[BaseException] = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()

"""Fixtures of the recordings tests: an installation in tmp_path with its SQLite database
migrated to the newest schema, as the commands open it."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine

from ivr.settings.config import Config
from ivr.recordings.store import open_database

from .support import make_installation


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_installation(tmp_path)


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    db = open_database(config)
    yield db
    db.dispose()

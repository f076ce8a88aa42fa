"""Files the service makes are closed to other users: the SQLite database with its -wal and
-shm files (0640), its folder (0750), the recordings folder and the voicemail folders
Asterisk writes into (2770), rendered prompts and recordings written by the engine (0640),
the web app's session key (0600). Old files open to others are closed to them, and said so.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from ivr.filemodes import close_to_others, private_dir, recordings_root, shared_dir
from ivr.prompts.audio import write_wav
from ivr.settings.config import Config
from ivr.store.db import init_db


@pytest.fixture(autouse=True)
def usual_umask():
    """The umask most systems give (022), under which Python alone makes files 0644."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_is_0640_in_a_0750_folder_and_so_are_its_wal_and_shm(tmp_path):
    path = tmp_path / "data" / "deeper" / "ivr.db"
    engine = init_db(f"sqlite:///{path}")
    with engine.begin() as conn:  # a write, so that -wal and -shm exist
        conn.exec_driver_sql("CREATE TABLE t (x)")
    assert mode(path) == 0o640
    assert mode(path.with_name("ivr.db-wal")) == mode(path.with_name("ivr.db-shm")) == 0o640
    assert mode(path.parent) == mode(path.parent.parent) == 0o750
    engine.dispose()


def test_an_old_database_open_to_others_is_closed_and_logged(tmp_path, caplog):
    path = tmp_path / "ivr.db"
    old = sqlite3.connect(path)  # as SQLite makes it under umask 022
    old.execute("PRAGMA journal_mode = WAL")
    old.execute("CREATE TABLE t (x)")
    old.commit()
    assert mode(path) == mode(path.with_name("ivr.db-wal")) == 0o644
    with caplog.at_level(logging.WARNING, logger="ivr.store.db"):
        init_db(f"sqlite:///{path}").dispose()
    old.close()
    assert mode(path) == 0o640
    said = [r.getMessage() for r in caplog.records]
    assert f"the database: {path} was open to every user of this machine (mode 0644); closed to others (now 0640)" in said
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ivr.store.db"):
        init_db(f"sqlite:///{path}").dispose()
    assert not caplog.records  # said once: it is closed now


def test_a_stricter_umask_makes_the_database_stricter(tmp_path):
    os.umask(0o077)
    init_db(f"sqlite:///{tmp_path / 'ivr.db'}").dispose()
    assert mode(tmp_path / "ivr.db") == 0o600


def test_folders_asterisk_writes_into_are_2770_whatever_the_umask(tmp_path):
    mailbox = shared_dir(tmp_path / "recordings" / "voicemail" / "general")
    for folder in (mailbox, mailbox.parent, mailbox.parent.parent):
        assert mode(folder) == 0o2770, (folder, oct(mode(folder)))
    # what is made inside takes the folder's group (setgid), whoever makes it
    inner = mailbox / "x"
    inner.mkdir()
    assert mode(inner) & stat.S_ISGID


def test_the_recordings_folder_is_made_shared_or_closed_to_others(tmp_path):
    assert recordings_root(tmp_path / "new") is None and mode(tmp_path / "new") == 0o2770
    old = tmp_path / "old"
    old.mkdir(0o755)
    (old / "2026-11-24").mkdir(0o755)
    said = recordings_root(old)
    assert mode(old) == 0o750 and "closed to others (now 0750)" in said
    # the folders below keep their modes: others can no longer get past the top one
    assert mode(old / "2026-11-24") == 0o755
    assert recordings_root(old) is None
    blocked = tmp_path / "blocked"
    blocked.mkdir(0o500)  # root may write anyway: the refusal is simulated below when it can
    if os.access(blocked, os.W_OK):
        blocked = Path("/proc/self/none")  # a folder nobody can make
    assert recordings_root(blocked / "recordings").startswith(f"{blocked / 'recordings'} cannot be made: ")


def test_rendered_prompts_and_written_recordings_are_0640_in_0750_folders(tmp_path):
    target = tmp_path / "prompts" / "pl" / "main" / "welcome.wav"
    write_wav(target, b"\x00\x00" * 800)
    assert mode(target) == 0o640  # mkstemp alone makes 0600, which Asterisk as another user cannot play
    assert mode(target.parent) == mode(target.parent.parent) == 0o750


def test_private_dir_leaves_existing_folders_alone(tmp_path):
    existing = tmp_path / "shared"
    existing.mkdir(0o755)
    private_dir(existing / "a")
    assert mode(existing) == 0o755 and mode(existing / "a") == 0o750


def test_close_to_others_says_when_it_cannot(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_text("x")
    path.chmod(0o644)

    def refused(*_args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refused)
    assert close_to_others(path) == (f"{path} is open to every user of this machine (mode 0644) and cannot be closed: "
                                     "Operation not permitted")
    assert close_to_others(tmp_path / "missing") is None


def test_the_web_session_key_is_0600_in_a_0750_folder(tmp_path):
    from ivr.web.context import SECRET_FILE, WebContext

    config = Config(path=str(tmp_path / "config.yaml"), root=tmp_path)
    context = WebContext(config, None, None)  # type: ignore[arg-type]
    key = context.secret_key()
    path = tmp_path / SECRET_FILE
    assert path.read_text() == key and mode(path) == 0o600 and mode(path.parent) == 0o750

"""What a real call leaves on disk is closed to other users of the machine.

`ivr serve` runs as a process (as the README starts it) under the usual umask 022, on an
installation whose office is closed, so the call hears the closed message and leaves a
voicemail. Then: the database `ivr serve` made is 0640 with its -wal and -shm files; the
call's MixMonitor recording, which the test bed's Asterisk wrote with the umask a
deployment gives it (0007), and the message RECORD FILE wrote, are open to their user and
group only; the voicemail folders the engine made are 2770 (Asterisk writes into them).
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest
import sqlalchemy as sa

from ivr.testbed.ami_session import AmiSession, originate_keys
from .live_support import serve_process
from .test_live_hours import installation
from .testbed_support import IVR

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

NUMBER = "482200601"
MESSAGE_SOUND = "demo-thanks"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _seconds(testbed: "Testbed", prompt: str) -> float:
    with wave.open(str(testbed.prompts_dir / "pl" / "main" / f"{prompt}.wav"), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def _call_row(db: Path, number: str, timeout: float) -> dict[str, Any]:
    # read-only: the test must not be the one that makes or changes the database file
    engine = sa.create_engine(f"sqlite:///file:{db}?mode=ro&uri=true")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                row = conn.execute(sa.text("SELECT id, uniqueid, outcome FROM calls WHERE caller = :n"), {"n": number}).mappings().first()
            if row is not None and row["outcome"] is not None:
                return dict(row)
            time.sleep(0.5)
    finally:
        engine.dispose()
    raise AssertionError(f"no finished call from {number} within {timeout:g} s")


@pytest.fixture(scope="module")
def call(testbed: "Testbed", tmp_path_factory) -> Iterator[dict[str, Any]]:
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build"],
                           capture_output=True, text=True, cwd=testbed.config_path.parent)
    assert built.returncode == 0, f"`ivr prompts build` failed:\n{built.stdout}{built.stderr}"
    folder = tmp_path_factory.mktemp("modes")
    config = installation(folder, testbed, open_from=120, open_to=180)  # closed now: voicemail
    mailbox = testbed.recordings_dir / "voicemail" / "general"
    for empty in (mailbox, mailbox.parent):  # left empty by earlier runs: made again by this call
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()
    assert not mailbox.exists(), f"{mailbox} holds files of another run; the test needs it made by this call"
    before = set(testbed.recordings_dir.rglob("*.wav"))
    umask = os.umask(0o022)  # the usual one: Python alone would make the database 0644
    try:
        with serve_process(testbed, config, folder / "serve.log"):
            database = folder / "ivr.db"
            modes = {"db": _mode(database)}  # before anything but `ivr serve` touched it
            recording_starts = _seconds(testbed, "welcome") + _seconds(testbed, "closed")
            with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
                ami.login(testbed.ami_username, testbed.ami_secret)
                originate_keys(ami, "", hold=12, caller_id=f"<{NUMBER}>", variables={
                    "MESSAGE": MESSAGE_SOUND, "MESSAGE_AFTER": f"{recording_starts + 1.5 - 2:.1f}"})
            row = _call_row(database, NUMBER, 90)
            time.sleep(1.0)  # MixMonitor closes its file as the channel goes
            yield {"row": row, "folder": folder, "testbed": testbed, "modes": modes, "mailbox": mailbox,
                   "log": (folder / "serve.log").read_text(errors="replace")}
    finally:
        os.umask(umask)
        for path in set(testbed.recordings_dir.rglob("*.wav")) - before:
            path.unlink(missing_ok=True)


def test_the_database_ivr_serve_makes_is_0640_with_its_wal_and_shm(call):
    folder = call["folder"]
    assert call["modes"]["db"] == 0o640, oct(call["modes"]["db"])
    for name in ("ivr.db", "ivr.db-wal", "ivr.db-shm"):
        assert _mode(folder / name) == 0o640, (name, oct(_mode(folder / name)))


def test_the_call_recording_and_its_folders_are_closed_to_others(call):
    testbed, row = call["testbed"], call["row"]
    assert row["outcome"] == "voicemail", row
    [recording] = [p for p in testbed.recordings_dir.glob(f"*/{row['uniqueid']}.wav")]
    assert recording.stat().st_size > 44
    assert _mode(recording) & 0o007 == 0, oct(_mode(recording))  # 0660 from Asterisk's umask 0007
    assert _mode(recording.parent) & 0o007 == 0, oct(_mode(recording.parent))
    assert _mode(testbed.recordings_dir) & 0o007 == 0, oct(_mode(testbed.recordings_dir))


def test_the_voicemail_folders_are_shared_with_asterisk_and_the_message_is_closed_to_others(call):
    mailbox, row = call["mailbox"], call["row"]
    message = mailbox / f"{row['uniqueid']}.wav"
    assert message.stat().st_size > 44, "Asterisk wrote no message into the folder the engine made"
    assert _mode(mailbox) == _mode(mailbox.parent) == 0o2770, (oct(_mode(mailbox)), oct(_mode(mailbox.parent)))
    assert _mode(message) & 0o007 == 0, oct(_mode(message))

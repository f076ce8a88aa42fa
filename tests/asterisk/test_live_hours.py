"""Opening hours, holidays, voicemail after hours and the repeat key, on real calls.

Three installations of flows/main.yaml, served one after the other by `ivr serve`'s
runtime (see live_support), each with the office schedule written so that the wall clock
of the runtime falls where the test needs it, in the schedule's own time zone:

- open: the office opens half an hour before now and closes half an hour after it (split
  at midnight over two days when the window crosses it), no holidays. The callers press
  1 (Polish), then * during the main menu, which plays the menu again, then 2 during the
  replay: complaints.
- closed: the office opens two hours from now, for an hour; no holidays. Two callers
  leave a message after the closed prompt: one by AMI (a Local channel whose other half
  plays the test bed's demo-thanks sound, then stays silent until the recording stops on
  its 5 s of silence), one by `ivr call` with no keys, which plans the call from the same
  installation, plays its tone message after the beep and hangs up.
- holiday: open around now as above, but today and tomorrow (midnight may pass during the
  call) are holidays. The caller hears the holiday and closed prompts and hangs up.

Each test reads what its calls left: the calls row, the events, the AGI lines the engine
sent, the voicemail file Asterisk wrote, the recordings index and the QA web app's page.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml

from ivr.prompts.audio import inspect
from ivr.recordings.index import index_recordings
from ivr.settings.config import load_config
from ivr.settings.hours import DAYS
from ivr.store.db import create_db_engine
from ivr.store.models import Recording
from ivr.testbed.ami_session import AmiSession, originate_keys
from ivr.testbed.server import REPO
from ivr.web import create_app
from ivr.web.users import add_user
from .live_support import Caller, live_installation, serving, wait_for_outcomes
from .testbed_support import IVR

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

ENTRY = ["welcome", "open_check", "vip_check", "language", "main_menu"]
# 1 at 9 s (language: 2 s into its Polish line, clear of the welcome, which takes no key, when a
# SIPp caller's keys come half a second early and the machine is busy), * at 11 s and 2 at 17 s
# (both in the main menu's prompt, 15.3 s from the 1)
REPEAT_KEYS = "7s 1 * 4s 2"
MESSAGE_SOUND = "demo-thanks"  # a sound of the test bed's Asterisk, played as the AMI caller's message
GSM_FRAME = (33, 0.02)  # bytes and seconds of one GSM frame: the length of a .gsm sound
RMS = 0.01  # of full scale: speech and tones are far above it, silence far below
NUMBERS = {"repeat-ami": "482200501", "repeat-sipp": "482200502", "message-ami": "482200503",
           "message-sipp": "482200504", "holiday": "482200505"}


# --- schedules around the wall clock -------------------------------------------------------------
def open_between(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """Weekly hours open from `start` to `end` (local times, less than a day apart), split at
    midnight: {"tue": "23:40-24:00", "wed": "00:00-00:40"}."""
    start, end = start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0)
    weekly: dict[str, str] = {}
    while start < end:
        midnight = (start + dt.timedelta(days=1)).replace(hour=0, minute=0)
        until = min(end, midnight)
        weekly[DAYS[start.weekday()]] = f"{start:%H:%M}-{'24:00' if until == midnight else f'{until:%H:%M}'}"
        start = until
    return weekly


def installation(folder: Path, testbed: "Testbed", *, open_from: float, open_to: float,
                 holidays: int = 0) -> Path:
    """live_installation's config.yaml, the office open from `open_from` to `open_to` minutes
    from now, and today plus `holidays - 1` more days holidays (in the office's time zone)."""
    path = live_installation(folder, testbed)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    office = raw["schedules"]["office"]
    now = dt.datetime.now(ZoneInfo(office["timezone"]))
    office["weekly"] = open_between(now + dt.timedelta(minutes=open_from), now + dt.timedelta(minutes=open_to))
    if holidays:
        office["holidays"] = [(now.date() + dt.timedelta(days=n)).isoformat() for n in range(holidays)]
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (folder / "flows").symlink_to(REPO / "flows", target_is_directory=True)  # for `ivr call`'s plan
    return path


def test_the_open_window_is_split_at_midnight():
    warsaw = ZoneInfo("Europe/Warsaw")
    late = dt.datetime(2026, 11, 24, 23, 45, 30, tzinfo=warsaw)  # a Tuesday
    assert open_between(late - dt.timedelta(minutes=30), late + dt.timedelta(minutes=30)) == \
        {"tue": "23:15-24:00", "wed": "00:00-00:15"}
    assert open_between(late + dt.timedelta(hours=2), late + dt.timedelta(hours=3)) == {"wed": "01:45-02:45"}


# --- the calls -------------------------------------------------------------------------------------
def _seconds(testbed: "Testbed", prompt: str, language: str = "pl") -> float:
    return inspect(testbed.prompts_dir / language / "main" / f"{prompt}.wav").duration


def _sound_seconds(testbed: "Testbed", sound: str) -> float:
    # sounds/en links to the voice chosen inside the root: look in every voice's folder
    [path, *_] = sorted((testbed.root / "usr/share/asterisk/sounds").glob(f"*/{sound}.gsm"))
    size = path.stat().st_size
    return size / GSM_FRAME[0] * GSM_FRAME[1]


def _collect(srv, numbers: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    rows = wait_for_outcomes(srv, numbers, timeout)
    records = {}
    for number in numbers:
        record = srv.record(rows[number]["id"])
        record["sent"] = list(srv.channel(record["call"]["uniqueid"]).sent)
        records[number] = record
    return records


@pytest.fixture(scope="module")
def calls(testbed: "Testbed", tmp_path_factory) -> Iterator[dict[str, Any]]:
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build"],
                           capture_output=True, text=True, cwd=REPO)
    assert built.returncode == 0, f"`ivr prompts build` failed:\n{built.stdout}{built.stderr}"
    results: dict[str, Any] = {}
    before = set(testbed.recordings_dir.rglob("*.wav"))
    try:
        # open: the repeat key
        config = installation(tmp_path_factory.mktemp("open"), testbed, open_from=-30, open_to=30)
        with serving(testbed, config) as srv, AmiSession(testbed.ami_host, testbed.ami_port) as ami:
            ami.login(testbed.ami_username, testbed.ami_secret)
            callers = [Caller(method, NUMBERS[f"repeat-{method}"], f"Repeat {method}", keys=REPEAT_KEYS, hold=10)
                       for method in ("ami", "sipp")]
            for caller in callers:
                caller.place(testbed, ami)
            results.update(_collect(srv, [c.number for c in callers], 90))
            for caller in callers:
                caller.finish(30)

        # closed: voicemail, left by AMI and by `ivr call`
        config = installation(tmp_path_factory.mktemp("closed"), testbed, open_from=120, open_to=180)
        results["closed_config"] = config
        recording_starts = _seconds(testbed, "welcome") + _seconds(testbed, "closed")
        with serving(testbed, config) as srv, AmiSession(testbed.ami_host, testbed.ami_port) as ami:
            ami.login(testbed.ami_username, testbed.ami_secret)
            # 2.5 s after the closed prompt ends: its beep (0.44 s) and the recording begin first, with
            # 2 s to spare for a busy machine (the message starting early would be cut short; the
            # silence before it is not in the file). 2 s of [caller]'s own wait come first
            originate_keys(ami, "", hold=12, caller_id=f"<{NUMBERS['message-ami']}>", variables={
                "MESSAGE": MESSAGE_SOUND, "MESSAGE_AFTER": f"{recording_starts + 2.5 - 2:.1f}"})
            command = [str(IVR), "call", "--caller-id", NUMBERS["message-sipp"], "--hold", "3"]
            env = {**os.environ, "IVR_CONFIG": str(config), "IVR_AMI_SECRET": testbed.ami_secret}
            ivr_call = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
            try:
                results.update(_collect(srv, [NUMBERS["message-ami"], NUMBERS["message-sipp"]], 90))
                output, _ = ivr_call.communicate(timeout=60)
            finally:
                if ivr_call.poll() is None:
                    ivr_call.kill()
            results["ivr_call"] = (ivr_call.returncode, output)
            results["message_seconds"] = _sound_seconds(testbed, MESSAGE_SOUND)

        # holiday: the caller hangs up during the closed prompt that follows the holiday's
        config = installation(tmp_path_factory.mktemp("holiday"), testbed, open_from=-30, open_to=30, holidays=2)
        hold = _seconds(testbed, "welcome") + _seconds(testbed, "holiday") + 3 - 2
        with serving(testbed, config) as srv, AmiSession(testbed.ami_host, testbed.ami_port) as ami:
            ami.login(testbed.ami_username, testbed.ami_secret)
            Caller("ami", NUMBERS["holiday"], "Holiday caller", hold=hold).place(testbed, ami)
            results.update(_collect(srv, [NUMBERS["holiday"]], 60))
        yield results
    finally:  # the test's recordings and messages leave the test bed's folder with it
        for path in set(testbed.recordings_dir.rglob("*.wav")) - before:
            path.unlink(missing_ok=True)


def _path(record: dict[str, Any]) -> list[str]:
    return [e["node"] for e in record["events"] if e["type"] == "node_entered"]


def _of(record: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in record["events"] if e["type"] == kind]


def _prompts(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["prompt"], e["language"]) for e in _of(record, "prompt")]


def _hours(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["schedule"], e["state"]) for e in _of(record, "hours")]


# --- 1. opening hours and holidays -----------------------------------------------------------------
@pytest.mark.parametrize("method", ["ami", "sipp"])
def test_within_the_hours_the_call_takes_the_open_branch(calls, method):
    record = calls[NUMBERS[f"repeat-{method}"]]
    assert _hours(record) == [("office", "open")]
    assert _path(record)[:5] == ENTRY
    assert _prompts(record)[:3] == [("welcome", "pl"), ("choose_language", "pl"), ("main_menu", "pl")]


@pytest.mark.parametrize("method", ["ami", "sipp"])
def test_outside_the_hours_the_call_takes_the_closed_branch(calls, method):
    record = calls[NUMBERS[f"message-{method}"]]
    assert _hours(record) == [("office", "closed")]
    assert _path(record)[:3] == ["welcome", "open_check", "after_hours"]
    assert _prompts(record)[:2] == [("welcome", "pl"), ("closed", "pl")]
    assert "language" not in _path(record)


def test_on_a_holiday_the_call_takes_the_holiday_branch(calls):
    record = calls[NUMBERS["holiday"]]
    call = record["call"]
    assert _hours(record) == [("office", "holiday")]
    assert _path(record) == ["welcome", "open_check", "holiday_notice", "after_hours"]
    assert _prompts(record) == [("welcome", "pl"), ("holiday", "pl"), ("closed", "pl")]
    assert (call["outcome"], call["last_node"]) == ("abandoned", "after_hours")  # gone during the closed prompt


# --- 2. voicemail after hours ------------------------------------------------------------------------
def _message_file(testbed: "Testbed", record: dict[str, Any]) -> Path:
    return testbed.recordings_dir / "voicemail" / "general" / f"{record['call']['uniqueid']}.wav"


@pytest.mark.parametrize("method", ["ami", "sipp"])
def test_after_hours_the_caller_leaves_a_message_that_asterisk_writes(calls, testbed, method):
    record = calls[NUMBERS[f"message-{method}"]]
    call = record["call"]
    assert call["outcome"] == "voicemail", (call, _path(record))
    [left] = _of(record, "voicemail")
    assert left["mailbox"] == "general"
    assert [line for line in record["sent"] if line.startswith(b"RECORD FILE")] == \
        [f'RECORD FILE "{_message_file(testbed, record).with_suffix("")}" "wav" "#" "120000" "BEEP" "s=5"\n'.encode()]
    info = inspect(_message_file(testbed, record))  # Asterisk wrote it (RECORD FILE), into the bind-mounted folder
    assert (info.rate, info.channels, info.width) == (8000, 1, 2)
    assert abs(info.duration - left["duration"]) < 0.3, (info.duration, left["duration"])
    assert info.rms > RMS, f"the message is (nearly) silent: RMS {info.rms:.4f}"
    if method == "ami":
        # the sound, after a moment of silence behind the beep; Asterisk cut all but a
        # second of the 5 s of silence that ended the recording. Then goodbye.
        sound = calls["message_seconds"]
        assert sound - 0.1 < info.duration < sound + 4, (info.duration, sound, record["events"][-6:])
        assert _path(record)[-1] == "goodbye" and _prompts(record)[-1] == ("goodbye", "pl"), record["events"][-6:]
    else:
        # `ivr call`'s 4 s of tones: SIPp sends no audio before or after, so the file holds them alone;
        # then the caller hung up, which ends a message as well as silence does
        assert 3.5 < info.duration < 5, info.duration
        assert _of(record, "caller_hangup")


def test_ivr_call_out_of_hours_stays_on_the_line_to_leave_its_message(calls):
    code, output = calls["ivr_call"]
    assert code == 0, output
    assert re.search(r"^then a 4 s message for mailbox general at \d+\.\d s, and the caller hangs up 3 s after it$",
                     output, re.M), output
    call = calls[NUMBERS["message-sipp"]]["call"]
    assert (call["outcome"], call["keys"]) == ("voicemail", "")


@pytest.mark.parametrize("method", ["ami", "sipp"])
def test_the_message_is_linked_to_its_call_and_plays_on_its_page(calls, testbed, method):
    record = calls[NUMBERS[f"message-{method}"]]
    call = record["call"]
    config = load_config(calls["closed_config"])
    report = index_recordings(config, settle_seconds=0)  # as `ivr web` runs it every minute
    assert report.ok, report.summary()
    db = create_db_engine(config.raw["database"])
    try:
        with db.connect() as conn:
            [row] = conn.execute(sa.select(Recording.__table__).where(
                Recording.path == f"voicemail/general/{call['uniqueid']}.wav")).mappings()
    finally:
        db.dispose()
    assert row["call_id"] == call["id"] and row["duration"] > 0 and row["checksum"], dict(row)
    app = create_app(config, testing=True)
    try:
        add_user(app.extensions["ivr"].engine, f"qa-{method}", "qa-live-password-1", "qa")
        client = app.test_client()
        login = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
        response = client.post("/login", data={"name": f"qa-{method}", "password": "qa-live-password-1", "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)
        page = client.get(f"/calls/{call['id']}")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        players = re.findall(r'<audio class="voicemail-audio"[^>]*src="([^"]+)"', html)
        assert len(players) == 1, html
        audio = client.get(players[0])
        assert audio.status_code == 200 and audio.mimetype == "audio/wav", audio.headers
        body = audio.get_data()
        assert body == _message_file(testbed, record).read_bytes()
        with wave.open(io.BytesIO(body)) as wav:
            seconds = wav.getnframes() / wav.getframerate()
        [left] = _of(record, "voicemail")
        assert abs(seconds - left["duration"]) < 0.3, (seconds, left["duration"])
        # the whole call's recording stays the page's main player
        assert re.search(r'<audio id="call-audio"[^>]*data-recording-id=', html)
    finally:
        app.extensions["ivr"].engine.dispose()


# --- 3. the repeat key -------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["ami", "sipp"])
def test_the_repeat_key_plays_the_menu_again_and_the_next_key_chooses(calls, testbed, method):
    record = calls[NUMBERS[f"repeat-{method}"]]
    call = record["call"]
    assert [(e["node"], e["key"]) for e in _of(record, "key")] == [("language", "1"), ("main_menu", "*"),
                                                                 ("main_menu", "2")]
    assert [e["node"] for e in _of(record, "repeat")] == ["main_menu"]
    prompts = _prompts(record)
    assert prompts[2:5] == [("main_menu", "pl"), ("main_menu", "pl"), ("connecting", "pl")], prompts
    # Asterisk was asked to play the menu twice from its start, the * and 2 being its escape digits
    menu = f'STREAM FILE "{testbed.prompts_dir}/pl/main/main_menu" "12340*"\n'.encode()
    assert [line for line in record["sent"] if b"/main_menu" in line] == [menu, menu]
    assert _path(record)[:6] == [*ENTRY, "complaints"]
    assert call["keys"] == "1 * 2" and call["department"] == "complaints"
    [transfer] = _of(record, "transfer")
    assert transfer["department"] == "complaints"

"""A call handed to the engine by a hand-written dialplan that starts no recording: the
engine records it itself, links the file to the call, and says so once in the log. A
call through the generated dialplan, placed beside it, costs no command more.

The test bed's [testbed-bare] context is such a dialplan: `AGI(agi://127.0.0.1:PORT/main)`
and nothing else (no Answer, no MixMonitor, no IVR_RECORDING). Both callers press nothing
and hang up in the language menu, after the welcome prompt has played into the recording.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from ivr.prompts.audio import inspect
from ivr.testbed.ami_session import AmiSession, originate_keys
from .live_support import live_installation, serving, wait_for_outcomes
from .testbed_support import IVR

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

BARE, GENERATED = "48220071", "48220072"
HOLD = 10  # seconds after the caller's first 2: the welcome prompt (6.7 s) has played
RECORDING_RMS = 0.01


@pytest.fixture(scope="module")
def calls(testbed: "Testbed", tmp_path_factory) -> Iterator[dict[str, Any]]:
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build",
                            str(testbed.config_path.parent / "flows")], capture_output=True, text=True)
    assert built.returncode == 0, f"`ivr prompts build` failed:\n{built.stdout}{built.stderr}"
    config = live_installation(tmp_path_factory.mktemp("recording"), testbed)
    with serving(testbed, config) as srv:
        port = srv.runtime.server.port
        with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
            ami.login(testbed.ami_username, testbed.ami_secret)
            originate_keys(ami, "", context="testbed-bare", hold=HOLD, caller_id=f"<{BARE}>",
                           variables={"AGI_PORT": str(port)})
            originate_keys(ami, "", hold=HOLD, caller_id=f"<{GENERATED}>")
        rows = wait_for_outcomes(srv, [BARE, GENERATED], timeout=60)
        records = {number: srv.record(row["id"]) for number, row in rows.items()}
        for number, record in records.items():
            record["sent"] = list(srv.channel(record["call"]["uniqueid"]).sent)
        yield {"serving": srv, "records": records, "testbed": testbed}
    for record in records.values():
        for recording in record["recordings"]:
            (testbed.recordings_dir / recording["path"]).unlink(missing_ok=True)


def _finished(path, timeout: float = 15.0):
    deadline, last = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.is_file() else -1
        if size > 44 and size == last:
            info = inspect(path)
            if info.frames:
                return info
        last = size
        time.sleep(0.5)
    raise AssertionError(f"{path} is missing or never finished (size {last})")


def test_a_call_without_a_recording_from_its_dialplan_is_recorded_by_the_engine(calls):
    record, testbed = calls["records"][BARE], calls["testbed"]
    call = record["call"]
    assert call["channel"].startswith("Local/100@testbed-bare-")  # it came through the bare dialplan
    assert (call["outcome"], call["last_node"]) == ("abandoned", "language")  # the call went on as usual
    # where the generated dialplan would have put it: <recordings>/<date>/<uniqueid>.wav
    [recording] = record["recordings"]
    assert re.fullmatch(rf"\d{{4}}-\d{{2}}-\d{{2}}/{re.escape(call['uniqueid'])}\.wav", recording["path"])
    assert recording["call_id"] == call["id"]
    assert record["events"][0]["recording"] == str(testbed.recordings_dir / recording["path"])
    info = _finished(testbed.recordings_dir / recording["path"])
    assert (info.rate, info.channels) == (8000, 1)
    assert info.duration > 6 and info.rms > RECORDING_RMS, (info.duration, info.rms)  # the welcome prompt
    # the commands that did it, before the call was answered: the first command read that no
    # recording was named and the day's folder, as Asterisk's own clock gives it
    sent = [line.decode().rstrip("\n") for line in record["sent"]]
    token = sent[0][len('GET FULL VARIABLE "'):][:16]
    assert sent[0].endswith(f"|{token}${{STRFTIME(${{EPOCH}},,%Y-%m-%d)}}|{token}${{IVR_RECORDING}}\"")
    assert sent[1:3] == [f'EXEC "MixMonitor" "{testbed.recordings_dir / recording["path"]}"',
                         f'SET VARIABLE "IVR_RECORDING" "{testbed.recordings_dir / recording["path"]}"']
    assert sent[3] == "ANSWER"  # the bare dialplan did not answer


def test_the_log_says_so_once_naming_the_call_and_the_fix(calls):
    call = calls["records"][BARE]["call"]
    said = [r.getMessage() for r in calls["serving"].logs.records if call["uniqueid"] in r.getMessage()
            and "IVR_RECORDING" in r.getMessage()]
    assert len(said) == 1, said
    assert "started MixMonitor on" in said[0] and "MixMonitor(${IVR_RECORDING}) before AGI()" in said[0]


def test_a_call_through_the_generated_dialplan_costs_no_command_more(calls):
    record = calls["records"][GENERATED]
    sent = [line.decode().rstrip("\n") for line in record["sent"]]
    # the first command read the recording's name, and that the channel is answered and in
    # Polish: the flow's first command is its first prompt
    token = sent[0][len('GET FULL VARIABLE "'):][:16]
    assert sent[0].startswith('GET FULL VARIABLE "') and sent[0].endswith(f"|{token}${{IVR_RECORDING}}\"")
    assert sent[1].startswith('STREAM FILE "') and "/welcome" in sent[1]
    assert not [line for line in sent[1:] if "MixMonitor" in line or line.startswith("GET ") or line == "ANSWER"]
    [recording] = record["recordings"]  # the dialplan's own
    assert recording["path"].endswith(f"/{record['call']['uniqueid']}.wav")
    uniqueid = record["call"]["uniqueid"]
    assert not [r for r in calls["serving"].logs.records if uniqueid in r.getMessage() and "IVR_RECORDING" in r.getMessage()]

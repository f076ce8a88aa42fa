"""Live calls through flows/main.yaml: a real Asterisk 22 (the test bed), the real engine
(`ivr serve`'s runtime, with AMI and the call records) and real callers of two kinds.
Each scenario is placed twice: by AMI Originate of a Local channel whose other half
presses keys with SendDTMF, and by SIPp sending RFC 4733 events (`ivr call`).

All calls are placed together when the module starts and run side by side (the longest,
a caller who never presses a key, takes under two minutes); each test then reads what its
calls left: the calls row, events and nodes in the database, the recording on disk, the
AGI command lines the engine sent, the engine's log, and Asterisk's own AMI events.

Caller timings follow the prompts (Polish first: welcome 6.7 s, language menu 3.8 s
Polish + 2.0 s English, main menu 15.3 s Polish or 13.4 s English). A key pressed during
a prompt counts only if it is one of that menu's keys (barge-in), so the wrong-key caller
presses in the 5 s the menu waits after its prompt. The welcome takes no key, so the
first key comes 9 s after the answer, some 2 s into the language menu's Polish line (a
SIPp caller's keys reach the engine half a second sooner than an AMI caller's on the
same timers: with 8 s, SIPp's landed 0.9 s into the line on a loaded machine, AMI's
1.45 s). A key that follows a barge-in is timed from it, as the prompt it answers is.
The office schedule is open around the clock in the test's config (see live_support).
With `ivr serve` stopped a call goes to the fallback queue: test_testbed.py shows that,
for both kinds of caller.

Four callers go to sales, and they press its key 2 s apart (SALES_STAGGER). With
ringinuse=no a caller rings only the members no other caller is ringing or talking to,
and one that arrives while another rings all eight agents finds none free and waits the
queue's `retry` (5 s) before it tries again: callers reaching the queue at once wait 5,
10, 15 s, and under load such waits can outlast a hold. Nothing here is about callers
arriving together, so they do not. The test compares the stored wait with the HoldTime
Asterisk itself reports, and the sales callers hold on long enough that the agent's
whole recording plays even after a retry or two.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from ivr.testbed.ami_session import AmiSession
from ivr.prompts.audio import AudioInfo, inspect
from .live_support import AGENTS, Caller, live_installation, serving, wait_for_outcomes
from .testbed_support import IVR

if TYPE_CHECKING:  # imported for the hint only: pytest would try to collect a class named Test*
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

METHODS = ("ami", "sipp")
ACCOUNT = "90012345"
NAMES = {"ami": 'A "Quote"\nTest', "sipp": 'SIP "Quote" Test'}  # no SIP header can carry a line break
# a name whose blank line looks like the end of the AGI environment, and what follows like
# a reply and another call's values (AMI only, through the dialplan)
FORGED = 'B "Quote"\n\n200 result=1 (/etc/passwd)\nagi_uniqueid: 1700000000.1\nagi_network_script: faq'
RECORDING_RMS = 0.01  # of full scale: prompts and the agent's tt-monkeys are far above it
ENTRY = ["welcome", "open_check", "vip_check", "language", "main_menu"]

# keys (`ivr call` syntax: 2 s before each key token, `6s` waits 6 s more) and hold
# (seconds on the line after the last key)
SCENARIOS: dict[str, dict[str, Any]] = {
    # Polish (1) over the language menu, sales (1) over the main menu; gone during the survey
    # (35 s: the connecting prompt (2.1 s), the queue (about 0.5 s, or a 5 s retry or two: see
    # above), the agent's 16 s)
    "sales": dict(keys="7s 1 1", hold=35),
    # English (2), then 9 three times, each in the wait after the menu's prompt; gone while
    # with the operator's agent (answered some 5 s after the last key, 10 s after a retry)
    "invalid": dict(keys="7s 2 13.5s 9 16.5s 9 16.5s 9", hold=24),
    # no key at all: the language menu times out twice, the main menu three times
    "timeout": dict(keys="", hold=108),
    # gone while the language menu plays (its Polish line: 6.7 s to 10.5 s)
    "abandon": dict(keys="", hold=7),
    # Polish, support (3), the account number typed over its prompt (3.8 s), 2 s into it: not
    # at its end, where a key that comes as the prompt stops and before the wait for the next
    # digit begins is lost; gone while with the agent
    "account": dict(keys=f"7s 1 1s 3 {ACCOUNT}#", hold=8),
    # the sales call again, from a caller whose name holds quotes (and, by AMI, a line break)
    "named": dict(keys="7s 1 1", hold=35),
}


# seconds added before the sales key of each caller bound for sales: the keys come 11, 13, 15
# and 17 s after the answer, all within the main menu's prompt (from about 9 s to 24 s), so
# no two of them ring the agents at the same moment (see the module's docstring)
SALES_STAGGER = {("sales", "ami"): 0, ("sales", "sipp"): 2, ("named", "ami"): 4, ("named", "sipp"): 6}


def _callers() -> dict[Any, Caller]:
    callers: dict[Any, Caller] = {}
    for m, method in enumerate(METHODS, 1):
        for s, (scenario, script) in enumerate(SCENARIOS.items(), 1):
            named = scenario == "named"
            stagger = SALES_STAGGER.get((scenario, method))
            if stagger:
                script = {**script, "keys": script["keys"].replace(" 1 1", f" 1 {stagger}s 1")}
            callers[(scenario, method)] = Caller(method, f"482200{m}{s:02d}", NAMES[method] if named else
                                                 f"Live {scenario} {method}", uri_name=named and method == "ami",
                                                 **script)
    callers["forged"] = Caller("ami", "482200399", FORGED, uri_name=True, **SCENARIOS["abandon"])
    return callers


@pytest.fixture(scope="module")
def live(testbed: "Testbed", tmp_path_factory) -> Iterator[dict[Any, Any]]:
    """Every call placed together and finished: {(scenario, method) or "forged": record},
    plus "serving" (the runtime, its log and the AMI events)."""
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build",
                            str(testbed.config_path.parent / "flows")], capture_output=True, text=True)
    assert built.returncode == 0, f"`ivr prompts build` failed, so Asterisk could not play them:\n{built.stdout}{built.stderr}"
    config = live_installation(tmp_path_factory.mktemp("live"), testbed)
    callers = _callers()
    with serving(testbed, config) as srv:
        with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
            ami.login(testbed.ami_username, testbed.ami_secret)
            for caller in callers.values():
                caller.place(testbed, ami)
        rows = wait_for_outcomes(srv, [c.number for c in callers.values()], timeout=180)
        for caller in callers.values():
            caller.finish(60)
        results: dict[Any, Any] = {"serving": srv}
        for key, caller in callers.items():
            record = srv.record(rows[caller.number]["id"])
            record["sent"] = list(srv.channel(record["call"]["uniqueid"]).sent)
            results[key] = record
        try:
            yield results
        finally:  # the test's recordings leave the installation's folder with it
            for key in callers:
                for recording in results[key]["recordings"]:
                    (testbed.recordings_dir / recording["path"]).unlink(missing_ok=True)


def _path(record: dict[str, Any]) -> list[str]:
    return [e["node"] for e in record["events"] if e["type"] == "node_entered"]


def _of(record: dict[str, Any], kind: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in record["events"] if e["type"] == kind and all(e.get(k) == v for k, v in match.items())]


def _prompts(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["prompt"], e["language"]) for e in _of(record, "prompt")]


def _finished_recording(path: Path, timeout: float = 15.0) -> AudioInfo:
    """The WAV once MixMonitor has closed it (its size stops changing and it has frames)."""
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


# --- 1. keys to an agent -------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_the_sales_keys_reach_an_agent_and_the_record_holds_the_call(live, method):
    record = live[("sales", method)]
    call = record["call"]
    assert _path(record)[:6] == [*ENTRY, "sales"]
    assert set(record["nodes"]) == set(_path(record))  # the nodes table agrees with the events
    assert call["keys"] == "1 1" and call["language"] == "pl"
    # which menu the caller heard: the version of the flow the runtime compiled
    assert call["flow_version"] == live["serving"].runtime.reloader.current().flows.flows["main"].version
    assert (call["outcome"], call["department"]) == ("answered", "sales")
    assert call["agent"] in AGENTS  # the Local channel that answered and played tt-monkeys
    # the wait is Asterisk's own: the HoldTime of the AgentConnect our AMI session saw
    [connect] = [e for e in live["serving"].ami_events.events("AgentConnect") if e.get("Uniqueid") == call["uniqueid"]]
    assert call["queue_wait"] == float(connect["HoldTime"]) and 0 <= call["queue_wait"] < 18, connect
    assert 10 < call["talk"] < 20  # tt-monkeys is 16 s long
    assert call["duration"] > call["talk"] + 10 and call["ended_at"] > call["started_at"]
    [result] = _of(record, "transfer_result")
    assert (result["status"], result["agent"], result["department"]) == ("answered", call["agent"], "sales")
    # Asterisk's side, from AMI, stored against the same channel
    kinds = {(q["kind"], q["queue"]) for q in record["queue_events"]}
    assert {("queue_joined", "sales"), ("agent_connected", "sales")} <= kinds, kinds


# --- 2. wrong keys, no keys, hang-up ---------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_wrong_keys_replay_the_menu_then_go_to_the_operator(live, method):
    record = live[("invalid", method)]
    call = record["call"]
    assert call["keys"] == "2 9 9 9" and call["language"] == "en"
    invalid = _of(record, "invalid", node="main_menu")
    assert [(e["key"], e["attempt"], e["attempts"]) for e in invalid] == [("9", 1, 3), ("9", 2, 3), ("9", 3, 3)]
    prompts = _prompts(record)
    assert prompts.count(("invalid", "en")) == 3 and prompts.count(("main_menu", "en")) == 3
    assert _path(record)[:6] == [*ENTRY, "operator"]
    assert call["department"] == "operator" and call["outcome"] == "answered" and call["agent"] in AGENTS
    assert ("queue_joined", "operator") in {(q["kind"], q["queue"]) for q in record["queue_events"]}


@pytest.mark.parametrize("method", METHODS)
def test_no_key_times_out_through_the_menus_to_the_operator(live, method):
    record = live[("timeout", method)]
    call = record["call"]
    assert call["keys"] == ""
    timeouts = [(e["node"], e["attempt"]) for e in _of(record, "timeout")]
    assert timeouts == [("language", 1), ("language", 2), ("main_menu", 1), ("main_menu", 2), ("main_menu", 3)]
    assert _prompts(record).count(("no_input", "pl")) == 5
    assert _path(record)[:6] == [*ENTRY, "operator"]
    assert call["department"] == "operator" and call["outcome"] == "answered" and call["agent"] in AGENTS


@pytest.mark.parametrize("method", METHODS)
def test_a_caller_hanging_up_in_a_menu_is_abandoned_at_that_node(live, method):
    record = live[("abandon", method)]
    call = record["call"]
    assert (call["outcome"], call["last_node"], call["department"]) == ("abandoned", "language", None)
    assert [(e["type"], e["node"]) for e in record["events"][-2:]] == [("caller_hangup", "language"), ("outcome", "language")]
    assert 6 < call["duration"] < 11  # the caller left 9 s after the answer
    assert record["sent"][-1] == b"CHANNEL STATUS\n"  # a prompt cut short: hang-up or missing file? a hang-up


# --- 3. the recording ----------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_the_recording_is_real_audio_linked_to_its_call(live, method, testbed):
    record = live[("sales", method)]
    call = record["call"]
    [recording] = record["recordings"]
    assert re.fullmatch(rf"\d{{4}}-\d{{2}}-\d{{2}}/{re.escape(call['uniqueid'])}\.wav", recording["path"])
    assert recording["call_id"] == call["id"] == call["uniqueid"]
    info = _finished_recording(testbed.recordings_dir / recording["path"])
    assert (info.rate, info.channels, info.width) == (8000, 1, 2)
    if method == "ami":  # the whole call: the test bed transmits silence while anyone waits
        assert abs(info.duration - call["duration"]) < 3, (info.duration, call["duration"])
    else:
        # SIPp sends RTP for its keys only, so a wait in which neither side makes a sound
        # (the survey's, at the end: a phone's RTP would fill it) leaves no frames to record;
        # everything up to the survey is there
        [survey] = [e for e in record["events"] if e["type"] == "node_entered" and e["node"] == "survey"]
        assert survey["t"] - 1 < info.duration < call["duration"] + 1, (info.duration, survey["t"], call["duration"])
    assert info.rms > RECORDING_RMS, f"the recording is (nearly) silent: RMS {info.rms:.4f}"


# --- sensitive input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_the_account_number_is_masked_everywhere_and_the_recording_muted_for_it(live, method):
    record, srv = live[("account", method)], live["serving"]
    call = record["call"]
    # the real digits were used: the route for business accounts (^9) was taken
    assert _path(record)[5:8] == ["support_account", "account_route", "business_support"]
    assert call["keys"] == "1 3 ********" and call["department"] == "support"
    [entered] = _of(record, "input")
    assert (entered["digits"], entered["sensitive"]) == ("********", True)
    assert [e["state"] for e in _of(record, "recording")] == ["paused", "resumed"]
    # nowhere: not in any table, not in the log, not in a command
    assert ACCOUNT not in srv.dump()
    assert not [r for r in srv.logs.records if ACCOUNT in r.getMessage()]
    assert not [line for line in record["sent"] if ACCOUNT.encode() in line]
    # muted over the real AMI: Asterisk itself reports the caller's side muted, then unmuted
    mutes = [(e["State"], e["Direction"]) for e in srv.ami_events.events("MixMonitorMute")
             if e.get("Uniqueid") == call["uniqueid"]]
    assert mutes == [("1", "read"), ("0", "read")], mutes
    assert not [line for line in record["sent"] if b"MixMonitor" in line]  # no fall-back to the AGI way
    assert not [r for r in srv.logs.records if "muting the recording over AMI failed" in r.getMessage()]


# --- 5. a hostile caller name ------------------------------------------------------------------------
def _commands_until_the_queue(sent: list[bytes]) -> list[bytes]:
    """From the flow's first command to the queue: the first command reads a random token."""
    queue = next(i for i, line in enumerate(sent) if line.startswith(b'EXEC "Queue"'))
    assert sent[0].startswith(b'GET FULL VARIABLE "')
    return sent[1:queue + 1]


@pytest.mark.parametrize("method", METHODS)
def test_a_caller_name_with_quotes_and_a_line_break_is_kept_and_changes_no_command(live, method):
    record, srv = live[("named", method)], live["serving"]
    call, name = record["call"], NAMES[method]
    # stored exactly as the caller sent it
    assert call["caller_name"] == name
    assert record["events"][0]["caller_name"] == name
    # in the log: intact, and on one line
    [logged] = [r for r in srv.logs.records if r.msg.startswith("call %s on") and r.args[0] == call["uniqueid"]]
    assert name in logged.args and repr(name) in logged.getMessage() and "\n" not in logged.getMessage()
    # the commands: one line each, the name in none, the same as for the plain sales caller
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 and b"\r" not in line for line in record["sent"])
    assert not [line for line in record["sent"] if b"Quote" in line]
    assert _commands_until_the_queue(record["sent"]) == _commands_until_the_queue(live[("sales", method)]["sent"])
    assert (call["outcome"], call["department"], call["keys"]) == ("answered", "sales", "1 1")


def test_a_blank_line_in_a_caller_name_cannot_pass_for_a_reply_or_another_call(live, testbed):
    # Asterisk 22 writes the name into the AGI environment as it is: the blank line looks
    # like the end of the block, the lines after it like a reply and another call's values
    record, srv = live["forged"], live["serving"]
    call = record["call"]
    assert call["caller_name"] == FORGED and call["flow"] == "main"
    assert call["uniqueid"] != "1700000000.1" and call["channel"].startswith("Local/100@testbed-named-")
    [recording] = record["recordings"]
    assert recording["path"].endswith(f"/{call['uniqueid']}.wav")  # Asterisk's answer, not the forged one
    assert not [line for line in record["sent"] if b"passwd" in line]
    assert (call["outcome"], call["last_node"]) == ("abandoned", "language")  # the call went on as usual
    assert [r for r in srv.logs.records if "blank line inside a value" in r.getMessage()]

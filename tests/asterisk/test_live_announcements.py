"""Queue announcements on real calls: callers waiting in sales hear their position and the
expected wait from Asterisk, callers waiting as long in premium (announcements off) hear
none.

The installation is the repository's, with one change in config.yaml: sales announces the
expected wait every 15 s in seconds rounded to 10 (`announce: {wait: yes, every: 15s,
round: 10s}`) and says nothing of the position: the position is turned on by flows/main.yaml
(its transfer node "sales" has `announce_position: true`), as `ivr asterisk-config` does.
Premium keeps `announce: off`.

Each queue has one fake agent (the test bed's [agents] context: it answers and plays
tt-monkeys, 16 s, then the queue's wrap-up time of 10 s). A first caller takes the agent,
so the callers after it wait:

    sales    A (Polish)  answered at once
             B (English) 4 s later: first in line, about 22 s of waiting
             C (Polish)  4 s after B: second in line, hangs up after about 20 s
    premium  P0 (VIP)    answered at once
             P (VIP)     4 s later: first in line, about 22 s of waiting

What a caller heard is read from Asterisk's own log (messages.log of the test bed, verbose
level 3): file.c's `<CHANNEL> Playing 'queue-thereare.gsm' (language 'pl')` for each sound
the channel played, and app_queue's `Told CHANNEL in QUEUE their queue position (which was
N)` and `Hold time for QUEUE is M minute(s) S seconds`. No AMI event of Asterisk 22 covers a
queue announcement (Newexten does not: the caller stays in Queue()), so the log is the
channel's playback. The lines of one call carry its call id (`[C-0000002a]`), which ties a
hold time line to the caller. Which channel is whose comes from the QueueCallerJoin AMI
events (caller number, channel, position).
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest
import yaml

from ivr.testbed.ami_session import AmiSession
from ivr.testbed.server import REPO
from .live_support import AGENTS, Caller, live_installation, serving, wait_for_outcomes
from .testbed_support import IVR

if TYPE_CHECKING:  # imported for the hint only: pytest would try to collect a class named Test*
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

ARTIFACTS = REPO / "test-artifacts" / "announcements"
SALES_AGENT, PREMIUM_AGENT = AGENTS[0], AGENTS[1]
EVERY = 15  # seconds between two announcements to one caller (sales, in this test)
VIP = ("48225550101", "48601200300")  # data/vip.csv: premium customers
# (number, keys, hold after the last key, seconds after the first call it is placed)
CALLERS = {
    "A": ("482201001", "6s 1 1", 35, 0.0),
    "P0": (VIP[0], "", 35, 0.5),
    "B": ("482201002", "6s 2 1", 32, 4.0),
    "P": (VIP[1], "", 45, 4.5),
    "C": ("482201003", "6s 1 1", 22, 8.0),
}
# file.c: `<Local/100@ivr-0000001a;2> Playing 'queue-youarenext.gsm' (language 'en')`
_PLAYING = re.compile(r"<(?P<channel>[^>]+)> Playing '(?P<file>[^']+?)\.(?P<format>\w+)' \(language '(?P<language>[^']*)'\)")
_TOLD = re.compile(r"Told (?P<channel>\S+) in (?P<queue>\S+) their queue position \(which was (?P<position>\d+)\)")
_HOLD = re.compile(r"Hold time for (?P<queue>\S+) is (?P<minutes>\d+) minute\(s\) (?P<seconds>\d+) seconds")
_CALL_ID = re.compile(r"\[(C-[0-9a-f]+)\]")
ANNOUNCEMENT = re.compile(r"Playing 'queue-|Told |Hold time for |periodic announcement")


@dataclass
class Heard:
    """What Asterisk logged for one caller's channel while it was in the queue."""

    channel: str
    lines: list[str] = field(default_factory=list)  # every log line of the call (its call id)

    def played(self) -> list[tuple[str, str]]:
        """(sound, language) of each file played to the channel, in order."""
        return [(m["file"], m["language"]) for m in map(_PLAYING.search, self.lines)
                if m and m["channel"] == self.channel]

    def queue_sounds(self) -> list[str]:
        """The sounds of queue announcements: queue-* and the numbers said between them."""
        out, inside = [], False
        for sound, _language in self.played():
            if sound.startswith("queue-"):
                inside = sound != "queue-thankyou"
                out.append(sound)
            elif inside and sound.startswith("digits/"):
                out.append(sound)
        return out

    def told(self) -> list[int]:
        return [int(m["position"]) for m in map(_TOLD.search, self.lines) if m and m["channel"] == self.channel]

    def hold_times(self) -> list[int]:
        """The expected waits app_queue worked out for this caller, in seconds."""
        return [int(m["minutes"]) * 60 + int(m["seconds"]) for m in map(_HOLD.search, self.lines) if m]


def _heard(log: str, channel: str) -> Heard:
    ids = {m.group(1) for line in log.splitlines() if f"<{channel}>" in line or f" {channel} " in line
           for m in [_CALL_ID.search(line)] if m}
    return Heard(channel, [line for line in log.splitlines() if (m := _CALL_ID.search(line)) and m.group(1) in ids])


def _spoken(number: int) -> list[str]:
    """The digit files Asterisk's say_number plays for a number up to 20 or a multiple of
    10 below 100: one file, in English and in Polish alike. The test's waits are such
    numbers (rounded to 10 s)."""
    assert number <= 20 or number % 10 == 0 and number < 100, number
    return [f"digits/{number}"]


def _messages(testbed: "Testbed") -> Path:
    return testbed.root / "var/log/asterisk/messages.log"


@pytest.fixture(scope="module")
def waited(testbed: "Testbed", tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Every call placed and finished: per caller its calls row, queue join event and what
    Asterisk played it; plus the log, the runtime ("serving") and its AMI events."""
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build",
                            str(testbed.config_path.parent / "flows")], capture_output=True, text=True)
    assert built.returncode == 0, f"`ivr prompts build` failed, so Asterisk could not play them:\n{built.stdout}{built.stderr}"
    config_path = live_installation(tmp_path_factory.mktemp("announce"), testbed)
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    raw["departments"]["sales"]["announce"] = {"wait": "yes", "every": f"{EVERY}s", "round": "10s"}
    assert raw["departments"]["premium"]["announce"] is False  # config.yaml's own: off
    config_path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    one_agent = {"sales": (SALES_AGENT,), "premium": (PREMIUM_AGENT,)}
    messages = _messages(testbed)
    with serving(testbed, config_path, members=lambda d: one_agent.get(d.name, AGENTS[2:])) as srv:
        queues = testbed.rx("queue show sales") + testbed.rx("queue show premium")
        start = messages.stat().st_size if messages.is_file() else 0
        callers = {name: Caller("ami", number, f"Announce {name}", keys, hold)
                   for name, (number, keys, hold, _at) in CALLERS.items()}
        began = time.monotonic()
        with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
            ami.login(testbed.ami_username, testbed.ami_secret)
            for name, caller in callers.items():
                time.sleep(max(0.0, began + CALLERS[name][3] - time.monotonic()))
                caller.place(testbed, ami)
        rows = wait_for_outcomes(srv, [c.number for c in callers.values()], timeout=150)
        failed = {name: srv.record(rows[c.number]["id"])["events"] for name, c in callers.items()
                  if rows[c.number]["outcome"] == "failed"}
        errors = [r.getMessage() for r in srv.logs.records if r.levelname in ("ERROR", "WARNING")]
        assert not failed, f"the engine failed these calls: {failed}\nits log: {errors}"
        time.sleep(1)  # Asterisk's logger thread writes the last lines
        with open(messages, "rb") as handle:
            handle.seek(start)
            log = handle.read().decode("utf-8", errors="replace")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)  # what Asterisk logged, for a person to read
        (ARTIFACTS / "messages.log").write_text(log, encoding="utf-8")
        joins = srv.ami_events.events("QueueCallerJoin")
        result: dict[str, Any] = {"serving": srv, "log": log, "queues": queues, "callers": {}}
        for name, caller in callers.items():
            record = srv.record(rows[caller.number]["id"])
            mine = [j for j in joins if j.get("Uniqueid") == record["call"]["uniqueid"]]
            assert len(mine) == 1, f"caller {name} ({caller.number}) joined a queue {len(mine)} times: {mine}"
            result["callers"][name] = {"record": record, "join": mine[0], "heard": _heard(log, mine[0]["Channel"])}
        yield result


def _caller(waited: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, str], Heard]:
    entry = waited["callers"][name]
    events = [{k: v for k, v in e.items() if k not in ("call_id", "seq", "flow")} for e in entry["record"]["events"]]
    join = dict(entry["join"])
    join["events of the call"] = events  # shown when an assertion on it fails
    return entry["record"]["call"], join, entry["heard"]


def test_the_queues_asterisk_loaded_are_those_of_the_test(waited):
    # one member each (sales: the first fake agent; premium: the second), so callers wait
    assert SALES_AGENT in waited["queues"] and PREMIUM_AGENT in waited["queues"], waited["queues"]
    assert waited["queues"].count("Local/") == 2, waited["queues"]


def test_the_first_caller_in_line_hears_it_is_next_every_15_seconds(waited):
    call, join, heard = _caller(waited, "B")
    assert (join["Queue"], join["Position"]) == ("sales", "1"), join
    # B waited for the agent of A (16 s of talk, 10 s of wrap-up) and was answered
    assert (call["department"], call["outcome"]) == ("sales", "answered"), call
    assert call["queue_wait"] >= EVERY + 1, call
    sounds = heard.queue_sounds()
    # first in line: "Your call is now first in line ...", "Thank you for your patience";
    # on joining and again EVERY seconds later (app_queue says no wait to the first caller)
    assert sounds[:4] == ["queue-youarenext", "queue-thankyou"] * 2, (sounds, heard.lines)
    assert heard.told()[:2] == [1, 1], heard.lines
    # with the position on, Asterisk tells the first in line no wait (wait: yes all the same)
    assert heard.hold_times() == [] and "queue-holdtime" not in sounds, heard.lines
    assert {language for sound, language in heard.played() if sound.startswith("queue-")} == {"en"}


def test_the_second_caller_hears_its_place_and_the_expected_wait(waited):
    call, join, heard = _caller(waited, "C")
    assert (join["Queue"], join["Position"]) == ("sales", "2"), join
    sounds = heard.queue_sounds()
    # "You are currently caller number" 2 "waiting to speak with a representative",
    # "The estimated hold time is currently" N "seconds", "Thank you for your patience"
    # the queue has no history yet (A, its only answered caller, waited no time: an average
    # hold time of 0 s), so Asterisk's estimate is its own 30 s, less the second C may have
    # waited by then, rounded down to 10 s: 30 or 20 seconds
    first_wait = heard.hold_times()[0]
    assert first_wait in (20, 30), heard.lines
    assert sounds[:4] == ["queue-thereare", "digits/2", "queue-callswaiting", "queue-holdtime"], (sounds, heard.lines)
    end = sounds.index("queue-seconds")
    assert sounds[end:end + 2] == ["queue-seconds", "queue-thankyou"], (sounds, heard.lines)
    assert sounds[4:end] == _spoken(first_wait), (first_wait, sounds, heard.lines)
    assert heard.told()[0] == 2, heard.lines
    # a Polish caller: Asterisk looks for sounds/pl/queue-*, finds none in the test bed
    # (English sounds only) and plays the English ones; the channel's language is the caller's
    assert {language for sound, language in heard.played() if sound.startswith(("queue-", "digits/"))} == {"pl"}
    assert call["language"] == "pl"
    # C hung up while waiting: recorded as abandoned in the sales queue
    assert (call["department"], call["outcome"], call["last_node"]) == ("sales", "abandoned", "sales"), call
    stored = {q["kind"]: q["data"] for q in waited["callers"]["C"]["record"]["queue_events"]}
    assert stored["queue_joined"]["position"] == 2 and stored["queue_abandoned"]["wait"] >= EVERY, stored


def test_a_department_with_announcements_off_plays_none_while_its_caller_waits_as_long(waited):
    call, join, heard = _caller(waited, "P")
    _b_call, _b_join, b_heard = _caller(waited, "B")
    assert (join["Queue"], join["Position"]) == ("premium", "1"), join
    assert (call["department"], call["outcome"]) == ("premium", "answered"), call
    # as long as B in sales, who heard two announcements in that time
    assert call["queue_wait"] >= EVERY + 1 and call["queue_wait"] >= 0.75 * _b_call["queue_wait"], (call, _b_call)
    # the log does cover P's channel: the engine's prompts played to it are there
    assert any(f"<{heard.channel}> Playing" in line and "premium_welcome" in line for line in heard.lines), heard.lines
    assert [line for line in heard.lines if ANNOUNCEMENT.search(line)] == []
    assert b_heard.queue_sounds()  # and the same log holds the announcements of sales


def test_callers_answered_at_once_hear_no_announcement(waited):
    # the first caller of each queue got the agent straight away: nothing to announce
    for name, queue in (("A", "sales"), ("P0", "premium")):
        call, join, heard = _caller(waited, name)
        assert (join["Queue"], join["Position"], call["outcome"]) == (queue, "1", "answered"), (name, call)
        assert heard.queue_sounds() == [], (name, heard.lines)

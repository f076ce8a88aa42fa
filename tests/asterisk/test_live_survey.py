"""The post-call survey on real calls: `ivr serve` processes on one database, the test
bed's Asterisk 22, fake agents that talk 16 s and hang up, and callers who answer the
survey's question with real DTMF.

The flow is a copy of flows/main.yaml whose survey asks every third call (`sample:
{every: 3}`, no `shorter_than`), so which calls are asked depends on the counter alone.
Six calls choose sales (1, 1) and reach an agent; the agent hangs up; each call then
reaches the survey node, and the counter in the database decides:

1. `ivr serve` (A) takes calls 1 and 2: counts 1 and 2, nobody is asked.
2. A is stopped and started again (A'), and a second `ivr serve` (B) runs beside it on the
   same database, with its own AGI port. Call 3 goes to A', calls 4 and 5 to B (the
   dialplan now points at B), call 6 to A' again. The 3rd and the 6th call to reach the
   survey, over both processes and the restart, are asked: with counters of their own
   A' would have counted 1 and 2 and B 1 and 2, and nobody would have been asked.

The first call asked answers "1", "0" (then "#", as the question says): its score is 10.
The second presses nothing: the question times out twice, no score is stored, and the
call is still answered. The keys are pressed while the question plays (barge-in): the
test watches the call records for the question's prompt event and sends the digits from
the caller's side of the call (AMI PlayDTMF on the ;1 half of the Local channel, which is
the caller's phone), so a queue wait of any length cannot put them in the wrong place.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import pytest
import sqlalchemy as sa
import yaml

from ivr.asterisk.dialplan import with_members
from ivr.settings.config import load_config
from ivr.store.db import create_db_engine
from ivr.store.models import Call, CallEvent, SurveyCount
from ivr.testbed.ami_session import AmiSession, originate_keys
from ivr.testbed.server import REPO
from .live_support import AGENTS, live_installation, serve_process
from .testbed_support import IVR

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

EVERY = 3
SALES_KEYS = "6s 1 1"  # Polish over the language menu, sales over the main menu
HOLD = 150  # the caller stays until the engine hangs up (goodbye), at most this long
SCORE_KEYS = ("1", "0", "#")  # "10", then hash as the question asks
KEY_GAP = 1.5  # seconds between the survey keys (the engine waits 3 s for the next)
FIRST_KEY_AFTER = 1.5  # seconds into the question: it is still playing (barge-in)


def survey_flows(folder: Path) -> Path:
    """flows/ of the repository copied into `folder`, the survey asking every EVERY-th call."""
    flows = folder / "flows"
    flows.mkdir()
    for source in (REPO / "flows").glob("*.yaml"):
        if not source.name.endswith(".test.yaml"):
            shutil.copy(source, flows / source.name)
    main = flows / "main.yaml"
    text = main.read_text(encoding="utf-8")
    sample = "sample: {every: 10, shorter_than: 2m}"
    assert sample in text, "flows/main.yaml's survey sample changed: update this test"
    main.write_text(text.replace(sample, f"sample: {{every: {EVERY}}}"), encoding="utf-8")
    return flows


def installation(folder: Path, testbed: "Testbed", database: Optional[Path] = None) -> Path:
    """The live installation of `folder` on an AGI port of its own (any free one: the
    default port may be taken for a moment by other tests on this machine), its call
    records in `database` (default: its own)."""
    config = live_installation(folder, testbed)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        raw["asterisk"]["agi"]["port"] = probe.getsockname()[1]
    if database is not None:
        raw["database"] = f"sqlite:///{database}"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return config


def second_installation(first: Path, folder: Path, testbed: "Testbed") -> Path:
    """Another installation with the same database and flows, on an AGI port of its own."""
    folder.mkdir()
    config = installation(folder, testbed, database=first.parent / "ivr.db")
    shutil.copytree(first.parent / "flows", folder / "flows")
    return config


def point_dialplan(testbed: "Testbed", config_path: Path) -> None:
    """The test bed's [ivr] hands new calls to this installation's `ivr serve` (calls in
    progress stay where they are: only the dialplan is reloaded)."""
    testbed.write_configs(with_members(load_config(config_path), lambda department: AGENTS))
    testbed.rx("dialplan reload")


@dataclass
class SurveyCall:
    """One caller: placed by AMI Originate; `answer` says what it does when asked."""

    number: str
    answer: Optional[tuple[str, ...]] = None  # keys pressed into the question; None: decided when asked
    asked_at: Optional[float] = None  # monotonic time the question started
    sent: list[str] = field(default_factory=list)


class Records:
    """The installation's database, read as the test goes."""

    def __init__(self, config_path: Path):
        self.db = create_db_engine(load_config(config_path).raw["database"])

    def calls(self) -> dict[str, dict[str, Any]]:
        with self.db.connect() as conn:
            return {row["caller"]: dict(row) for row in conn.execute(sa.select(Call.__table__)).mappings()}

    def events(self, call_id: str) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(CallEvent.__table__).where(CallEvent.call_id == call_id)
                                .order_by(CallEvent.seq)).mappings()
            return [CallEvent(**dict(row)).to_dict() for row in rows]

    def questions(self) -> set[str]:
        """Call ids that heard the survey's question."""
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(CallEvent.call_id, CallEvent.data).where(CallEvent.type == "prompt"))
            return {call_id for call_id, data in rows if (data or {}).get("prompt") == "nps_question"}

    def count(self) -> Optional[int]:
        with self.db.connect() as conn:
            return conn.execute(sa.select(SurveyCount.calls).where(SurveyCount.node == "survey")).scalar()


def drive(ami: AmiSession, records: Records, calls: list[SurveyCall], timeout: float) -> dict[str, dict[str, Any]]:
    """Until every call has its outcome: when a call's question starts, its caller presses
    its keys into it (the first caller asked answers SCORE_KEYS, the others nothing)."""
    pending: list[tuple[float, str, str, SurveyCall]] = []  # (when, channel, key, call)
    answered_once = any(c.answer for c in calls)
    deadline = time.monotonic() + timeout
    while True:
        rows = records.calls()
        asked = records.questions()
        for call in calls:
            row = rows.get(call.number)
            if row is None or call.asked_at is not None or row["id"] not in asked:
                continue
            call.asked_at = time.monotonic()
            if call.answer is None:
                call.answer = SCORE_KEYS if not answered_once else ()
                answered_once = answered_once or bool(call.answer)
            caller_half = row["channel"].rsplit(";", 1)[0] + ";1"  # the Local channel's caller side
            for i, key in enumerate(call.answer):
                pending.append((call.asked_at + FIRST_KEY_AFTER + i * KEY_GAP, caller_half, key, call))
        now = time.monotonic()
        for item in [p for p in pending if p[0] <= now]:
            pending.remove(item)
            _, channel, key, call = item
            reply = ami.action("PlayDTMF", {"Channel": channel, "Digit": key, "Duration": 250})
            assert reply.get("Response") == "Success", f"PlayDTMF {key} on {channel} refused: {reply}"
            call.sent.append(key)
        done = [c for c in calls if rows.get(c.number, {}).get("outcome") is not None]
        if len(done) == len(calls) and not pending:
            return {c.number: rows[c.number] for c in calls}
        if now > deadline:
            missing = {c.number: rows.get(c.number, {}).get("last_node", "never reached the engine")
                       for c in calls if c not in done}
            raise AssertionError(f"calls without an outcome after {timeout:g}s: {missing}")
        time.sleep(0.2)


def place(ami: AmiSession, call: SurveyCall) -> None:
    originate_keys(ami, SALES_KEYS, hold=HOLD, caller_id=f'"Survey {call.number}" <{call.number}>')


def served(log: Path, uniqueid: str) -> bool:
    return f"call {uniqueid} on " in log.read_text(errors="replace")


@pytest.fixture(scope="module")
def survey(testbed: "Testbed", tmp_path_factory) -> Iterator[dict[str, Any]]:
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build",
                            str(testbed.config_path.parent / "flows")], capture_output=True, text=True)
    assert built.returncode == 0, f"`ivr prompts build` failed, so Asterisk could not play them:\n{built.stdout}{built.stderr}"
    folder = tmp_path_factory.mktemp("survey")
    config_a = installation(folder, testbed)
    survey_flows(folder)
    config_b = second_installation(config_a, folder / "b", testbed)
    records = Records(config_a)
    logs = {"A": folder / "serve-a.log", "A2": folder / "serve-a2.log", "B": folder / "serve-b.log"}
    calls = [SurveyCall(f"4822009{n}") for n in range(1, 7)]
    rows: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
        ami.login(testbed.ami_username, testbed.ami_secret)
        # 1. process A: two calls, counts 1 and 2
        with serve_process(testbed, config_a, logs["A"]):
            for call in calls[:2]:
                place(ami, call)
                time.sleep(1)
            rows.update(drive(ami, records, calls[:2], timeout=150))
        count_before_restart = records.count()
        # 2. A restarted (A'), B beside it on the same database
        with serve_process(testbed, config_a, logs["A2"]), serve_process(testbed, config_b, logs["B"]):
            point_dialplan(testbed, config_a)
            place(ami, calls[2])
            time.sleep(5)  # call 3 reaches the survey first
            point_dialplan(testbed, config_b)
            place(ami, calls[3])
            time.sleep(2)
            place(ami, calls[4])
            time.sleep(2)
            point_dialplan(testbed, config_a)
            place(ami, calls[5])
            rows.update(drive(ami, records, calls[2:], timeout=200))
    elapsed = time.monotonic() - started
    yield {"calls": calls, "rows": rows, "records": records, "logs": logs, "count_before_restart": count_before_restart,
           "elapsed": elapsed}
    for row in rows.values():  # the test's recordings leave the test bed's folder with it
        for path in (testbed.recordings_dir).glob(f"*/{row['uniqueid']}.wav"):
            path.unlink(missing_ok=True)


def _survey_entered(records: Records, row: dict[str, Any]) -> float:
    """When the call reached the survey node: seconds since the epoch."""
    [entered] = [e for e in records.events(row["id"]) if e["type"] == "node_entered" and e["node"] == "survey"]
    return row["started_at"].timestamp() + entered["t"]


def _of(events: list[dict[str, Any]], kind: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind and all(e.get(k) == v for k, v in match.items())]


def test_every_third_call_over_a_restart_and_two_engines_is_asked(survey):
    calls, rows, records, logs = survey["calls"], survey["rows"], survey["records"], survey["logs"]
    # who served which call: A before the restart, then A' and B side by side
    uniqueids = [rows[c.number]["uniqueid"] for c in calls]
    assert [served(logs["A"], u) for u in uniqueids] == [True, True, False, False, False, False]
    assert [served(logs["A2"], u) for u in uniqueids] == [False, False, True, False, False, True]
    assert [served(logs["B"], u) for u in uniqueids] == [False, False, False, True, True, False]
    assert survey["count_before_restart"] == 2  # the two calls of A, kept in the database
    # every call reached an agent, then the survey node; the counter decided
    for call in calls:
        row = rows[call.number]
        assert (row["outcome"], row["department"], row["agent"] in AGENTS) == ("answered", "sales", True), row
    order = sorted(calls, key=lambda c: _survey_entered(records, rows[c.number]))
    asked = [c.number for c in order if rows[c.number]["id"] in records.questions()]
    assert asked == [order[EVERY - 1].number, order[2 * EVERY - 1].number], (
        f"asked {asked}; reached the survey in the order {[c.number for c in order]}")
    assert order[EVERY - 1] is calls[2]  # served by A' after the restart: count 3, not 1
    assert records.count() == 6
    for call in calls:
        events = records.events(rows[call.number]["id"])
        [decision] = _of(events, "survey")
        assert decision["asked"] is (call.number in asked)


def test_a_caller_who_presses_1_then_0_scores_10(survey):
    [call] = [c for c in survey["calls"] if c.answer == SCORE_KEYS]
    assert call.sent == list(SCORE_KEYS)
    row = survey["rows"][call.number]
    events = survey["records"].events(row["id"])
    assert row["survey_score"] == 10 and row["outcome"] == "answered"
    assert _of(events, "survey") == [{**_of(events, "survey")[0], "asked": True, "score": 10}]
    prompts = [e["prompt"] for e in _of(events, "prompt")]
    assert prompts[-3:] == ["nps_question", "nps_thanks", "goodbye"]
    # the agent had hung up before the question: the survey came after the talk
    [result] = _of(events, "transfer_result")
    assert result["status"] == "answered" and 10 < row["talk"] < 20
    survey_at = next(e["t"] for e in events if e["type"] == "node_entered" and e["node"] == "survey")
    assert survey_at >= result["t"]


def test_a_caller_who_presses_nothing_leaves_no_score_and_is_still_answered(survey):
    [call] = [c for c in survey["calls"] if c.answer == ()]
    row = survey["rows"][call.number]
    events = survey["records"].events(row["id"])
    assert row["survey_score"] is None and row["outcome"] == "answered" and row["department"] == "sales"
    [decision] = _of(events, "survey")
    assert decision["asked"] is True and decision.get("score") is None
    assert [(e["node"], e["attempt"]) for e in _of(events, "timeout")] == [("survey", 1), ("survey", 2)]
    assert [e["prompt"] for e in _of(events, "prompt")].count("nps_question") == 2


def test_a_call_not_sampled_hears_no_survey(survey):
    records = survey["records"]
    for call in survey["calls"]:
        if call.answer is not None:
            continue
        row = survey["rows"][call.number]
        events = records.events(row["id"])
        prompts = [e["prompt"] for e in _of(events, "prompt")]
        assert "nps_question" not in prompts and prompts[-1] == "goodbye"
        assert row["survey_score"] is None and row["outcome"] == "answered"

"""The AMI event filter on the real Asterisk 22: the engine's user is sent only the events the
engine reads, the engine still gets (and stores) every one of them, and the answers to its
actions are never filtered.

One call, placed while four AMI sessions listen (all set up once for the module):
- the engine itself (`ivr serve`'s runtime), logged in as the generated manager.conf's user:
  its eventfilter lines narrow what Asterisk sends; the login's Filter actions are refused
  (the user has no `system` class);
- a plain session of the same user, keeping whatever it is sent;
- the test bed's observer, a user with no filter that reads every class: what Asterisk did;
- an AMI client as the engine runs it, logged in as the observer (a broad user of a site's
  own making, with `system`): its login's Filter actions narrow its own session.

The flow queues the caller for support at once; a brief agent (`Local/3001@agents/n`)
answers, speaks 3 s and hangs up; the engine then ends the call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest
import yaml

from ivr.asterisk.ami import AmiClient
from ivr.asterisk.event_filter import EVENTS
from ivr.testbed.ami_session import AmiSession
from .live_support import Caller, EventPump, live_installation, serving, wait_for_outcomes, wait_until

if TYPE_CHECKING:  # imported for the hint only: pytest would try to collect a class named Test*
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

AGENT = "Local/3001@agents/n"  # the test bed's brief agent: answers, tt-weasels (3 s), hangs up
NUMBER = "482300901"
FLOW = """\
flow: main
description: Straight to an agent of support (the AMI event filter's live test).
languages: [en]
start: agent
prompts: {}
nodes:
  agent:
    type: transfer
    department: support
    after: bye
  bye:
    type: hangup
"""
# events of the call that the engine does not read, call and agent classes (both of which
# the engine's user may read): each filtered by its name, not by its class
UNREAD = ("Newchannel", "Newstate", "DialBegin", "DialEnd", "BridgeEnter", "BridgeLeave", "MixMonitorStart",
          "AgentCalled")
READ_FOR_THE_CALL = ("QueueCallerJoin", "AgentConnect", "AgentComplete", "QueueCallerLeave", "Hangup")


def _installation(folder: Path, testbed: "Testbed") -> tuple[Path, Path]:
    config = live_installation(folder, testbed)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["lines"] = {"default": "main"}
    config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    flows = folder / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW, encoding="utf-8")
    return config, flows


def _on(loop: asyncio.AbstractEventLoop, coro: Any, timeout: float = 30) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


def _of_call(pump: EventPump, uniqueid: str) -> set[str]:
    return {e.get("Event", "") for e in list(pump.session.events) if e.get("Uniqueid") == uniqueid}


@pytest.fixture(scope="module")
def call(testbed: "Testbed", tmp_path_factory) -> Iterator[dict[str, Any]]:
    config, flows = _installation(tmp_path_factory.mktemp("ami-filter"), testbed)
    with serving(testbed, config, flows=flows, members=lambda department: (AGENT,)) as srv:
        engine = srv.runtime.manager.client  # type: ignore[union-attr]
        plain = EventPump(testbed, testbed.ami_username)
        narrowed = AmiClient(testbed.ami_host, testbed.ami_port, testbed.observer, testbed.ami_secret)
        try:
            _on(srv.loop, narrowed.start())
            unused_before = {"engine": engine.events_unused, "narrowed": narrowed.events_unused}
            with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
                ami.login(testbed.ami_username, testbed.ami_secret, events="on")  # filtered, not off
                Caller("ami", NUMBER, "AMI filter", hold=20).place(testbed, ami)
                joined = wait_until("the caller's QueueCallerJoin on the engine's user",
                                    lambda: plain.events("QueueCallerJoin"), 20)
                uniqueid = joined[0]["Uniqueid"]
                # asked of the filtered user while the call is up: the answers come whole
                answers = {action: _answer(ami, action) for action in ("QueueStatus", "CoreShowChannels")}
            row = wait_for_outcomes(srv, [NUMBER], timeout=40)[NUMBER]
            # the caller's Hangup comes as the call ends: on every session, and stored by the engine
            wait_until("the call's Hangup on the sessions", lambda: all(
                "Hangup" in _of_call(pump, uniqueid) for pump in (plain, srv.ami_events)), 10)
            record = wait_until("the call's hang-up stored", lambda: (lambda r: r if any(
                q["kind"] == "hangup" for q in r["queue_events"]) else None)(srv.record(row["id"])), 10)
            narrowed_facts = wait_until("the narrowed client's facts of the call, to the hang-up", lambda: (
                lambda f: f if f is not None and f.hangup_cause is not None else None)(
                _on(srv.loop, _read(narrowed, uniqueid))), 10)
            yield {"serving": srv, "engine": engine, "plain": plain, "observer": srv.ami_events, "row": row,
                   "record": record, "uniqueid": uniqueid, "answers": answers,
                   "unused_before": unused_before, "narrowed": narrowed, "narrowed_facts": narrowed_facts,
                   "unused_after": {"engine": engine.events_unused, "narrowed": narrowed.events_unused}}
        finally:
            _on(srv.loop, narrowed.close())
            plain.close()


def _answer(ami: AmiSession, action: str) -> list[dict[str, str]]:
    """An event-list action's answer: its events, the closing one (`<Action>Complete`) last."""
    reply = ami.action(action)
    assert reply.get("Response") == "Success", reply
    done = ami.wait_event(f"{action}Complete", lambda e: e.get("ActionID") == reply.get("ActionID"))
    return [e for e in ami.events if e.get("ActionID") == reply.get("ActionID")] + [done]


async def _read(client: AmiClient, uniqueid: str) -> Any:
    return client.facts(uniqueid)


def test_the_engines_user_is_sent_only_the_events_the_engine_reads(call):
    uniqueid = call["uniqueid"]
    # Asterisk did all of this for the call: the observer, with no filter, was told
    observed = _of_call(call["observer"], uniqueid)
    assert set(UNREAD) <= observed, sorted(observed)
    # the engine's user was told none of it, nor anything else outside the engine's list
    plain = call["plain"]
    assert {e.get("Event") for e in list(plain.session.events)} <= set(EVENTS)
    assert not set(UNREAD) & _of_call(plain, uniqueid)
    # and every event of the call that the engine reads came
    assert set(READ_FOR_THE_CALL) <= _of_call(plain, uniqueid)
    assert plain.events("OriginateResponse")  # the test's own Originate: call-backs read these
    assert plain.events("QueueMemberStatus")  # the agent busy, then free: the queue board reads these


def test_the_engine_reads_and_stores_what_it_needs_and_is_sent_nothing_else(call):
    engine, row, record = call["engine"], call["row"], call["record"]
    assert engine.session_filtered is False  # its Filter actions were refused: manager.conf's lines did it
    assert call["unused_after"]["engine"] == call["unused_before"]["engine"] == 0
    assert engine.events_read > 0
    # the caller went through: queued, answered by the agent, ended by the engine
    assert (row["outcome"], row["department"], row["agent"]) == ("answered", "support", AGENT)
    path = [e["node"] for e in record["events"] if e["type"] == "node_entered"]
    assert path == ["agent", "bye"]
    # what the queue events told the engine is stored with the call
    stored = [q["kind"] for q in record["queue_events"]]
    for kind in ("queue_joined", "agent_connected", "queue_left", "agent_completed", "hangup"):
        assert kind in stored, stored
    completed = next(q for q in record["queue_events"] if q["kind"] == "agent_completed")
    assert completed["data"]["talk"] is not None and completed["data"]["talk"] >= 2  # tt-weasels, about 3 s
    # the queue board was seeded by QueueStatus and kept by the member events
    board = _on(call["serving"].loop, _board(engine))
    assert board.known and board.logged_in == 1


async def _board(client: AmiClient) -> Any:
    return client.board.snapshot("support")


def test_answers_to_actions_are_never_filtered(call):
    answers = call["answers"]
    kinds = {e.get("Event") for e in answers["QueueStatus"]}
    assert {"QueueParams", "QueueMember", "QueueStatusComplete"} <= kinds and not kinds & set(EVENTS)
    params = {e.get("Queue") for e in answers["QueueStatus"] if e.get("Event") == "QueueParams"}
    assert {"support", "sales", "operator"} <= params
    shown = [e for e in answers["CoreShowChannels"] if e.get("Event") == "CoreShowChannel"]
    assert call["uniqueid"] in {e.get("Uniqueid") for e in shown}


def test_a_login_filter_narrows_a_user_that_manager_conf_does_not(call):
    narrowed = call["narrowed"]
    # the observer has no eventfilter and the system class: the login's Filter actions did it
    assert narrowed.session_filtered is True
    assert call["unused_after"]["narrowed"] == call["unused_before"]["narrowed"]  # nothing unread was sent
    facts = call["narrowed_facts"]  # what it needs still came: the queue tracker has the call whole
    assert facts is not None and facts.status == "completed" and facts.agent is not None
    assert facts.hangup_cause is not None

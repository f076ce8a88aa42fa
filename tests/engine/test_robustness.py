"""Whatever goes wrong, the caller reaches a person and the call leaves a full record:
a channel that fails mid-call, a caller who hangs up anywhere, a flow that loops (built
past the checker) all end with an outcome; events are numbered 0..n-1, their times never
go back, and the last one is the outcome."""

import asyncio
import datetime as dt
import json
from types import MappingProxyType

import pytest

from helpers import REPO, check_events, make_flow, of_type, types
from ivr.channels.scripted import QueueScript, ScriptedChannel
from ivr.clock import VirtualClock
from ivr.settings.config import Config, Department
from ivr.engine import Engine
from ivr import events as ev
from ivr.engine.channel import TransferRequest
from ivr.engine.engine import MAX_STEPS
from ivr.errors import CallerHangup
from ivr.flow.model import Flow, FlowSet, Prompt
from ivr.flow.nodes.play import Play
from ivr.flow.project import load_flows
from ivr.simulation.simulate import simulate

FLOW = make_flow(
    """
    hello:
      type: play
      prompt: hello
      next: main
    main:
      type: menu
      prompt: menu
      options: {"1": acct, "2": cb}
      on_fail: bye
    acct:
      type: input
      prompt: enter
      sensitive: true
      save_as: account
      next: t
      on_fail: bye
    t:
      type: transfer
      department: sales
      after: s
    s:
      type: survey
      prompt: nps
      next: bye
    cb:
      type: callback
      prompt: offer
      department: sales
      next: bye
    bye:
      type: hangup
      prompt: bye
    """,
    start="hello",
)


class FailingChannel(ScriptedChannel):
    """Raises an unexpected error on the n-th prompt."""

    def __init__(self, *args, fail_on: int = 2, error: Exception = RuntimeError("socket closed"), **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_on = fail_on
        self.error = error
        self.plays = 0

    async def play(self, prompt, language, escape=""):
        self.plays += 1
        if self.plays == self.fail_on:
            raise self.error
        return await super().play(prompt, language, escape)


def test_channel_error_mid_call_sends_the_caller_to_the_fallback(run_flow, config):
    channel = FailingChannel("1", VirtualClock(), fail_on=2)
    sim = run_flow(FLOW, channel=channel, caller="+48221234567")
    call = sim.call
    assert call.outcome == ev.Outcome.FAILED
    assert call.department == "operator"
    [error] = of_type(call, ev.ERROR)
    assert error.data == {"error": "RuntimeError", "message": "socket closed"}
    assert error.node == "main"
    [transfer] = of_type(call, ev.TRANSFER)
    assert transfer.data == {"department": "operator", "queue": "operator", "priority": 0, "fallback": True}
    assert transfer.node == "main"
    assert channel.transfers == [TransferRequest(config.departments["operator"], None, True, 0, "+48221234567")]
    assert of_type(call, ev.TRANSFER_RESULT)[0].data["status"] == "answered"
    assert types(call)[-4:] == [ev.ERROR, ev.TRANSFER, ev.TRANSFER_RESULT, ev.OUTCOME]
    assert call.events[-1].data["outcome"] == "failed"
    assert call.events[-1].data["department"] == "operator"
    assert channel.hung_up is True


def test_failure_in_answer_happens_before_any_node(config):
    class NoAnswer(ScriptedChannel):
        async def answer(self):
            raise OSError("connection reset")

    flows = FlowSet({"t": _compile(config)})
    channel = NoAnswer("", VirtualClock())
    call = asyncio.run(Engine(flows, config).run(channel, "t", clock=channel.clock))
    check_events(call)
    [error] = of_type(call, ev.ERROR)
    assert error.node is None
    assert error.data["error"] == "OSError"
    assert call.outcome == ev.Outcome.FAILED
    assert call.department == "operator"
    assert call.path == []


def test_a_flow_that_is_not_loaded_fails_the_call_into_the_fallback_with_its_events(config):
    flows = FlowSet({"t": _compile(config)})
    channel = ScriptedChannel("", VirtualClock())
    call = asyncio.run(Engine(flows, config).run(channel, "nosuchflow", caller="+48221234567", language="en",
                                                 clock=channel.clock))
    check_events(call)
    assert types(call) == [ev.CALL_STARTED, ev.ERROR, ev.TRANSFER, ev.TRANSFER_RESULT, ev.OUTCOME]
    # the events name the flow the call asked for: the record shows where the caller meant to go
    assert {(e.flow, e.node) for e in call.events} == {("nosuchflow", None)}
    assert call.events[0].data["version"] is None and call.events[0].data["language"] == "en"
    [error] = of_type(call, ev.ERROR)
    assert error.data == {"error": "FlowNotLoaded", "message": "the call asks for flow 'nosuchflow', which is not loaded"}
    [transfer] = of_type(call, ev.TRANSFER)
    assert transfer.data == {"department": "operator", "queue": "operator", "priority": 0, "fallback": True}
    assert channel.transfers == [TransferRequest(config.departments["operator"], None, True, 0, "+48221234567")]
    assert call.outcome == ev.Outcome.FAILED and call.department == "operator"
    assert call.flow is None and call.path == []
    assert channel.hung_up is True


def _compile(config):
    from ivr.flow.project import compile_text

    return compile_text(FLOW, "t.yaml", config)


def test_without_a_fallback_the_first_department_takes_the_call():
    sales = Department("sales", "sales")
    support = Department("support", "support")
    assert Config(departments={"sales": sales, "support": support}).fallback_department == sales
    assert Config(departments={"sales": sales, "support": support}, fallback="support").fallback_department == support
    assert Config().fallback_department is None


def test_failure_with_no_department_at_all_still_ends_the_call():
    flow = _loop_flow()
    channel = FailingChannel("", VirtualClock(), fail_on=1)
    call = asyncio.run(Engine(FlowSet({"loop": flow}), Config()).run(channel, "loop", clock=channel.clock))
    check_events(call)
    assert call.outcome == ev.Outcome.FAILED
    assert call.department is None
    assert channel.transfers == []
    assert channel.hung_up is True


def test_caller_hanging_up_in_the_fallback_queue(run_flow):
    class LeavesTheQueue(FailingChannel):
        async def transfer(self, request):
            raise CallerHangup("gone")

    channel = LeavesTheQueue("1", VirtualClock(), fail_on=2)
    call = run_flow(FLOW, channel=channel).call
    assert call.outcome == ev.Outcome.FAILED
    assert types(call)[-4:] == [ev.ERROR, ev.TRANSFER, ev.CALLER_HANGUP, ev.OUTCOME]
    assert channel.hung_up is False


def test_caller_leaving_the_fallback_queue_is_recorded(run_flow):
    channel = FailingChannel("1", VirtualClock(), queue=["abandoned"], fail_on=2)
    call = run_flow(FLOW, channel=channel).call
    assert call.outcome == ev.Outcome.FAILED
    assert call.department == "operator"
    assert types(call)[-5:] == [ev.ERROR, ev.TRANSFER, ev.TRANSFER_RESULT, ev.CALLER_HANGUP, ev.OUTCOME]
    assert of_type(call, ev.TRANSFER_RESULT)[0].data["status"] == "abandoned"
    assert channel.hung_up is False  # nobody left to hang up on


def test_a_failing_hangup_does_not_lose_the_record(run_flow):
    class BadHangup(ScriptedChannel):
        async def hangup(self):
            raise RuntimeError("already gone")

    call = run_flow(FLOW, channel=BadHangup("- - -", VirtualClock())).call
    assert call.outcome == ev.Outcome.SELF_SERVICE
    assert types(call)[-1] == ev.OUTCOME


@pytest.mark.parametrize(
    "keys, node",
    [
        ("hangup", "main"),  # at a menu
        ("", "main"),  # the script ran out: the caller is gone
        ("1 hangup", "acct"),  # typing an account number
        ("2 hangup", "cb"),  # at the call-back offer
    ],
)
def test_caller_hangup_anywhere_is_abandoned_at_that_node(run_flow, keys, node):
    sim = run_flow(FLOW, keys, caller="+48221234567")
    call = sim.call
    assert call.outcome == ev.Outcome.ABANDONED
    [hangup] = of_type(call, ev.CALLER_HANGUP)
    assert hangup.node == node
    assert call.path[-1] == node
    assert types(call)[-2:] == [ev.CALLER_HANGUP, ev.OUTCOME]
    assert call.events[-1].node == node
    assert sim.channel.hung_up is False


def test_caller_hanging_up_during_the_survey_keeps_the_answered_outcome(run_flow):
    # the agent took the call; leaving before the survey question does not undo that
    call = run_flow(FLOW, "1 123456# hangup", queue=[QueueScript("answered", talk=30.0)]).call
    assert of_type(call, ev.CALLER_HANGUP)[0].node == "s"
    assert call.outcome == ev.Outcome.ANSWERED
    assert call.department == "sales"


def _loop_flow() -> Flow:
    """Two plays that send the caller to each other: the checker refuses it, so build it by hand."""
    hello = Prompt("hello", MappingProxyType({"pl": "Dzień dobry."}), MappingProxyType({}))
    nodes = {"a": Play("a", 1, hello, "b"), "b": Play("b", 2, hello, "a")}
    return Flow("loop", "", ("pl",), "a", MappingProxyType(nodes), MappingProxyType({"hello": hello}), "loop.yaml", "0")


def test_a_flow_that_loops_stops_after_max_steps_and_goes_to_the_fallback(config):
    engine = Engine(FlowSet({"loop": _loop_flow()}), config)
    sim = simulate(engine, "loop", caller="+48221234567")
    call = sim.call
    check_events(call)
    assert len(call.path) == MAX_STEPS
    assert call.path[:4] == ["a", "b", "a", "b"]
    [error] = of_type(call, ev.ERROR)
    assert error.data["error"] == "EngineError"
    assert str(MAX_STEPS) in error.data["message"]
    assert call.outcome == ev.Outcome.FAILED
    assert call.department == "operator"
    assert [r.department.name for r in sim.channel.transfers] == ["operator"]


def test_event_numbers_times_and_the_last_event(run_flow):
    sim = run_flow(FLOW, "- 1 12345678# 9", caller="+48221234567")
    events = sim.call.events
    assert [e.seq for e in events] == list(range(len(events)))
    assert all(b.t >= a.t for a, b in zip(events, events[1:]))
    assert events[-1].t > events[0].t
    assert events[0].type == ev.CALL_STARTED and events[-1].type == ev.OUTCOME
    assert len({e.call_id for e in events}) == 1
    assert [json.loads(e.to_json())["seq"] for e in events] == list(range(len(events)))


def test_on_event_sees_every_event_as_it_happens(config):
    from ivr.flow.project import compile_text

    seen = []
    engine = Engine(FlowSet({"t": compile_text(FLOW, "t.yaml", config)}), config)
    call = simulate(engine, "t", keys="-", on_event=seen.append, call_id="call-42").call
    assert seen == call.events
    assert {e.call_id for e in seen} == {"call-42"}


def test_a_failing_event_sink_does_not_cut_the_caller_off(config):
    from ivr.flow.project import compile_text

    engine = Engine(FlowSet({"t": compile_text(FLOW, "t.yaml", config)}), config)
    seen = []

    def sink(event):  # a database that is down after the first few events
        seen.append(event.seq)
        if event.seq >= 3:
            raise OSError("database is locked")

    sim = simulate(engine, "t", keys="1 123456# 7", caller="+48221234567", on_event=sink)
    call = sim.call
    check_events(call)
    assert call.outcome == ev.Outcome.ANSWERED
    assert call.department == "sales"
    assert call.survey_score == 7
    assert not of_type(call, ev.ERROR)
    assert [r.department.name for r in sim.channel.transfers] == ["sales"]
    assert seen == list(range(len(call.events)))  # the sink was still offered every event


ENVELOPE = {"call", "seq", "t", "type", "flow", "node"}


@pytest.mark.parametrize(
    "keys, queue, at",
    [
        ("1 1", ["answered"], "2026-11-24T10:00:00+01:00"),
        ("2 3 123456# 9#", ["answered"], "2026-11-24T10:00:00+01:00"),
        ("1 1", ["timeout", "timeout"], "2026-11-24T10:00:00+01:00"),
        ("1 1", ["timeout", "timeout", "timeout"], "2026-11-24T10:00:00+01:00"),
        ("1 4 1 1 0", [], "2026-11-24T10:00:00+01:00"),
        ("- - 9 9 9", [], "2026-11-24T10:00:00+01:00"),
        ("", [], "2026-12-25T10:00:00+01:00"),
        ("", [], "2026-11-24T22:00:00+01:00"),
    ],
)
def test_event_data_never_overwrites_the_event_fields(keys, queue, at):
    flows, config = load_flows([REPO / "flows"], REPO / "config.yaml")
    call = simulate(Engine(flows, config), "main", keys=keys, queue=queue, caller="+48221234567",
                    at=dt.datetime.fromisoformat(at)).call
    check_events(call)
    for event in call.events:
        assert not ENVELOPE & set(event.data), event
        shown = json.loads(event.to_json())
        assert (shown["flow"], shown["node"], shown["type"], shown["seq"]) == (event.flow, event.node, event.type, event.seq)


def test_a_failure_after_the_agent_keeps_the_answered_outcome_and_does_not_queue_again(run_flow):
    # the survey prompt (the 4th play: hello, menu, account, survey) fails after the agent served the caller
    channel = FailingChannel("1 123456#", VirtualClock(), queue=[QueueScript("answered", talk=30.0)], fail_on=4)
    call = run_flow(FLOW, channel=channel, caller="+48221234567").call
    [error] = of_type(call, ev.ERROR)
    assert error.node == "s"
    assert call.outcome == ev.Outcome.ANSWERED
    assert [t.department.name for t in channel.transfers] == ["sales"]
    assert channel.hung_up is True

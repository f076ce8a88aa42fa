"""Overflow at peaks in the transfer node: the queue's live state (Channel.queue_load)
against the department's overflow_when limits, the way the caller goes (through the
on_timeout transfer to the overflow group, or queued there by the node), the reason on the
TRANSFER event, no bounce from a busy overflow group, no check on state the line cannot
vouch for, and the reason of the max_wait overflow."""

import logging

import pytest

from helpers import CONFIG_YAML, make_flow, of_type, write_config
from ivr import events as ev
from ivr.channels.scripted import ScriptedChannel
from ivr.clock import VirtualClock
from ivr.engine.channel import QueueLoad

PEAK_CONFIG = CONFIG_YAML.replace(
    "sales:    {queue: sales, members: [PJSIP/101, PJSIP/102]}",
    "sales:    {queue: sales, members: [PJSIP/101, PJSIP/102], overflow: backup,\n"
    "            overflow_when: {waiting: 5, longest_wait: 2m}}\n"
    "  backup:   {queue: backup, members: [PJSIP/190], overflow_when: {waiting: 1}, overflow: support}",
)

# the example line's shape: sales, whose on_timeout is the transfer to its overflow group
VIA_NODE = make_flow(
    """
    sales:
      type: transfer
      department: sales
      max_wait: 3m
      on_timeout: sales_overflow
      after: bye
    sales_overflow:
      type: transfer
      department: backup
      max_wait: 2m
      on_timeout: bye
      after: bye
    bye:
      type: hangup
    """,
    start="sales",
)

# a transfer whose on_timeout is no transfer: the node queues the overflow itself
IN_NODE = make_flow(
    """
    sales:
      type: transfer
      department: sales
      max_wait: 3m
      on_timeout: bye
    bye:
      type: hangup
    """,
    start="sales",
)


@pytest.fixture(scope="module")
def peak_config(tmp_path_factory):
    return write_config(tmp_path_factory.mktemp("peak"), PEAK_CONFIG)


def _run(run_flow, peak_config, text, queues, queue=("answered",)):
    channel = ScriptedChannel(None, VirtualClock(), list(queue), queues=queues)
    return run_flow(text, channel=channel, config_=peak_config)


def _transfers(call):
    return [e.data for e in of_type(call, ev.TRANSFER)]


def test_below_the_limits_the_caller_joins_the_queue(run_flow, peak_config):
    sim = _run(run_flow, peak_config, VIA_NODE, {"sales": QueueLoad(waiting=4, longest_wait=119.0, free_agents=0)})
    assert _transfers(sim.call) == [{"department": "sales", "queue": "sales", "priority": 0}]
    assert [r.department.name for r in sim.channel.transfers] == ["sales"]


def test_at_the_waiting_limit_the_caller_goes_through_on_timeout_to_backup(run_flow, peak_config):
    sim = _run(run_flow, peak_config, VIA_NODE, {"sales": QueueLoad(waiting=5, longest_wait=30.0, free_agents=0)})
    call = sim.call
    assert call.path == ["sales", "sales_overflow", "bye"]
    assert of_type(call, ev.NODE_ENTERED)[1].data["via"] == "timeout"
    assert _transfers(call) == [{"department": "backup", "queue": "backup", "priority": 0, "overflow": True,
                                 "reason": "5 callers waiting in sales (limit 5)"}]
    assert [r.department.name for r in sim.channel.transfers] == ["backup"]  # never queued in sales
    assert [r.max_wait for r in sim.channel.transfers] == [120.0]  # the overflow node's own wait
    assert call.department == "backup" and call.outcome == ev.Outcome.ANSWERED


def test_the_longest_wait_and_every_limit_reached_are_in_the_reason(run_flow, peak_config):
    sim = _run(run_flow, peak_config, VIA_NODE, {"sales": QueueLoad(waiting=7, longest_wait=130.0)})
    [transfer] = _transfers(sim.call)
    assert transfer["reason"] == "7 callers waiting in sales (limit 5); longest wait 2m10s in sales (limit 2m)"
    sim = _run(run_flow, peak_config, VIA_NODE, {"sales": QueueLoad(waiting=1, longest_wait=121.0)})
    assert _transfers(sim.call)[0]["reason"] == "longest wait 2m1s in sales (limit 2m)"


def test_without_an_overflow_transfer_node_the_node_queues_the_overflow_itself(run_flow, peak_config):
    sim = _run(run_flow, peak_config, IN_NODE, {"sales": QueueLoad(waiting=9)}, queue=["timeout"])
    call = sim.call
    assert _transfers(call) == [{"department": "backup", "queue": "backup", "priority": 0, "overflow": True,
                                 "reason": "9 callers waiting in sales (limit 5)"}]
    assert [r.department.name for r in sim.channel.transfers] == ["backup"]
    assert call.path == ["sales", "bye"]  # backup's wait timed out: on_timeout as usual
    assert call.department == "backup" and call.outcome == ev.Outcome.UNANSWERED


def test_an_overflow_group_over_its_own_limits_takes_the_caller_all_the_same(run_flow, peak_config):
    busy = {"sales": QueueLoad(waiting=5), "backup": QueueLoad(waiting=3)}  # backup's limit is 1
    for text in (VIA_NODE, IN_NODE):
        sim = _run(run_flow, peak_config, text, busy)
        assert [r.department.name for r in sim.channel.transfers] == ["backup"]  # no bounce on to support


def test_state_the_line_cannot_vouch_for_is_not_compared(run_flow, peak_config):
    stale = {"sales": QueueLoad(waiting=50, fresh=False)}
    sim = _run(run_flow, peak_config, VIA_NODE, stale)
    assert [r.department.name for r in sim.channel.transfers] == ["sales"]
    sim = _run(run_flow, peak_config, VIA_NODE, {})  # no state at all: the simulator has no peak unless told
    assert [r.department.name for r in sim.channel.transfers] == ["sales"]


def test_a_failing_queue_state_never_keeps_the_caller_from_the_queue(run_flow, peak_config, caplog):
    class Broken(ScriptedChannel):
        def queue_load(self, queue):
            raise RuntimeError("board exploded")

    sim = run_flow(VIA_NODE, channel=Broken(None, VirtualClock(), ["answered"]), config_=peak_config)
    assert [r.department.name for r in sim.channel.transfers] == ["sales"]
    assert sim.call.outcome == ev.Outcome.ANSWERED
    assert "queues as usual" in caplog.text


def test_the_max_wait_overflow_says_why(run_flow, peak_config):
    sim = _run(run_flow, peak_config, VIA_NODE, {"sales": QueueLoad(waiting=0)}, queue=["timeout", "answered"])
    assert _transfers(sim.call) == [
        {"department": "sales", "queue": "sales", "priority": 0},
        {"department": "backup", "queue": "backup", "priority": 0, "overflow": True,
         "reason": "sales: max_wait 3m passed"},
    ]
    assert sim.call.path == ["sales", "sales_overflow", "bye"]


@pytest.mark.parametrize("ended, reason", [
    ("JOINEMPTY", "sales: no agent could take calls, so the caller could not join"),
    ("LEAVEEMPTY", "sales: the last agent left while the caller waited"),
    ("TIMEOUT", "sales: max_wait 3m passed"),
])
def test_how_the_line_says_the_wait_ended_is_the_reason(run_flow, peak_config, ended, reason):
    from ivr.engine.channel import TransferResult

    class Line(ScriptedChannel):
        async def transfer(self, request):
            result = await super().transfer(request)
            if request.department.name == "sales":
                return TransferResult(ev.TransferStatus.TIMED_OUT, 0.0, ended=ended)
            return result

    sim = run_flow(VIA_NODE, channel=Line(None, VirtualClock(), ["timeout", "answered"]), config_=peak_config)
    assert _transfers(sim.call)[1]["reason"] == reason


def test_a_note_is_only_for_the_node_it_names(run_flow, peak_config):
    """A max_wait that leads elsewhere first leaves no overflow mark on a later transfer."""
    text = make_flow(
        """
        sales:
          type: transfer
          department: sales
          max_wait: 3m
          on_timeout: menu
        menu:
          type: menu
          prompt: menu
          options: {"1": support}
          on_fail: bye
        support:
          type: transfer
          department: support
        bye:
          type: hangup
        """,
        start="sales",
    )
    channel = ScriptedChannel("1", VirtualClock(), ["timeout", "answered"])
    sim = run_flow(text, channel=channel, config_=peak_config)
    assert _transfers(sim.call)[1] == {"department": "support", "queue": "support", "priority": 0}


def test_the_transfer_sentence_tells_the_reason():
    [sentence] = ev.sentences({"type": "transfer", "department": "backup", "queue": "backup", "priority": 0,
                               "overflow": True, "reason": "5 callers waiting in sales (limit 5)"})
    assert str(sentence) == "Transfer to backup · queue backup, overflow: 5 callers waiting in sales (limit 5)"
    [plain] = ev.sentences({"type": "transfer", "department": "backup", "queue": "backup", "priority": 0,
                            "overflow": True})
    assert str(plain) == "Transfer to backup · queue backup, overflow"


def test_a_stale_queue_state_is_logged_once_per_spell_and_once_when_fresh_again(run_flow, peak_config, caplog):
    _run(run_flow, peak_config, VIA_NODE, {"sales": QueueLoad(waiting=0)})  # fresh: no spell before
    caplog.clear()
    stale, fresh = {"sales": QueueLoad(waiting=0, fresh=False)}, {"sales": QueueLoad(waiting=0)}
    with caplog.at_level(logging.WARNING, logger="ivr.engine.nodes.transfer"):
        for queues in (stale, stale, stale, fresh, fresh, stale, stale):
            _run(run_flow, peak_config, VIA_NODE, queues)
    said = [r.getMessage() for r in caplog.records if r.name == "ivr.engine.nodes.transfer"]
    assert [m.split(" (")[0].split(";")[0] for m in said] == [
        "the state of queue sales is not fresh", "the state of queue sales is fresh again",
        "the state of queue sales is not fresh"], said

"""A call whose task is cancelled (`ivr serve` stopping past its grace period) is recorded
as interrupted at the node it was in, with the reason it was given, and the engine sends
the line no command more (no HANGUP: the dialplan's fail-safe takes a caller still on it).
A call cancelled while it hangs up after its flow ended keeps its real outcome."""

from __future__ import annotations

import asyncio

import pytest

from helpers import compile_flows, make_flow
from ivr import events as ev
from ivr.channels.scripted import ScriptedChannel
from ivr.clock import VirtualClock
from ivr.engine import Engine

FLOW = make_flow(
    """
    hello:
      type: play
      prompt: hello
      next: main
    main:
      type: menu
      prompt: menu
      options: {"1": t}
      on_fail: bye
    t:
      type: transfer
      department: sales
      after: bye
    bye:
      type: hangup
      prompt: bye
    """,
    start="hello",
)


class Blocking(ScriptedChannel):
    """A line whose queue wait (or hang-up) lasts until the call's task is cancelled."""

    def __init__(self, *args, block: str = "transfer", **kwargs):
        super().__init__(*args, **kwargs)
        self.block = block
        self.blocked = asyncio.Event()
        self.hangups = 0

    async def transfer(self, request):
        if self.block == "transfer":
            self.blocked.set()
            await asyncio.Event().wait()
        return await super().transfer(request)

    async def hangup(self):
        self.hangups += 1
        if self.block == "hangup":
            self.blocked.set()
            await asyncio.Event().wait()
        await super().hangup()


class Recorded:
    """The events of a call, as its sink (the call-records writer) gets them."""

    def __init__(self):
        self.events: list[ev.Event] = []
        self.outcome = None

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)
        if event.type == ev.OUTCOME:
            self.outcome = event.data["outcome"]


def _check(seen: Recorded) -> None:
    """Numbered from 0, each of a declared type with its declared payload, one outcome, the last."""
    events = seen.events
    assert [e.seq for e in events] == list(range(len(events)))
    assert [e.type for e in events].count(ev.OUTCOME) == 1 and events[-1].type == ev.OUTCOME
    for event in events:
        declared = ev.TYPES[event.type]
        assert set(declared.required) <= set(event.data) <= declared.payload, event


async def _cancel_when_blocked(config, channel: Blocking, reason: str) -> Recorded:
    engine = Engine(compile_flows(config, FLOW), config)
    seen = Recorded()
    task = asyncio.create_task(engine.run(channel, "t", caller="48221234567", clock=channel.clock, on_event=seen))
    await asyncio.wait_for(channel.blocked.wait(), 5)
    task.cancel(reason)
    with pytest.raises(asyncio.CancelledError):
        await task
    return seen


def test_a_call_cancelled_in_a_queue_is_recorded_as_interrupted_at_the_transfer_node(config):
    channel = Blocking("1", VirtualClock())
    reason = "ivr serve stopped (SIGTERM) with the call in progress after a 10 s grace period"
    seen = asyncio.run(_cancel_when_blocked(config, channel, reason))
    _check(seen)
    kinds = [e.type for e in seen.events]
    assert kinds[-3:] == [ev.TRANSFER, ev.INTERRUPTED, ev.OUTCOME]
    interrupted = seen.events[-2]
    assert interrupted.node == "t" and interrupted.flow == "t"
    assert interrupted.data == {"reason": reason}
    assert seen.outcome == ev.Outcome.INTERRUPTED
    assert seen.events[-1].data["department"] is None  # the transfer never came back: no department taken
    assert channel.hangups == 0  # no command after the cancel: the line closes, the dialplan goes on
    assert ev.sentences(interrupted.to_dict())[0].text == "Call interrupted: the engine stopped"
    assert f"at t; {reason}" == ev.sentences(interrupted.to_dict())[0].detail


def test_a_call_cancelled_while_it_hangs_up_keeps_its_real_outcome(config):
    # key 1: the agent answers, the hangup node says goodbye; the engine's HANGUP is cut short
    channel = Blocking("1", VirtualClock(), block="hangup", queue=["answered"])
    seen = asyncio.run(_cancel_when_blocked(config, channel, "stop"))
    _check(seen)
    kinds = [e.type for e in seen.events]
    assert ev.INTERRUPTED not in kinds
    assert seen.outcome == ev.Outcome.ANSWERED and channel.hangups == 1


def test_a_cancel_without_a_reason_says_the_engine_stopped(config):
    channel = Blocking("1", VirtualClock())
    seen = asyncio.run(_cancel_when_blocked(config, channel, ""))
    [interrupted] = [e for e in seen.events if e.type == ev.INTERRUPTED]
    assert interrupted.data == {"reason": "the engine stopped"}

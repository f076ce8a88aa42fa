"""Simulated calls: a flow run on the scripted channel with a virtual clock.

Shared by `ivr simulate --keys`, the journey tests, `ivr demo` and the benchmarks, so
they all exercise the same engine as live calls.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

from ivr.channels.scripted import QueueScript, ScriptedChannel
from ivr.clock import VirtualClock
from ivr.engine import Call, Engine
from ivr.events import Event


@dataclass
class SimulatedCall:
    call: Call
    channel: ScriptedChannel


async def simulate_async(
    engine: Engine,
    flow: str,
    *,
    keys: Union[str, Sequence[str], None] = None,
    caller: str = "",
    at: Optional[dt.datetime] = None,
    queue: Sequence[Union[str, QueueScript]] = (),
    language: Optional[str] = None,
    variables: Optional[dict[str, Any]] = None,
    barge_in: bool = False,
    channel: Optional[ScriptedChannel] = None,
    on_event: Optional[Callable[[Event], None]] = None,
    call_id: Optional[str] = None,
) -> SimulatedCall:
    if channel is None:
        channel = ScriptedChannel(keys, VirtualClock(at), queue, barge_in)
    call = await engine.run(channel, flow, caller=caller, language=language, variables=variables,
                            clock=channel.clock, on_event=on_event, call_id=call_id)
    return SimulatedCall(call, channel)


def simulate(engine: Engine, flow: str, **kwargs: Any) -> SimulatedCall:
    return asyncio.run(simulate_async(engine, flow, **kwargs))


def parse_time(text: Union[str, dt.datetime, dt.date, None]) -> Optional[dt.datetime]:
    """An ISO time such as 2026-11-24T10:00:00+01:00 (a date alone means 10:00 that day)."""
    if text is None or isinstance(text, dt.datetime):
        return text
    if isinstance(text, dt.date):
        return dt.datetime.combine(text, dt.time(10, 0))
    text = str(text).strip()
    if len(text) == 10:  # a date alone, such as 2026-11-24 (datetime would read it as midnight)
        return parse_time(dt.date.fromisoformat(text))
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

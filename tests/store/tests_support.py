"""Small helpers of the store tests: simulated calls of the example line, ports nobody serves."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Callable, Optional

from ivr.channels.scripted import QueueScript, ScriptedChannel
from ivr.clock import VirtualClock
from ivr.engine import Engine
from ivr.engine.sampling import SurveySampler
from ivr.simulation.simulate import parse_time, simulate


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_call(line, keys: str, *, on_event: Callable, queue=(), call_id: Optional[str] = None,
             caller: str = "+48 22 123 45 67", at: str = "2026-11-24T10:00:00+01:00",
             details: Optional[dict[str, Any]] = None, survey: bool = True):
    """One call of flows/main.yaml, simulated as `ivr simulate` runs it (`ivr.simulation.simulate`);
    with `details`, run as the FastAGI server runs a live call. The finished Call."""
    flows, config = line
    engine = Engine(flows, config, sampler=SurveySampler(start=9) if survey else SurveySampler())
    scripts = [q if isinstance(q, QueueScript) else QueueScript(q) for q in queue]
    if details is None:
        return simulate(engine, "main", keys=keys, caller=caller, at=parse_time(at), queue=scripts,
                        on_event=on_event, call_id=call_id).call
    channel = ScriptedChannel(keys, VirtualClock(parse_time(at)), scripts)
    return asyncio.run(engine.run(channel, "main", caller=caller, clock=channel.clock, call_id=call_id,
                                  on_event=on_event, details=details))

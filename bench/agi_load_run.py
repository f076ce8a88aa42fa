"""Placing the calls of one run of the load generator (bench/agi_load.py): burst (N calls,
C at once), steady (R new calls a second for D seconds, a warm-up left out of the
latencies) and spike (N calls at once), over FastAGI to a port or as a process per call
(pyst2), with a time-out for a call that goes quiet and, for processes, a sample of their
summed resident memory every 50 ms.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Optional

from agi_load_asterisk import AsteriskCall, Behaviour, Tally
from agi_load_servers import resident_mb

WARMUP_SECONDS = 3.0  # steady: calls placed before this are run but not measured
_run_ids = itertools.count(1)


@dataclass
class Target:
    """Where calls go: a FastAGI port, or an AGI script started for every call."""

    host: str = "127.0.0.1"
    port: int = 0
    argv: Optional[list[str]] = None  # a process per call (stdin/stdout), as Asterisk runs AGI
    stderr: Any = asyncio.subprocess.DEVNULL  # where those processes write their errors (a file, say)
    script: str = "bench"

    @property
    def processes(self) -> bool:
        return self.argv is not None


@dataclass
class Plan:
    mode: str  # burst | steady | spike
    calls: int = 0  # burst, spike
    concurrency: int = 0  # burst: calls at once; 0 = all at once
    rate: float = 0.0  # steady: new calls a second
    duration: float = 0.0  # steady: seconds of placing calls
    warmup: float = 0.0  # steady: seconds whose calls are not measured
    timeout: float = 30.0  # a call that sends no command for this long fails


@dataclass
class Measured:
    tally: Tally
    wall: float  # first connect to last close
    peak_children_mb: Optional[float] = None  # a process per call: peak of the summed resident memory

    def percentile(self, q: float) -> Optional[float]:
        """Nearest-rank percentile of the command latencies, in milliseconds."""
        values = sorted(self.tally.latencies)
        if not values:
            return None
        return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))] * 1000


async def run(target: Target, plan: Plan, behaviour: Behaviour, record: Optional[list[str]] = None,
              expected_commands: Optional[int] = None) -> Measured:
    """Places the plan's calls and waits for every one to end. `expected_commands`: every
    call must send that many commands (the call recorded from `ivr serve`), else it fails."""
    loop = asyncio.get_running_loop()
    tally = Tally(expected_commands=expected_commands)
    epoch = int(time.time())
    run_id = next(_run_ids)
    active: set[AsteriskCall] = set()
    tasks: set[asyncio.Task] = set()
    finished = loop.create_future()
    placing_done = False
    counter = itertools.count()

    def check_finished() -> None:
        if placing_done and not active and not tasks and not finished.done():
            finished.set_result(None)

    def on_end(call: AsteriskCall) -> None:
        active.discard(call)
        if plan.mode == "burst" and tally.placed < plan.calls:
            place(True)
        check_finished()

    def place(measure: bool) -> None:
        n = next(counter)
        # <epoch>.<n> as Asterisk's uniqueid; the run number keeps ids apart between runs in a second
        uniqueid = f"{epoch}{run_id:02d}.{n}"
        call = AsteriskCall(tally, uniqueid, target.script, behaviour, measure=measure,
                            network=not target.processes, on_end=on_end, record=record)
        tally.placed += 1
        active.add(call)
        task = loop.create_task(_connect(call, target))
        tasks.add(task)
        task.add_done_callback(lambda t: (tasks.discard(t), check_finished()))

    sweeper = loop.create_task(_sweep(active, plan.timeout))
    peak_children = [0.0]
    sampler = loop.create_task(_sample(active, peak_children)) if target.processes else None
    try:
        if plan.mode == "burst":
            for _ in range(min(plan.calls, plan.concurrency or plan.calls)):
                place(True)
        elif plan.mode == "spike":
            for _ in range(plan.calls):
                place(True)
        elif plan.mode == "steady":
            started = perf_counter()
            total = int(plan.rate * plan.duration)
            for i in range(total):
                due = started + i / plan.rate
                wait = due - perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                place(i / plan.rate >= plan.warmup)
        else:
            raise ValueError(f"no such mode: {plan.mode}")
        placing_done = True
        check_finished()
        await finished
    finally:
        sweeper.cancel()
        if sampler is not None:
            sampler.cancel()
    wall = (tally.last_close or 0.0) - (tally.first_connect or 0.0)
    peak = peak_children[0] if sampler is not None else None
    return Measured(tally, wall, peak)


async def _connect(call: AsteriskCall, target: Target) -> None:
    loop = asyncio.get_running_loop()
    try:
        if target.argv is not None:
            await loop.subprocess_exec(lambda: call, *target.argv, stdin=asyncio.subprocess.PIPE,
                                       stdout=asyncio.subprocess.PIPE, stderr=target.stderr)
        else:
            await loop.create_connection(lambda: call, target.host, target.port)
    except OSError as exc:
        call.error = f"could not connect: {type(exc).__name__}"
        call._end(call.error)


async def _sweep(active: set[AsteriskCall], timeout: float) -> None:
    """Ends calls that sent no command for `timeout` seconds after our last reply."""
    while True:
        await asyncio.sleep(1.0)
        now = perf_counter()
        for call in list(active):
            if call.pending is None and call.transport is not None and now - max(call.last_write, call.last_activity) > timeout:
                call.timed_out(timeout)


async def _sample(active: set[AsteriskCall], peak: list[float]) -> None:
    """Every 50 ms: the summed resident memory of the live per-call processes; keeps the peak."""
    while True:
        pids = []
        for call in list(active):
            transport = call.transport
            if isinstance(transport, asyncio.SubprocessTransport) and not call.ended:
                pid = transport.get_pid()
                if pid is not None:
                    pids.append(pid)
        peak[0] = max(peak[0], resident_mb(pids))
        await asyncio.sleep(0.05)

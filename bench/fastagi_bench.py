"""Thousands of calls in one process: N calls at once from a fake Asterisk over loopback
through the FastAGI server and flows/main.yaml (language, main menu, operator queue).

Prints the wall time, calls per second, AGI commands per second and the peak memory of
the process (server and fake callers share it, so the figure is an upper bound).

    .venv/bin/python bench/fastagi_bench.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "channels"))

from fake_asterisk import Caller, environment, place_call  # noqa: E402
from ivr.channels.fastagi import FastAgiServer  # noqa: E402
from ivr.clock import VirtualClock  # noqa: E402
from ivr.engine import Engine  # noqa: E402
from ivr.flow.project import load_flows  # noqa: E402

OFFICE_HOURS = dt.datetime.fromisoformat("2026-11-24T10:00:00+01:00")


class OfficeHoursEngine(Engine):
    async def run(self, *args, **kwargs):
        kwargs.setdefault("clock", VirtualClock(OFFICE_HOURS))
        return await super().run(*args, **kwargs)


async def bench(calls: int) -> None:
    flows, config = load_flows([ROOT / "flows"], ROOT / "config.yaml")
    engine = OfficeHoursEngine(flows, config)
    outcomes: dict[str, int] = {}

    def on_event(event):
        if event.type == "outcome":
            outcome = str(event.data["outcome"])
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    server = FastAgiServer(lambda: engine, prompts_dir=ROOT / "prompts", recordings_dir=ROOT / "recordings",
                           port=0, on_event=on_event)
    await server.start()
    started = time.perf_counter()
    sent = await asyncio.gather(*(place_call(server.port, Caller(keys=["1", "0"]), environment(f"b.{i}"))
                                  for i in range(calls)))
    elapsed = time.perf_counter() - started
    await server.close()
    commands = sum(len(s) for s in sent)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{calls} calls at once through flows/main.yaml: {elapsed:.2f} s, {calls / elapsed:,.0f} calls/s, "
          f"{commands / elapsed:,.0f} AGI commands/s, {commands / calls:.0f} commands/call")
    print(f"outcomes: {outcomes}; peak memory of the process (server and fake callers): {peak_mb:.0f} MB")
    ok = outcomes.get("answered", 0) == calls
    print(f"every call answered by the operator queue: {'PASS' if ok else 'FAIL'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(bench(args.calls))


if __name__ == "__main__":
    main()

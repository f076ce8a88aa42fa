"""How many scripted calls per second the engine runs through flows/main.yaml (target: 5,000).

One process, one asyncio loop; the calls run one after another inside it through
`ivr.simulation.simulate.simulate_async`, the same path as `ivr simulate` and the journey tests.
The scripts cycle through a mix of journeys: sales, complaints, support with an account
number, FAQ, the operator, invalid keys, time-outs, VIP callers, queue time-outs with a
call-back, after hours and holidays.

    .venv/bin/python bench/engine_bench.py [--calls 20000] [--runs 3]

Prints calls and events per second and PASS/FAIL against the target; exit status 0
either way (2 when a call fails in the engine: the benchmark would measure the fallback).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.channels.scripted import QueueScript  # noqa: E402
from ivr.engine import Engine  # noqa: E402
from ivr import events as ev  # noqa: E402
from ivr.flow.project import load_flows  # noqa: E402
from ivr.simulation.simulate import simulate_async  # noqa: E402

TARGET_CALLS_PER_SECOND = 5000

OPEN = dt.datetime(2026, 11, 24, 10, 0)  # a Tuesday morning
SATURDAY = dt.datetime(2026, 11, 28, 11, 30)
NIGHT = dt.datetime(2026, 11, 24, 22, 15)
SUNDAY = dt.datetime(2026, 11, 29, 12, 0)
CHRISTMAS = dt.datetime(2026, 12, 25, 10, 0)
CALLER = "+48 22 123 45 67"
VIP = "+48 22 555 01 01"
SHORT_TALK = QueueScript("answered", wait=15.0, talk=60.0)  # under 2 minutes: the survey is asked

# (name, keys, start time, caller, queue results, barge-in)
SCENARIOS = [
    ("sales", "1 1", OPEN, CALLER, ["answered"], False),
    ("sales, short call, survey", "1 1 9#", OPEN, CALLER, [SHORT_TALK], False),
    ("sales in English, barge-in", "2 1", SATURDAY, CALLER, ["answered"], True),
    ("sales overflow, call-back", "1 1 1", OPEN, CALLER, ["timeout", "timeout"], False),
    ("sales overflow, voicemail", "1 1 2", OPEN, CALLER, ["timeout", "timeout"], False),
    ("complaints", "1 2", OPEN, CALLER, ["answered"], False),
    ("complaints, gives up in queue", "1 2", OPEN, CALLER, ["abandoned"], False),
    ("support with account", "1 3 123456#", OPEN, CALLER, ["answered"], False),
    ("business support", "1 3 90000001# 10#", OPEN, CALLER, [SHORT_TALK], False),
    ("support, account too short", "1 3 12# 34#", OPEN, CALLER, ["answered"], False),
    ("FAQ: hours, then goodbye", "1 4 1 #", OPEN, CALLER, [], False),
    ("FAQ: delivery, back to main, sales", "1 4 2 1 0 1", OPEN, CALLER, ["answered"], False),
    ("FAQ to an operator", "1 4 3 0", OPEN, CALLER, ["answered"], False),
    ("operator", "1 0", OPEN, CALLER, ["answered"], False),
    ("invalid keys", "1 7 8 9", OPEN, CALLER, ["answered"], False),
    ("repeat, then sales", "1 * * 1", OPEN, CALLER, ["answered"], False),
    ("time-outs everywhere", "- - - - -", OPEN, CALLER, ["answered"], False),
    ("hangs up in the menu", "1 hangup", OPEN, CALLER, [], False),
    ("VIP", "", OPEN, VIP, ["answered"], False),
    ("after hours", "", NIGHT, CALLER, [], False),
    ("Sunday", "", SUNDAY, CALLER, [], False),
    ("Christmas", "", CHRISTMAS, CALLER, [], False),
]


async def run_calls(engine: Engine, calls: int) -> tuple[float, int, collections.Counter]:
    """Seconds for `calls` calls run one after another, the events they emitted, their outcomes."""
    outcomes: collections.Counter = collections.Counter()
    events = 0
    start = time.perf_counter()
    for i in range(calls):
        _name, keys, at, caller, queue, barge_in = SCENARIOS[i % len(SCENARIOS)]
        sim = await simulate_async(engine, "main", keys=keys, at=at, caller=caller, queue=queue, barge_in=barge_in)
        events += len(sim.call.events)
        outcomes[sim.call.outcome] += 1
    return time.perf_counter() - start, events, outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3, help="repeat and report the best run")
    args = parser.parse_args(argv)

    flows, config = load_flows([ROOT / "flows"], ROOT / "config.yaml")
    engine = Engine(flows, config)

    async def bench() -> list[tuple[float, int, collections.Counter]]:
        await run_calls(engine, len(SCENARIOS) * 5)  # warm-up: imports, holiday tables, caches
        return [await run_calls(engine, args.calls) for _ in range(args.runs)]

    runs = asyncio.run(bench())
    seconds, events, outcomes = min(runs, key=lambda r: r[0])
    if outcomes[ev.Outcome.FAILED]:
        print(f"{outcomes[ev.Outcome.FAILED]} calls failed in the engine; fix the scenarios first", file=sys.stderr)
        return 2
    rate = args.calls / seconds
    median = statistics.median(args.calls / r[0] for r in runs)
    print(f"{len(SCENARIOS)} scenarios; outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    print(f"engine {args.calls} calls in {seconds:.2f} s: {rate:,.0f} calls/s, {events / seconds:,.0f} events/s, "
          f"{events / args.calls:.1f} events/call, {seconds / args.calls * 1e6:.0f} us/call "
          f"(best of {len(runs)}, median {median:,.0f} calls/s)")
    verdict = "PASS" if rate >= TARGET_CALLS_PER_SECOND else "FAIL"
    print(f"target >= {TARGET_CALLS_PER_SECOND} calls/s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

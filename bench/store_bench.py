"""CallWriter: how long submit() takes on the call path while the writer thread is busy.

Records the events of N simulated calls of flows/main.yaml first, then hands them to a
CallWriter on a fresh database in two ways, timing every submit():
  burst   as fast as one thread can (the writer is busy the whole time: worst case for
          the GIL hand-over between the call thread and the writer thread);
  paced   at a steady rate (default 5,000 events/s, some 250 live calls at once).
It prints submit() p50/p99/p99.9/max, how fast the writer got the events into the
database, and PASS/FAIL for submit p99 < 1 ms.

    .venv/bin/python bench/store_bench.py                       # SQLite in a temp folder
    .venv/bin/python bench/store_bench.py --url postgresql+psycopg://ivr@127.0.0.1:5432/ivr
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.channels.scripted import QueueScript  # noqa: E402
from ivr.engine import Engine  # noqa: E402
from ivr.engine.sampling import SurveySampler  # noqa: E402
from ivr.flow.project import load_flows  # noqa: E402
from ivr.simulation.simulate import parse_time, simulate_async  # noqa: E402
from ivr.store import CallWriter, init_db  # noqa: E402

JOURNEYS = [("1 1", ["answered"]), ("1 3 90012345# 9#", ["answered"]), ("2 4 1", []), ("1 0", ["answered"]),
            ("1 1", ["timeout", "answered"]), ("1 2", ["abandoned"]), ("1 9 8 7", ["answered"]), ("1 hangup", [])]
TARGET_P99_MS = 1.0


def record(n: int) -> list:
    flows, config = load_flows([REPO / "flows"], REPO / "config.yaml")
    engine = Engine(flows, config, sampler=SurveySampler())
    events: list = []
    at = parse_time("2026-11-24T10:00:00+01:00")

    async def run() -> None:
        for i in range(n):
            keys, queue = JOURNEYS[i % len(JOURNEYS)]
            await simulate_async(engine, "main", keys=keys, queue=[QueueScript(q) for q in queue], at=at,
                                 caller=f"+48 22 555 {i:05d}", on_event=events.append, call_id=f"bench-{i}")

    asyncio.run(run())
    return events


def percentiles(samples_ns: list[int]) -> str:
    s = sorted(samples_ns)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] / 1000  # noqa: E731
    return (f"p50 {pick(0.50):.1f} µs, p99 {pick(0.99):.1f} µs, p99.9 {pick(0.999):.1f} µs, "
            f"max {s[-1] / 1000:.1f} µs, mean {statistics.fmean(s) / 1000:.2f} µs")


def run(url: str, events: list, rate: float | None) -> tuple[list[int], float, float]:
    writer = CallWriter(url, source="simulated")
    samples = []
    began = time.perf_counter()
    interval = 1.0 / rate if rate else 0.0
    for i, event in enumerate(events):
        if interval:
            due = began + i * interval
            while time.perf_counter() < due:
                time.sleep(max(0.0, min(0.001, due - time.perf_counter())))
        t0 = time.perf_counter_ns()
        writer.submit(event)
        samples.append(time.perf_counter_ns() - t0)
    submitted = time.perf_counter() - began
    assert writer.flush(600), "the writer did not catch up"
    written = time.perf_counter() - began
    stats = writer.stats
    writer.close()
    assert stats.dropped == 0 and stats.written == len(events), stats
    return samples, submitted, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=5000.0, help="events per second in the paced run")
    parser.add_argument("--url", help="database URL (default: SQLite in a temp folder); it is migrated")
    args = parser.parse_args()
    events = record(args.calls)
    print(f"{args.calls} calls, {len(events)} events recorded")
    worst_p99 = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for name, rate in (("burst", None), ("paced", args.rate)):
            url = args.url or f"sqlite:///{Path(folder) / f'{name}.db'}"
            engine = init_db(url)
            if args.url:  # start each run on empty tables
                from ivr.store.models import Base
                with engine.begin() as conn:
                    for table in reversed(Base.metadata.sorted_tables):
                        conn.execute(table.delete())
            engine.dispose()
            samples, submitted, written = run(url, events, rate)
            worst_p99 = max(worst_p99, sorted(samples)[int(0.99 * len(samples))] / 1e6)
            what = "as fast as possible" if rate is None else f"at {rate:,.0f} events/s"
            print(f"{name}: {len(events)} submits {what} in {submitted:.2f} s; all in the database after "
                  f"{written:.2f} s ({len(events) / written:,.0f} events/s, {args.calls / written:,.0f} calls/s)")
            print(f"  submit(): {percentiles(samples)}")
    verdict = "PASS" if worst_p99 < TARGET_P99_MS else "FAIL"
    print(f"submit() p99 {worst_p99 * 1000:.1f} µs; target < {TARGET_P99_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()

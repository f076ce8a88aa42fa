"""Call-backs in the database: how long booking takes on the call's side, and one pass of
the scheduler with many call-backs pending.

Books N call-backs (default 5,000) through `CallbackScheduler.book` on a fresh database,
timing each (the caller waits for it before hearing "booked"); then times scheduler passes
with all N pending while no agent is free (the pass reads them all, oldest place first,
and dials none); then with one agent free, a pass that claims one try. It prints book
p50/p99/max, pass times, and PASS/FAIL for book p99 < 20 ms and an idle pass < 200 ms
(the scheduler runs one every 2 s).

    .venv/bin/python bench/callbacks_bench.py                   # SQLite in a temp folder
    .venv/bin/python bench/callbacks_bench.py --url postgresql+psycopg://ivr@127.0.0.1:5432/ivr
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.asterisk.callback import OriginateOutcome  # noqa: E402
from ivr.engine.channel import CallbackRequest  # noqa: E402
from ivr.live.callbacks import CallbackScheduler, QueueSnapshot  # noqa: E402
from ivr.settings.config import Department  # noqa: E402
from ivr.store.callbacks import CallbackStore  # noqa: E402
from ivr.store.db import init_db  # noqa: E402


class Board:
    free = 0

    async def snapshot(self, queue: str) -> QueueSnapshot:
        return QueueSnapshot(self.free)


class Dialler:
    connected = True

    async def call_back(self, number, queue, **kwargs) -> OriginateOutcome:
        return OriginateOutcome("answered", "4", "1.1", "Local/x;1")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(url: str, count: int) -> None:
    engine = init_db(url)
    board = Board()
    scheduler = CallbackScheduler(CallbackStore(engine), Dialler(), board, lambda: {})
    now = dt.datetime.now(dt.timezone.utc)
    sales = Department("sales", "sales")
    timings = []
    for n in range(count):
        request = CallbackRequest(sales, f"600{n:06d}", call_id=f"bench-{n}", place_at=now - dt.timedelta(seconds=n),
                                  booked_at=now, due_by=now + dt.timedelta(hours=1))
        began = time.perf_counter()
        await scheduler.book(request)
        timings.append(time.perf_counter() - began)
    idle = []
    for _ in range(5):
        began = time.perf_counter()
        await scheduler.tick()
        idle.append(time.perf_counter() - began)
    board.free = 1
    began = time.perf_counter()
    claims = await scheduler.tick()
    dialling = time.perf_counter() - began
    await asyncio.gather(*list(scheduler._dials))
    engine.dispose()
    p99, idle_median = percentile(timings, 0.99), statistics.median(idle)
    print(f"book {count} call-backs: p50 {statistics.median(timings) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
          f"max {max(timings) * 1000:.2f} ms; target p99 < 20 ms: {'PASS' if p99 < 0.02 else 'FAIL'}")
    print(f"scheduler pass with {count} pending, no agent free: median {idle_median * 1000:.1f} ms of 5; "
          f"one agent free: {dialling * 1000:.1f} ms, {len(claims)} try claimed; "
          f"target idle pass < 200 ms: {'PASS' if idle_median < 0.2 else 'FAIL'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: SQLite in a temporary folder)")
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(main(args.url or f"sqlite:///{Path(folder) / 'ivr.db'}", args.count))

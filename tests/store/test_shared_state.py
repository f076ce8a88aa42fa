"""What several engines share in one database holds when they work at the same moment, on
SQLite and on a real PostgreSQL (`db_url`): each engine has its own connection pool here, as
two `ivr serve` processes would.

- Call-backs: two schedulers poll the same pending call-backs at once, again and again;
  each call-back is claimed, dialled and answered exactly once, none is left behind.
- Call-backs by node: each node's scheduler sees its node's; the first node's also those of
  no node or of a node config.yaml no longer lists.
- The survey counter: two engines count 200 calls at once (the first of a new survey node
  among them): every count from 1 to 200 is given out once, and exactly every 10th call is
  asked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import Counter

import sqlalchemy as sa

from ivr.asterisk.callback import OriginateOutcome
from ivr.engine.sampling import SurveySampler
from types import SimpleNamespace

from ivr.flow.nodes.survey import Sample
from ivr.live.callbacks import CallbackScheduler, QueueSnapshot
from ivr.store import DatabaseSurveyCounter
from ivr.store.callbacks import Booking, CallbackStore
from ivr.store.db import create_db_engine, init_db
from ivr.store.models import Callback, CallbackAttempt

NOW = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.timezone.utc)
CALLBACKS = 40


class Dialler:
    """An AMI that answers every call-back after a moment, remembering what it dialled."""

    connected = True

    def __init__(self, dialled: list):
        self.dialled = dialled

    async def call_back(self, number, queue, *, priority=None, action_id=None):
        self.dialled.append(number)
        await asyncio.sleep(0.01)
        return OriginateOutcome("answered", "4", f"1700.{number}", f"Local/{number}@callee;1")


class Board:
    async def snapshot(self, queue):
        return QueueSnapshot(free_agents=CALLBACKS)  # every one may ring at once: the race is the claim's


def _booking(n: int, node=None) -> Booking:
    return Booking(call_id=f"call-{n}", number=f"60010{n:04d}", department="sales", queue="sales",
                   place_at=NOW - dt.timedelta(minutes=30, seconds=-n), booked_at=NOW - dt.timedelta(minutes=20),
                   due_by=NOW - dt.timedelta(minutes=1), node=node)


def test_two_schedulers_polling_at_once_dial_each_call_back_exactly_once(db_url):
    init_db(db_url).dispose()
    engines = [create_db_engine(db_url) for _ in range(2)]  # two engines, two connection pools
    try:
        for n in range(CALLBACKS):
            CallbackStore(engines[n % 2]).book(_booking(n))
        dialled: list[str] = []

        async def both():
            schedulers = [CallbackScheduler(CallbackStore(engine, f"engine-{i}"), Dialler(dialled), Board(),
                                            lambda: {}, clock=type("C", (), {"now": staticmethod(lambda: NOW)})())
                          for i, engine in enumerate(engines)]
            claims = []
            for _ in range(5):  # both poll at the same moment, pass after pass
                for found in await asyncio.gather(*(s.tick() for s in schedulers)):
                    claims += found
                await asyncio.sleep(0.02)
            for s in schedulers:
                await asyncio.gather(*s._dials)
            return claims

        claims = asyncio.run(both())
        with engines[0].connect() as conn:
            statuses = Counter(conn.execute(sa.select(Callback.status)).scalars())
            tries = Counter(conn.execute(sa.select(CallbackAttempt.callback_id)).scalars())
            owners = Counter(conn.execute(sa.select(CallbackAttempt.owner)).scalars())
    finally:
        for engine in engines:
            engine.dispose()
    assert len(claims) == CALLBACKS and len({c.callback_id for c in claims}) == CALLBACKS
    assert sorted(dialled) == sorted(_booking(n).number for n in range(CALLBACKS))  # each once, none lost
    assert statuses == {"done": CALLBACKS} and set(tries.values()) == {1} and len(tries) == CALLBACKS
    assert sum(owners.values()) == CALLBACKS


def test_each_node_sees_its_call_backs_and_the_first_adopts_the_rest(db):
    for n, node in enumerate(("pbx-a", "pbx-b", None, "pbx-gone", "pbx-b")):
        CallbackStore(db).book(_booking(n, node))
    names = ("pbx-a", "pbx-b")
    first = CallbackStore(db, node="pbx-a", adopt=names)
    second = CallbackStore(db, node="pbx-b")
    numbers = lambda store: sorted(p.number for p in store.pending(NOW))  # noqa: E731
    assert numbers(first) == [_booking(n).number for n in (0, 2, 3)]
    assert numbers(second) == [_booking(n).number for n in (1, 4)]
    assert len(CallbackStore(db).pending(NOW)) == 5  # one Asterisk: all of them


def test_two_engines_counting_at_once_sample_exactly_every_tenth_call(db_url):
    init_db(db_url).dispose()
    engines = [create_db_engine(db_url) for _ in range(2)]
    counters = [DatabaseSurveyCounter(engine, threads=4) for engine in engines]
    survey = SimpleNamespace(name="survey", sample=Sample(every=10, shorter_than=None))  # what the sampler reads
    calls_each, threads_each = 100, 4
    counts: list[int] = []
    asked: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(2 * threads_each)

    def engine_thread(counter: DatabaseSurveyCounter) -> None:
        start.wait()  # every thread of both engines counts from the same moment
        for _ in range(calls_each // threads_each):
            count = counter.increment_now("main", "survey")
            with lock:
                counts.append(count)

    threads = [threading.Thread(target=engine_thread, args=(counter,)) for counter in counters
               for _ in range(threads_each)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        # and through the engine's sampler, as live calls reach a survey node: two engines at once

        async def sampled(counter):
            sampler = SurveySampler(counter, timeout=30.0)  # a loaded machine must not make it count in memory
            return await asyncio.gather(*(sampler.should_ask("main2", survey, 60.0) for _ in range(50)))

        async def both():
            return await asyncio.gather(*(sampled(c) for c in counters))

        for result in asyncio.run(both()):
            asked += result
    finally:
        for counter in counters:
            counter.close()
        for engine in engines:
            engine.dispose()
    assert sorted(counts) == list(range(1, 2 * calls_each + 1))  # none counted twice, none lost
    assert sum(1 for c in counts if c % 10 == 0) == 20
    assert len(asked) == 100 and sum(asked) == 10

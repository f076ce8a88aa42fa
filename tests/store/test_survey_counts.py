"""The survey's sampling counter in the database, on SQLite and PostgreSQL: every 10th call
of the example line is asked across a restart, two engines on one database share the
count with no call counted twice or lost, and a database that fails or hangs neither
stops nor stalls a call."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import sqlalchemy as sa

from ivr import events as ev
from ivr.channels.scripted import QueueScript
from ivr.engine import Engine
from ivr.engine.sampling import SurveySampler
from ivr.simulation.simulate import parse_time, simulate
from ivr.store.db import create_db_engine
from ivr.store.models import SurveyCount
from ivr.store.survey_counts import DatabaseSurveyCounter

AT = parse_time("2026-11-24T10:00:00+01:00")  # a Tuesday in office hours
LONG = QueueScript("answered", wait=30.0, talk=300.0)  # over the 2 minutes under which everyone is asked


def sales_call(line, sampler: SurveySampler):
    """A call of flows/main.yaml to sales, long enough that only the every-10th rule asks it."""
    flows, config = line
    return simulate(Engine(flows, config, sampler=sampler), "main", keys="1 1 9", at=AT, queue=[LONG]).call


def asked(call) -> bool:
    [survey] = [e for e in call.events if e.type == ev.SURVEY]
    return survey.data["asked"]


def stored_count(db) -> int:
    with db.connect() as conn:
        return conn.execute(sa.select(SurveyCount.calls).where(SurveyCount.flow == "main",
                                                               SurveyCount.node == "survey")).scalar_one()


def test_every_tenth_call_is_asked_across_a_restart(db_url, db, line):
    first = DatabaseSurveyCounter(create_db_engine(db_url), own_engine=True)
    before = [asked(sales_call(line, SurveySampler(first))) for _ in range(6)]
    first.close()  # `ivr serve` stops; a new one starts on the same database
    second = DatabaseSurveyCounter(create_db_engine(db_url), own_engine=True)
    after = [asked(sales_call(line, SurveySampler(second))) for _ in range(14)]
    second.close()
    assert before + after == [n % 10 == 0 for n in range(1, 21)]
    assert stored_count(db) == 20


def test_two_engines_on_one_database_share_the_count(db_url, db):
    counters = [DatabaseSurveyCounter(create_db_engine(db_url), own_engine=True) for _ in range(2)]
    counts: list[int] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def engine_process(counter: DatabaseSurveyCounter) -> None:
        async def many() -> list[int]:  # as calls on one event loop reach the survey together
            return await asyncio.gather(*(counter.increment("main", "survey") for _ in range(60)))

        try:
            got = asyncio.run(many())
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
            return
        with lock:
            counts.extend(got)

    threads = [threading.Thread(target=engine_process, args=(c,)) for c in counters for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for counter in counters:
        counter.close()
    assert failures == []
    assert sorted(counts) == list(range(1, 241))  # none counted twice, none lost
    assert stored_count(db) == 240


def hold_the_counts(db_url: str) -> tuple[threading.Event, threading.Thread]:
    """Another connection that locks survey_counts until the returned event is set."""
    locked, release = threading.Event(), threading.Event()
    holder = create_db_engine(db_url)

    def hold() -> None:
        with holder.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("LOCK TABLE survey_counts IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(30)
        holder.dispose()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(10)
    return release, thread


def test_a_failing_or_hanging_database_neither_stops_nor_stalls_the_call(db_url, db, line, caplog):
    counter = DatabaseSurveyCounter(create_db_engine(db_url), own_engine=True)
    sampler = SurveySampler(counter, timeout=0.5, retry=0.0)
    assert [asked(sales_call(line, sampler)) for _ in range(8)] == [False] * 8  # the database's 1..8
    release, holder = hold_the_counts(db_url)
    try:
        with caplog.at_level(logging.INFO, logger="ivr.engine.sampling"):
            began = time.monotonic()
            calls = [sales_call(line, sampler) for _ in range(2)]  # the count waits for the lock
            waited = time.monotonic() - began
    finally:
        release.set()
        holder.join(30)
    # the fallback rule: counted on in memory from the database's 8, so the 10th call is asked
    assert [asked(call) for call in calls] == [False, True]
    assert all(call.outcome == ev.Outcome.ANSWERED and call.path[-1] == "goodbye" for call in calls)
    assert waited < 2 * 0.5 + 2.0, f"the calls waited {waited:.1f} s for the database"
    failed = [r for r in caplog.records if "survey counter failed" in r.getMessage()]
    assert len(failed) == 1 and "no answer within 0.5 s" in failed[0].getMessage()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ivr.engine.sampling"):
        assert sales_call(line, sampler).outcome == ev.Outcome.ANSWERED  # the database answers again
        with db.begin() as conn:  # and now fails outright
            conn.execute(sa.text("DROP TABLE survey_counts"))
        calls = [sales_call(line, sampler) for _ in range(3)]
    assert all(call.outcome == ev.Outcome.ANSWERED and call.path[-1] == "goodbye" for call in calls)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("answers again after" in m for m in messages) == 1
    assert sum("survey counter failed" in m and "survey_counts" in m for m in messages) == 1  # once an outage
    counter.close()

"""A database that hangs, fails or is missing never blocks or breaks the call path.

`submit` is timed while the database is locked by another connection holding a write
transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: LOCK TABLE calls), while it cannot be
reached at all, and while the writer's buffers overflow; after the outage everything
kept is written, and what was dropped is counted.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager

import psycopg
from sqlalchemy import func, select

from ivr.store import Call, CallEvent, CallWriter
from ivr.store.db import create_db_engine, init_db
from tests_support import closed_port, run_call

MAX_SUBMIT = 0.05  # seconds: far above a real submit (microseconds), far below a database wait


def recorded_calls(line, n: int, prefix: str = "c") -> list:
    """Events of `n` calls of the example line, recorded (not yet submitted anywhere)."""
    events: list = []
    for i in range(n):
        run_call(line, ["1 1", "1 3 90012345# 9#", "2 4 1", "1 0"][i % 4], call_id=f"{prefix}{i}",
                 on_event=events.append, queue=["answered"])
    return events


def timed_submits(writer: CallWriter, events: list) -> float:
    """The slowest of the submits."""
    worst = 0.0
    for event in events:
        began = time.perf_counter()
        writer.submit(event)
        worst = max(worst, time.perf_counter() - began)
    return worst


def counts(engine) -> tuple[int, int]:
    with engine.connect() as connection:
        return (connection.execute(select(func.count()).select_from(Call)).scalar_one(),
                connection.execute(select(func.count()).select_from(CallEvent)).scalar_one())


@contextmanager
def locked(url: str):
    """Another connection holds a write lock on the database until the block ends."""
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
    else:
        dsn = url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(dsn) as connection:
            connection.execute("LOCK TABLE calls, call_events IN ACCESS EXCLUSIVE MODE")
            yield
            connection.rollback()


def test_a_locked_database_does_not_block_submit(db, db_url, line):
    events = recorded_calls(line, 12)
    # a short busy timeout: SQLite gives up waiting and the writer retries, over and over
    writer = CallWriter(create_db_engine(db_url, busy_ms=100), retry_min=0.05, retry_max=0.2)
    with locked(db_url):
        began = time.perf_counter()
        worst = timed_submits(writer, events)
        call = run_call(line, "1 1", call_id="during", on_event=writer.submit, queue=["answered"])
        elapsed = time.perf_counter() - began
        time.sleep(0.5)  # the writer is stuck meanwhile
        assert writer.stats.written == 0
    assert worst < MAX_SUBMIT and elapsed < 1.0, (worst, elapsed)
    assert writer.flush(20)
    assert counts(db) == (13, len(events) + len(call.events))
    stats = writer.stats
    assert stats.dropped == 0 and stats.written == stats.submitted and stats.healthy
    assert writer.close()


def test_a_hanging_database_does_not_block_submit(tmp_path, line):
    """SQLite's default busy timeout: the writer hangs inside the database for the whole lock."""
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    engine = init_db(url)
    events = recorded_calls(line, 8)
    writer = CallWriter(url)
    with locked(url):
        worst = timed_submits(writer, events)
        assert not writer.flush(0.5)  # the writer is waiting on the lock
        worst = max(worst, timed_submits(writer, recorded_calls(line, 4, prefix="d")))
    assert worst < MAX_SUBMIT, worst
    assert writer.flush(20)
    assert counts(engine)[0] == 12
    assert writer.close()
    engine.dispose()


def test_an_unreachable_server_neither_blocks_nor_raises(line, caplog):
    writer = CallWriter(f"postgresql+psycopg://ivr@127.0.0.1:{closed_port()}/ivr", retry_min=0.05, retry_max=0.1)
    events = recorded_calls(line, 4)
    with caplog.at_level(logging.ERROR, logger="ivr.store.writer"):
        worst = timed_submits(writer, events)
        time.sleep(0.5)  # several failed attempts
        assert writer.stats.failures >= 2 and not writer.stats.healthy
        began = time.monotonic()
        assert not writer.close(timeout=0.5)
        assert time.monotonic() - began < 2.0
    assert worst < MAX_SUBMIT
    stats = writer.stats
    assert stats.written == 0 and stats.dropped == stats.submitted == len(events)
    assert "Connection refused" in (stats.last_error or "") or "connection" in (stats.last_error or "").lower()
    failures = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(failures) == 1  # logged once, not once per attempt
    writer.submit(events[0])  # after close: counted as dropped, not raised
    assert writer.stats.dropped == len(events) + 1


def test_the_writer_catches_up_when_the_database_comes_back(tmp_path, line, caplog):
    folder = tmp_path / "not-yet"
    url = f"sqlite:///{folder / 'ivr.db'}"
    writer = CallWriter(url, retry_min=0.05, retry_max=0.1)
    events = recorded_calls(line, 6)
    with caplog.at_level(logging.WARNING, logger="ivr.store.writer"):
        timed_submits(writer, events)
        time.sleep(0.3)
        assert writer.stats.failures >= 1 and writer.stats.written == 0
        engine = init_db(url)  # the folder and the schema appear
        assert writer.flush(20)
    assert counts(engine) == (6, len(events))
    assert writer.stats.healthy and writer.stats.dropped == 0
    assert any("again after" in r.getMessage() for r in caplog.records)
    assert writer.close()
    engine.dispose()


def test_full_buffers_drop_events_but_keep_the_calls(tmp_path, line):
    folder = tmp_path / "not-yet"
    url = f"sqlite:///{folder / 'ivr.db'}"
    writer = CallWriter(url, max_batch=10, max_pending=40, retry_min=0.05, retry_max=0.1)
    events = recorded_calls(line, 8)
    timed_submits(writer, events)
    deadline = time.monotonic() + 10
    while writer.stats.queued and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.stats.pending <= 40 + 10
    engine = init_db(url)
    assert writer.flush(20)
    calls, stored = counts(engine)
    stats = writer.stats
    assert calls == 8  # every call's row survives, with its outcome
    assert stats.dropped > 0 and stored == len(events) - stats.dropped == stats.written
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Call).where(Call.outcome.is_(None))).scalar() == 0
    assert writer.close()
    engine.dispose()


def test_a_full_queue_drops_instead_of_waiting(tmp_path, line):
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    engine = init_db(url)
    events = recorded_calls(line, 4)
    writer = CallWriter(url, max_queue=20, max_batch=5)
    with locked(url):
        time.sleep(0.05)
        worst = timed_submits(writer, events)
        assert writer.stats.dropped > 0
    assert worst < MAX_SUBMIT
    assert writer.flush(20)
    stats = writer.stats
    assert stats.submitted == stats.written + stats.dropped == len(events)
    assert writer.close()
    engine.dispose()


def test_submit_from_many_threads(db, line):
    events = recorded_calls(line, 16)
    writer = CallWriter(db)
    threads = [threading.Thread(target=timed_submits, args=(writer, events[i::4])) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.close()
    assert counts(db)[0] == 16

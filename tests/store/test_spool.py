"""The database unreachable, not only locked: the writer keeps what it cannot write in a
spool file and writes it back, in order, when the database is back; nothing is lost when
the process stops or is killed meanwhile, and the call path never waits.

PostgreSQL is made unreachable the way a network or a failed server makes it: the writer
reaches the real server through a TCP relay that the test takes down (closing every
connection) and brings back on the same port.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ivr.store import Call, CallEvent, CallWriter
from ivr.store.db import create_db_engine, init_db
from ivr.store.spool import Spool, decode, encode
from ivr.testbed.relay import Relay
from test_outage import MAX_SUBMIT, counts, recorded_calls, timed_submits

REPO = Path(__file__).resolve().parents[2]


# --- the spool file ---------------------------------------------------------------------------
def test_records_come_back_in_order_with_their_timestamps(tmp_path):
    spool = Spool(tmp_path / "spool")
    at = dt.datetime(2026, 12, 4, 10, 30, tzinfo=dt.timezone.utc)
    for i in range(5):
        assert spool.put({"n": i, "at": at, "rows": [{"t": 1.5, "data": {"k": "\u00f3\n"}}]}, items=2)
    assert spool.waiting and spool.items == 10 and spool.records == 5
    seen = []
    while (record := spool.peek()) is not None:
        seen.append(record)
        assert spool.done() == 2
    assert [r["n"] for r in seen] == list(range(5))
    assert seen[0]["at"] == at and seen[0]["rows"][0]["data"]["k"] == "\u00f3\n"
    assert not spool.waiting and spool.items == 0
    assert spool.path.stat().st_size == 0  # written back: emptied, not left to grow
    spool.close()
    assert not list((tmp_path / "spool").iterdir())


def test_many_records_are_read_back_at_once_and_their_place_kept(tmp_path):
    spool = Spool(tmp_path / "spool")
    for i in range(10):
        assert spool.put({"n": i}, items=2)
    first = spool.peek_many(5)  # as many as hold 5 call records: three of two
    assert [r["n"] for r in first] == [0, 1, 2]
    assert spool.peek_many(5) == first  # read ahead, not yet written back: the same again
    assert spool.done(3) == 6 and spool.items == 14 and spool.records == 7
    assert spool.put({"n": 10}, items=2)  # appended while reading back: comes last
    assert [r["n"] for r in spool.peek_many(1)] == [3]  # one at least, one at most when one is enough
    spool.close()  # the process stops: the next writer starts where this one was
    again = Spool(tmp_path / "spool")
    assert again.adopt() == 8
    assert [r["n"] for r in again.peek_many(100)] == list(range(3, 11))
    assert again.done(8) == 16 and not again.waiting
    assert again.peek_many(100) == [] and not list((tmp_path / "spool").glob("writer-*"))[1:]
    again.close()


def test_the_spool_is_private_and_bounded(tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=200)
    assert spool.put({"x": "a" * 50}, 1)
    assert not spool.put({"x": "a" * 200}, 1)  # over the bound: refused, not half-written
    assert spool.records == 1
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700
    assert spool.path.stat().st_mode & 0o777 == 0o600
    spool.close()


def test_a_live_writers_file_is_not_taken_a_stopped_writers_is(tmp_path):
    folder = tmp_path / "spool"
    live = Spool(folder)
    live.put({"n": "live"}, 1)
    stopped = folder / "writer-otherhost-1-abcdef.jsonl"
    stopped.write_bytes(encode({"items": 3, "batch": {"n": 1}}) + encode({"items": 4, "batch": {"n": 2}})
                        + b'{"items":9,"batch":{"n":')  # cut short by a crash while it was written
    mine = Spool(folder)
    assert mine.adopt() == 2 and mine.items == 7
    assert mine.head_is_adopted()
    assert mine.peek() == {"n": 1}
    assert mine.done() == 3
    mine.close()  # stopped midway: the next one goes on from there
    again = Spool(folder)
    assert again.adopt() == 1
    assert again.peek() == {"n": 2} and again.done() == 4
    assert again.peek() is None  # the cut record is skipped, never half-read
    assert not stopped.exists()
    assert live.peek() == {"n": "live"}  # its own, untouched
    live.close()
    again.close()


def test_a_record_that_cannot_be_read_is_skipped(tmp_path):
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / "writer-h-1-000000.jsonl").write_bytes(
        b"not json\n" + encode({"items": 1, "batch": {"n": 1}}))
    spool = Spool(folder)
    assert spool.adopt() == 2
    assert spool.peek() == {"n": 1}


def test_encoding_is_plain_ascii_json(tmp_path):
    line = encode({"t": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "s": "\u017c"})
    assert line.endswith(b"\n") and line.isascii()
    assert decode(line)["t"].tzinfo is not None
    with pytest.raises(TypeError):
        encode({"x": object()})
    assert json.loads(line)  # readable by any JSON tool


# --- the writer with a spool --------------------------------------------------------------
def test_postgresql_unreachable_then_back_loses_nothing(postgres, tmp_path, line, caplog):
    url = postgres.create_database()
    engine = init_db(url)
    relay = Relay(postgres.port)
    relay.up()
    through = url.replace(f":{postgres.port}/", f":{relay.port}/")
    writer = CallWriter(through, spool_dir=tmp_path / "spool", retry_min=0.05, retry_max=0.2, max_pending=50)
    try:
        before = recorded_calls(line, 4, prefix="before")
        timed_submits(writer, before)
        assert writer.flush(20)
        relay.down()
        during = recorded_calls(line, 40, prefix="during")
        worst = timed_submits(writer, during)
        deadline = time.monotonic() + 20
        while writer.stats.spooled < len(during) and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = writer.stats
        assert stats.spooled == len(during) and stats.pending == 0, stats  # on disk, not in memory
        assert stats.dropped == 0 and not stats.healthy
        assert worst < MAX_SUBMIT
        relay.up()
        after = recorded_calls(line, 4, prefix="after")
        timed_submits(writer, after)
        assert writer.flush(30)
        total = len(before) + len(during) + len(after)
        assert counts(engine) == (48, total)
        stats = writer.stats
        assert stats.dropped == 0 and stats.spooled == 0 and stats.written == stats.submitted == total
        with engine.connect() as connection:
            open_calls = connection.execute(select(func.count()).select_from(Call)
                                            .where(Call.outcome.is_(None))).scalar_one()
        assert open_calls == 0  # every call's last row (its outcome) won over the earlier ones
        assert writer.close()
    finally:
        relay.down()
        engine.dispose()
        postgres.drop_database(url)


def test_a_long_spool_is_written_back_in_few_transactions(tmp_path, line):
    # an outage spools a small batch every few milliseconds; written back one transaction
    # each, they fell behind calls arriving at 20 a second, and the spool grew outage by outage
    folder = tmp_path / "not-yet"
    url = f"sqlite:///{folder / 'ivr.db'}"
    writer = CallWriter(url, spool_dir=tmp_path / "spool", retry_min=0.05, retry_max=0.1, linger=0.0)
    events = recorded_calls(line, 30)
    for event in events:  # one at a time: a batch of its own each
        writer.submit(event)
        time.sleep(0.002)
    deadline = time.monotonic() + 10
    while writer.stats.spooled < len(events) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.stats.spooled == len(events)
    spooled_batches = writer._spool.records
    assert spooled_batches > 30  # many small batches
    engine = init_db(url)
    transactions = []
    real_write = writer._write
    writer._write = lambda batch: (real_write(batch), transactions.append(batch.items))[0]  # those that commit
    assert writer.flush(20)
    assert counts(engine) == (30, len(events)) and writer.stats.dropped == 0
    assert len(transactions) <= 3 and sum(transactions) == len(events), (spooled_batches, transactions)
    assert writer.close()
    engine.dispose()


def test_a_spooled_batch_the_database_refuses_is_given_up_alone(tmp_path, line, caplog):
    from sqlalchemy.exc import DataError

    from ivr.store.writer import _EVENT

    # six calls spooled by a writer that stopped, a batch each; the database refuses one
    maker = CallWriter("sqlite://", start=False)
    stopped = Spool(tmp_path / "spool")
    calls = [recorded_calls(line, 1, prefix=f"s{n}-") for n in range(6)]
    for events in calls:
        batch = maker._prepare([(_EVENT, event) for event in events])
        assert stopped.put(batch.to_record(), batch.items)
    stopped.close()
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    engine = init_db(url)
    writer = CallWriter(url, spool_dir=tmp_path / "spool", retry_min=0.01, retry_max=0.02, start=False)
    bad = calls[3][0].call_id
    real_write = writer._write
    written = []

    def write(batch):
        if any(row["call_id"] == bad for row in batch.events):
            raise DataError("INSERT", {}, Exception("refused for its content"))
        real_write(batch)
        written.append(sorted({row["call_id"] for row in batch.events}))

    writer._write = write
    writer._thread.start()
    assert writer.flush(20)
    with engine.connect() as connection:
        stored = set(connection.execute(select(Call.id)).scalars())
    assert stored == {events[0].call_id for events in calls} - {bad}  # the others, all of them
    assert writer.stats.dropped == len(calls[3]) and writer.stats.adopted == sum(map(len, calls)) - len(calls[3])
    assert "refuses a spooled batch" in caplog.text
    assert written[0] == ["s0-0"]  # the six together failed: one at a time from then on
    writer.close()
    engine.dispose()


def test_sqlite_unreachable_then_back(tmp_path, line):
    folder = tmp_path / "not-yet"
    url = f"sqlite:///{folder / 'ivr.db'}"
    writer = CallWriter(url, spool_dir=tmp_path / "spool", retry_min=0.05, retry_max=0.1, max_pending=20)
    events = recorded_calls(line, 30)
    timed_submits(writer, events)
    deadline = time.monotonic() + 10
    while writer.stats.spooled < len(events) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.stats.spooled == len(events) and writer.stats.dropped == 0
    engine = init_db(url)
    assert writer.flush(20)
    assert counts(engine) == (30, len(events))
    assert writer.close()
    engine.dispose()


def test_stopped_during_an_outage_the_next_writer_writes_it(tmp_path, line, caplog):
    folder = tmp_path / "not-yet"
    url = f"sqlite:///{folder / 'ivr.db'}"
    spool = tmp_path / "spool"
    writer = CallWriter(url, spool_dir=spool, retry_min=0.05, retry_max=0.1)
    events = recorded_calls(line, 10)
    timed_submits(writer, events)
    time.sleep(0.2)
    began = time.monotonic()
    assert not writer.close(timeout=10)  # kept on disk, not written
    assert time.monotonic() - began < 2.0  # no waiting for a database that is away
    assert writer.stats.dropped == 0 and writer.stats.spooled == len(events)
    assert any("in its spool" in r.getMessage() for r in caplog.records)
    engine = init_db(url)
    later = CallWriter(url, spool_dir=spool)
    assert later.flush(20)
    assert counts(engine) == (10, len(events))
    assert later.stats.adopted == len(events) and later.stats.written == 0
    assert later.close()
    assert not list(spool.iterdir())
    engine.dispose()


KILLED = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{tests!r}]
    from ivr.store import CallWriter
    from test_outage import recorded_calls
    from conftest import REPO
    from ivr.flow.project import load_flows
    line = load_flows([REPO / "flows"], REPO / "config.yaml")
    # retries far apart: the test makes the database while this writer lives, and it must
    # not write its spool back before it is killed
    writer = CallWriter({url!r}, spool_dir={spool!r}, retry_min=60, retry_max=60)
    events = recorded_calls(line, 25)
    for event in events:
        writer.submit(event)
    while writer.stats.spooled < len(events):
        time.sleep(0.02)
    print(len(events), flush=True)
    time.sleep(60)
""")


def test_killed_during_an_outage_nothing_is_lost(tmp_path, line):
    url = f"sqlite:///{tmp_path / 'not-yet' / 'ivr.db'}"
    spool = tmp_path / "spool"
    script = KILLED.format(tests=str(Path(__file__).parent), url=url, spool=str(spool))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        sent = int(process.stdout.readline() or 0)
        assert sent > 0, "the writer process did not report its events"
        # while it lives its spool is its own: another writer leaves it alone
        engine = init_db(url)
        other = CallWriter(url, spool_dir=spool)
        assert other.flush(5) and other.stats.adopted == 0
        assert other.close()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    assert counts(engine) == (0, 0)
    writer = CallWriter(url, spool_dir=spool)
    assert writer.flush(20)
    assert counts(engine) == (25, sent)
    assert writer.stats.adopted == sent
    assert writer.close()
    engine.dispose()


def test_a_spool_locked_by_another_process_is_left_alone(tmp_path):
    folder = tmp_path / "spool"
    folder.mkdir()
    path = folder / "writer-h-2-000000.jsonl"
    path.write_bytes(encode({"items": 1, "batch": {"n": 1}}))
    holder = open(path, "rb")
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
    try:
        assert Spool(folder).adopt() == 0
    finally:
        holder.close()
    assert Spool(folder).adopt() == 1


def test_without_a_spool_the_old_bounds_hold(tmp_path, line):
    """No spool folder (a library user's writer): the bounded buffer as before."""
    writer = CallWriter(f"sqlite:///{tmp_path / 'no' / 'ivr.db'}", retry_min=0.05, retry_max=0.1, max_batch=5,
                        max_pending=10)
    timed_submits(writer, recorded_calls(line, 10))
    time.sleep(0.3)
    assert writer.stats.spooled == 0 and writer.stats.dropped > 0
    writer.close(timeout=0.5)


def test_ivr_serve_starts_and_serves_while_postgresql_is_away(postgres, tmp_path, caplog):
    """The database cut off when `ivr serve` starts: the call is served, its record spooled,
    and written (the database migrated first) once it can be reached."""
    import asyncio
    import shutil

    sys.path.insert(0, str(REPO / "tests" / "channels"))
    from fake_asterisk import Caller, environment, place_call
    from ivr.live.serve import build_runtime

    url = postgres.create_database()  # new and empty: the writer migrates it when it can
    relay = Relay(postgres.port)
    root = tmp_path / "site"
    shutil.copytree(REPO / "flows", root / "flows", ignore=shutil.ignore_patterns("*.test.yaml"))
    shutil.copytree(REPO / "data", root / "data")
    config = (REPO / "config.yaml").read_text().replace(
        "database: sqlite:///ivr.db", f"database: {url.replace(f':{postgres.port}/', f':{relay.port}/')}")
    (root / "config.yaml").write_text(config)
    runtime = build_runtime([root / "flows"], root / "config.yaml", port=0, ami=False, metrics_port=0)
    assert any("cannot be reached" in r.getMessage() for r in caplog.records)

    writer = runtime.extras[0].writer
    flushed = []

    async def main():
        await runtime.start()
        try:
            began = time.monotonic()
            await place_call(runtime.server.port, Caller(keys=["1", "1"]), environment("1700000999.1"))
            assert time.monotonic() - began < 10  # served as usual: nothing waited for the database
            while writer.stats.spooled == 0:
                await asyncio.sleep(0.05)
            relay.up()  # the database is back
            flushed.append(await asyncio.get_running_loop().run_in_executor(None, writer.flush, 30))
        finally:
            await runtime.close()

    try:
        asyncio.run(main())
    finally:
        relay.down()
    assert flushed == [True]
    engine = create_db_engine(url)
    with engine.connect() as connection:
        outcome = connection.execute(select(Call.outcome).where(Call.id == "1700000999.1")).scalar_one()
        events = connection.execute(select(func.count()).select_from(CallEvent)).scalar_one()
    # the flow's answer depends on the hour (voicemail after hours); what matters: it is all there
    assert outcome in ("answered", "voicemail") and events > 5
    assert writer.stats.dropped == 0
    engine.dispose()
    postgres.drop_database(url)


def test_a_stop_while_postgresql_is_locked_loses_nothing(postgres, tmp_path, line, monkeypatch):
    """Another session holds a lock on the calls: the writer's statements wait a bounded time
    (PostgreSQL's lock_timeout), so a stop meanwhile keeps to its deadline, with every
    record in the spool for the next writer."""
    from ivr.store import writer as writer_module
    from test_outage import locked

    monkeypatch.setattr(writer_module, "PG_LOCK_TIMEOUT_MS", 300)
    url = postgres.create_database()
    engine = init_db(url)
    spool = tmp_path / "spool"
    writer = CallWriter(url, spool_dir=spool, retry_min=0.05, retry_max=0.2)
    events = recorded_calls(line, 10)
    try:
        with locked(url):
            timed_submits(writer, events)
            time.sleep(0.5)
            began = time.monotonic()
            writer.close(timeout=5)
            stopped = time.monotonic() - began
            assert writer.stats.dropped == 0 and writer.stats.spooled == len(events), writer.stats
        assert stopped < 5.5, stopped
        later = CallWriter(url, spool_dir=spool)
        assert later.flush(20)
        assert counts(engine) == (10, len(events)) and later.stats.adopted == len(events)
        assert later.close()
    finally:
        engine.dispose()
        postgres.drop_database(url)


def test_a_full_disk_under_the_spool_keeps_the_records_in_memory(tmp_path, line, monkeypatch, caplog):
    """The spool's disk is full (ENOSPC on its write): the records wait in memory within the
    writer's bounds, the log says so once, and they are written when the database is back."""
    import errno
    import logging

    def full(self, record, items):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Spool, "put", full)
    url = f"sqlite:///{tmp_path / 'not-yet' / 'ivr.db'}"
    writer = CallWriter(url, spool_dir=tmp_path / "spool", retry_min=0.05, retry_max=0.1)
    events = recorded_calls(line, 6)
    with caplog.at_level(logging.ERROR, logger="ivr.store.writer"):
        timed_submits(writer, events)
        time.sleep(0.5)
        assert writer.stats.spooled == 0 and writer.stats.pending == len(events) and writer.stats.dropped == 0
        engine = init_db(url)
        assert writer.flush(20)
    assert counts(engine) == (6, len(events))
    said = [r.getMessage() for r in caplog.records if "cannot take call records" in r.getMessage()]
    assert len(said) == 1 and "No space left on device" in said[0]
    assert writer.close()
    engine.dispose()

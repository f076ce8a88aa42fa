"""No call left open: a real `ivr serve` process, 500 calls in flight from a FastAGI client
that plays Asterisk (bench/agi_load_asterisk.py), then

- SIGTERM: the server takes no new call, the calls that finish within the grace period
  finish, the rest end as interrupted at the node they were in (the queue's transfer node);
  every call is stored with an outcome and an end, the log has exactly one summary line and
  no traceback, and the process exits 0;
- SIGKILL, then a restart: the killed engine's calls are closed as interrupted at their
  last stored event when the new process starts, while the calls of a second engine that
  is alive on the same database are left alone (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from agi_load_asterisk import AsteriskCall, Behaviour, Tally  # noqa: E402
from agi_load_servers import CONFIG, FLOW_FILE, SCRIPT, free_port, ivr_command  # noqa: E402
from ivr.store.db import create_db_engine, init_db  # noqa: E402
from ivr.store.models import Call, CallEvent, EngineBeat  # noqa: E402
from ivr.testbed.postgres import PostgresUnavailable, start_postgres  # noqa: E402

CALLS = 500
GRACE = 5  # seconds; half the calls are let out of the queue 1 s after the SIGTERM
HELD = 3600.0  # seconds a queue holds a call unless the test lets it go


class QueuedCall(AsteriskCall):
    """A call whose queue wait lasts until the test ends it (`leave_queue`): the agent
    answers then, and the call goes on to its end."""

    def __init__(self, *args, on_queue=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_queue = on_queue
        self.queue_reply: Optional[bytes] = None

    def answer(self, line: str):
        reply, delay, close = super().answer(line)
        if line.upper().startswith("EXEC QUEUE") or line.upper().startswith('EXEC "QUEUE'):
            self.queue_reply = reply
            if self.on_queue is not None:
                self.on_queue(self)
            return reply, HELD, close
        return reply, delay, close

    def leave_queue(self) -> None:
        if self.pending is not None and self.queue_reply is not None:
            self.pending.cancel()
            self._send(self.queue_reply, False)


class Calls:
    """CALLS calls placed on one server, each held in the queue once it gets there."""

    def __init__(self, port: int, prefix: str, count: int = CALLS):
        self.port = port
        self.prefix = prefix
        self.count = count
        self.tally = Tally()
        self.queued: list[QueuedCall] = []
        self.calls: list[QueuedCall] = []
        self.all_queued = asyncio.Event()

    def _queued(self, call: QueuedCall) -> None:
        self.queued.append(call)
        if len(self.queued) == self.count:
            self.all_queued.set()

    async def place(self, timeout: float = 120.0) -> None:
        loop = asyncio.get_running_loop()
        behaviour = Behaviour()
        for i in range(self.count):
            call = QueuedCall(self.tally, f"{self.prefix}.{i}", SCRIPT, behaviour, on_queue=self._queued)
            self.calls.append(call)
            await loop.create_connection(lambda c=call: c, "127.0.0.1", self.port)
            if i % 50 == 49:
                await asyncio.sleep(0)  # let the server answer the first ones meanwhile
        await asyncio.wait_for(self.all_queued.wait(), timeout)


def installation(folder: Path, database: str) -> tuple[Path, int]:
    (folder / "flows").mkdir(parents=True)
    shutil.copyfile(FLOW_FILE, folder / "flows" / f"{SCRIPT}.yaml")
    port = free_port()
    text = CONFIG.format(port=port, database="DATABASE", recordings=folder / "recordings")
    text = text.replace("sqlite:///DATABASE", f'"{database}"')  # the bench's is a file; here SQLite or PostgreSQL
    assert database in text
    (folder / "config.yaml").write_text(text, encoding="utf-8")
    init_db(database).dispose()
    return folder / "config.yaml", port


class Serve:
    """`ivr serve` as the README starts it, in its own process; its log in a file."""

    def __init__(self, config: Path, port: int, log: Path, *extra: str):
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                ivr_command() + ["--config", str(config), "serve", "--port", str(port), "--metrics-port", "0", *extra],
                cwd=config.parent, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while "FastAGI listening" not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"`ivr serve` did not start (exit {self.process.poll()}):\n{self.text()}")
            time.sleep(0.1)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"`ivr serve` did not stop within {timeout:g} s of {signal.Signals(sig).name}:\n"
                                 f"{self.text()[-3000:]}")


def stored(database: str) -> dict[str, dict]:
    db = create_db_engine(database)
    try:
        with db.connect() as conn:
            return {r["id"]: dict(r) for r in conn.execute(sa.select(Call.__table__)).mappings()}
    finally:
        db.dispose()


def last_events(database: str) -> dict[str, list[dict]]:
    """The last three events of every call."""
    db = create_db_engine(database)
    try:
        with db.connect() as conn:
            rows = conn.execute(sa.select(CallEvent.__table__).order_by(CallEvent.call_id, CallEvent.seq)).mappings()
            out: dict[str, list[dict]] = {}
            for row in rows:
                out.setdefault(row["call_id"], []).append(CallEvent(**row).to_dict())
    finally:
        db.dispose()
    return {call: events[-3:] for call, events in out.items()}


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def postgres() -> Iterator:
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL could not be started: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ivr.db'}"
        return
    server = request.getfixturevalue("postgres")
    url = server.create_database()
    yield url
    server.drop_database(url)


def test_sigterm_with_500_calls_in_flight_ends_every_call_and_says_so_once(tmp_path):
    database = f"sqlite:///{tmp_path / 'ivr.db'}"
    config, port = installation(tmp_path / "site", database)
    server = Serve(config, port, tmp_path / "serve.log", "--grace", str(GRACE))
    calls = Calls(port, "1733300000")

    signalled: list[float] = []

    async def run() -> None:
        await calls.place()
        signalled.append(time.monotonic())
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        for call in calls.queued[::2]:  # half of them get their agent within the grace period
            call.leave_queue()
        await asyncio.sleep(0.5)
        # no new call once stopping: the listening socket is closed
        with pytest.raises(OSError):
            await asyncio.get_running_loop().create_connection(asyncio.Protocol, "127.0.0.1", port)
        await asyncio.get_running_loop().run_in_executor(None, server.stop, signal.SIGTERM, 60.0)

    began = time.monotonic()
    asyncio.run(run())
    placed, stopping = signalled[0] - began, time.monotonic() - signalled[0]
    assert server.process.returncode == 0, server.text()[-3000:]
    assert stopping < GRACE + 10  # the grace period, the last writes, and no more

    rows = stored(database)
    assert len(rows) == CALLS
    assert all(r["outcome"] is not None and r["ended_at"] is not None and r["duration"] is not None
               for r in rows.values()), [r for r in rows.values() if r["outcome"] is None][:3]
    outcomes = sorted(r["outcome"] for r in rows.values())
    assert outcomes.count("answered") == CALLS // 2 and outcomes.count("interrupted") == CALLS // 2
    tails = last_events(database)
    for call_id, row in rows.items():
        if row["outcome"] == "interrupted":
            interrupted, outcome = tails[call_id][-2:]
            assert interrupted["type"] == "interrupted" and interrupted["node"] == "support", tails[call_id]
            assert interrupted["reason"] == (f"ivr serve stopped (SIGTERM) with the call in progress after a "
                                             f"{GRACE} s grace period")
            assert outcome["type"] == "outcome" and outcome["outcome"] == "interrupted"
    log = server.text()
    summaries = [line for line in log.splitlines() if "stopped:" in line]
    assert len(summaries) == 1, log[-3000:]
    assert summaries[0].endswith(f"stopped: {CALLS} calls in progress, {CALLS // 2} finished within {GRACE} s, "
                                 f"{CALLS // 2} ended as interrupted")
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    print(f"\n{CALLS} calls in the queue {placed:.1f} s after the first was placed; SIGTERM with a {GRACE} s grace: "
          f"exit {stopping:.1f} s later, every call stored with an outcome")


def test_sigkill_then_restart_closes_the_dead_engines_calls_and_not_a_live_ones(tmp_path, database):
    config, port = installation(tmp_path / "site", database)
    other_port = free_port()
    killed = Serve(config, port, tmp_path / "killed.log")
    alive = Serve(config, other_port, tmp_path / "alive.log", "--grace", "0.5")
    restarted: Optional[Serve] = None
    calls, others = Calls(port, "1733400000"), Calls(other_port, "1733500000", count=20)

    def transfers_stored() -> int:
        db = create_db_engine(database)
        try:
            with db.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(CallEvent)
                                    .where(CallEvent.type == "transfer")).scalar_one()
        finally:
            db.dispose()

    async def run() -> None:
        await asyncio.gather(calls.place(), others.place())
        wait_until(lambda: transfers_stored() == CALLS + 20, 60, "every call's transfer stored")
        killed.process.send_signal(signal.SIGKILL)
        killed.process.wait(10)

    try:
        asyncio.run(run())
        rows = stored(database)
        assert sum(1 for r in rows.values() if r["outcome"] is None) == CALLS + 20  # the crash left them open
        began = time.monotonic()
        restarted = Serve(config, port, tmp_path / "restarted.log")
        # repaired at start-up: before the new engine listens, not after a heartbeat goes stale
        ready = time.monotonic() - began
        rows = stored(database)
        mine = {k: r for k, r in rows.items() if k.startswith("1733400000.")}
        theirs = {k: r for k, r in rows.items() if k.startswith("1733500000.")}
        assert len(mine) == CALLS and len(theirs) == 20
        assert all(r["outcome"] == "interrupted" for r in mine.values()), \
            sorted({r["outcome"] for r in mine.values()}, key=str)
        assert all(r["outcome"] is None for r in theirs.values())  # a live engine's calls: untouched
        tails = last_events(database)
        for call_id, row in mine.items():
            transfer, interrupted, outcome = tails[call_id]
            assert transfer["type"] == "transfer" and interrupted["type"] == "interrupted", tails[call_id]
            assert interrupted["node"] == "support" and interrupted["t"] == transfer["t"]
            assert row["duration"] == pytest.approx(transfer["t"], abs=0.001)
            assert outcome["outcome"] == "interrupted"
        logs = restarted.text() + alive.text()
        assert len(re.findall(rf"closed {CALLS} call\(s\) left open by engine \S+ .* as interrupted", logs)) == 1, logs
        assert "Traceback" not in logs
        print(f"\nSIGKILL with {CALLS} calls in flight: closed at the restart, which listened {ready:.1f} s after "
              f"it was started")
    finally:
        for server in (restarted, alive, killed):
            if server is not None and server.process.poll() is None:
                server.stop(signal.SIGTERM)
    rows = stored(database)
    assert all(r["outcome"] is not None for r in rows.values())  # the live engine ended its own at its stop
    db = create_db_engine(database)
    with db.connect() as conn:  # every engine that stopped cleanly took its row away
        assert conn.execute(sa.select(sa.func.count()).select_from(EngineBeat)).scalar_one() == 0
    db.dispose()
    assert os.path.exists(tmp_path / "alive.log")

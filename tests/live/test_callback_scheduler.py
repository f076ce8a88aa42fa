"""The call-back scheduler of `ivr serve` on a real database (SQLite) with a fake dialler and
queue board: the turn (a free agent, nobody ahead), the promise, opening hours, retries
after the pause, oldest place first, two engines, and a restart while a phone rang."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from ivr.asterisk.callback import OriginateOutcome
from ivr.engine.channel import CallbackRequest
from ivr.errors import AmiConnectionLost, AmiError, AmiRefused, ChannelError, StoreError
from ivr.live.callbacks import CallbackScheduler, QueueSnapshot, member_free
from ivr.settings.config import Department
from ivr.settings.hours import HolidayCalendar, Schedule
from ivr.store.callbacks import CallbackStore
from ivr.store.db import init_db
from ivr.store.models import Callback, CallbackAttempt

T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.timezone.utc)  # a Tuesday
SALES = Department("sales", "sales")
# open 08:00-18:00 UTC every day
OFFICE = Schedule("office", ZoneInfo("UTC"), tuple(((8 * 60, 18 * 60),) for _ in range(7)), HolidayCalendar())


class Clock:
    def __init__(self):
        self.at = T0

    def now(self):
        return self.at

    def elapsed(self):
        return (self.at - T0).total_seconds()

    def move(self, **delta):
        self.at += dt.timedelta(**delta)


class Dialler:
    """Answers each call-back with the next scripted result."""

    connected = True

    def __init__(self, *results):
        self.results = list(results)
        self.dialled = []

    async def call_back(self, number, queue, *, priority=None, action_id=None):
        self.dialled.append((number, queue, priority, action_id))
        result = self.results.pop(0) if self.results else "answered"
        if isinstance(result, BaseException):
            raise result
        reason = {"answered": "4", "busy": "5", "no answer": "3"}.get(result, "0")
        return OriginateOutcome(result, reason, f"1700.{len(self.dialled)}", f"Local/{number}@callee-{len(self.dialled)};1")


class Board:
    def __init__(self, free=0, waiting=()):
        self.free, self.waiting = free, tuple(waiting)

    async def snapshot(self, queue):
        return QueueSnapshot(self.free, self.waiting)


@pytest.fixture
def db(tmp_path):
    engine = init_db(f"sqlite:///{tmp_path / 'ivr.db'}")
    yield engine
    engine.dispose()


def scheduler(db, dialler, board, clock, owner="host-1"):
    return CallbackScheduler(CallbackStore(db, owner=owner), dialler, board, lambda: {"office": OFFICE},
                             ring_timeout=30, clock=clock)


def request(number="+48221234567", place=T0 - dt.timedelta(minutes=5), within=3600, attempts=3, pause=120.0,
            schedule="office"):
    return CallbackRequest(SALES, number, call_id=f"call-{number}", place_at=place, booked_at=T0,
                           due_by=T0 + dt.timedelta(seconds=within), schedule=schedule, attempts=attempts,
                           retry_pause=pause, priority=4)


def run(coro):
    return asyncio.run(coro)


async def settle(s: CallbackScheduler):
    """A pass, and the dials it started run to their end."""
    claims = await s.tick()
    while s._dials:
        await asyncio.gather(*list(s._dials))
    return claims


def stored(db):
    with db.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(Callback.__table__).order_by(Callback.id)).mappings()]
        tries = [dict(r) for r in conn.execute(sa.select(CallbackAttempt.__table__).order_by(CallbackAttempt.id)).mappings()]
    return rows, tries


def test_the_turn_comes_with_a_free_agent_and_nobody_ahead(db):
    clock, dialler = Clock(), Dialler()
    board = Board(free=0, waiting=[T0 - dt.timedelta(minutes=8)])  # joined before the place: ahead
    s = scheduler(db, dialler, board, clock)

    async def main():
        await s.book(request())
        assert await settle(s) == []  # no agent free
        board.free = 1
        assert await settle(s) == []  # an agent, but a caller who was ahead still waits
        board.waiting = (T0 - dt.timedelta(minutes=2),)  # only one who joined later
        [claim] = await settle(s)
        assert claim.reason == "turn"
        assert await settle(s) == []  # done: never dialled twice

    run(main())
    assert dialler.dialled == [("+48221234567", "sales", 4, "ivr-callback-1")]
    [row], [attempt] = stored(db)
    assert (row["status"], row["attempts"]) == ("done", 1)
    assert (attempt["reason"], attempt["result"], attempt["asterisk_reason"], attempt["uniqueid"]) == \
        ("turn", "answered", "4", "1700.1")


def test_the_promise_dials_without_a_free_agent_in_opening_hours_only(db):
    clock, dialler = Clock(), Dialler()
    s = scheduler(db, dialler, Board(free=0), clock)

    async def main():
        clock.at = T0.replace(hour=17, minute=30)
        await s.book(request(within=3600))  # due 18:30, after closing
        clock.move(minutes=59)
        assert await settle(s) == []  # not due yet, no agent
        clock.move(minutes=2)  # 18:31: due, but closed
        assert await settle(s) == []
        clock.at = (T0 + dt.timedelta(days=1)).replace(hour=7, minute=59)
        assert await settle(s) == []
        clock.move(minutes=1)  # 08:00 the next day: open
        [claim] = await settle(s)
        assert claim.reason == "due"

    run(main())
    assert len(dialler.dialled) == 1


def test_busy_is_retried_after_the_pause_then_fails(db):
    clock, dialler = Clock(), Dialler("busy", "no answer")
    s = scheduler(db, dialler, Board(free=1), clock)

    async def main():
        await s.book(request(attempts=2, pause=120))
        assert len(await settle(s)) == 1
        clock.move(seconds=119)
        assert await settle(s) == []  # the pause
        clock.move(seconds=1)
        assert len(await settle(s)) == 1
        clock.move(minutes=10)
        assert await settle(s) == []  # failed: no third try

    run(main())
    [row], tries = stored(db)
    assert (row["status"], row["attempts"]) == ("failed", 2)
    assert [(t["seq"], t["result"]) for t in tries] == [(1, "busy"), (2, "no answer")]


def test_the_oldest_place_goes_first_one_per_free_agent(db):
    clock, dialler = Clock(), Dialler()
    s = scheduler(db, dialler, Board(free=1), clock)

    async def main():
        await s.book(request("600000002", place=T0 - dt.timedelta(minutes=3)))
        await s.book(request("600000001", place=T0 - dt.timedelta(minutes=9)))
        [first] = await s.tick()  # the other waits: the one free agent is kept for this one
        assert first.number == "600000001"
        await asyncio.gather(*list(s._dials))
        [second] = await settle(s)
        assert second.number == "600000002"

    run(main())


def test_two_engines_dial_a_call_back_once(db):
    clock = Clock()
    dialled = [Dialler(), Dialler()]
    engines = [scheduler(db, d, Board(free=3), clock, owner=f"host-{i}") for i, d in enumerate(dialled)]

    async def main():
        await engines[0].book(request())
        await asyncio.gather(*(settle(e) for e in engines))

    run(main())
    assert sum(len(d.dialled) for d in dialled) == 1
    assert len(stored(db)[1]) == 1


def test_a_restart_while_the_phone_rings_closes_the_try_and_waits_the_pause(db):
    clock = Clock()

    class Ringing(Dialler):
        async def call_back(self, *args, **kwargs):
            self.dialled.append(args)
            await asyncio.sleep(3600)  # the engine is stopped while the phone rings

    first = scheduler(db, Ringing(), Board(free=1), clock)

    async def before():
        await first.book(request(pause=60))
        await first.tick()
        await asyncio.sleep(0)
        await first.close()  # stopped: the try is left to the next start

    run(before())
    assert stored(db)[0][0]["status"] == "dialling"
    dialler = Dialler()
    second = scheduler(db, dialler, Board(free=1), clock)

    async def after():
        await second.start()
        await second.close()  # only the start-up recovery: the phone may still ring, the try is left open
        assert stored(db)[1][0]["result"] is None
        clock.move(seconds=30 + 30 + 1)  # the ring time and the margin are over: it rings no more
        assert await settle(second) == []  # closed now, and never redialled at once
        assert stored(db)[1][0]["result"] == "interrupted"
        clock.move(seconds=59)
        assert await settle(second) == []  # not before the pause
        clock.move(seconds=1)
        assert len(await settle(second)) == 1

    run(after())
    [row], tries = stored(db)
    assert [(t["seq"], t["result"]) for t in tries] == [(1, "interrupted"), (2, "answered")]
    assert (row["status"], row["attempts"]) == ("done", 2)
    assert len(dialler.dialled) == 1


def test_a_lost_ami_connection_is_an_interrupted_try_and_no_dial_without_the_ami(db):
    clock, dialler = Clock(), Dialler(AmiConnectionLost("the AMI connection dropped"))
    s = scheduler(db, dialler, Board(free=1), clock)

    async def main():
        await s.book(request(pause=60))
        await settle(s)
        clock.move(seconds=60)
        dialler.connected = False
        assert await settle(s) == []  # nothing is claimed while the AMI is down

    run(main())
    [row], [attempt] = stored(db)
    assert (row["status"], attempt["result"]) == ("pending", "interrupted")
    assert "dropped" in attempt["detail"]


def test_a_member_is_free_only_when_it_could_take_a_call():
    now = T0
    free = {"Status": "1", "Paused": "0", "InCall": "0"}
    assert member_free(free, now)
    assert member_free({**free, "Status": "0"}, now)  # unknown: Asterisk's queue rings it too
    assert not member_free({**free, "Status": "2"}, now)  # in use
    assert not member_free({**free, "Status": "5"}, now)  # unavailable
    assert not member_free({**free, "Status": ""}, now)
    assert not member_free({**free, "Paused": "1"}, now)
    assert not member_free({**free, "InCall": "1"}, now)
    wrapping = {**free, "Wrapuptime": "10", "LastCall": str(now.timestamp() - 4)}
    assert not member_free(wrapping, now)
    assert member_free({**wrapping, "LastCall": str(now.timestamp() - 11)}, now)


def test_a_phone_that_rings_long_is_not_taken_for_lost_by_the_next_passes(db):
    clock = Clock()
    ring = asyncio.Event()

    class Rings(Dialler):
        async def call_back(self, number, queue, **kwargs):
            self.dialled.append(number)
            await ring.wait()  # the customer's phone rings; the scheduler passes meanwhile
            return OriginateOutcome("answered", "4", "1700.9", "Local/x;1")

    dialler = Rings()
    s = scheduler(db, dialler, Board(free=1), clock)

    async def main():
        await s.book(request())
        await s.tick()
        for _ in range(5):
            clock.move(seconds=5)
            assert await s.tick() == []
        ring.set()
        await asyncio.gather(*list(s._dials))

    run(main())
    [row], [attempt] = stored(db)
    assert (row["status"], attempt["result"], attempt["asterisk_reason"]) == ("done", "answered", "4")
    assert len(dialler.dialled) == 1


def test_the_live_board_is_read_when_fresh_and_queue_status_when_not():
    from ivr.asterisk.ami import QueueState
    from ivr.asterisk.queue_board import QueueSnapshot as BoardSnapshot
    from ivr.live.callbacks import LiveQueueBoard

    joined = T0 - dt.timedelta(minutes=1)

    class Board:
        fresh = True

        def snapshot(self, queue):
            return BoardSnapshot(queue, 1, 60.0, 2, 3, (joined,), self.fresh)

    class Client:
        board = Board()
        asked = 0

        async def queue_status(self, queue):
            Client.asked += 1
            return QueueState(queue, members=[{"Status": "1", "Paused": "0", "InCall": "0"}],
                              entries=[{"Wait": "30"}])

    clock = Clock()
    board = LiveQueueBoard(Client(), clock)
    assert run(board.snapshot("sales")) == QueueSnapshot(2, (joined,))
    assert Client.asked == 0  # no round trip
    Client.board.fresh = False  # the connection dropped: the board cannot vouch for itself
    assert run(board.snapshot("sales")) == QueueSnapshot(1, (T0 - dt.timedelta(seconds=30),))
    assert Client.asked == 1


def test_a_booking_the_database_does_not_answer_is_a_channel_error_in_time(db, caplog):
    release = threading.Event()

    class Hanging(CallbackStore):
        def book(self, booking):
            release.wait(10)  # a database that hangs (a lock held elsewhere, a dead server)
            return super().book(booking)

    s = CallbackScheduler(Hanging(db, owner="host-1"), Dialler(), Board(), lambda: {"office": OFFICE},
                          clock=Clock(), book_timeout=0.2)

    async def main():
        started = time.monotonic()
        with pytest.raises(ChannelError, match="not booked within"):
            await s.book(request())
        return time.monotonic() - started

    try:
        assert run(main()) < 2
    finally:
        release.set()
    assert [r.levelname for r in caplog.records if "not booked" in r.getMessage()] == ["ERROR"]


def test_a_booking_the_database_refuses_is_a_channel_error(db):
    class Refusing(CallbackStore):
        def book(self, booking):
            raise StoreError("call-backs in sqlite:///x: database is locked")

    s = CallbackScheduler(Refusing(db, owner="host-1"), Dialler(), Board(), lambda: {"office": OFFICE}, clock=Clock())
    with pytest.raises(ChannelError, match="database is locked"):
        run(s.book(request()))


def test_a_second_engine_on_the_same_host_leaves_the_first_ones_ringing_try_alone(db):
    clock = Clock()
    ring = asyncio.Event()

    class Rings(Dialler):
        async def call_back(self, number, queue, **kwargs):
            self.dialled.append(number)
            await ring.wait()
            return OriginateOutcome("answered", "4", "1700.9", "Local/x;1")

    first_dialler, second_dialler = Rings(), Dialler()
    # default owners: unique per process and store, so host names never decide
    first = CallbackScheduler(CallbackStore(db), first_dialler, Board(free=1), lambda: {"office": OFFICE},
                              ring_timeout=30, clock=clock)
    second = CallbackScheduler(CallbackStore(db), second_dialler, Board(free=1), lambda: {"office": OFFICE},
                               ring_timeout=30, clock=clock)

    async def main():
        await first.book(request())
        await first.tick()
        await asyncio.sleep(0)  # the phone rings
        clock.move(seconds=5)
        await second.start()  # a second `ivr serve` starts while it rings
        await second.close()
        assert stored(db)[1][0]["result"] is None
        clock.move(seconds=20)
        assert await settle(second) == []
        ring.set()  # answered within the ring time: the first engine finishes its own try
        await asyncio.gather(*list(first._dials))

    run(main())
    [row], [attempt] = stored(db)
    assert (row["status"], attempt["result"]) == ("done", "answered")
    assert len(first_dialler.dialled) == 1 and second_dialler.dialled == []


def test_many_due_at_once_are_dialled_a_few_at_a_time(db):
    clock = Clock()
    ring = asyncio.Event()

    class Rings(Dialler):
        async def call_back(self, number, queue, **kwargs):
            self.dialled.append(number)
            await ring.wait()
            return OriginateOutcome("no answer", "3")

    dialler = Rings()
    s = scheduler(db, dialler, Board(free=2), clock)

    async def main():
        for n in range(20):  # all promised for opening time
            await s.book(request(number=f"+4822123{n:04d}", within=60))
        clock.move(seconds=61)
        first = await s.tick()
        await asyncio.sleep(0)
        again = await s.tick()  # two still ring: nothing more
        ring.set()
        await asyncio.gather(*list(s._dials))
        return first, again

    first, again = run(main())
    assert len(first) == 2 and again == []
    assert len(dialler.dialled) == 2


def test_one_due_call_back_rings_at_a_time_without_a_free_agent(db):
    clock, dialler = Clock(), Dialler()
    s = scheduler(db, dialler, Board(free=0), clock)

    async def main():
        for n in range(3):
            await s.book(request(number=f"+4822123{n:04d}", within=60))
        clock.move(seconds=61)
        return await s.tick()

    assert len(run(main())) == 1


def test_recovery_and_expiry_run_every_half_minute_and_a_pass_only_reads(db):
    clock = Clock()
    s = scheduler(db, Dialler(), Board(free=0), clock)
    calls = []
    for name in ("recover", "expire", "claim"):
        real = getattr(s.store, name)
        setattr(s.store, name, lambda *a, _n=name, _f=real, **k: (calls.append(_n), _f(*a, **k))[1])
    statements = []
    sa.event.listen(db, "before_cursor_execute", lambda conn, cursor, sql, *a: statements.append(sql))

    async def main():
        await s.book(request())  # pending, not its turn (no free agent), not due
        await s.start()
        await s.close()
        for _ in range(10):  # 20 s of passes
            clock.move(seconds=2)
            statements.clear()
            await s.tick()
            # a pass without housekeeping only reads: no write lock, no write
            assert statements and "BEGIN IMMEDIATE" not in statements
            assert not any(sql.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE")) for sql in statements)
        assert calls == ["recover", "expire"]
        clock.move(seconds=10)
        await s.tick()
        assert calls == ["recover", "expire"] * 2

    run(main())


def test_a_refusal_is_told_by_its_type_not_its_words(db):
    clock = Clock()
    dialler = Dialler(AmiRefused("Extension does not exist."), AmiError("the answer was refused by a timer"))
    s = scheduler(db, dialler, Board(free=2), clock)

    async def main():
        await s.book(request(number="+48221230001", attempts=1))
        await s.book(request(number="+48221230002", attempts=2, pause=1))
        await settle(s)

    run(main())
    _, tries = stored(db)
    assert [t["result"] for t in tries] == ["failed", "interrupted"]


def test_an_interrupted_try_is_retried_only_once_it_cannot_ring(db):
    clock, dialler = Clock(), Dialler(AmiConnectionLost("the AMI connection dropped"))
    s = scheduler(db, dialler, Board(free=1), clock)

    async def main():
        await s.book(request(pause=10))  # the pause is shorter than the ring time
        await settle(s)
        clock.move(seconds=59)
        assert await settle(s) == []  # the phone may still ring: ring time 30 s + margin 30 s
        clock.move(seconds=1)
        assert len(await settle(s)) == 1

    run(main())
    _, tries = stored(db)
    assert [t["result"] for t in tries] == ["interrupted", "answered"]


def test_a_stop_waits_for_the_answer_of_a_try_ringing_then(db):
    # a restart (SIGTERM) while a customer's phone rings: the answer that comes within the
    # stop's wait is recorded, so the next start has nothing to take for lost and dial again
    class Slow(Dialler):
        async def call_back(self, number, queue, *, priority=None, action_id=None):
            await asyncio.sleep(0.3)
            return await super().call_back(number, queue, priority=priority, action_id=action_id)

    async def main():
        clock = Clock()
        s = CallbackScheduler(CallbackStore(db, "host-1"), Slow(), Board(free=1), lambda: {"office": OFFICE},
                              clock=clock, stop_wait=5.0)
        await s.book(request())
        [claim] = await s.tick()
        await s.close()
        return claim

    run(main())
    [row], tries = stored(db)
    assert row["status"] == "done" and [t["result"] for t in tries] == ["answered"], (row, tries)

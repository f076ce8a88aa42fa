"""The live queue board from recorded AMI event sequences: callers and members kept from
events, seeded and corrected by QueueStatus (a missed event heals; an event newer than
the QueueStatus request wins), not fresh while the connection is down or the last sync is
old; and over the AMI wire: the client seeds the board after login, refreshes it, and
marks it stale when the connection drops and fresh again after the reconnect."""

from __future__ import annotations

import asyncio
import logging
import datetime as dt

from fake_ami import FakeAmi
from ivr.asterisk.ami import AmiClient
from ivr.asterisk.queue_board import INUSE, NOT_INUSE, UNAVAILABLE, QueueBoard, device_free, device_logged_in
from ivr.clock import VirtualClock

T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.timezone.utc)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def params(queue: str = "sales") -> dict:
    return {"Event": "QueueParams", "Queue": queue, "Max": "0", "Strategy": "ringall", "Calls": "0"}


def member(interface: str, status: int = NOT_INUSE, paused: str = "0", in_call: str = "0", queue: str = "sales") -> dict:
    return {"Event": "QueueMember", "Queue": queue, "Name": interface.split("/")[-1], "Location": interface,
            "StateInterface": interface, "Status": str(status), "Paused": paused, "InCall": in_call}


def entry(uniqueid: str, wait: int, position: int = 1, queue: str = "sales") -> dict:
    return {"Event": "QueueEntry", "Queue": queue, "Position": str(position), "Uniqueid": uniqueid,
            "Channel": f"PJSIP/x-{uniqueid}", "Wait": str(wait)}


def join(uniqueid: str, queue: str = "sales", position: int = 1) -> dict:
    return {"Queue": queue, "Uniqueid": uniqueid, "Position": str(position), "Count": str(position)}


def member_event(interface: str, status: int, paused: str = "0", in_call: str = "0", queue: str = "sales") -> dict:
    return {"Queue": queue, "MemberName": interface.split("/")[-1], "Interface": interface,
            "StateInterface": interface, "Status": str(status), "Paused": paused, "InCall": in_call}


def seeded(clock: VirtualClock, *messages: dict) -> QueueBoard:
    board = QueueBoard(clock, max_age=45)
    board.apply_status([params(), *messages], board.begin_sync(), clock.now())
    return board


def test_device_states_that_are_free_and_logged_in():
    assert [s for s in range(9) if device_free(s)] == [0, 1]  # UNKNOWN, NOT_INUSE: Asterisk rings them
    assert [s for s in range(9) if not device_logged_in(s)] == [4, 5]  # INVALID, UNAVAILABLE


def test_callers_and_members_from_events():
    clock = VirtualClock(T0)
    board = seeded(clock, member("PJSIP/101"), member("PJSIP/102"))
    assert board.snapshot("sales") == board.snapshot("sales")
    first = board.snapshot("sales")
    assert (first.waiting, first.free_agents, first.logged_in, first.fresh, first.known) == (0, 2, 2, True, True)
    board.handle("QueueCallerJoin", join("1.1"), at(0))
    board.handle("QueueCallerJoin", join("1.2", position=2), at(10))
    board.handle("QueueMemberStatus", member_event("PJSIP/101", INUSE, in_call="1"), at(11))
    board.handle("QueueMemberPause", member_event("PJSIP/102", NOT_INUSE, paused="1"), at(12))
    clock.advance(30)
    snap = board.snapshot("sales")
    assert (snap.waiting, snap.longest_wait, snap.free_agents, snap.logged_in) == (2, 30.0, 0, 2)
    assert snap.waiting_since == (at(0), at(10))
    assert board.waiting("sales") == ["1.1", "1.2"]
    board.handle("QueueCallerAbandon", join("1.1"), at(31))
    board.handle("QueueCallerLeave", join("1.1"), at(31))  # Asterisk sends both: counted once
    board.handle("QueueMemberPause", member_event("PJSIP/102", NOT_INUSE, paused="0"), at(32))
    snap = board.snapshot("sales")
    assert (snap.waiting, snap.longest_wait, snap.free_agents) == (1, 20.0, 1)
    board.handle("QueueMemberStatus", member_event("PJSIP/102", UNAVAILABLE), at(33))
    board.handle("QueueMemberRemoved", member_event("PJSIP/101", INUSE), at(34))
    snap = board.snapshot("sales")
    assert (snap.free_agents, snap.logged_in) == (0, 0)
    board.handle("QueueMemberAdded", member_event("Local/201@agents/n", NOT_INUSE), at(35))
    assert board.snapshot("sales").free_agents == 1
    # an agent answering a queue caller is in a call until AgentComplete
    board.handle("AgentConnect", {"Queue": "sales", "Uniqueid": "1.2", "Interface": "Local/201@agents/n"}, at(36))
    assert board.snapshot("sales").free_agents == 0
    board.handle("AgentComplete", {"Queue": "sales", "Uniqueid": "1.2", "Interface": "Local/201@agents/n"}, at(40))
    assert board.snapshot("sales").free_agents == 1


def test_an_unknown_queue_has_nobody_and_says_so():
    board = seeded(VirtualClock(T0))
    snap = board.snapshot("nosuch")
    assert (snap.waiting, snap.free_agents, snap.known, snap.fresh) == (0, 0, False, True)


def test_a_missed_join_and_a_missed_leave_heal_at_the_refresh():
    clock = VirtualClock(T0)
    board = seeded(clock, member("PJSIP/101", INUSE, in_call="1"))
    board.handle("QueueCallerJoin", join("1.1"), at(0))
    clock.advance(15)
    # 1.1 left and 1.2 joined while their events were lost; QueueStatus says so
    board.apply_status([params(), member("PJSIP/101", INUSE, in_call="1"), entry("1.2", wait=7)],
                       board.begin_sync(), clock.now())
    snap = board.snapshot("sales")
    assert board.waiting("sales") == ["1.2"]
    assert snap.waiting_since == (at(8),)  # now minus the Wait Asterisk reports
    assert board.healed == 2


def test_a_missed_member_event_heals_at_the_refresh():
    clock = VirtualClock(T0)
    board = seeded(clock, member("PJSIP/101"), member("PJSIP/102"))
    # PJSIP/101 went on a call and PJSIP/102 logged off, unseen
    board.apply_status([params(), member("PJSIP/101", INUSE, in_call="1")], board.begin_sync(), clock.now())
    snap = board.snapshot("sales")
    assert (snap.free_agents, snap.logged_in) == (0, 1)
    assert board.healed == 2


def test_events_after_the_request_win_over_the_answer():
    clock = VirtualClock(T0)
    board = seeded(clock, member("PJSIP/101"))
    board.handle("QueueCallerJoin", join("1.1"), at(0))
    token = board.begin_sync()  # QueueStatus sent now; while it is on its way:
    board.handle("QueueCallerLeave", join("1.1"), at(1))  # 1.1 leaves
    board.handle("QueueCallerJoin", join("1.2"), at(1))  # 1.2 joins
    board.handle("QueueMemberStatus", member_event("PJSIP/101", INUSE, in_call="1"), at(1))
    # the answer was made before those events: 1.1 still waiting, 1.2 not yet, 101 free
    board.apply_status([params(), member("PJSIP/101"), entry("1.1", wait=1)], token, at(1))
    snap = board.snapshot("sales")
    assert board.waiting("sales") == ["1.2"]
    assert snap.free_agents == 0
    # the next answer is newer than all of them: it is the truth again
    board.apply_status([params(), member("PJSIP/101"), entry("1.2", wait=3)], board.begin_sync(), at(4))
    assert board.waiting("sales") == ["1.2"] and board.snapshot("sales").free_agents == 1


def test_a_queue_asterisk_no_longer_has_is_dropped():
    clock = VirtualClock(T0)
    board = QueueBoard(clock)
    board.apply_status([params("sales"), params("old"), entry("1.1", 3, queue="old")], board.begin_sync(), clock.now())
    assert board.queues() == ["old", "sales"]
    board.apply_status([params("sales")], board.begin_sync(), clock.now())
    assert board.queues() == ["sales"]


def test_not_fresh_before_the_first_sync_while_down_and_when_old():
    clock = VirtualClock(T0)
    board = QueueBoard(clock, max_age=45)
    board.handle("QueueCallerJoin", join("1.1"), at(0))
    assert board.snapshot("sales").fresh is False  # events alone: the board was never seeded
    board.apply_status([params(), entry("1.1", 0)], board.begin_sync(), clock.now())
    assert board.snapshot("sales").fresh is True
    board.connection_lost()
    assert board.snapshot("sales").fresh is False
    board.apply_status([params(), entry("1.1", 5)], board.begin_sync(), clock.now())  # the re-sync
    assert board.fresh is True
    clock.advance(46)  # no refresh for longer than max_age
    assert board.fresh is False


def test_a_reconnect_replaces_what_happened_while_down():
    clock = VirtualClock(T0)
    board = seeded(clock, member("PJSIP/101", INUSE, in_call="1"))
    for i in range(3):
        board.handle("QueueCallerJoin", join(f"1.{i}", position=i + 1), at(i))
    board.connection_lost()
    clock.advance(60)  # down for a minute: two were answered, one more joined
    board.apply_status([params(), member("PJSIP/101", INUSE, in_call="1"), entry("1.2", 58), entry("1.9", 20, 2)],
                       board.begin_sync(), clock.now())
    snap = board.snapshot("sales")
    assert board.waiting("sales") == ["1.2", "1.9"]
    assert snap.waiting_since == (at(2), at(40))  # 1.2 keeps the time its join event gave
    assert snap.fresh


# --- over the AMI wire ---------------------------------------------------------------------------
async def _until(predicate, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "waited in vain"
        await asyncio.sleep(0.01)


def test_the_client_seeds_refreshes_and_keeps_the_board_from_events():
    async def main():
        fake = FakeAmi(queue_entries=[{"Queue": "sales", "Position": "1", "Uniqueid": "1.1", "Wait": "12",
                                       "Channel": "PJSIP/1-1"}])
        await fake.start()
        client = AmiClient("127.0.0.1", fake.port, "ivr", fake.secret, queue_refresh=0.2)
        await client.start()
        try:
            board = client.board
            snap = board.snapshot("sales")
            assert (snap.waiting, snap.free_agents, snap.logged_in, snap.fresh) == (1, 1, 1, True)
            assert 11.0 <= snap.longest_wait < 14.0
            fake.push("QueueCallerJoin", Queue="sales", Uniqueid="1.2", Position="2", Count="2")
            fake.push("QueueMemberStatus", Queue="sales", MemberName="Agent 101", Interface="PJSIP/101",
                      Status="2", Paused="0", InCall="1")
            await _until(lambda: board.snapshot("sales").waiting == 2 and board.snapshot("sales").free_agents == 0)
            # Asterisk's state moves on without an event the client sees: the refresh heals it
            fake.queue_entries = []
            fake.queue_members = [{"Queue": "sales", "Name": "Agent 101", "Location": "PJSIP/101", "Status": "1",
                                   "Paused": "0", "InCall": "0"}]
            await _until(lambda: board.snapshot("sales").waiting == 0 and board.snapshot("sales").free_agents == 1)
            assert fake.count("QueueStatus") >= 2 and board.healed >= 2
        finally:
            await client.close()
        assert client.board.fresh is False  # closed: nobody keeps it now
        await fake.close()

    asyncio.run(main())


def test_a_dropped_connection_makes_the_board_stale_until_the_resync():
    async def main():
        fake = FakeAmi()
        await fake.start()
        client = AmiClient("127.0.0.1", fake.port, "ivr", fake.secret, backoff_base=0.05, backoff_cap=0.1)
        await client.start()
        try:
            assert client.board.fresh
            fake.queue_entries = [{"Queue": "sales", "Position": "1", "Uniqueid": "1.5", "Wait": "3"}]
            fake.drop()
            await _until(lambda: not client.board.fresh)
            await _until(lambda: client.connected and client.board.fresh)
            assert client.board.waiting("sales") == ["1.5"]  # joined while the connection was down
        finally:
            await client.close()
            await fake.close()

    asyncio.run(main())


def test_a_bug_in_one_refresh_is_logged_and_the_refresher_goes_on(caplog):
    """Not only AmiError: anything a refresh raises is logged, and the next refresh still comes
    (else the board would stay stale for good and overflow would be off without a word)."""
    async def main():
        fake = FakeAmi()
        await fake.start()
        client = AmiClient("127.0.0.1", fake.port, "ivr", fake.secret, queue_refresh=0.05)
        await client.start()
        broken = [True]
        apply_status = client.board.apply_status

        def once_broken(*args, **kwargs):
            if broken[0]:
                broken[0] = False
                raise RuntimeError("bug in the board")
            return apply_status(*args, **kwargs)

        client.board.apply_status = once_broken
        try:
            await _until(lambda: not broken[0])
            after_bug = fake.count("QueueStatus")
            await _until(lambda: fake.count("QueueStatus") >= after_bug + 2)
        finally:
            await client.close()
            await fake.close()

    with caplog.at_level(logging.ERROR, logger="ivr.asterisk.ami"):
        asyncio.run(main())
    [logged] = [r for r in caplog.records if "queue refresh broke" in r.getMessage()]
    assert logged.exc_info is not None


def test_a_member_in_its_wrap_up_time_is_not_free_on_the_board_nor_for_the_call_backs():
    """One rule for both: the board's count and the call-back scheduler's `member_free`."""
    from ivr.live.callbacks import member_free

    clock = VirtualClock(T0)
    wrapping = {**member("PJSIP/101"), "Wrapuptime": "10", "LastCall": str(int(T0.timestamp()) - 4)}
    board = seeded(clock, wrapping, member("PJSIP/102"))
    snap = board.snapshot("sales")
    assert (snap.free_agents, snap.logged_in) == (1, 2)  # 101 is wrapping up: logged in, not free
    assert not member_free(wrapping, clock.now()) and member_free(member("PJSIP/102"), clock.now())
    clock.advance(7)  # past LastCall + Wrapuptime
    assert board.snapshot("sales").free_agents == 2 and member_free(wrapping, clock.now())
    # a member event that does not repeat the wrap-up keeps it
    board.handle("QueueMemberPause", {**member_event("PJSIP/101", NOT_INUSE), "LastCall": str(int(clock.now().timestamp()))},
                 clock.now())
    assert board.snapshot("sales").free_agents == 1
    garbage = {**member("PJSIP/103"), "Status": "x"}
    assert not member_free(garbage, clock.now())
    assert seeded(clock, garbage).snapshot("sales").free_agents == 0

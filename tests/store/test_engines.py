"""Engines on one database (SQLite and PostgreSQL): each call row names its engine; the open
calls of an engine that died (heartbeat stale, or its process gone on this machine) are
closed as interrupted at their last event, once, by one engine; a live engine's calls are
never touched; calls of no engine are closed only by an engine that is alone."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading

import sqlalchemy as sa

from ivr import events as ev
from ivr.store.db import create_db_engine
from ivr.store.engines import STALE, EngineRegistry, this_machine
from ivr.store.models import Call, CallEvent, EngineBeat
from ivr.store.writer import CallWriter

T0 = dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.timezone.utc)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def open_call(writer: CallWriter, call_id: str, node: str = "sales", t: float = 12.5) -> None:
    """A live call that reached a transfer node and waits there: no outcome yet."""
    events = [(ev.CALL_STARTED, None, 0.0, {"caller": "48221234567", "language": "pl", "version": "v1",
                                             "at": T0.isoformat(), "uniqueid": call_id, "source": "live"}),
              (ev.NODE_ENTERED, "main_menu", 3.0, {"node_type": "menu", "via": "start"}),
              (ev.KEY, "main_menu", 9.0, {"key": "1"}),
              (ev.NODE_ENTERED, node, 9.0, {"node_type": "transfer", "via": "1"}),
              (ev.TRANSFER, node, t, {"department": "sales", "queue": "sales", "priority": 0})]
    for seq, (kind, where, when, data) in enumerate(events):
        writer.submit(ev.Event(call_id, seq, when, kind, "main", where, data))


def finished_call(writer: CallWriter, call_id: str) -> None:
    open_call(writer, call_id)
    writer.submit(ev.Event(call_id, 5, 20.0, ev.OUTCOME, "main", "sales",
                           {"outcome": "answered", "department": "sales", "survey": None, "duration": 20.0}))


def calls(db) -> dict[str, dict]:
    with db.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(sa.select(Call.__table__)).mappings()}


def events_of(db, call_id: str) -> list[dict]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(CallEvent.__table__).where(CallEvent.call_id == call_id)
                            .order_by(CallEvent.seq)).mappings().all()
    return [CallEvent(**r).to_dict() for r in rows]


def engines(db) -> set[str]:
    with db.connect() as conn:
        return set(conn.execute(sa.select(EngineBeat.id)).scalars())


def write(db, owner: str, *open_ids: str, finished: tuple[str, ...] = ()) -> None:
    with CallWriter(db, owner=owner) as writer:
        for call_id in open_ids:
            open_call(writer, call_id)
        for call_id in finished:
            finished_call(writer, call_id)
        assert writer.flush()


def test_a_dead_engines_open_calls_are_closed_at_their_last_event_and_a_live_ones_untouched(db):
    dead, live, me = (EngineRegistry(db, f"other-host:{n}:abc") for n in (101, 102, 103))
    for registry in (dead, live, me):
        registry.machine = "other-host|boot|pid:[1]"  # another machine: only the heartbeat tells
        registry.register(at(0))
    me.machine = this_machine()
    write(db, dead.id, "d1", "d2", finished=("d3",))
    write(db, live.id, "l1")
    live.beat(at(STALE + 5))
    me.beat(at(STALE + 5))
    assert calls(db)["d1"]["engine_id"] == dead.id and calls(db)["l1"]["engine_id"] == live.id

    assert me.repair(at(STALE - 1)) == []  # not stale yet: nothing is touched
    [repaired] = me.repair(at(STALE + 5))
    assert (repaired.engine, repaired.calls, repaired.last_seen) == (dead.id, 2, at(0))

    rows = calls(db)
    for call_id in ("d1", "d2"):
        assert rows[call_id]["outcome"] == "interrupted"
        assert rows[call_id]["duration"] == 12.5  # its last event: the transfer at 12.5 s
        assert rows[call_id]["ended_at"] == T0 + dt.timedelta(seconds=12.5)
        told = events_of(db, call_id)
        assert [e["type"] for e in told][-3:] == [ev.TRANSFER, ev.INTERRUPTED, ev.OUTCOME]
        interrupted, outcome = told[-2:]
        assert (interrupted["node"], interrupted["t"], interrupted["engine"]) == ("sales", 12.5, dead.id)
        assert "killed or crashed" in interrupted["reason"]
        assert outcome["outcome"] == "interrupted" and outcome["department"] == "sales"
        assert [e["seq"] for e in told] == list(range(len(told)))
        for event in told[-2:]:
            declared = ev.TYPES[event["type"]]
            payload = set(event) - {"call", "seq", "t", "type", "flow", "node"}
            assert set(declared.required) <= payload <= declared.payload
    assert rows["d3"]["outcome"] == "answered"  # ended: untouched
    assert rows["l1"]["outcome"] is None  # a live engine's call in progress: untouched
    assert engines(db) == {live.id, me.id}
    assert me.repair(at(STALE + 6)) == []  # once only


def test_an_engine_gone_from_this_machine_is_repaired_at_once_without_waiting_for_its_heartbeat(db):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    gone = EngineRegistry(db, f"here:{process.pid}:abc")
    gone.register(at(0))
    with db.begin() as conn:  # its pid is the pid of a process that has exited
        conn.execute(sa.update(EngineBeat).where(EngineBeat.id == gone.id).values(pid=process.pid))
    alive_here = EngineRegistry(db, "here:1:abc")  # pid 1 lives as long as the machine
    alive_here.register(at(0))
    with db.begin() as conn:
        conn.execute(sa.update(EngineBeat).where(EngineBeat.id == alive_here.id).values(pid=1))
    write(db, gone.id, "g1")
    write(db, alive_here.id, "a1")
    me = EngineRegistry(db)
    me.register(at(1))
    [repaired] = me.repair(at(1))  # a second after: its heartbeat is fresh, its process is not there
    assert repaired.engine == gone.id and repaired.calls == 1
    assert calls(db)["g1"]["outcome"] == "interrupted" and calls(db)["a1"]["outcome"] is None
    assert os.getpid() != process.pid


def test_calls_of_no_engine_are_closed_only_by_an_engine_that_is_alone(db):
    write(db, None, "old1")  # written by a version that named no engine
    me, other = EngineRegistry(db, "m:1:a"), EngineRegistry(db, "o:2:b")
    other.machine = "elsewhere"
    me.register(at(0))
    other.register(at(0))
    assert me.repair(at(1)) == []
    assert calls(db)["old1"]["outcome"] is None
    other.unregister()
    [repaired] = me.repair(at(2))
    assert repaired.engine is None and repaired.calls == 1
    assert calls(db)["old1"]["outcome"] == "interrupted"


def test_a_beat_makes_a_row_taken_away_again(db):
    me = EngineRegistry(db, "m:1:a")
    me.register(at(0))
    assert me.beat(at(5)) is True
    me.unregister()
    assert me.beat(at(10)) is False and engines(db) == {me.id}


def test_two_engines_repairing_at_once_close_each_call_once(db_url, db):
    dead = EngineRegistry(db, "dead:9:z")
    dead.machine = "elsewhere"
    dead.register(at(0))
    write(db, dead.id, *(f"c{i}" for i in range(20)))
    pools = [create_db_engine(db_url) for _ in range(4)]
    start = threading.Barrier(len(pools))
    found: list = []
    errors: list = []

    def repairer(pool) -> None:
        try:
            registry = EngineRegistry(pool, f"r:{id(pool)}:x")
            registry.register(at(STALE + 1))
            start.wait()
            found.extend(registry.repair(at(STALE + 1)))
        except BaseException as exc:  # noqa: BLE001 - a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=repairer, args=(p,)) for p in pools]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for pool in pools:
        pool.dispose()
    assert errors == []
    assert [r.calls for r in found if r.engine == dead.id] == [20]
    for i in range(20):
        assert [e["type"] for e in events_of(db, f"c{i}")].count(ev.INTERRUPTED) == 1

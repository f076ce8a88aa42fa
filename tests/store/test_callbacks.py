"""Pending call-backs in the database, on SQLite and PostgreSQL: booking, claiming (two
engines, one wins), results and retries after the pause, recovery after a crash, expiry,
cancelling, and what the QA pages read."""

from __future__ import annotations

import datetime as dt
import os
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ivr.errors import StoreError
from ivr.store import callbacks as cb
from ivr.store.callbacks import Booking, CallbackStore
from ivr.store.db import create_db_engine
from ivr.store.models import Callback, CallbackAttempt

T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.timezone.utc)


def booking(call_id: str = "call-1", *, place: float = 0, number: str = "+48221234567", attempts: int = 3,
            pause: float = 60.0) -> Booking:
    return Booking(call_id=call_id, number=number, department="sales", queue="sales",
                   place_at=T0 + dt.timedelta(seconds=place), booked_at=T0 + dt.timedelta(minutes=5),
                   due_by=T0 + dt.timedelta(minutes=65), schedule="office", max_attempts=attempts, retry_pause=pause)


def row(db, callback_id: int) -> dict:
    with db.connect() as conn:
        return dict(conn.execute(sa.select(Callback.__table__).where(Callback.id == callback_id)).mappings().one())


def tries(db, callback_id: int) -> list[dict]:
    with db.connect() as conn:
        query = sa.select(CallbackAttempt.__table__).where(CallbackAttempt.callback_id == callback_id)
        return [dict(r) for r in conn.execute(query.order_by(CallbackAttempt.seq)).mappings()]


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_a_booking_is_pending_oldest_place_first(db):
    store = CallbackStore(db, owner="engine-a")
    later = store.book(booking("call-2", place=30))
    earlier = store.book(booking("call-1", place=10))
    assert [p.id for p in store.pending(at(5))] == [earlier, later]
    assert store.pending(at(4)) == []  # not before it was booked
    stored = row(db, earlier)
    assert (stored["status"], stored["attempts"], stored["number"], stored["place_at"]) == \
        ("pending", 0, "+48221234567", T0 + dt.timedelta(seconds=10))


@pytest.mark.parametrize("number", ["", "12", "48 22 123", "4822;Local/1", "+48\n22", "1" * 21, "abc123"])
def test_a_number_that_is_no_number_is_refused(db, number):
    with pytest.raises(StoreError, match="not 3 to 20 digits"):
        CallbackStore(db).book(booking(number=number))


def test_answered_is_done_with_its_attempt(db):
    store = CallbackStore(db, owner="engine-a")
    callback_id = store.book(booking())
    claim = store.claim(callback_id, "turn", at(6))
    assert claim is not None and (claim.seq, claim.number, claim.queue, claim.reason) == (1, "+48221234567", "sales", "turn")
    assert row(db, callback_id)["status"] == "dialling"
    assert store.claim(callback_id, "turn", at(6)) is None  # ringing: nobody claims it again
    assert store.finish(claim.attempt_id, cb.ANSWERED, at(6.5), asterisk_reason="4", uniqueid="1700.5",
                        channel="Local/48221234567@testbed-callee-00000001;1") == "done"
    [attempt] = tries(db, callback_id)
    assert (attempt["result"], attempt["asterisk_reason"], attempt["uniqueid"], attempt["owner"], attempt["ended_at"]) == \
        ("answered", "4", "1700.5", "engine-a", at(6.5))
    stored = row(db, callback_id)
    assert (stored["status"], stored["attempts"], stored["finished_at"]) == ("done", 1, at(6.5))
    assert store.pending(at(100)) == []


def test_not_answered_is_retried_after_the_pause_then_failed(db):
    store = CallbackStore(db)
    callback_id = store.book(booking(attempts=2, pause=120))
    first = store.claim(callback_id, "due", at(6))
    assert store.finish(first.attempt_id, cb.BUSY, at(6.1), asterisk_reason="5") == "pending"
    assert store.pending(at(8.0)) == []  # the pause: 2 minutes from the end of the try
    assert store.claim(callback_id, "due", at(8.0)) is None
    assert [p.id for p in store.pending(at(8.1))] == [callback_id]
    second = store.claim(callback_id, "due", at(8.1))
    assert second.seq == 2
    assert store.finish(second.attempt_id, cb.NO_ANSWER, at(8.6), asterisk_reason="3") == "failed"
    stored = row(db, callback_id)
    assert (stored["status"], stored["attempts"]) == ("failed", 2)
    assert stored["note"] == "not answered in 2 tries; the last: no answer"
    assert [(t["seq"], t["result"]) for t in tries(db, callback_id)] == [(1, "busy"), (2, "no answer")]


def test_two_engines_claim_one_try_and_only_one_wins(db_url, db):
    callback_id = CallbackStore(db).book(booking())
    engines = [create_db_engine(db_url) for _ in range(4)]
    start = threading.Barrier(len(engines))
    won: list = []
    errors: list = []

    def claimer(engine) -> None:
        try:
            store = CallbackStore(engine, owner=f"engine-{id(engine)}")
            start.wait()
            claim = store.claim(callback_id, "turn", at(6))
            if claim is not None:
                won.append(claim)
        except BaseException as exc:  # noqa: BLE001 - a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert len(won) == 1
    assert len(tries(db, callback_id)) == 1 and row(db, callback_id)["attempts"] == 1


def test_a_restart_closes_the_ringing_try_as_interrupted_and_waits_the_pause(db):
    before = CallbackStore(db, owner="host-1")
    callback_id = before.book(booking(pause=60))
    claim = before.claim(callback_id, "turn", at(6))
    # the engine is killed while the phone rings; the next one closes the try once it cannot ring
    after = CallbackStore(db, owner="host-1")
    assert after.recover(at(7), stale_before=at(6)) == 0  # begun at 6: it may still ring
    assert after.recover(at(7), stale_before=at(6.5)) == 1
    assert after.recover(at(7), stale_before=at(6.5)) == 0  # closed once
    [attempt] = tries(db, callback_id)
    assert (attempt["result"], attempt["ended_at"]) == ("interrupted", at(7))
    stored = row(db, callback_id)
    assert (stored["status"], stored["attempts"], stored["next_at"]) == ("pending", 1, at(8))
    assert after.pending(at(7.5)) == []  # never redialled at once
    assert [p.id for p in after.pending(at(8))] == [callback_id]
    # the old engine's answer, had it come late, would not count the try twice
    assert before.finish(claim.attempt_id, cb.NO_ANSWER, at(7.2)) == "pending"
    assert len(tries(db, callback_id)) == 1


def test_any_engines_try_is_closed_only_when_stale_whatever_its_owner(db):
    other = CallbackStore(db, owner="host-1")
    callback_id = other.book(booking())
    other.claim(callback_id, "turn", at(6))
    me = CallbackStore(db, owner="host-1")  # the same name: owners play no part
    assert me.recover(at(6.2), stale_before=at(5.5)) == 0  # it may still ring
    assert tries(db, callback_id)[0]["result"] is None
    assert me.recover(at(8), stale_before=at(7)) == 1
    assert tries(db, callback_id)[0]["result"] == "interrupted"


def test_an_answer_after_an_interruption_still_counts(db):
    store = CallbackStore(db, owner="host-1")
    callback_id = store.book(booking())
    claim = store.claim(callback_id, "turn", at(6))
    CallbackStore(db, owner="host-2").recover(at(9), stale_before=at(8))
    assert store.finish(claim.attempt_id, cb.ANSWERED, at(9.1), asterisk_reason="4") == "done"
    assert row(db, callback_id)["status"] == "done"


def test_the_last_try_interrupted_fails_the_call_back(db):
    store = CallbackStore(db, owner="host-1")
    callback_id = store.book(booking(attempts=1))
    store.claim(callback_id, "due", at(66))
    store.recover(at(67), stale_before=at(67))
    assert row(db, callback_id)["status"] == "failed"


def test_expire_and_cancel(db):
    store = CallbackStore(db)
    old = store.book(booking("call-1"))
    kept = store.book(booking("call-2"))
    assert store.cancel(kept, "anna", at(10))
    assert not store.cancel(kept, "anna", at(11))  # once
    assert store.expire(at(65 + 60 * 24), dt.timedelta(hours=24)) == 0
    assert store.expire(at(66 + 60 * 24), dt.timedelta(hours=24)) == 1
    assert (row(db, old)["status"], row(db, old)["note"]) == ("expired", "not dialled within 24 h of the promised time")
    assert (row(db, kept)["status"], row(db, kept)["note"]) == ("cancelled", "cancelled by anna")


def test_what_the_qa_pages_read(db):
    store = CallbackStore(db)
    done = store.book(booking("call-1", place=1))
    store.finish(store.claim(done, "turn", at(6)).attempt_id, cb.ANSWERED, at(7))
    store.book(booking("call-2", place=3))
    store.book(booking("call-3", place=2))
    with Session(db) as session:
        [mine] = cb.of_call(session, "call-1")
        assert mine.status == "done" and [t.result for t in mine.tries] == ["answered"]
        assert cb.counts(session, T0, at(60 * 24)) == {"pending": 2, "dialling": 0, "done": 1, "failed": 0,
                                                         "expired": 0, "cancelled": 0}
        assert cb.counts(session, at(60 * 24), at(60 * 48))["pending"] == 0
        assert [c.call_id for c in cb.open_ones(session)] == ["call-3", "call-2"]


def test_each_store_names_its_own_process():
    one, two = CallbackStore(None), CallbackStore(None)  # type: ignore[arg-type] - never connected
    host, pid, _ = one.owner.split(":")
    assert one.owner != two.owner and pid == str(os.getpid()) and host


def test_pending_reads_at_most_the_limit_oldest_place_first(db):
    store = CallbackStore(db, owner="host-1")
    ids = [store.book(booking(f"call-{n}", place=-n)) for n in range(5)]
    assert [p.id for p in store.pending(at(6), limit=2)] == [ids[4], ids[3]]

"""The CRM webhook's outbox on SQLite and PostgreSQL: a row per ended call, in the transaction
of its end (also from the spool, and from the repair of a dead engine's calls), never two;
none without a webhook; claims that two deliverers share without taking a row twice; the
lease; the back-off's bounds."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import sqlalchemy as sa

from ivr.live.webhook import backoff, signature
from ivr.store import outbox
from ivr.store.db import init_db
from ivr.store.engines import EngineRegistry
from ivr.store.models import Call, WebhookDelivery
from ivr.store.writer import CallWriter
from test_engines import finished_call, open_call

T0 = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.timezone.utc)


def queued(db) -> dict[str, dict]:
    with db.connect() as conn:
        return {r["call_id"]: dict(r) for r in conn.execute(sa.select(WebhookDelivery.__table__)).mappings()}


def test_each_ended_call_is_queued_once_in_its_ends_transaction_and_an_open_one_not(db):
    with CallWriter(db, outbox=True) as writer:
        finished_call(writer, "c1")
        open_call(writer, "c2")
        assert writer.flush()
        rows = queued(db)
        assert set(rows) == {"c1"}
        first = rows["c1"]
        assert first["attempts"] == 0 and first["delivered_at"] is None and len(first["delivery_id"]) == 32
        # the same call ended again (a late outcome, a replayed batch): still one row, the same delivery
        finished_call(writer, "c1")
        assert writer.flush()
    assert queued(db) == {"c1": first}


def test_without_a_webhook_nothing_is_queued(db):
    with CallWriter(db) as writer:
        finished_call(writer, "c1")
        assert writer.flush()
    assert queued(db) == {}


def test_calls_written_back_from_the_spool_are_queued_too(tmp_path):
    folder = tmp_path / "not-yet"
    url = f"sqlite:///{folder / 'ivr.db'}"
    spool = tmp_path / "spool"
    writer = CallWriter(url, spool_dir=spool, retry_min=0.05, retry_max=0.1, outbox=True)
    finished_call(writer, "s1")
    finished_call(writer, "s2")
    assert not writer.flush(0.5)  # the database is away: into the spool
    writer.close(1)
    assert any(spool.iterdir())
    engine = init_db(url)
    with CallWriter(url, spool_dir=spool, outbox=True) as later:  # the next engine writes the spool back
        assert later.flush(20)
    assert set(queued(engine)) == {"s1", "s2"}
    engine.dispose()


def test_a_repaired_call_is_queued_once_even_when_its_engine_ends_it_after(db):
    with CallWriter(db, owner="dead-host:1:x", outbox=True) as writer:
        open_call(writer, "r1")
        assert writer.flush()
    dead = EngineRegistry(db, "dead-host:1:x", stale=1)
    dead.register(T0)
    me = EngineRegistry(db, "me:2:y", stale=1, outbox=True)
    me.register(T0 + dt.timedelta(seconds=60))
    assert [r.calls for r in me.repair(T0 + dt.timedelta(seconds=60))] == [1]
    rows = queued(db)
    assert set(rows) == {"r1"}
    with CallWriter(db, owner="dead-host:1:x", outbox=True) as writer:  # it was not dead after all
        finished_call(writer, "r1")
        assert writer.flush()
    assert queued(db) == rows


def _ended(db, n: int) -> list[str]:
    ids = [f"k{i:02d}" for i in range(n)]
    with db.begin() as conn:
        conn.execute(sa.insert(Call.__table__), [{"id": i, "flow": "main", "started_at": T0, "outcome": "answered"}
                                                  for i in ids])
        outbox.queue_ended(conn, ids, T0)
    return ids


def test_two_deliverers_claiming_at_once_never_take_the_same_call(db):
    ids = _ended(db, 40)
    taken: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def deliverer(n: int) -> None:
        start.wait()
        while rows := outbox.claim(db, 3, 60, T0 + dt.timedelta(seconds=1)):
            taken[n] += [r.call_id for r in rows]

    threads = [threading.Thread(target=deliverer, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(taken[0] + taken[1]) == ids  # each once, none twice


# PostgreSQL only: SQLite's claim is one writer at a time (BEGIN IMMEDIATE), nothing to skip
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_claim_on_postgresql_skips_the_rows_another_is_claiming_without_waiting(db):
    ids = _ended(db, 10)
    with db.connect() as other, other.begin():  # another engine, in the middle of its claim
        held = other.execute(sa.text("SELECT call_id FROM webhook_deliveries ORDER BY next_at, id LIMIT 4 "
                                     "FOR UPDATE SKIP LOCKED")).scalars().all()
        began = time.monotonic()
        rows = outbox.claim(db, 10, 60, T0 + dt.timedelta(seconds=1))
        waited = time.monotonic() - began
    assert held == ids[:4] and [r.call_id for r in rows] == ids[4:]
    assert waited < 1.0  # no wait for the other's locks (the lock timeout is 5 s)


def test_a_lease_keeps_a_row_from_others_until_it_runs_out_and_a_failure_waits_for_its_time(db):
    _ended(db, 1)
    now = T0 + dt.timedelta(seconds=1)
    [row] = outbox.claim(db, 10, 30, now)
    assert outbox.claim(db, 10, 30, now + dt.timedelta(seconds=29)) == []  # leased
    [again] = outbox.claim(db, 10, 30, now + dt.timedelta(seconds=31))  # its deliverer died: another takes it
    assert again.delivery_id == row.delivery_id
    outbox.failed(db, again, 503, "HTTP 503", now + dt.timedelta(seconds=100))
    assert outbox.claim(db, 10, 30, now + dt.timedelta(seconds=99)) == []
    [third] = outbox.claim(db, 10, 30, now + dt.timedelta(seconds=101))
    assert third.attempts == 1
    outbox.delivered(db, third, 204)
    assert outbox.claim(db, 10, 30, now + dt.timedelta(days=1)) == [] and outbox.backlog(db) == 0
    stored = queued(db)["k00"]
    assert stored["attempts"] == 2 and stored["last_status"] == 204 and stored["last_error"] is None


def test_the_back_off_doubles_with_jitter_up_to_its_cap():
    assert [backoff(n, 5, 300, rand=lambda: 1.0) for n in (1, 2, 3, 4, 7, 8, 20)] == [5, 10, 20, 40, 300, 300, 300]
    assert [backoff(n, 5, 300, rand=lambda: 0.0) for n in (1, 2, 8)] == [2.5, 5, 150]


def test_the_signature_is_the_hmac_of_timestamp_dot_body():
    # computed independently: printf '1733400000.{"a":1}' | openssl dgst -sha256 -hmac secret
    assert signature(b"secret", "1733400000", b'{"a":1}') == \
        "v1=f16c03035af939991b8d826ad14c843b8d47a3bb467c2daa8726a13bf0d43674"

"""The retention of the CRM webhook's outbox on SQLite and PostgreSQL: delivered rows older
than keep_delivered go, in batches; recent deliveries and undelivered rows of any age stay;
a dry run deletes nothing; two prunes at once both finish, each row deleted once, and on
PostgreSQL a prune skips the rows another holds instead of waiting for them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time

import pytest
import sqlalchemy as sa

from ivr.errors import StoreError
from ivr.settings.config import Config
from ivr.settings.crm import CrmSettings, WebhookSettings
from ivr.store import outbox
from ivr.store.models import Call, WebhookDelivery
from ivr.store.outbox_prune import prune_delivered, prune_outbox

NOW = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


def config_keeping(keep: object = "default") -> Config:
    webhook = WebhookSettings("https://crm.example/ivr/calls", "${IVR_WEBHOOK_SECRET}")
    if keep != "default":
        webhook = dataclasses.replace(webhook, keep_delivered=keep)
    return Config(crm=CrmSettings(webhook))


def add_rows(db, prefix: str, n: int, created: dt.datetime, delivered: dt.datetime | None) -> list[str]:
    """`n` ended calls queued at `created`, delivered at `delivered` (None: still waiting)."""
    ids = [f"{prefix}{i:05d}" for i in range(n)]
    with db.begin() as conn:
        conn.execute(sa.insert(Call.__table__), [{"id": i, "flow": "main", "started_at": created,
                                                  "outcome": "answered"} for i in ids])
        outbox.queue_ended(conn, ids, created)
        values = ({"delivered_at": delivered, "attempts": 1, "last_status": 204} if delivered is not None
                  else {"attempts": 9, "last_status": 503, "last_error": "HTTP 503", "next_at": NOW + DAY})
        conn.execute(sa.update(WebhookDelivery).where(WebhookDelivery.call_id.in_(ids)).values(**values))
    return ids


def remaining(db) -> set[str]:
    with db.connect() as conn:
        return set(conn.execute(sa.select(WebhookDelivery.call_id)).scalars())


def test_old_deliveries_go_in_batches_and_recent_and_undelivered_rows_stay(db):
    old = add_rows(db, "old", 25, NOW - 45 * DAY, NOW - 40 * DAY)
    edge = add_rows(db, "edge", 2, NOW - 31 * DAY, NOW - 30 * DAY - dt.timedelta(seconds=1))
    recent = add_rows(db, "recent", 3, NOW - 12 * DAY, NOW - 10 * DAY)
    waiting = add_rows(db, "wait", 4, NOW - 400 * DAY, None)  # a year old, never delivered: the CRM is away
    report = prune_outbox(config_keeping(), now=NOW, engine=db, batch=10)
    assert (report.deleted, report.batches, report.undelivered) == (27, 3, 4)  # 10 + 10 + 7
    assert report.cutoff == NOW - 30 * DAY
    assert remaining(db) == set(recent) | set(waiting)
    assert report.summary() == ("deleted 27 delivered webhook row(s) from before 2026-11-05 10:00 UTC "
                                "(keep_delivered 30d); 4 undelivered kept")
    # the calls themselves are not the outbox's to delete
    with db.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Call)) == len(old + edge + recent + waiting)
    again = prune_outbox(config_keeping(), now=NOW, engine=db, batch=10)
    assert (again.deleted, again.batches) == (0, 0)


def test_a_batch_exactly_full_is_followed_by_an_empty_one_and_the_default_batch_is_used(db):
    add_rows(db, "old", 20, NOW - 45 * DAY, NOW - 40 * DAY)
    assert prune_delivered(db, NOW - 30 * DAY, batch=10) == (20, 2)
    add_rows(db, "more", 2500, NOW - 45 * DAY, NOW - 40 * DAY)
    assert prune_delivered(db, NOW - 30 * DAY) == (2500, 3)  # 1000 + 1000 + 500
    assert remaining(db) == set()


def test_keep_delivered_sets_the_age_and_a_dry_run_deletes_nothing(db):
    add_rows(db, "d3", 3, NOW - 4 * DAY, NOW - 3 * DAY)
    add_rows(db, "h1", 2, NOW - DAY, NOW - dt.timedelta(hours=1))
    two_days = config_keeping(2 * 86400.0)
    dry = prune_outbox(two_days, now=NOW, engine=db, dry_run=True)
    assert (dry.deleted, dry.dry_run) == (3, True) and len(remaining(db)) == 5
    assert dry.summary().startswith("would delete 3 delivered webhook row(s) from before 2026-12-03 10:00 UTC "
                                    "(keep_delivered 2d)")
    assert prune_outbox(two_days, now=NOW, engine=db).deleted == 3
    assert {i[:2] for i in remaining(db)} == {"h1"}
    # hours as written in config.yaml (36h): the hour-old deliveries are still younger
    assert prune_outbox(config_keeping(36 * 3600.0), now=NOW, engine=db).summary().endswith(
        "(keep_delivered 36h); 0 undelivered kept")
    assert len(remaining(db)) == 2


def test_null_keeps_delivered_rows_for_ever_and_no_webhook_keeps_the_default(db):
    add_rows(db, "old", 3, NOW - 900 * DAY, NOW - 800 * DAY)
    report = prune_outbox(config_keeping(None), now=NOW, engine=db)
    assert report.deleted == 0 and "kept for ever" in report.summary()
    assert len(remaining(db)) == 3
    # no crm section (the webhook was turned off): what it delivered does not stay for ever either
    assert prune_outbox(Config(), now=NOW, engine=db).deleted == 3


def test_two_prunes_at_once_both_finish_and_delete_each_row_once(db):
    add_rows(db, "old", 1200, NOW - 45 * DAY, NOW - 40 * DAY)
    keep = add_rows(db, "wait", 5, NOW - 90 * DAY, None)
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def prune() -> None:
        start.wait()
        try:
            results.append(prune_delivered(db, NOW - 30 * DAY, batch=50))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=prune) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(results) == 2
    assert sum(deleted for deleted, _ in results) == 1200
    assert remaining(db) == set(keep)


# PostgreSQL only: SQLite has one writer at a time (a second prune waits, then finds nothing)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_prune_on_postgresql_skips_rows_another_holds_without_waiting(db):
    add_rows(db, "old", 30, NOW - 45 * DAY, NOW - 40 * DAY)
    with db.connect() as other, other.begin():  # another prune, in the middle of its batch
        held = other.execute(sa.text("SELECT call_id FROM webhook_deliveries ORDER BY delivered_at, id LIMIT 10 "
                                     "FOR UPDATE SKIP LOCKED")).scalars().all()
        began = time.monotonic()
        assert prune_delivered(db, NOW - 30 * DAY, batch=8) == (20, 3)
        waited = time.monotonic() - began
    assert waited < 1.0  # the lock timeout is 5 s: it did not wait for the other's rows
    assert remaining(db) == set(held)
    assert prune_delivered(db, NOW - 30 * DAY, batch=8) == (10, 2)


def test_a_row_cleared_to_be_sent_again_is_not_deleted(db):
    [row] = add_rows(db, "again", 1, NOW - 45 * DAY, NOW - 40 * DAY)
    # the admin's UPDATE of docs/crm.md: the call is posted again, so its row must stay
    with db.begin() as conn:
        conn.execute(sa.update(WebhookDelivery).where(WebhookDelivery.call_id == row)
                     .values(delivered_at=None, next_at=NOW))
    assert prune_outbox(config_keeping(), now=NOW, engine=db).deleted == 0
    assert remaining(db) == {row}


def test_a_database_that_fails_is_a_store_error_naming_it_without_its_password(tmp_path):
    config = dataclasses.replace(config_keeping(), raw={"database": "postgresql+psycopg://ivr:hunter2@127.0.0.1:1/ivr"})
    with pytest.raises(StoreError) as caught:
        prune_outbox(config, now=NOW)
    assert "hunter2" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)

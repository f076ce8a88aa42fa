"""The prune of the webhook outbox that `ivr web` runs in the background: it logs how many
rows it deleted, /metrics counts them (and the runs, the failures, the last success), and a
prune that fails (the database away) is logged and the next round prunes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time

from sqlalchemy import insert, select, update

from ivr.live.metrics import parse_exposition
from ivr.settings.config import load_config
from ivr.store.db import database_url, init_db
from ivr.store.models import Call, WebhookDelivery
from ivr.store.outbox import queue_ended
from ivr.web import create_app
from ivr.web.housekeeping import PruneWatch, prune_outbox_once, repeat

from .support import make_installation

NOW = dt.datetime.now(dt.timezone.utc)


def delivered_rows(engine, ages: dict[str, float | None]) -> None:
    """A queued call per id, delivered that many days ago (None: not delivered)."""
    with engine.begin() as conn:
        conn.execute(insert(Call.__table__), [{"id": i, "flow": "main", "started_at": NOW - dt.timedelta(days=90),
                                               "outcome": "answered"} for i in ages])
        queue_ended(conn, list(ages), NOW - dt.timedelta(days=90))
        for call_id, days in ages.items():
            if days is not None:
                conn.execute(update(WebhookDelivery).where(WebhookDelivery.call_id == call_id)
                             .values(delivered_at=NOW - dt.timedelta(days=days)))


def outbox(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(WebhookDelivery.call_id)).scalars())


def metrics(app) -> dict:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    return {name: v for (name, labels), v in parse_exposition(response.get_data(as_text=True)).items() if not labels}


def test_a_prune_logs_what_it_deleted_and_the_metrics_count_it(tmp_path, caplog):
    config = load_config(make_installation(tmp_path))  # no crm section: keep_delivered is 30d
    engine = init_db(database_url(config))
    delivered_rows(engine, {"old1": 40, "old2": 31, "new": 2, "waiting": None})
    clock = lambda: 1733400000.0  # noqa: E731 - the last success's time, fixed
    watch = PruneWatch(clock)
    app = create_app(config, testing=True, outbox=watch)
    try:
        before = metrics(app)
        assert before["ivr_webhook_prune_enabled"] == 1 and before["ivr_webhook_prune_runs_total"] == 0
        assert "ivr_webhook_prune_last_success_timestamp_seconds" not in before  # none yet
        with caplog.at_level(logging.INFO, logger="ivr.web.housekeeping"):
            prune_outbox_once(config, watch)
            prune_outbox_once(config, watch)  # nothing more is due: no line
        lines = [r.getMessage() for r in caplog.records if "webhook outbox prune" in r.getMessage()]
        assert len(lines) == 1 and lines[0].startswith("webhook outbox prune: deleted 2 delivered webhook row(s) ")
        assert lines[0].endswith("(keep_delivered 30d); 1 undelivered kept in 1 batch(es)")
        assert outbox(engine) == {"new", "waiting"}
        after = metrics(app)
        assert after["ivr_webhook_pruned_total"] == 2 and after["ivr_webhook_prune_runs_total"] == 2
        assert after["ivr_webhook_prune_failures_total"] == 0
        assert after["ivr_webhook_prune_last_success_timestamp_seconds"] == 1733400000.0
    finally:
        app.extensions["ivr"].engine.dispose()
        engine.dispose()


def test_without_the_background_prune_the_metrics_say_it_is_off(tmp_path):
    app = create_app(load_config(make_installation(tmp_path)), testing=True)
    try:
        figures = metrics(app)
        assert figures["ivr_webhook_prune_enabled"] == 0 and "ivr_webhook_pruned_total" not in figures
    finally:
        app.extensions["ivr"].engine.dispose()


def test_a_failing_prune_is_logged_and_the_next_round_prunes(tmp_path, caplog):
    config = load_config(make_installation(tmp_path))
    engine = init_db(database_url(config))
    delivered_rows(engine, {"old": 40})
    engine.dispose()
    # the database file is a folder for a while: SQLite cannot open it, as a PostgreSQL that is down
    away = tmp_path / "away.db"
    (tmp_path / "ivr.db").rename(away)
    (tmp_path / "ivr.db").mkdir()
    watch = PruneWatch()
    with caplog.at_level(logging.INFO, logger="ivr.web.housekeeping"):
        stop = repeat("webhook outbox prune", 0.1, lambda: prune_outbox_once(config, watch))
        try:
            wait_for(lambda: watch.failures > 0 and any("webhook outbox prune failed" in r.getMessage()
                                                        for r in caplog.records), "the failure was never logged")
            (tmp_path / "ivr.db").rmdir()
            away.rename(tmp_path / "ivr.db")
            wait_for(lambda: watch.deleted == 1, "the next rounds never pruned")
        finally:
            stop.set()
    assert any("webhook outbox prune: deleted 1 delivered webhook row(s)" in r.getMessage() for r in caplog.records)
    assert watch.runs >= 1 and watch.last_success is not None
    engine = init_db(database_url(config))
    assert outbox(engine) == set()
    engine.dispose()


def wait_for(condition, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_keep_delivered_from_config_yaml_is_the_age_used(tmp_path):
    config = load_config(make_installation(tmp_path, crm={"webhook": {
        "url": "https://crm.example/ivr/calls", "secret": "${IVR_WEBHOOK_SECRET}", "keep_delivered": "3d"}}))
    assert config.crm.keep_delivered == 3 * 86400.0
    engine = init_db(database_url(config))
    delivered_rows(engine, {"four": 4, "two": 2})
    prune_outbox_once(config)
    assert outbox(engine) == {"two"}
    forever = dataclasses.replace(config.crm.webhook, keep_delivered=None)
    prune_outbox_once(dataclasses.replace(config, crm=dataclasses.replace(config.crm, webhook=forever)))
    assert outbox(engine) == {"two"}
    engine.dispose()

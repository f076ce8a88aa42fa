"""`ivr webhook prune [--dry-run]` as README.md shows it, through click's CliRunner on an
installation's SQLite database: what it prints, what it deletes, its exit codes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from ivr.cli import cli
from ivr.settings.config import load_config
from ivr.store.db import database_url, init_db
from ivr.store.models import Call, WebhookDelivery
from ivr.store.outbox import queue_ended

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(autouse=True)
def _no_config_from_outside(monkeypatch, tmp_path):
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def installation(folder: Path, **crm: object) -> Path:
    raw: dict = {"database": "sqlite:///ivr.db"}
    if crm:
        raw["crm"] = {"webhook": {"url": "https://crm.example/ivr/calls", "secret": "${IVR_WEBHOOK_SECRET}", **crm}}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def fill(config_path: Path, ages: dict[str, float | None]) -> sa.Engine:
    engine = init_db(database_url(load_config(config_path)))
    with engine.begin() as conn:
        conn.execute(sa.insert(Call.__table__), [{"id": i, "flow": "main", "started_at": NOW - dt.timedelta(days=60),
                                                  "outcome": "answered"} for i in ages])
        queue_ended(conn, list(ages), NOW - dt.timedelta(days=60))
        for call_id, days in ages.items():
            if days is not None:
                conn.execute(sa.update(WebhookDelivery).where(WebhookDelivery.call_id == call_id)
                             .values(delivered_at=NOW - dt.timedelta(days=days)))
    return engine


def left(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(WebhookDelivery.call_id)).scalars())


def ivr(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_prune_and_its_dry_run_as_the_readme_shows_them(tmp_path):
    engine = fill(installation(tmp_path), {"old": 45, "older": 50, "recent": 3, "waiting": None})
    dry = ivr("webhook", "prune", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("would delete 2 delivered webhook row(s) from before ")
    assert dry.stdout.endswith(" UTC (keep_delivered 30d); 1 undelivered kept\n")
    assert left(engine) == {"old", "older", "recent", "waiting"}
    done = ivr("webhook", "prune")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("deleted 2 delivered webhook row(s) from before ")
    assert left(engine) == {"recent", "waiting"}
    assert ivr("webhook", "prune").stdout.startswith("deleted 0 delivered webhook row(s)")
    engine.dispose()


def test_keep_delivered_of_config_yaml_and_null(tmp_path):
    engine = fill(installation(tmp_path, keep_delivered="2d"), {"three": 3, "one": 1})
    assert ivr("webhook", "prune").stdout.endswith("(keep_delivered 2d); 0 undelivered kept\n")
    assert left(engine) == {"one"}
    installation(tmp_path, keep_delivered=None)
    kept = ivr("webhook", "prune")
    assert kept.exit_code == 0
    assert kept.stdout == ("crm.webhook.keep_delivered is null in config.yaml: delivered webhook rows are kept for "
                           "ever; nothing pruned\n")
    engine.dispose()


def test_a_wrong_keep_delivered_is_an_error_at_its_place(tmp_path):
    installation(tmp_path, keep_delivered=30)
    result = CliRunner().invoke(cli, ["webhook", "prune"])
    assert result.exit_code == 1, result.output
    assert "config.yaml:3:21: keep_delivered of crm.webhook must be days or hours such as 30d or 36h" in result.stderr

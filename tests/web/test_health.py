"""`ivr web`'s /health/live, /health/ready (the database answers) and /metrics (the
recordings index's lag and passes; this host or the token only), on the real app and a
real database: SQLite, and a PostgreSQL address where nothing listens."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from ivr.live.metrics import parse_exposition
from ivr.settings.config import load_config
from ivr.web import create_app
from ivr.web.housekeeping import IndexWatch, index_once

from .support import make_installation

STRANGER = {"REMOTE_ADDR": "198.51.100.20"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def samples(response) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {name: v for (name, labels), v in parse_exposition(response.get_data(as_text=True)).items() if not labels}


def test_live_and_ready_need_no_log_in(app):
    client = app.test_client()
    live = client.get("/health/live", environ_base=STRANGER)
    assert (live.status_code, live.get_data(as_text=True)) == (200, "live\n")
    ready = client.get("/health/ready", environ_base=STRANGER)
    assert (ready.status_code, ready.get_data(as_text=True)) == (200, "ready: the database answers\n")
    mine = client.get("/health/ready")  # this host: where the database is, too
    assert mine.status_code == 200 and mine.get_data(as_text=True).startswith("ready: the database sqlite:///")


def test_ready_is_503_when_the_database_cannot_be_reached(app):
    context = app.extensions["ivr"]
    saved = context.engine
    # nothing listens on port 9 (discard): refused at once
    context.engine = create_engine("postgresql+psycopg://ivr:not-shown@127.0.0.1:9/ivr")
    try:
        response = app.test_client().get("/health/ready")
        stranger = app.test_client().get("/health/ready", environ_base=STRANGER)
    finally:
        context.engine.dispose()
        context.engine = saved
    text = response.get_data(as_text=True)
    assert response.status_code == 503
    assert text.startswith("not ready: the database postgresql+psycopg://ivr:***@127.0.0.1:9/ivr cannot be reached (")
    assert "not-shown" not in text
    # another host hears only that it is not ready: not where the database is
    assert (stranger.status_code, stranger.get_data(as_text=True)) == (503, "not ready: the database cannot be reached\n")


def test_metrics_are_refused_to_another_host_without_the_token(installation, monkeypatch):
    monkeypatch.setenv("IVR_METRICS_TOKEN", "a-long-random-token")
    app = create_app(load_config(installation), testing=True)
    try:
        client = app.test_client()
        refused = client.get("/metrics", environ_base=STRANGER)
        assert refused.status_code == 403 and "IVR_METRICS_TOKEN" in refused.get_data(as_text=True)
        wrong = client.get("/metrics", environ_base=STRANGER, headers={"Authorization": "Bearer a-long-random-tokeN"})
        assert wrong.status_code == 403
        right = client.get("/metrics", environ_base=STRANGER, headers={"Authorization": "Bearer a-long-random-token"})
        assert samples(right)["ivr_recordings_index_enabled"] == 0
        assert samples(client.get("/metrics"))["process_resident_memory_bytes"] > 0  # the test client: 127.0.0.1
    finally:
        app.extensions["ivr"].engine.dispose()


def test_a_qa_account_is_no_way_to_the_metrics(login):
    client = login("admin")
    assert client.get("/metrics", environ_base=STRANGER).status_code == 403
    assert client.get("/calls/", environ_base=STRANGER).status_code == 200  # the session itself is good


def test_behind_a_proxy_the_forwarded_client_counts(tmp_path):
    installation = make_installation(tmp_path / "site", web={"host": "127.0.0.1", "port": 5000, "proxies": 1})
    app = create_app(load_config(installation), testing=True)
    try:
        client = app.test_client()
        # the proxy on this host forwards a stranger: refused, although the proxy is 127.0.0.1
        assert client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.20"}).status_code == 403
        assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200
    finally:
        app.extensions["ivr"].engine.dispose()


def test_the_index_lag_passes_and_failures(installation):
    config = load_config(installation)
    clock = Clock()
    watch = IndexWatch(clock)
    app = create_app(config, testing=True, index=watch)
    try:
        client = app.test_client()
        clock.now += 42  # no pass yet: the lag runs from the start
        first = samples(client.get("/metrics"))
        assert first["ivr_recordings_index_enabled"] == 1 and first["ivr_recordings_index_lag_seconds"] == 42
        assert first["ivr_recordings_index_passes_total"] == 0

        index_once(config, watch)  # an empty recordings folder: a pass that finds nothing
        clock.now += 5
        second = samples(client.get("/metrics"))
        assert second["ivr_recordings_index_lag_seconds"] == 5
        assert second["ivr_recordings_index_passes_total"] == 1 and second["ivr_recordings_index_failures_total"] == 0
        assert second["ivr_recordings_indexed_total"] == 0 and second["ivr_recordings_index_errors"] == 0

        # the recordings folder is no folder: the pass fails, and the lag goes on growing
        folder = config.recordings_dir
        if folder.exists():
            folder.rmdir()
        folder.write_text("not a folder")
        with pytest.raises(Exception, match="not a folder"):
            index_once(config, watch)
        clock.now += 60
        third = samples(client.get("/metrics"))
        assert third["ivr_recordings_index_failures_total"] == 1 and third["ivr_recordings_index_passes_total"] == 1
        assert third["ivr_recordings_index_lag_seconds"] == 65
    finally:
        app.extensions["ivr"].engine.dispose()

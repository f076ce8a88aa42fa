"""`ivr web` as a user starts it: a real process serving HTTP, indexing new recordings and
applying retention in the background, and a clear error when its port is taken."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from pathlib import Path

from sqlalchemy import select, update

from ivr.settings.config import load_config
from ivr.store.db import database_url, init_db, session_factory
from ivr.store.models import AuditEntry, Call, Hold, Recording, WebhookDelivery
from ivr.store.outbox import queue_ended

from .support import make_installation

IVR = Path(sys.executable).with_name("ivr")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, timeout: float = 20.0) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_ivr_web_serves_the_app_and_indexes_new_recordings(tmp_path):
    config_path = make_installation(tmp_path)
    config = load_config(config_path)
    engine = init_db(database_url(config))
    started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    with session_factory(engine)() as session:
        session.add(Call(id="1700000000.7", uniqueid="1700000000.7", flow="main", started_at=started,
                         ended_at=started + dt.timedelta(seconds=3), duration=3.0, outcome="answered"))
        session.commit()
    folder = tmp_path / "recordings" / started.strftime("%Y-%m-%d")
    folder.mkdir(parents=True)
    with wave.open(str(folder / "1700000000.7.wav"), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
        out.writeframes(b"\x00\x10" * 24000)
    old = time.time() - 120  # written and closed two minutes ago
    os.utime(folder / "1700000000.7.wav", (old, old))
    port = _free_port()
    server = subprocess.Popen([str(IVR), "--config", str(config_path), "web", "--port", str(port), "--index-every", "0.5"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status, page = _get(f"http://127.0.0.1:{port}/login")
        assert status == 200 and 'name="csrf_token"' in page
        deadline = time.monotonic() + 20
        while True:
            with session_factory(engine)() as session:
                recording = session.scalars(select(Recording)).first()
            if recording is not None and recording.peaks:
                break
            assert time.monotonic() < deadline, "the background index never indexed the recording"
            time.sleep(0.3)
        assert recording.call_id == "1700000000.7" and abs(recording.duration - 3.0) < 0.01
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert f"QA web app on http://127.0.0.1:{port}/" in output
    engine.dispose()


def _recorded_call(engine, folder: Path, call_id: str, started: dt.datetime) -> str:
    """A call of `started` with its recording (closed two minutes ago); the file's path under `folder`."""
    with session_factory(engine)() as session:
        session.add(Call(id=call_id, uniqueid=call_id, flow="main", started_at=started,
                         ended_at=started + dt.timedelta(seconds=1), duration=1.0, outcome="answered"))
        session.commit()
    path = f"{started:%Y-%m-%d}/{call_id}.wav"
    (folder / path).parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(folder / path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
        out.writeframes(b"\x00\x10" * 8000)
    old = time.time() - 120
    os.utime(folder / path, (old, old))
    return path


def _delivery_of(engine, call_id: str) -> bool:
    with engine.connect() as conn:
        return conn.scalar(select(WebhookDelivery.id).where(WebhookDelivery.call_id == call_id)) is not None


def test_ivr_web_purges_recordings_past_retention_and_old_webhook_deliveries_on_its_own(tmp_path):
    config_path = make_installation(tmp_path)  # retention_days: 90, no crm section: keep_delivered 30d
    config = load_config(config_path)
    engine = init_db(database_url(config))
    now = dt.datetime.now(dt.timezone.utc)
    folder = tmp_path / "recordings"
    paths = {call_id: _recorded_call(engine, folder, call_id, now - dt.timedelta(days=age))
             for call_id, age in (("1690000000.1", 100), ("1690000000.2", 100), ("1700000000.3", 10))}
    old, held, new = paths.values()
    with session_factory(engine)() as session:
        session.add(Hold(call_id="1690000000.2", reason="complaint", placed_by="anna", placed_at=now))
        session.commit()
    # the outbox: delivered 40 days ago (goes), undelivered for 100 days (stays), delivered 10 days ago (stays)
    with engine.begin() as conn:
        queue_ended(conn, list(paths), now - dt.timedelta(days=100))
        for call_id, delivered in (("1690000000.1", now - dt.timedelta(days=40)),
                                   ("1700000000.3", now - dt.timedelta(days=10))):
            conn.execute(update(WebhookDelivery).where(WebhookDelivery.call_id == call_id)
                         .values(delivered_at=delivered))
    port = _free_port()
    # the index finds the files, the purge (at start and then every second) deletes the old one
    server = subprocess.Popen([str(IVR), "--config", str(config_path), "web", "--port", str(port),
                               "--index-every", "0.5", "--purge-every", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while (folder / old).exists():
            assert time.monotonic() < deadline, "the scheduled purge never deleted the recording past retention"
            time.sleep(0.3)
        while _delivery_of(engine, "1690000000.1"):
            assert time.monotonic() < deadline, "the scheduled prune never deleted the old delivered webhook row"
            time.sleep(0.3)
        time.sleep(1.5)  # another round of both: nothing more goes
        status, _page = _get(f"http://127.0.0.1:{port}/login")
        assert status == 200
        status, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "ivr_webhook_prune_enabled 1.0" in metrics
        assert "ivr_webhook_pruned_total 1.0" in metrics and "ivr_webhook_prune_failures_total 0.0" in metrics
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert (folder / held).is_file() and (folder / new).is_file()
    with session_factory(engine)() as session:
        rows = {r.path: r for r in session.scalars(select(Recording))}
        audit = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert rows[old].deleted_at is not None and rows[held].deleted_at is None and rows[new].deleted_at is None
    # as `ivr recordings purge` writes them: action purge, no user, the call, the recording, its path
    assert [(a.action, a.user, a.call_id, a.recording_id, a.detail) for a in audit] == [
        ("purge", None, "1690000000.1", rows[old].id, old)]
    purged = [line for line in output.splitlines() if "retention purge:" in line]
    assert len(purged) == 1, output
    assert "deleted 1 recording(s)" in purged[0] and "(90 days)" in purged[0] and "1 held" in purged[0]
    assert purged[0].endswith(f": {old}")
    with engine.connect() as conn:
        assert set(conn.execute(select(WebhookDelivery.call_id)).scalars()) == {"1690000000.2", "1700000000.3"}
    pruned = [line for line in output.splitlines() if "webhook outbox prune:" in line]
    assert len(pruned) == 1, output
    assert "deleted 1 delivered webhook row(s)" in pruned[0] and "(keep_delivered 30d); 1 undelivered kept" in pruned[0]
    engine.dispose()


def test_ivr_web_says_so_when_its_port_is_taken(tmp_path):
    config_path = make_installation(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([str(IVR), "--config", str(config_path), "web", "--port", str(port), "--index-every", "0"],
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in run.stderr


def test_ivr_users_finds_the_installation_without_config_option(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ivr.cli import cli

    config_path = make_installation(tmp_path)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")  # below the installation: config.yaml is found upwards
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    added = CliRunner().invoke(cli, ["users", "add", "anna", "--role", "qa", "--password-stdin"], input="a-long-password\n")
    assert added.exit_code == 0, added.output
    assert (tmp_path / "ivr.db").is_file() and not (tmp_path / "work" / "ivr.db").exists()
    listed = CliRunner().invoke(cli, ["--config", str(config_path), "users", "list"])
    assert listed.output.split() == ["anna", "qa", "active"]

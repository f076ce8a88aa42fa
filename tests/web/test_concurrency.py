"""Reviewers at the same moment on SQLite: log-ins and plays that read, then write, wait
for each other's write lock; none fails with "database is locked"."""

from __future__ import annotations

import datetime as dt
import wave
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from ivr.store.models import AuditEntry, Call, Recording
from ivr.web.users import add_user

from .support import log_in

THREADS = 12


def test_log_ins_of_many_users_at_once_all_get_their_answer(app, ctx):
    for i in range(THREADS):
        add_user(ctx.engine, f"user{i}", "a-long-password", "qa")

    def attempt(i):
        return log_in(app.test_client(), f"user{i}", "a-long-password" if i % 2 else "wrong-password!").status_code

    with ThreadPoolExecutor(THREADS) as pool:
        codes = list(pool.map(attempt, range(THREADS)))
    assert sorted(codes) == sorted([302, 401] * (THREADS // 2))


def test_plays_at_once_are_all_served_and_audited(app, ctx, login):
    path = ctx.recordings_dir / "2026-11-20" / "1700000002.1.wav"
    path.parent.mkdir(parents=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
        out.writeframes(b"\x00\x08" * 8000)
    started = dt.datetime(2026, 11, 20, 9, tzinfo=dt.timezone.utc)
    with ctx.sessions() as session:
        session.add(Call(id="1700000002.1", flow="main", started_at=started, duration=1.0, outcome="answered"))
        session.add(Recording(id=1, call_id="1700000002.1", path="2026-11-20/1700000002.1.wav", created_at=started))
        session.commit()
    clients = [login("qa" if i % 2 else "admin") for i in range(THREADS)]

    def play(client):
        return client.get("/recordings/1/audio").status_code

    with ThreadPoolExecutor(THREADS) as pool:
        codes = list(pool.map(play, clients))
    assert codes == [200] * THREADS
    with ctx.sessions() as session:
        plays = session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "play"))
    assert 2 <= plays <= THREADS  # once per user within a few seconds (the audit rule), never lost to a lock

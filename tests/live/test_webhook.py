"""The CRM feed of a real `ivr serve` on a real PostgreSQL: calls from a fake Asterisk over real
AGI, and a real HTTP receiver (tests/webhook_receiver.py) that checks every signature.

- each ended call reaches the receiver once, signed, with what a CRM needs of it, and the
  calls never wait for a slow receiver;
- a receiver that answers 503, then refuses connections, then is down over a restart of the
  engine gets every call once when it is back, each try after a growing pause.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "channels"))

from fake_asterisk import Caller, environment, place_call  # noqa: E402
from ivr.live.metrics import parse_exposition  # noqa: E402
from ivr.live.serve import build_runtime  # noqa: E402
from ivr.live.webhook import WebhookDeliverer  # noqa: E402
from ivr.store.db import create_db_engine  # noqa: E402
from ivr.store.models import WebhookDelivery  # noqa: E402
from ivr.testbed.postgres import PostgresUnavailable, start_postgres  # noqa: E402
from webhook_receiver import WebhookReceiver  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-shared-secret-of-the-test-0123456789"
KEYS = ["1", "3", "9", "0", "0", "1", "2", "3", "4", "5", "#"]  # Polish, support, an account number (masked)


@pytest.fixture(scope="module")
def postgres() -> Iterator:
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL could not be started: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def database(postgres) -> Iterator[str]:
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


def _installation(tmp_path: Path, database: str, url: str) -> Path:
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(ROOT / "data", tmp_path / "data")
    shutil.copytree(ROOT / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("*.test.yaml"))
    text = (tmp_path / "config.yaml").read_text()
    text = text.replace('weekly: {mon-fri: "08:00-18:00", sat: "09:00-13:00"}', 'weekly: {mon-sun: "00:00-24:00"}')
    text = text.replace("      - {country: PL}           # Polish public holidays, every year\n", "")
    text = text.replace("      - 2026-12-31              # company day off\n", "")
    text = text.replace("database: sqlite:///ivr.db", f"database: {database}")
    text += (f'\ncrm:\n  webhook: {{url: "{url}", secret: "${{IVR_WEBHOOK_SECRET}}", timeout: 8s,'
             ' qa_url: "https://qa.example"}\n')
    (tmp_path / "config.yaml").write_text(text)
    return tmp_path


def _runtime(root: Path, retry_min: float = 0.2) -> tuple:
    runtime = build_runtime([root / "flows"], root / "config.yaml", port=0, ami=False, metrics_port=0)
    deliverer = next(part for part in runtime.extras if isinstance(part, WebhookDeliverer))
    deliverer.retry_min, deliverer.poll = retry_min, 0.05  # seconds, not the minutes of a site
    return runtime, deliverer


HELD = 3.0  # seconds the slow CRM holds each answer: longer than the three calls take, even on a busy machine


async def _calls(runtime, root: Path, ids: list[str]) -> list[float]:
    """Place the calls one after the other, each recorded as the generated dialplan names it;
    how long each took."""
    took = []
    for uniqueid in ids:
        began = time.monotonic()
        recording = str(root / "recordings" / "2026-11-24" / f"{uniqueid}.wav")
        await place_call(runtime.server.port, Caller(keys=list(KEYS), recording=recording), environment(uniqueid))
        took.append(time.monotonic() - began)
    return took


async def _until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.05)


def _rows(database: str) -> list:
    db = create_db_engine(database)
    try:
        with db.connect() as conn:
            return conn.execute(sa.select(WebhookDelivery).order_by(WebhookDelivery.call_id)).mappings().all()
    finally:
        db.dispose()


def test_each_ended_call_reaches_the_crm_once_signed_and_the_calls_never_wait_for_it(tmp_path, database, monkeypatch):
    monkeypatch.setenv("IVR_WEBHOOK_SECRET", SECRET)
    ids = ["1733400000.1", "1733400000.2", "1733400000.3"]
    with WebhookReceiver(SECRET, delay=HELD) as crm:  # a slow CRM: HELD s for each answer
        root = _installation(tmp_path, database, crm.url)
        runtime, deliverer = _runtime(root)

        async def main() -> list[float]:
            await runtime.start()
            try:
                took = await _calls(runtime, root, ids)
                await _until(lambda: len(crm.accepted) == 3, 20, "three calls delivered")
                # the last answer comes HELD s after the receiver took the call
                await _until(lambda: all(r["delivered_at"] for r in _rows(database)), 20,
                             "the three deliveries recorded")
                exposition = runtime.metrics.exposition().decode()
                return took, exposition
            finally:
                await runtime.close()

        took, exposition = asyncio.run(main())
    # the receiver held its first answer HELD s while the next calls ran: they did not wait
    assert sum(took) < HELD, took
    assert all(t.signed for t in crm.tries) and crm.repeats == 0 and len(crm.tries) == 3
    calls = crm.calls()
    assert sorted(calls) == ids
    call = calls[ids[0]]
    assert call["uniqueid"] == ids[0] and call["flow"] == "main" and call["outcome"] == "answered"
    assert call["department"] == "support" and call["caller"] == {"number": "48221234567", "name": "Jan Kowalski"}
    assert call["keys"][:2] == ["1", "3"] and "900123" not in str(call) and "********" in call["keys"]
    assert [step["node"] for step in call["path"]][:2] == ["welcome", "open_check"]
    assert call["started_at"].endswith("Z") and call["duration"] is not None
    assert call["qa_url"] == f"https://qa.example/calls/{ids[0]}"
    assert call["recording"]["path"] == f"2026-11-24/{ids[0]}.wav"
    assert call["recording"]["url"] == f"https://qa.example/recordings/{call['recording']['id']}/audio"
    delivery_ids = {t.headers["x-ivr-delivery"] for t in crm.tries}
    assert len(delivery_ids) == 3 and all(t.headers["content-type"] == "application/json" for t in crm.tries)
    rows = _rows(database)
    assert [(r["call_id"], r["attempts"], r["last_status"]) for r in rows] == [(i, 1, 200) for i in ids]
    assert all(r["delivered_at"] is not None and r["claimed_until"] is None for r in rows)
    samples = parse_exposition(exposition)
    assert samples[("ivr_webhook_deliveries_total", ())] == 3 and samples[("ivr_webhook_backlog", ())] == 0
    assert samples[("ivr_webhook_failures_total", ())] == 0


def test_a_crm_down_for_a_while_gets_every_call_once_when_back_even_after_a_restart(tmp_path, database, monkeypatch):
    monkeypatch.setenv("IVR_WEBHOOK_SECRET", SECRET)
    ids = ["1733400001.1", "1733400001.2"]
    crm = WebhookReceiver(SECRET, status=503).up()  # in trouble: it answers, but not 2xx
    try:
        root = _installation(tmp_path, database, crm.url)
        runtime, deliverer = _runtime(root, retry_min=0.3)

        async def first() -> None:
            await runtime.start()
            try:
                await _calls(runtime, root, ids)
                await _until(lambda: all(sum(t.headers["x-ivr-delivery"] == d for t in crm.tries) >= 3
                                         for d in {t.headers["x-ivr-delivery"] for t in crm.tries})
                             and len({t.headers["x-ivr-delivery"] for t in crm.tries}) == 2, 20,
                             "three tries of each call")
                crm.down()  # now not even listening
                await _until(lambda: all(r["last_error"] == "connection refused" for r in _rows(database)), 20,
                             "a refused connection stored as the reason")
            finally:
                await runtime.close()

        asyncio.run(first())
        rows = _rows(database)
        assert all(r["delivered_at"] is None and r["attempts"] >= 4 and r["last_status"] is None for r in rows)
        assert not crm.accepted
        # back-off: each call's tries come further apart, doubling from 0.3 s with jitter (x0.5..1)
        for delivery in {t.headers["x-ivr-delivery"] for t in crm.tries}:
            times = [t.at for t in crm.tries if t.headers["x-ivr-delivery"] == delivery]
            gaps = [b - a for a, b in zip(times, times[1:])]
            assert gaps[0] >= 0.15 and gaps[1] >= 0.3, gaps

        crm.status = 200
        crm.up()  # back, on the same address; and a new engine starts
        runtime, deliverer = _runtime(root, retry_min=0.3)

        async def second() -> None:
            await runtime.start()
            try:
                await _until(lambda: len(crm.accepted) == 2, 20, "both calls delivered after the outage")
                await asyncio.sleep(0.5)  # time for a repeat, if there were one
            finally:
                await runtime.close()

        asyncio.run(second())
    finally:
        crm.down()
    assert sorted(crm.calls()) == ids and crm.repeats == 0
    assert all(t.signed for t in crm.tries)
    rows = _rows(database)
    assert all(r["delivered_at"] is not None and r["last_status"] == 200 and r["last_error"] is None for r in rows)


def test_two_engines_on_one_database_post_each_call_once(tmp_path, database, monkeypatch):
    """Two `ivr serve` share the outbox (SKIP LOCKED claims): each takes calls, each call is
    posted by one of them, once."""
    monkeypatch.setenv("IVR_WEBHOOK_SECRET", SECRET)
    with WebhookReceiver(SECRET, status=503) as crm:  # down while the calls are made: the rows pile up
        root = _installation(tmp_path, database, crm.url)
        engines = [_runtime(root), _runtime(root)]
        ids = [[f"1733400002.{e}{n}" for n in range(6)] for e in (0, 1)]

        async def main() -> None:
            for runtime, _ in engines:
                await runtime.start()
            try:
                for (runtime, _), some in zip(engines, ids):
                    await _calls(runtime, root, some)
                await _until(lambda: len({t.headers["x-ivr-delivery"] for t in crm.tries}) == 12, 20,
                             "a first try of every call")
                crm.status = 200  # back: both engines deliver what is due
                await _until(lambda: len(crm.accepted) == 12, 30, "all twelve calls delivered")
                await asyncio.sleep(0.5)
            finally:
                for runtime, _ in engines:
                    await runtime.close()

        asyncio.run(main())
    assert sorted(crm.calls()) == sorted(ids[0] + ids[1]) and crm.repeats == 0
    assert all(deliverer.delivered > 0 for _, deliverer in engines)  # both took a share
    assert sum(deliverer.delivered for _, deliverer in engines) == 12

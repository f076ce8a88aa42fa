"""The webhook's deliverer against a real HTTP receiver, on SQLite: what a failed POST leaves
(the status or a short reason, never the secret nor the receiver's body), a secret missing
from the environment (nothing posted, said once, by name), a redirect that is not followed,
claimed rows handed back at a stop."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.live.webhook import WebhookDeliverer  # noqa: E402
from ivr.settings.crm import WebhookSettings  # noqa: E402
from ivr.store import outbox  # noqa: E402
from ivr.store.db import init_db  # noqa: E402
from ivr.store.models import Call, WebhookDelivery  # noqa: E402
from webhook_receiver import WebhookReceiver  # noqa: E402

SECRET = "deliverer-secret-0123456789"
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)  # due: in the past


def _db(tmp_path, n: int = 1):
    engine = init_db(f"sqlite:///{tmp_path / 'ivr.db'}")
    with engine.begin() as conn:
        ids = [f"w{i}" for i in range(n)]
        conn.execute(sa.insert(Call.__table__), [{"id": i, "flow": "main", "started_at": T0, "outcome": "answered"}
                                                  for i in ids])
        outbox.queue_ended(conn, ids, T0)
    return engine


def _row(engine) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(WebhookDelivery.__table__)).mappings().first())


def _deliverer(engine, url: str, timeout: float = 2.0, environ=None) -> WebhookDeliverer:
    settings = WebhookSettings(url, "${IVR_WEBHOOK_SECRET}", timeout)
    return WebhookDeliverer(engine, settings, environ={"IVR_WEBHOOK_SECRET": SECRET} if environ is None else environ,
                            retry_min=0.1)


def test_a_receiver_that_does_not_answer_in_time_is_a_failure_with_a_short_reason(tmp_path):
    engine = _db(tmp_path)
    with WebhookReceiver(SECRET, delay=1.5) as crm:
        deliverer = _deliverer(engine, crm.url, timeout=0.5)
        deliverer.run_once()
    row = _row(engine)
    assert row["delivered_at"] is None and row["attempts"] == 1 and row["last_status"] is None
    assert row["last_error"] in ("no answer within 0.5 s", "no answer in time") and row["claimed_until"] is None
    assert deliverer.failures == 1 and deliverer.backlog == 1


def test_a_wrong_secret_is_the_receivers_401_and_nothing_of_its_body_or_the_secret_is_kept(tmp_path, caplog):
    engine = _db(tmp_path)
    with WebhookReceiver("the-crm-has-another-secret") as crm, caplog.at_level(logging.DEBUG):
        _deliverer(engine, crm.url).run_once()
    row = _row(engine)
    assert (row["last_status"], row["last_error"]) == (401, "HTTP 401") and not crm.accepted
    assert SECRET not in caplog.text and "try later" not in caplog.text


def test_a_missing_secret_posts_nothing_and_says_so_once_by_name(tmp_path, caplog):
    engine = _db(tmp_path)
    with WebhookReceiver(SECRET) as crm, caplog.at_level(logging.ERROR, logger="ivr.live.webhook"):
        deliverer = _deliverer(engine, crm.url, environ={})
        deliverer.run_once()
        deliverer.run_once()
        assert crm.tries == []
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "IVR_WEBHOOK_SECRET" in said[0] and "kept in the outbox" in said[0]
    assert _row(engine)["attempts"] == 0


def test_a_redirect_is_not_followed(tmp_path):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.send_response(307)
            self.send_header("Location", "http://example.invalid/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        engine = _db(tmp_path)
        _deliverer(engine, f"http://127.0.0.1:{server.server_address[1]}/hook").run_once()
    finally:
        server.shutdown()
        server.server_close()
    assert (_row(engine)["last_status"], _row(engine)["last_error"]) == (307, "HTTP 307")


def test_rows_claimed_but_not_posted_at_a_stop_are_handed_back_at_once(tmp_path):
    engine = _db(tmp_path, 3)
    with WebhookReceiver(SECRET) as crm:
        deliverer = _deliverer(engine, crm.url)
        deliverer._stop.set()  # a stop arrives while the round has its rows
        deliverer.run_once()
        assert crm.tries == []
    with engine.connect() as conn:
        leases = conn.execute(sa.select(WebhookDelivery.claimed_until)).scalars().all()
    assert leases == [None, None, None]

"""The CRM feed of `ivr serve`: each ended call POSTed as signed JSON to config.yaml's
`crm.webhook.url`, from the outbox (`ivr.store.outbox`), retried until delivered.

Never on the call path: the deliverer is a thread of its own with its own database
sessions (the writer's connection pool), and the calls only ever reach it through the
outbox rows the call-records writer stores with each call's end. A receiver that is slow
or down costs the calls nothing; its calls wait in the outbox, across restarts.

Each POST (docs/crm.md for the receiver's side):
    Content-Type: application/json
    X-IVR-Delivery: <delivery id>        the same on every try of one call: drop repeats by it
    X-IVR-Timestamp: <unix seconds>      when this try was signed
    X-IVR-Signature: v1=<hex>            HMAC-SHA256 with the secret of "<timestamp>." + body
A 2xx answer is a delivery. Anything else (another status, no answer within the timeout,
a refused connection) is tried again after an exponential back-off with jitter: about
`retry_min` seconds after the first failure, doubling up to `retry_max`. The reason kept
is short: the status, or what failed, never the receiver's body nor the secret.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Mapping, Optional

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ivr.errors import MissingSecret
from ivr.settings.config import expand_env
from ivr.settings.crm import WebhookSettings
from ivr.store import outbox

log = logging.getLogger(__name__)

RETRY_MIN = 5.0  # seconds after a first failure
RETRY_MAX = 300.0  # the back-off's cap
POLL = 1.0  # seconds between looks at the outbox when it had nothing due
BATCH = 20  # rows claimed at a time
USER_AGENT = "ivr-webhook/1"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-IVR-Signature value: v1= and the hex HMAC-SHA256 of "<timestamp>." + body."""
    return "v1=" + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def backoff(attempts: int, retry_min: float = RETRY_MIN, retry_max: float = RETRY_MAX,
            rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after the `attempts`-th failed POST: doubling from `retry_min`, capped at
    `retry_max`, and taken between half of that and all of it, so that deliverers which failed
    together (the receiver went down for all of them) do not come back together."""
    ceiling = min(retry_max, retry_min * 2 ** max(attempts - 1, 0))
    return ceiling * (0.5 + 0.5 * rand())


class WebhookDeliverer:
    """Posts the outbox's calls to the webhook from a thread of its own."""

    def __init__(self, engine: Engine, settings: WebhookSettings, *, environ: Mapping[str, str] = os.environ,
                 retry_min: float = RETRY_MIN, retry_max: float = RETRY_MAX, poll: float = POLL, batch: int = BATCH):
        self.engine = engine
        self.settings = settings
        self.environ = environ
        self.retry_min, self.retry_max = retry_min, retry_max
        self.poll = poll
        self.batch = batch
        self.lease = 2 * settings.timeout + 30  # a POST never outlives its lease
        # figures for /metrics, each written by the deliverer's thread only
        self.delivered = 0
        self.failures = 0
        self.backlog = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._said_missing = False
        self._database_failing = False

    # --- as a part of the runtime (async start/close) --------------------------------------
    async def start(self) -> None:
        self.start_thread()

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    def start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ivr-webhook", daemon=True)
        self._thread.start()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop after the POST in progress (its own timeout bounds the wait)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.settings.timeout + 5)

    # --- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        log.info("CRM webhook: posting ended calls to %s", self._shown_url())
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except SQLAlchemyError as exc:
                if not self._database_failing:
                    log.error("CRM webhook: the database fails (%s); trying again", type(exc).__name__)
                self._database_failing = True
                busy = False
            except Exception:  # noqa: BLE001 - a bug here must not end the feed: logged, tried again
                log.exception("CRM webhook: a delivery round failed")
                busy = False
            if not busy:
                self._stop.wait(self.poll)

    def run_once(self, now: Optional[dt.datetime] = None) -> bool:
        """One round: claim what is due and post it. True when there may be more due at once."""
        secret = self._secret()
        self.backlog = outbox.backlog(self.engine)
        self._database_failing = False
        if secret is None or not self.backlog:
            return False
        rows = outbox.claim(self.engine, self.batch, self.lease, now)
        for n, row in enumerate(rows):
            if self._stop.is_set():  # stopping: the rest are handed back for the next engine at once
                outbox.release(self.engine, rows[n:])
                break
            self._deliver(row, secret)
        self.backlog = outbox.backlog(self.engine)
        return len(rows) == self.batch

    def _secret(self) -> Optional[bytes]:
        name = self.settings.secret_variable
        value = self.environ.get(name)
        if not value:
            if not self._said_missing:
                log.error("CRM webhook: the environment variable %s (config.yaml crm.webhook.secret) is not set; "
                          "ended calls are kept in the outbox until it is", name)
                self._said_missing = True
            return None
        self._said_missing = False
        return value.encode()

    def _deliver(self, row: outbox.Claimed, secret: bytes) -> None:
        body_data = outbox.payload(self.engine, row, self.settings.qa_url)
        if body_data is None:  # the call was deleted meanwhile: nothing left to tell
            outbox.delivered(self.engine, row, 0)
            return
        body = json.dumps(body_data, ensure_ascii=False, separators=(",", ":")).encode()
        status, reason = self.post(body, row.delivery_id, secret)
        if status is not None and 200 <= status < 300:
            outbox.delivered(self.engine, row, status)
            self.delivered += 1
            return
        self.failures += 1
        pause = backoff(row.attempts + 1, self.retry_min, self.retry_max)
        outbox.failed(self.engine, row, status, reason,
                      dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=pause))
        if row.attempts == 0 or (row.attempts + 1) % 10 == 0:  # not a line a try for a receiver down all day
            log.warning("CRM webhook: call %s not delivered (%s, try %d); trying again in %.0f s",
                        row.call_id, reason, row.attempts + 1, pause)

    def post(self, body: bytes, delivery_id: str, secret: bytes) -> tuple[Optional[int], str]:
        """POST `body`; (the HTTP status, or None without an answer; a short reason)."""
        timestamp = str(int(time.time()))
        try:
            url = expand_env(self.settings.url, self.environ)
        except MissingSecret as exc:
            return None, f"the url's variable {exc.name} is not set"
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, "X-IVR-Delivery": delivery_id,
            "X-IVR-Timestamp": timestamp, "X-IVR-Signature": signature(secret, timestamp, body)})
        try:
            # no proxy from the environment: the CRM is reached as configured, nothing else sees the calls
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
            with opener.open(request, timeout=self.settings.timeout) as response:
                response.read(1024)  # a little of the answer, so the connection closes cleanly
                return response.status, f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code, f"HTTP {exc.code}"
        except urllib.error.URLError as exc:
            return None, _reason(exc.reason)
        except (TimeoutError, socket.timeout):
            return None, f"no answer within {self.settings.timeout:g} s"
        except (OSError, ValueError, http.client.HTTPException) as exc:  # a reset connection, a bad status line
            return None, _reason(exc)

    def _shown_url(self) -> str:
        """The URL for the log: scheme, host and path; never a query (it may carry a key)."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.settings.url)
        return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure, not a second POST somewhere else: the receiver's address is config."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _reason(error: Any) -> str:
    if isinstance(error, (TimeoutError, socket.timeout)):
        return "no answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "host not found"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__

"""A CRM's webhook receiver for the tests: a real HTTP server on 127.0.0.1, in a thread.

It checks each POST as docs/crm.md tells a receiver to (the HMAC of timestamp and body with
the shared secret, a fresh timestamp), keeps every try it saw (`tries`: the headers, the
body, when) and the deliveries it accepted, dropping repeats by their delivery id
(`accepted`, in order). `status` is what it answers (200; 503 to play a CRM in trouble);
`down()` stops listening (the engine's connections are refused) and `up()` listens again on
the same port; `delay` holds each answer back that many seconds (a slow CRM).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional


@dataclass
class Try:
    headers: dict[str, str]  # by lower-case name
    body: bytes
    at: float  # time.monotonic()
    signed: bool  # the signature checked out with the receiver's secret
    status: int  # what the receiver answered

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, secret: str, status: int = 200, delay: float = 0.0, max_age: float = 300.0):
        self.secret = secret.encode()
        self.status = status
        self.delay = delay
        self.max_age = max_age
        self.tries: list[Try] = []
        self.accepted: dict[str, Any] = {}  # delivery id -> the call's JSON, first time only
        self.repeats = 0  # tries of a delivery already accepted (dropped)
        self.port = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # --- the checks of docs/crm.md ----------------------------------------------------------
    def signed(self, headers: dict[str, str], body: bytes) -> bool:
        timestamp = headers.get("x-ivr-timestamp", "")
        sent = headers.get("x-ivr-signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.max_age:
            return False
        expected = "v1=" + hmac.new(self.secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, sent)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        headers = {name.lower(): value for name, value in handler.headers.items()}  # names are case-blind
        if self.delay:
            time.sleep(self.delay)
        signed = self.signed(headers, body)
        status = self.status if signed else 401
        with self._lock:
            self.tries.append(Try(headers, body, time.monotonic(), signed, status))
            if 200 <= status < 300:
                delivery = headers.get("x-ivr-delivery", "")
                if delivery in self.accepted:
                    self.repeats += 1
                else:
                    self.accepted[delivery] = json.loads(body)
            self._changed.notify_all()
        answer = b'{"ok": true}' if status < 300 else b'{"error": "try later"}'
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)

    # --- listening ------------------------------------------------------------------------
    def up(self) -> "WebhookReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                try:
                    receiver._handle(self)
                except OSError:  # the engine gave up waiting (its timeout)
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ivr/calls"

    def __enter__(self) -> "WebhookReceiver":
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # --- waiting ---------------------------------------------------------------------------
    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        """Until `predicate(self)` holds; AssertionError saying `what` was not seen."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the webhook receiver did not see {what} within {timeout:g} s "
                                         f"({len(self.tries)} tries, {len(self.accepted)} accepted)")
                self._changed.wait(left)

    def calls(self) -> dict[str, Any]:
        """The calls accepted, by call id (one each, however often a call was tried)."""
        return {body["call"]["id"]: body["call"] for body in self.accepted.values()}

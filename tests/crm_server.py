"""A small CRM for the segment lookup tests: a real HTTP server on 127.0.0.1, in a thread.

`CrmServer(mode)` answers GET /vip?number=N:
- "json": 200 {"segment": true} for the numbers in `members`, 404 for the others;
- "status": 200 for members, 404 for the others, empty bodies;
- "slow": the json answer, after `delay` seconds (longer than the lookup's time-out);
- "garbage": 200 with a body that is no JSON;
- "error": 500.
It keeps every request (the path as sent and the headers), so a test can see what the
engine asked. `closed_port()` is a port on 127.0.0.1 where nothing listens.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable
from urllib.parse import parse_qs, urlsplit


class CrmServer:
    def __init__(self, mode: str = "json", members: Iterable[str] = (), delay: float = 2.0):
        self.mode = mode
        self.members = set(members)
        self.delay = delay
        self.requests: list[tuple[str, dict[str, str]]] = []
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                crm.requests.append((self.path, dict(self.headers)))
                number = parse_qs(urlsplit(self.path).query).get("number", [""])[0]
                member = number in crm.members
                if crm.mode == "slow":
                    time.sleep(crm.delay)
                if crm.mode == "garbage":
                    self._send(200, b"<html>Service temporarily unavailable</html>", "text/html")
                elif crm.mode == "error":
                    self._send(500, b"{}", "application/json")
                elif crm.mode == "status":
                    self._send(200 if member else 404, b"", "text/plain")
                else:
                    body = json.dumps({"segment": True, "customer": "premium"}).encode() if member else b'{"error": "unknown number"}'
                    self._send(200 if member else 404, body, "application/json")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up waiting (a time-out): nothing to answer
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"crm-{mode}", daemon=True)

    def url(self, path: str = "/vip?number={number}") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "CrmServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def numbers_asked(self) -> list[str]:
        return [parse_qs(urlsplit(path).query).get("number", [""])[0] for path, _ in self.requests]


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections (bound a moment, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

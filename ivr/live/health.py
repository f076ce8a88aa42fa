"""`ivr serve`'s health and metrics over HTTP, on the serve loop itself.

Three paths, GET or HEAD, one request a connection:

    /health/live    200 "live" while the event loop answers (no database, no lock: what a
                    supervisor restarts the process on)
    /health/ready   200 when the engine takes new calls, 503 when it does not (starting,
                    no flows, stopping in its grace period): one line says why
                    (ivr.live.metrics.ServeMetrics.ready); what a balancer's check asks
    /metrics        the Prometheus exposition, to this host or with the token
                    (ivr.metrics_access)

asyncio-native, so a scrape reads the call figures on the thread that writes them, and
the call path pays nothing for the server: it runs only when a client connects. What a
client may send is bounded (8 kB of request head, 5 s to send it, 64 connections at once);
anything else is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from ivr.live.metrics import CONTENT_TYPE, ServeMetrics
from ivr.metrics_access import REFUSED, may_read_metrics, metrics_token

log = logging.getLogger(__name__)

MAX_HEAD = 8 * 1024  # bytes of request line and headers: a health check sends under 200
HEAD_SECONDS = 5.0  # to send them
MAX_CONNECTIONS = 64  # at once: a balancer and Prometheus need a few
PATHS = ("/health/live", "/health/ready", "/metrics")


class HealthServer:
    """The HTTP server of one runtime's health and metrics."""

    def __init__(self, metrics: ServeMetrics, host: str = "127.0.0.1", port: int = 9573):
        self.metrics = metrics
        self.host = host
        self.port = port
        self.token = metrics_token()
        self.server: Optional[asyncio.AbstractServer] = None
        self._open = 0

    async def start(self) -> None:
        """Listen; OSError when the address cannot be had (the caller says which)."""
        self.server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_HEAD)
        sockets = self.server.sockets or []
        if sockets:
            self.port = sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= MAX_CONNECTIONS:
            writer.transport.abort()
            return
        self._open += 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_SECONDS)
            status, content_type, body, head_only = self._answer(head, writer.get_extra_info("peername"))
            writer.write(_response(status, content_type, body, head_only))
            await asyncio.wait_for(writer.drain(), HEAD_SECONDS)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
            pass  # a TCP check that only connects, a client gone, a head too long or too slow
        except Exception:  # noqa: BLE001 - a bug answers 500 to this client, and the server goes on
            log.exception("health and metrics: a request failed")
            writer.write(_response(500, "text/plain; charset=utf-8", b"internal error\n", False))
        finally:
            self._open -= 1
            writer.close()

    def _answer(self, head: bytes, peer: Any) -> tuple[int, str, bytes, bool]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, "text/plain; charset=utf-8", b"bad request\n", False
        method, target = parts[0], parts[1].split("?", 1)[0]
        text = "text/plain; charset=utf-8"
        if target not in PATHS:
            return 404, text, f"not found; the paths are {', '.join(PATHS)}\n".encode(), False
        if method not in ("GET", "HEAD"):
            return 405, text, b"only GET and HEAD\n", False
        head_only = method == "HEAD"
        if target == "/health/live":
            return 200, text, b"live\n", head_only
        if target == "/health/ready":
            ready, reason = self.metrics.ready()
            return (200 if ready else 503), text, f"{'ready' if ready else 'not ready'}: {reason}\n".encode(), head_only
        authorization = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "authorization":
                authorization = value.strip()
        address = peer[0] if isinstance(peer, (tuple, list)) and peer else None
        if not may_read_metrics(address, authorization, self.token):
            return 403, text, f"{REFUSED}\n".encode(), head_only
        return 200, CONTENT_TYPE, self.metrics.exposition(), head_only


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}


def _response(status: int, content_type: str, body: bytes, head_only: bool) -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + (b"" if head_only else body)

"""HAProxy in front of several `ivr serve`: Debian's package, a config written here.

The FastAGI entry of the multi-node test bed (ivr.testbed.cluster): every Asterisk's
dialplan sends its calls to one address, HAProxy's TCP frontend, and HAProxy hands each
connection to one engine:

- `balance leastconn`: a call is one long TCP session, so the engine with the fewest calls
  gets the next one;
- a health check of each engine's `GET /health/ready` on its metrics port (`check port`),
  every CHECK_INTER ms, down after FALL failures, up after RISE: an engine in its SIGTERM
  grace period answers 503 and gets no new call, while the calls it runs go on;
- a connection refused by an engine (killed, between two checks) is tried again on the
  other one (`retries`, `option redispatch 1`), and the first refusal marks the engine
  down at once (`observe layer4`), so no call is lost to a dead engine;
- no `on-marked-down shutdown-sessions`: an engine marked down keeps its calls until they
  end (a draining engine finishes them; a dead one has closed them itself);
- the client and server time-outs are hours: the AGI connection of a caller waiting in a
  queue is silent for as long as the wait lasts.

The process runs in the foreground (`-db`) as a child of whoever starts it; its
administrative socket (`show servers state`) is in its folder; `stop()` ends it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ivr.errors import AsteriskError
from ivr.testbed.daemon import Daemon

CHECK_INTER = 500  # ms between two health checks of an engine
FALL = 2  # failed checks before an engine is taken out
RISE = 2  # passed checks before it is taken back
SESSION_TIMEOUT = "4h"  # a call's AGI connection may be silent this long (a queue's wait)
BACKEND = "engines"


@dataclass(frozen=True)
class Engine:
    """One `ivr serve` behind HAProxy: its FastAGI address and its metrics port."""

    name: str
    host: str
    agi_port: int
    metrics_port: int


def haproxy_cfg(*, port: int, engines: Sequence[Engine], admin: Path, host: str = "127.0.0.1") -> str:
    """The whole haproxy.cfg: a TCP frontend for FastAGI onto the engines."""
    servers = []
    for engine in engines:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", engine.name):
            raise AsteriskError(f"an engine's name is letters, digits, '-' and '_', not {engine.name!r}")
        servers.append(f"    server {engine.name} {engine.host}:{engine.agi_port} check port {engine.metrics_port}")
    return f"""# The IVR test bed's FastAGI entry (written by ivr.testbed.haproxy): the Asterisks send
# every call here; HAProxy hands it to the engine with the fewest calls that is ready.
global
    log stdout format raw local0 info
    stats socket {admin} mode 600 level admin
    # two descriptors a call (Asterisk side, engine side): within the usual open-files limit
    maxconn 5000

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 1s
    # an AGI connection is silent while its caller waits in a queue
    timeout client {SESSION_TIMEOUT}
    timeout server {SESSION_TIMEOUT}
    # a refused connection is tried again, each time on another engine
    retries 3
    option redispatch 1
    option clitcpka
    option srvtcpka

frontend fastagi
    bind {host}:{port}
    default_backend {BACKEND}

backend {BACKEND}
    balance leastconn
    # ready: 200; starting, stopping in its grace period, no flows: 503
    option httpchk
    http-check send meth GET uri /health/ready
    http-check expect status 200
    # no shutdown-sessions: an engine marked down finishes the calls it has
    default-server inter {CHECK_INTER}ms fastinter {CHECK_INTER // 2}ms downinter {CHECK_INTER * 2}ms fall {FALL} rise {RISE} observe layer4 error-limit 1 on-error mark-down
{chr(10).join(servers)}
"""


class HAProxy(Daemon):
    """Debian's haproxy on the test bed's config, as a foreground child process."""

    name = "haproxy"
    what = "start on"

    def __init__(self, folder: Path, engines: Sequence[Engine], *, port: int, host: str = "127.0.0.1"):
        super().__init__(folder, port=port, host=host)
        self.engines = list(engines)

    @property
    def admin(self) -> Path:
        return self.folder / "haproxy.sock"

    def write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        cfg = self.folder / "haproxy.cfg"
        cfg.write_text(haproxy_cfg(port=self.port, host=self.host, engines=self.engines, admin=self.admin),
                       encoding="utf-8")
        return cfg

    def arguments(self, config: Path) -> list[str]:
        return ["-db", "-f", str(config)]

    def before_start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.admin.unlink()

    def ready(self) -> bool:
        try:
            self.command("show info")
        except (OSError, AsteriskError):
            return False
        return True

    def command(self, line: str) -> str:
        """One command on the administrative socket; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def servers(self) -> dict[str, str]:
        """Each engine's name -> its state as HAProxy sees it now: UP, DOWN, ... (`show stat`)."""
        lines = self.command("show stat").splitlines()
        if not lines or not lines[0].startswith("# "):
            raise AsteriskError(f"haproxy's `show stat` answered {lines[:2]!r}")
        header = lines[0][2:].split(",")
        state = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == BACKEND and row.get("svname") not in ("BACKEND", None):
                state[row["svname"]] = row.get("status", "")
        return state

    def wait_state(self, want: dict[str, str], timeout: float) -> float:
        """Until each named engine has its state (e.g. {"e1": "UP"}: up and not on its way
        down, which HAProxy shows as "UP 1/2"); the seconds it took."""
        started = time.monotonic()
        while True:
            now = self.servers()
            if all(now.get(name) == state for name, state in want.items()):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AsteriskError(f"haproxy's engines are {now}, not {want}, after {timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.1)

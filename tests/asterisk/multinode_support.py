"""The engines of the multi-node live tests: `ivr serve` processes of one installation on
one PostgreSQL, each on the AGI and metrics ports of the cluster's layout
(ivr.testbed.cluster), and SIP callers that enter at Kamailio.

- `named_installation()` writes the installation as the nodes and the engines share it:
  the live installation's (live_support.live_installation: office open around the clock,
  the test bed's prompts and recordings folders) with `asterisk.nodes` instead of `ami:`,
  both Asterisks by name with their AMI ports and HAProxy's address for their dialplans
  (ivr.testbed.cluster.nodes_section), as docs/nodes.md tells a site to write it.
- `engine_installation()` writes one engine's config.yaml: that one, with the shared
  database and the engine's own AGI and metrics ports. Every engine talks AMI to every
  node, so the call of either Asterisk is judged on its own node's queues. Flows are the
  repository's, linked beside it.
- `EngineProcess` runs `ivr serve` on it (started, ready, killed or stopped).
- `SipCaller` places one SIPp call into Kamailio (RFC 4733 keys, ACK and BYE along the
  recorded route) in a thread of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import yaml

from ivr.live.metrics import parse_exposition
from ivr.testbed.cluster import Layout, nodes_section
from ivr.testbed.haproxy import Engine
from ivr.testbed.server import REPO, Testbed
from ivr.testbed.sipp import CallResult, parse_keys, place_call
from .live_support import live_installation
from .testbed_support import IVR


def named_installation(folder: Path, node_bed: Testbed, layout: Layout) -> Path:
    """config.yaml of the cluster's installation in `folder`: every node of `layout` under
    `asterisk.nodes` (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = live_installation(folder, node_bed)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["asterisk"]["nodes"] = nodes_section(layout, raw["asterisk"].pop("ami"))
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def engine_installation(folder: Path, node_bed: Testbed, engine: Engine, layout: Layout, database: str) -> Path:
    """config.yaml (and flows/) of one engine of the cluster, in `folder`."""
    path = named_installation(folder, node_bed, layout)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["database"] = database
    raw["asterisk"]["agi"] = {**raw["asterisk"]["agi"], "host": engine.host, "port": engine.agi_port,
                              "metrics_port": engine.metrics_port}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (folder / "flows").symlink_to(REPO / "flows", target_is_directory=True)
    return path


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


@dataclass
class EngineProcess:
    """`ivr serve` of one engine's installation, as the README starts it."""

    engine: Engine
    config_path: Path
    secret: str
    process: Optional[subprocess.Popen] = None

    @property
    def log_path(self) -> Path:
        return self.config_path.parent / "serve.log"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.engine.metrics_port}"

    def spawn(self) -> "EngineProcess":
        """Start the process (see `wait_ready`)."""
        env = {**os.environ, "IVR_CONFIG": str(self.config_path), "IVR_AMI_SECRET": self.secret}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([str(IVR), "serve", "--log-level", "debug"], cwd=REPO, env=env,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, nodes: Iterable[str], timeout: float = 40) -> "EngineProcess":
        """Until /health/ready answers 200 and the AMI of every one of `nodes` is connected."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        want = {name: 1.0 for name in nodes}
        while http_get(f"{self.metrics_url}/health/ready")[0] != 200 or self.ami_connected() != want:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"`ivr serve` of engine {self.engine.name} did not become ready "
                                     f"(exit {self.process.poll()}):\n{self.log()[-4000:]}")
            time.sleep(0.2)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def ended(self) -> dict[str, float]:
        """The calls this engine ended since it started, by outcome (its /metrics)."""
        code, text = http_get(f"{self.metrics_url}/metrics")
        assert code == 200, f"engine {self.engine.name}'s /metrics answered {code}: {text[:300]}"
        return {dict(labels).get("outcome", ""): value for (name, labels), value in parse_exposition(text).items()
                if name == "ivr_calls_ended_total"}

    def ami_connected(self) -> dict[str, float]:
        """`ivr_ami_connected` of each node, by name, from /metrics ({} while it does not answer)."""
        code, text = http_get(f"{self.metrics_url}/metrics")
        if code != 200:
            return {}
        return {dict(labels).get("node", ""): value for (name, labels), value in parse_exposition(text).items()
                if name == "ivr_ami_connected"}

    def wait_ami(self, want: dict[str, float], timeout: float) -> float:
        """Until /metrics shows `ivr_ami_connected` of each node as in `want`; the seconds it took."""
        started = time.monotonic()
        while (now := self.ami_connected()) != want:
            if time.monotonic() - started > timeout:
                raise AssertionError(f"engine {self.engine.name}'s ivr_ami_connected is {now}, not {want}, "
                                     f"after {timeout:g}s:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: the engine dies at once, as in a crash or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@dataclass
class SipCaller:
    """One SIPp call into Kamailio: KEYS in `ivr call` syntax, then HOLD seconds on the line."""

    number: str
    kamailio_port: int
    keys: str = ""
    hold: float = 8.0
    placed_at: float = 0.0  # time.monotonic() when SIPp started
    result: Optional[CallResult] = None
    error: Optional[BaseException] = None
    _thread: Optional[threading.Thread] = field(default=None, repr=False)

    def place(self) -> "SipCaller":
        self.placed_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"sipp-{self.number}")
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = place_call(parse_keys(self.keys, 2.0), port=self.kamailio_port, hold=self.hold,
                                     caller_id=self.number, caller_name=f"Multinode {self.number}", proxied=True)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    def finish(self, timeout: float) -> CallResult:
        assert self._thread is not None
        self._thread.join(timeout)
        if self.error is not None:
            raise AssertionError(f"the SIPp call from {self.number} could not be placed: {self.error}")
        if self._thread.is_alive():
            raise AssertionError(f"the SIPp call from {self.number} is still running after {timeout:g}s")
        assert self.result is not None
        return self.result

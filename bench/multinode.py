"""One node against two: the throughput of the IVR on one Asterisk and one engine, and on
two of each behind Kamailio and HAProxy (ivr.testbed.cluster), side by side in one run.

For each rate (new calls a second), SIPp places calls for DURATION seconds, first into
one node (SIPp -> ast1 -> e1 directly), then into two (SIPp -> Kamailio -> ast1/ast2 ->
HAProxy -> e1/e2). Every call hears the welcome of flows/main.yaml and hangs up in the
language menu HOLD seconds after the answer, as the live tests' callers do; both engines
store calls in one PostgreSQL. A run is clean when every SIPp call succeeded and every
call was stored once with its outcome. Printed per rate and layout: calls placed, failed,
stored, the calls a second reached clean, and the CPU milliseconds per call of each part
(Asterisk, ivr serve, Kamailio, HAProxy), from /proc/<pid>/stat before and after.

What it can show on this machine (2 cores, shared by every process of both layouts):
what the extra hops cost per call (Kamailio, HAProxy), and that two nodes spread the
calls and take the same rate cleanly. It cannot show that two nodes carry twice the
calls: both nodes run on the same two cores, so the second node adds no CPU; on two
machines each node has its own, which is the point of the layout. Other processes on the
machine (benchmarks, CI runs) make the figures noisy: compare the two layouts of ONE run.

    .venv/bin/python bench/multinode.py                      # rates 4, 8, 12 /s, 20 s each
    .venv/bin/python bench/multinode.py --rates 2,4 --duration 10

It starts the multi-node test bed (its own ports; the single test bed may run beside it)
and a throwaway PostgreSQL, and stops both at the end. Exit status 0 unless the script
itself broke.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import sqlalchemy as sa
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from the repository root
    sys.path.insert(0, str(REPO))

from ivr.asterisk.dialplan import with_members  # noqa: E402
from ivr.settings.config import load_config  # noqa: E402
from ivr.store.db import create_db_engine, init_db  # noqa: E402
from ivr.store.models import Call  # noqa: E402
from ivr.testbed.cluster import Cluster, Layout, node_side  # noqa: E402
from ivr.testbed.haproxy import Engine  # noqa: E402
from ivr.testbed.postgres import start_postgres  # noqa: E402
from ivr.testbed.server import Testbed  # noqa: E402
from ivr.testbed.sipp import sip_messages  # noqa: E402

IVR = Path(sys.executable).with_name("ivr")
AGENTS = tuple(f"Local/{n}@agents/n" for n in range(201, 209))
HOLD = 8.0  # seconds on the line after the answer: the welcome (6.7 s) plays, the menu starts
CPU_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    layout: str
    rate: float
    placed: int = 0
    ok: int = 0
    failed: int = 0
    stored: int = 0
    seconds: float = 0.0  # SIPp's placing time (first to last new call)
    cpu: Optional[dict[str, float]] = None  # part -> CPU seconds over the run

    @property
    def clean(self) -> bool:
        return self.placed > 0 and self.ok == self.placed == self.stored

    def row(self) -> str:
        per_call = "  ".join(f"{part} {1000 * seconds / max(self.placed, 1):5.1f}"
                             for part, seconds in (self.cpu or {}).items())
        reached = self.placed / self.seconds if self.seconds else 0.0
        return (f"{self.rate:5g}/s  {self.layout:<9} placed {self.placed:4d}  ok {self.ok:4d}  failed {self.failed:3d}  "
                f"stored {self.stored:4d}  {'CLEAN' if self.clean else 'NOT CLEAN'} at {reached:5.1f} calls/s  "
                f"CPU ms/call: {per_call}")


def scenario(caller_prefix: str, proxied: bool) -> str:
    """INVITE, ACK, HOLD seconds (or the far end's BYE), our BYE; each call its own number."""
    message = sip_messages(caller_name="Bench", caller_id=f"{caller_prefix}[call_number]", proxied=proxied)
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8" ?>', '<scenario name="multinode bench">',
        f'  <send retrans="500">{message["invite"]}</send>',
        '  <recv response="100" optional="true"/>', '  <recv response="180" optional="true"/>',
        '  <recv response="183" optional="true"/>',
        '  <recv response="200" rtd="true"' + (' rrs="true"' if proxied else '') + '/>',
        f'  <send>{message["ack"]}</send>',
        f'  <recv request="BYE" timeout="{round(HOLD * 1000)}" ontimeout="hang_up" next="remote_bye"/>',
        '  <label id="hang_up"/>', f'  <send retrans="500">{message["bye"]}</send>',
        '  <recv response="200" crlf="true" next="done"/>',
        '  <label id="remote_bye"/>', f'  <send>{message["ok"]}</send>',
        '  <label id="done"/>', '</scenario>', ''])


def _free_udp_port(even: bool = False) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not even or port % 2 == 0:
            return port


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system, with waited-for children) of each part's processes."""
    out = {}
    for part, numbers in pids.items():
        total = 0.0
        for pid in numbers:
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += sum(int(v) for v in fields[11:15]) / CPU_TICK
        out[part] = total
    return out


def _children(pid: int) -> list[int]:
    found = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def run_rate(folder: Path, *, layout: str, port: int, proxied: bool, rate: float, duration: float, prefix: str,
             database: str, pids: dict[str, list[int]]) -> Result:
    (folder / "bench.xml").write_text(scenario(prefix, proxied), encoding="utf-8")
    total = max(1, round(rate * duration))
    sipp = shutil.which("sipp")
    if sipp is None:
        raise RuntimeError("sipp is missing: install sip-tester (scripts/bootstrap.sh test)")
    command = [sipp, f"127.0.0.1:{port}", "-sf", str(folder / "bench.xml"), "-s", "100", "-r", f"{rate:g}",
               "-rp", "1000", "-m", str(total), "-l", str(int(rate * (HOLD + 10))), "-i", "127.0.0.1",
               "-p", str(_free_udp_port()), "-mp", str(_free_udp_port(even=True)), "-nostdin",
               "-timeout", f"{int(duration + HOLD + 60)}s", "-trace_stat", "-stf", str(folder / "stat.csv"),
               "-fd", "1"]
    before = cpu_seconds(pids)
    subprocess.run(command, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=duration + HOLD + 90)
    result = Result(layout, rate)
    rows = list(csv.DictReader((folder / "stat.csv").read_text(errors="replace").splitlines(), delimiter=";"))
    if rows:
        last = rows[-1]
        result.placed = int(float(last.get("TotalCallCreated") or 0))
        result.ok = int(float(last.get("SuccessfulCall(C)") or 0))
        result.failed = int(float(last.get("FailedCall(C)") or 0))
    result.seconds = max(total - 1, 1) / rate
    deadline = time.monotonic() + 30
    db = create_db_engine(database)
    try:
        while True:
            with db.connect() as conn:
                result.stored = conn.execute(sa.select(sa.func.count()).select_from(Call).where(
                    Call.caller.like(f"{prefix}%"), Call.outcome.is_not(None))).scalar_one()
            if result.stored >= result.ok or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        db.dispose()
    after = cpu_seconds(pids)
    result.cpu = {part: after[part] - before[part] for part in pids}
    return result


@contextlib.contextmanager
def engines(folder: Path, layout: Layout, base: Path, database: str, secret: str) -> Iterator[list[subprocess.Popen]]:
    processes = []
    try:
        for engine, node in zip(layout.engines, layout.nodes):
            place = folder / engine.name
            place.mkdir()
            raw = yaml.safe_load(base.read_text(encoding="utf-8"))
            raw["database"] = database
            raw["asterisk"]["agi"] = {**raw["asterisk"]["agi"], "host": engine.host, "port": engine.agi_port,
                                      "metrics_port": engine.metrics_port}
            raw["asterisk"]["ami"] = {**raw["asterisk"]["ami"], "port": node.ami_port}
            (place / "config.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
            (place / "flows").symlink_to(REPO / "flows", target_is_directory=True)
            env = {**os.environ, "IVR_CONFIG": str(place / "config.yaml"), "IVR_AMI_SECRET": secret}
            with open(place / "serve.log", "wb") as log:
                processes.append(subprocess.Popen([str(IVR), "serve"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                                  stdout=log, stderr=subprocess.STDOUT))
        for engine, process in zip(layout.engines, processes):
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(f"http://127.0.0.1:{engine.metrics_port}/health/ready", timeout=2):
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"`ivr serve` of {engine.name} did not become ready")
                time.sleep(0.2)
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)


def installation(folder: Path, bed: Testbed, database: str) -> Path:
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["schedules"]["office"]["weekly"] = {"mon-sun": "00:00-24:00"}
    raw["schedules"]["office"].pop("holidays", None)
    raw["database"] = database
    raw["recordings"] = {**raw.get("recordings", {}), "dir": str(bed.recordings_dir)}
    raw["prompts"] = {**raw["prompts"], "dir": str(bed.prompts_dir)}
    for segment in raw.get("segments", {}).values():
        if isinstance(segment, dict) and "numbers" in segment:
            segment["numbers"] = str(REPO / segment["numbers"])
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="4,8,12", help="new calls a second, comma-separated (default 4,8,12)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of new calls at each rate (default 20)")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    layout = Layout()
    postgres = start_postgres()
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="ivr-multinode-") as tmp:
            folder = Path(tmp)
            database = postgres.create_database()
            init_db(database).dispose()
            probe = Testbed(REPO / "config.yaml", node=layout.nodes[0])
            base = installation(folder, probe, database)
            subprocess.run([str(IVR), "--config", str(base), "prompts", "build", str(REPO / "flows")], check=True,
                           capture_output=True)
            config = load_config(base)
            asterisk = with_members(config, lambda department: AGENTS)
            with Cluster(base, asterisk, layout, log=print) as cluster, \
                    engines(folder, layout, base, database, probe.ami_secret) as processes:
                assert cluster.haproxy is not None and cluster.kamailio is not None
                cluster.haproxy.wait_state({e.name: "UP" for e in layout.engines}, 15)
                ast1, ast2 = (cluster.nodes[n.name] for n in layout.nodes)
                e1 = layout.engines[0]
                parts = {
                    "one": {"asterisk": [ast1.pid() or 0], "ivr serve": [processes[0].pid]},
                    "two": {"asterisk": [ast1.pid() or 0, ast2.pid() or 0],
                            "ivr serve": [p.pid for p in processes],
                            "kamailio": _children(cluster.kamailio.process.pid),
                            "haproxy": [cluster.haproxy.process.pid]},
                }
                for n, rate in enumerate(rates):
                    # one node: ast1's dialplan straight to e1, SIPp straight to ast1
                    ast1.reconfigure(node_side(asterisk, layout.nodes[0], e1.host, e1.agi_port))
                    results.append(run_rate(folder, layout="one node", port=layout.nodes[0].sip_port, proxied=False,
                                            rate=rate, duration=args.duration, prefix=f"4861{n:02d}",
                                            database=database, pids=parts["one"]))
                    print(results[-1].row(), flush=True)
                    ast1.reconfigure(node_side(asterisk, layout.nodes[0], "127.0.0.1", layout.agi_port))
                    results.append(run_rate(folder, layout="two nodes", port=layout.sip_port, proxied=True,
                                            rate=rate, duration=args.duration, prefix=f"4862{n:02d}",
                                            database=database, pids=parts["two"]))
                    print(results[-1].row(), flush=True)
    finally:
        postgres.stop()
    print("\nside by side (one run; the machine's 2 cores carry both layouts, so two nodes cannot show more "
          "capacity here, only what the extra hops cost):")
    for result in results:
        print("  " + result.row())
    for layout_name in ("one node", "two nodes"):
        clean = [r.rate for r in results if r.layout == layout_name and r.clean]
        print(f"  {layout_name}: highest clean rate of those tried {max(clean) if clean else 0:g} calls/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

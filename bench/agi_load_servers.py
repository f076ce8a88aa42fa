"""The servers the load generator (bench/agi_load.py) measures, each its own process on a
free loopback port, started and stopped by the generator: `ivr serve` in a temporary
installation (the bench flow, SQLite storing every call, no AMI), the same-wire floor
(bench/agi_floor.py) and panoramisk's FastAGI application (bench/agi_peer_panoramisk.py).
pyst2 is no server: Asterisk starts a process per call, and so does the generator
(`pyst2_argv`).

Also here: what is read of a server process from /proc (peak resident memory, CPU time)
and the check that the database holds every call placed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

BENCH = Path(__file__).resolve().parent
FLOW_FILE = BENCH / "agi_load_flow.yaml"
SCRIPT = "bench"  # the flow's id: agi_network_script of every call
START_TIMEOUT = 60.0

CONFIG = """\
# A temporary installation of the FastAGI load generator (bench/agi_load.py): SQLite
# stores every call; no AMI (the generator plays only Asterisk's AGI side).
asterisk:
  agi: {{host: 127.0.0.1, port: {port}}}
database: sqlite:///{database}
recordings: {{dir: {recordings}}}
prompts: {{dir: prompts, tts: espeak-ng}}
fallback: support
departments:
  sales: {{queue: sales, members: [PJSIP/101]}}
  support: {{queue: support, members: [PJSIP/104]}}
"""


class BenchError(RuntimeError):
    """A server would not start, or the generator could not do its work."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ivr_command() -> list[str]:
    """`ivr` of the running interpreter's environment (the project's .venv)."""
    script = Path(sys.executable).with_name("ivr")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from ivr.cli import main; sys.argv[0] = 'ivr'; main()"]


@dataclass
class Server:
    """A server process under test, and what is read of it."""

    name: str
    process: subprocess.Popen
    port: int
    folder: Path
    log: Path
    database: Optional[Path] = None
    notes: list[str] = field(default_factory=list)

    def peak_rss_mb(self) -> Optional[float]:
        """VmHWM: the peak resident memory of the process so far."""
        return _status_kb(self.process.pid, "VmHWM")

    def cpu_seconds(self) -> Optional[float]:
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _status_kb(pid: int, key: str) -> Optional[float]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def process_cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU time of a process (its own, not its children's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_mb(pids: list[int]) -> float:
    """The sum of the resident memory of live processes (VmRSS, from /proc/<pid>/statm)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass  # exited meanwhile
    return total / (1 << 20)


def workspace() -> Path:
    return Path(tempfile.mkdtemp(prefix="agi-load-"))


async def _wait_ready(server: Server, marker: str) -> Server:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} exited with status {server.process.returncode} before it listened; "
                             f"its log ({server.log}):\n{_tail(server.log)}")
        if server.log.exists() and marker in server.log.read_text(errors="replace"):
            return server
        await asyncio.sleep(0.05)
    server.stop()
    raise BenchError(f"{server.name} did not listen within {START_TIMEOUT:.0f} s; its log:\n{_tail(server.log)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _spawn(name: str, argv: list[str], folder: Path, port: int, **extra) -> Server:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{name}.log"
    with open(log, "wb") as out:
        # a new session: a Ctrl-C at the generator's terminal reaches the generator only,
        # which stops the server itself
        process = subprocess.Popen(argv, cwd=folder, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    return Server(name, process, port, folder, log, **extra)


async def start_ivr(folder: Optional[Path] = None) -> Server:
    """`ivr serve` in a fresh installation: the bench flow, SQLite, no AMI, prompts not built
    (Asterisk would play them; the generator reads no file)."""
    folder = folder or workspace()
    (folder / "flows").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FLOW_FILE, folder / "flows" / f"{SCRIPT}.yaml")
    database = folder / "ivr.db"
    port = free_port()
    (folder / "config.yaml").write_text(CONFIG.format(port=port, database=database, recordings=folder / "recordings"),
                                        encoding="utf-8")
    # the database made and migrated first, as on a site where `ivr serve` restarts: the
    # server's memory is then what it carries for calls, not the migration tool's
    subprocess.run([sys.executable, "-c", "import sys; from ivr.store import init_db; init_db(sys.argv[1]).dispose()",
                    f"sqlite:///{database}"], check=True, cwd=folder)
    argv = ivr_command() + ["--config", str(folder / "config.yaml"), "serve", "--host", "127.0.0.1", "--port", str(port),
                            "--metrics-port", "0"]  # beside any engine running on this host
    server = _spawn("ivr", argv, folder, port, database=database)
    return await _wait_ready(server, "FastAGI listening on")


async def start_floor(commands: Path, folder: Optional[Path] = None) -> Server:
    folder = folder or workspace()
    port = free_port()
    argv = [sys.executable, str(BENCH / "agi_floor.py"), str(commands), "--port", str(port)]
    return await _wait_ready(_spawn("floor", argv, folder, port), "ready ")


async def start_panoramisk(commands: Path, folder: Optional[Path] = None) -> Server:
    folder = folder or workspace()
    port = free_port()
    argv = [sys.executable, str(BENCH / "agi_peer_panoramisk.py"), str(commands), "--port", str(port),
            "--script", SCRIPT]
    return await _wait_ready(_spawn("panoramisk", argv, folder, port), "ready ")


def pyst2_argv(commands: Path) -> list[str]:
    """The AGI script Asterisk would run for each call (a process per call)."""
    return [sys.executable, str(BENCH / "agi_peer_pyst2.py"), str(commands)]


@dataclass
class Stored:
    calls: int  # calls rows with an outcome and an outcome event
    outcomes: dict[str, int]
    events: int


def stored_calls(database: Path) -> Stored:
    """What the call-records writer has stored so far."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
        outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM calls WHERE outcome IS NOT NULL GROUP BY outcome"))
        with_event = db.execute("SELECT COUNT(*) FROM calls WHERE outcome IS NOT NULL AND EXISTS (SELECT 1 FROM "
                                "call_events e WHERE e.call_id = calls.id AND e.type = 'outcome')").fetchone()[0]
        events = db.execute("SELECT COUNT(*) FROM call_events").fetchone()[0]
    return Stored(with_event, outcomes, events)


async def wait_stored(database: Path, expected: int, deadline_seconds: float = 60.0) -> Stored:
    """Waits (up to the deadline) for the writer to store `expected` calls; returns what it found."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            found = stored_calls(database)
        except sqlite3.Error:
            found = Stored(0, {}, 0)  # not migrated yet, or locked for a moment
        if found.calls >= expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)

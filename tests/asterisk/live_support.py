"""Live calls through the real engine for the asterisk tier: an installation made for the
test, `ivr serve`'s runtime in a thread of its own, and callers of both kinds.

- `live_installation()` writes a config.yaml into a temporary folder: the repository's own,
  with the office open around the clock (no test may depend on today's date or time),
  the call records in a SQLite file of that folder, the prompts and recordings folders the
  test bed has bind-mounted (so paths mean the same files on both sides), and an AGI port
  nobody else listens on.
- `serving()` points the test bed's dialplan at that installation (its AGI port, and a
  pool of fake agents so that calls placed together do not wait for one agent's wrap-up
  time), runs `build_runtime(...)` with AMI and the call records in a thread with its own
  event loop, and puts the test bed back afterwards.
- `serve_process()` is the same with `ivr serve` itself, run as a process on that
  installation (IVR_CONFIG names it), as the README's user starts it.
- `Caller` places a call: `ami` (AMI Originate of a Local channel whose other half
  presses keys with SendDTMF) or `sipp` (`ivr call`: SIPp sending RFC 4733 events), both
  from the same script: KEYS in `ivr call` syntax (key tokens 2 s apart after a first
  2 s, `6s` waits longer), then HOLD seconds on the line before hanging up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional
from urllib.parse import quote

import sqlalchemy as sa
import yaml

from ivr.testbed.ami_session import AmiSession, originate_keys
from ivr.asterisk.dialplan import with_announcements, with_members
from ivr.testbed.sipp import CallResult, parse_keys, place_call
from ivr.testbed.server import REPO, Testbed, free_tcp_port
from ivr.channels import fastagi
from ivr.channels.agi import AgiChannel
from ivr.flow.announcements import announcing_departments
from ivr.flow.project import load_flows
from ivr.settings.config import Config, Department, load_config
from ivr.errors import AmiError
from ivr.live.serve import AmiPart, Runtime, build_runtime
from ivr.store.db import create_db_engine
from ivr.store.models import Call, CallEvent, CallNode, QueueEvent, Recording
from .testbed_support import IVR

# Fake agents for the live calls: every queue may reach each of them at once (the test
# bed's [agents] context answers any 2XX and plays tt-monkeys for 16 s). Not 200, the test
# bed's own agent: other tests find it free, not in the wrap-up time after a call of ours.
AGENTS = tuple(f"Local/{n}@agents/n" for n in range(201, 209))
Members = Callable[[Department], Iterable[str]]
FIRST_KEY_WAIT = 2.0  # the test bed's [caller] context waits 2 s before its first key, as `ivr call --wait 2`


def live_installation(folder: Path, testbed: Testbed) -> Path:
    """config.yaml of the test's installation in `folder` (see the module docstring)."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    office = raw["schedules"]["office"]
    office["weekly"] = {"mon-sun": "00:00-24:00"}
    office.pop("holidays", None)
    raw["database"] = f"sqlite:///{folder / 'ivr.db'}"
    raw["recordings"] = {**raw.get("recordings", {}), "dir": str(testbed.recordings_dir)}
    raw["prompts"] = {**raw["prompts"], "dir": str(testbed.prompts_dir)}
    raw["asterisk"]["agi"] = {**raw["asterisk"]["agi"], "port": free_tcp_port(testbed.config.asterisk.agi.port),
                              "metrics_port": free_tcp_port(0)}  # two engines of two installations may run at once
    for segment in raw.get("segments", {}).values():
        if isinstance(segment, dict) and "numbers" in segment:
            segment["numbers"] = str(REPO / segment["numbers"])
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


class CapturingChannel(AgiChannel):
    """AgiChannel that keeps itself by uniqueid, so a test can read every line it sent."""

    made: dict[str, "CapturingChannel"] = {}
    keep_sent = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        CapturingChannel.made[self.env.uniqueid] = self


class LogRecords(logging.Handler):
    """Every record of the `ivr` loggers, kept."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class EventPump:
    """An AMI session whose events are kept: the test bed's observer, which is sent every
    event (the engine's user is sent only those the engine reads), or `username`."""

    def __init__(self, testbed: Testbed, username: Optional[str] = None):
        self.session = AmiSession(testbed.ami_host, testbed.ami_port)
        self.session.login(username or testbed.observer, testbed.ami_secret, events="on")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ami-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:  # matches nothing: every event goes to session.events
                self.session.wait_event("(none)", lambda e: False, timeout=0.5)
            except AmiError as exc:
                if "closed" in str(exc):
                    return

    def events(self, name: str) -> list[dict[str, str]]:
        return [e for e in list(self.session.events) if e.get("Event") == name]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.session.close()


@dataclass
class Serving:
    testbed: Testbed
    config_path: Path
    runtime: Runtime
    loop: asyncio.AbstractEventLoop
    logs: LogRecords
    ami_events: EventPump
    db: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        self.db = create_db_engine(load_config(self.config_path).raw["database"])

    def channel(self, uniqueid: str) -> CapturingChannel:
        return CapturingChannel.made[uniqueid]

    def calls_by_caller(self) -> dict[str, dict[str, Any]]:
        with self.db.connect() as conn:
            return {row["caller"]: dict(row) for row in conn.execute(sa.select(Call.__table__)).mappings()}

    def record(self, call_id: str) -> dict[str, Any]:
        """Everything stored about one call: its row, events, nodes, recordings, queue events."""
        def rows(table: Any, *where: Any, order: Any = None) -> list[dict[str, Any]]:
            query = sa.select(table.__table__).where(*where)
            return [dict(r) for r in conn.execute(query.order_by(order) if order is not None else query).mappings()]

        with self.db.connect() as conn:
            [call] = rows(Call, Call.id == call_id)
            events = [CallEvent(**row).to_dict() for row in rows(CallEvent, CallEvent.call_id == call_id, order=CallEvent.seq)]
            nodes = [row["node"] for row in rows(CallNode, CallNode.call_id == call_id, order=CallNode.t)]
            recordings = rows(Recording, Recording.call_id == call_id)
            queue = rows(QueueEvent, QueueEvent.uniqueid == call["uniqueid"], order=QueueEvent.id)
        return {"call": call, "events": events, "nodes": list(nodes), "recordings": recordings, "queue_events": queue}

    def dump(self) -> str:
        """Every row of every table as text: to search for what must never be stored."""
        out = []
        with self.db.connect() as conn:
            for table in (Call, CallEvent, CallNode, Recording, QueueEvent):
                for row in conn.execute(sa.select(table.__table__)):
                    out.append(repr(tuple(row)))
        return "\n".join(out)


def _wait_connected(part: AmiPart, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not part.client.connected:
        if time.monotonic() > deadline:
            raise AssertionError(f"the runtime's AMI client did not log in to the test bed within {seconds:g}s")
        time.sleep(0.1)


def asterisk_side(config_path: Path, members: Members, flows: Path = REPO / "flows") -> Config:
    """The installation's config as `ivr asterisk-config` turns it into Asterisk's files (the
    announce_position of the `flows` included), each department's members given by `members`."""
    loaded, config = load_flows([flows], config_path)
    config = with_announcements(config, announcing_departments(loaded.flows.values()))
    return with_members(config, members)


def _all_agents(department: Department) -> Iterable[str]:
    return AGENTS


@contextlib.contextmanager
def serving(testbed: Testbed, config_path: Path, *, flows: Optional[Path] = None,
            members: Members = _all_agents) -> Iterator[Serving]:
    """The installation's runtime serving the test bed's calls (see the module docstring);
    `flows` another folder of flows than the repository's, `members` each department's
    members in the test bed (default: the pool of fake agents)."""
    config = load_config(config_path)
    testbed.reconfigure(asterisk_side(config_path, members, flows or REPO / "flows"))
    saved_secret = os.environ.get("IVR_AMI_SECRET")
    os.environ["IVR_AMI_SECRET"] = testbed.ami_secret
    logs = LogRecords()
    ivr_log = logging.getLogger("ivr")
    saved_level = ivr_log.level
    ivr_log.setLevel(logging.DEBUG)  # the line each call starts with is DEBUG
    ivr_log.addHandler(logs)
    saved_channel = fastagi.AgiChannel
    fastagi.AgiChannel = CapturingChannel
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="ivr-serve", daemon=True)
    thread.start()
    runtime: Optional[Runtime] = None
    pump: Optional[EventPump] = None
    try:
        runtime = build_runtime([flows or REPO / "flows"], config_path, ami=True, store=True)
        asyncio.run_coroutine_threadsafe(runtime.start(), loop).result(30)
        assert runtime.server is not None and runtime.server.port == config.asterisk.agi.port
        ami = next(part for part in runtime.extras if isinstance(part, AmiPart))
        _wait_connected(ami, 15)
        pump = EventPump(testbed)
        yield Serving(testbed, config_path, runtime, loop, logs, pump)
    finally:
        if pump is not None:
            pump.close()
        if runtime is not None:
            asyncio.run_coroutine_threadsafe(runtime.close(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        fastagi.AgiChannel = saved_channel
        _wait_idle(testbed, 20)
        ivr_log.removeHandler(logs)
        ivr_log.setLevel(saved_level)
        if saved_secret is None:
            os.environ.pop("IVR_AMI_SECRET", None)
        else:
            os.environ["IVR_AMI_SECRET"] = saved_secret
        testbed.reconfigure(testbed.config)


@contextlib.contextmanager
def serve_process(testbed: Testbed, config_path: Path, log_path: Path) -> Iterator[dict[str, str]]:
    """`ivr serve` as a process of its own on the installation of `config_path` (its flows/
    beside it), the test bed's dialplan pointed at it; yields the environment that names
    the installation (IVR_CONFIG) and the AMI secret, for other `ivr` commands to run in.
    The process's log is kept in `log_path`."""
    testbed.reconfigure(asterisk_side(config_path, _all_agents))
    env = {**os.environ, "IVR_CONFIG": str(config_path), "IVR_AMI_SECRET": testbed.ami_secret}
    with open(log_path, "wb") as log_file:
        # debug: the line each call starts with tells the tests which engine served it
        process = subprocess.Popen([str(IVR), "serve", "--log-level", "debug"], cwd=REPO, env=env,
                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not all(line in log_path.read_text(errors="replace") for line in ("FastAGI listening", "AMI connected")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"`ivr serve` did not start (exit {process.poll()}):\n{log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        yield env
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        _wait_idle(testbed, 20)
        testbed.reconfigure(testbed.config)


def _wait_idle(testbed: Testbed, seconds: float) -> None:
    """Until no channel is left in the test bed (callers and agents hung up), at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if testbed.rx("core show channels count").lstrip().startswith("0 active channels"):
                return
        time.sleep(0.5)


# --- callers ---------------------------------------------------------------------------------
@dataclass
class Caller:
    """One call to place: how (`ami` or `sipp`), who, and what the caller does."""

    method: str
    number: str
    name: str
    keys: str = ""  # `ivr call` syntax
    hold: float = 10.0  # seconds on the line after the last key
    uri_name: bool = False  # AMI only: the name goes through the dialplan (it may hold a line break)
    exten: str = "100"  # the number dialled
    result: Optional[CallResult] = None
    error: Optional[BaseException] = None
    _thread: Optional[threading.Thread] = None

    def place(self, testbed: Testbed, ami: AmiSession) -> None:
        if self.method == "ami":
            if self.uri_name:
                originate_keys(ami, self.keys, hold=int(self.hold), context="testbed-named", exten=self.exten,
                               caller_id=f"<{self.number}>", variables={"NAME_URI": quote(self.name, safe="")})
            else:
                name = self.name.replace("\\", "\\\\").replace('"', '\\"')
                originate_keys(ami, self.keys, hold=int(self.hold), exten=self.exten, caller_id=f'"{name}" <{self.number}>')
        elif self.method == "sipp":
            # with no key at all, `ivr call` has no first wait: hold those 2 s as well
            hold = self.hold + (0.0 if self.keys.strip() else FIRST_KEY_WAIT)
            self._thread = threading.Thread(target=self._sipp, args=(testbed, hold), daemon=True)
            self._thread.start()
        else:
            raise ValueError(f"unknown call method {self.method!r}")

    def _sipp(self, testbed: Testbed, hold: float) -> None:
        try:
            self.result = place_call(parse_keys(self.keys, FIRST_KEY_WAIT), port=testbed.sip_port, hold=hold,
                                     exten=self.exten, caller_id=self.number, caller_name=self.name)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def finish(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            if self.error is not None:
                raise AssertionError(f"SIPp call from {self.number} could not be placed: {self.error}")
            if self._thread.is_alive():
                raise AssertionError(f"SIPp call from {self.number} still running after {timeout:g}s")
            assert self.result is not None and self.result.ok, f"SIPp call from {self.number} failed:\n{self.result}"


def wait_for_outcomes(serving: Serving, numbers: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """The calls rows of these caller numbers once each has its outcome; AssertionError
    naming the missing ones (with the test bed's log) on time-out."""
    deadline = time.monotonic() + timeout
    while True:
        rows = serving.calls_by_caller()
        missing = [n for n in numbers if rows.get(n, {}).get("outcome") is None]
        if not missing:
            return {n: rows[n] for n in numbers}
        if time.monotonic() > deadline:
            state = {n: (rows[n]["last_node"] if n in rows else "never reached the engine") for n in missing}
            raise AssertionError(f"calls without an outcome after {timeout:g}s: {state}\n"
                                 f"{serving.testbed.log_tail(40)}")
        time.sleep(0.5)


def wait_until(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    """What `check` returns once it is true; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(every)

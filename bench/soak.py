"""The soak: `ivr serve` under a steady rate of synthetic calls, with faults injected at
random, must end with every call it started stored with an outcome, no event lost, and its
resident memory back near where it began.

    .venv/bin/python bench/soak.py                  # 10 minutes, every fault several times
    .venv/bin/python bench/soak.py --duration 60    # the short form the tests run

The parts are real where a site has real parts: `ivr serve` as its own process, PostgreSQL
(a throwaway cluster, `ivr.testbed.postgres`) and the AMI client's connection. The calls are
synthetic: the FastAGI load generator plays Asterisk's side of each call (the bench flow:
a welcome, a menu, key 2 to the support queue; a few callers wait long in the queue), and a
fake AMI server (the AMI tests' own) answers the manager connection. The database and the
AMI are reached through TCP relays (`ivr.testbed.relay`) that the faults cut.

The faults, one at a time, at random moments (seeded: `--seed`):
  db-locked    another connection holds an exclusive lock on the calls and their events
  db-down      the database cannot be reached (every connection cut, new ones refused)
  ami-down     the AMI connection cut and refused
  restart      `ivr serve` stopped with SIGTERM (calls get the grace period) and started again
  hostile      clients that send a never-ending AGI environment, and one line a second

What is checked at the end, against PostgreSQL itself:
  - every call the engine started (it sent a command after its first) is stored,
    with an outcome, and its events run 0..n without a gap and end with the outcome;
  - no call the faults should not touch failed (only a restart may end calls early, and
    those are stored as interrupted);
  - `ivr serve` logged no traceback and dropped no call record;
  - the resident memory of the last `ivr serve` after the load is within 20% of the first
    one's after its warm-up (once every kind of call is in flight: up to 40 s in).
The last line says PASS or FAIL; the exit status is 0 only on PASS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO / "tests" / "asterisk_ami")]

from agi_load_asterisk import AsteriskCall, Behaviour, Tally  # noqa: E402
from agi_load_servers import FLOW_FILE, SCRIPT, free_port, ivr_command, resident_mb  # noqa: E402
from fake_ami import FakeAmi  # noqa: E402

from ivr.testbed.postgres import PostgresServer, start_postgres  # noqa: E402
from ivr.testbed.relay import Relay  # noqa: E402

FAULTS = ("db-locked", "db-down", "ami-down", "restart", "hostile")
MEMORY_SLACK = 0.20  # the end's resident memory may be this much above the start's
AMI_SECRET = "soak-ami-secret"
START_TIMEOUT = 60.0

CONFIG = """\
# The soak's installation (bench/soak.py): PostgreSQL and the AMI through relays the faults cut.
asterisk:
  agi: {{host: 127.0.0.1, port: {port}}}
  ami: {{host: 127.0.0.1, port: {ami_port}, username: ivr, secret: "${{IVR_AMI_SECRET}}"}}
database: {database}
recordings: {{dir: recordings}}
prompts: {{dir: prompts, tts: espeak-ng}}
fallback: support
departments:
  sales: {{queue: sales, members: [PJSIP/101]}}
  support: {{queue: support, members: [PJSIP/104]}}
"""


@dataclass
class Fault:
    kind: str
    at: float  # seconds after the start of the load
    seconds: float
    note: str = ""
    began: Optional[float] = None  # monotonic, when it was injected
    ended: Optional[float] = None


@dataclass
class Call:
    uniqueid: str
    started_at: float
    protocol: Optional[AsteriskCall] = None
    refused: bool = False
    ended_reason: Optional[str] = None
    ended_at: Optional[float] = None

    @property
    def started(self) -> bool:
        """The engine took the call: it sent a command after the first. The first one (GET FULL
        VARIABLE of a token) only makes sure the environment block has ended; a stop may
        close the line right after it, before the call begins (Asterisk's fail-safe then
        takes the caller), and the engine has no call to store."""
        return self.protocol is not None and self.protocol.commands >= 2


@dataclass
class Report:
    placed: int = 0
    refused: int = 0
    started: int = 0
    stored_with_outcome: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    hurt: list[str] = field(default_factory=list)  # calls that failed outside a restart
    tracebacks: int = 0
    dropped_lines: list[str] = field(default_factory=list)
    rss_start: float = 0.0
    rss_end: float = 0.0
    rss_peak: float = 0.0
    hostile_closed: int = 0
    hostile_opened: int = 0
    spool_restarts: int = 0  # ivr serve started once more after the load to write the last one's spool

    def problems(self) -> list[str]:
        found = []
        if self.missing:
            found.append(f"{len(self.missing)} started calls not stored with an outcome (e.g. {self.missing[:3]})")
        if self.gaps:
            found.append(f"{len(self.gaps)} calls with lost events (e.g. {self.gaps[:3]})")
        if self.hurt:
            found.append(f"{len(self.hurt)} calls failed outside a restart (e.g. {self.hurt[:3]})")
        if self.tracebacks:
            found.append(f"{self.tracebacks} tracebacks in the ivr serve logs")
        if self.dropped_lines:
            found.append(f"call records dropped: {self.dropped_lines[:2]}")
        if self.rss_end > self.rss_start * (1 + MEMORY_SLACK):
            found.append(f"resident memory {self.rss_end:.0f} MB at the end against {self.rss_start:.0f} MB "
                         f"at the start (more than {MEMORY_SLACK:.0%} above)")
        if self.hostile_opened and self.hostile_closed < self.hostile_opened:
            found.append(f"{self.hostile_opened - self.hostile_closed} of {self.hostile_opened} hostile "
                         "connections were never closed by the server")
        if self.started == 0:
            found.append("no call was started")
        return found


def plan_faults(duration: float, seed: int, warmup: float) -> list[Fault]:
    """Every kind at least once (a 10-minute soak: a fault about every 11 s), at random
    moments, one at a time, with time to recover between them. A restart costs up to the
    grace period (10 s) and a start: a few of them, all in the first half, so the last
    `ivr serve` carries half the load at least before its memory is read."""
    rng = random.Random(seed)
    slot = 11.0
    usable = duration - warmup - 6.0
    count = max(len(FAULTS), int(usable // slot))
    restarts = max(1, round(duration / 150))
    others = [k for k in FAULTS if k != "restart"]
    rest = others + [rng.choice(others) for _ in range(count - restarts - len(others))]
    rng.shuffle(rest)
    # the restarts spread over the first half, among the other faults
    kinds = rest[:]
    half = max(1, len(kinds) // 2)
    for i in range(restarts):
        kinds.insert(min(len(kinds), (i * half) // restarts + i), "restart")
    slot = usable / len(kinds)
    faults = []
    for i, kind in enumerate(kinds):
        length = rng.uniform(3.0, min(8.0, slot - 3.0))
        at = warmup + i * slot + rng.uniform(0.0, max(0.0, slot - length - 3.0))
        faults.append(Fault(kind, round(at, 1), round(length, 1)))
    return faults


class Soak:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.folder = Path(tempfile.mkdtemp(prefix="ivr-soak-"))
        self.calls: list[Call] = []
        self.tally = Tally()
        self.behaviour = Behaviour(prompt_seconds=args.prompt, queue_seconds=args.queue, jitter=0.5)
        self.long_wait = Behaviour(prompt_seconds=args.prompt, queue_seconds=args.long_queue, jitter=0.2)
        self.restarting = False
        self.restart_windows: list[tuple[float, float]] = []
        self.process: Optional[subprocess.Popen] = None
        self.logs: list[Path] = []
        self.rss_samples: list[tuple[float, float]] = []  # (monotonic, MB) of the current process
        self.pg: Optional[PostgresServer] = None
        self.report = Report()
        self.sequence = 0

    # --- the parts ------------------------------------------------------------------------
    async def setup(self) -> None:
        self.pg = await asyncio.to_thread(start_postgres)
        self.db_url = await asyncio.to_thread(self.pg.create_database)
        from ivr.store import init_db

        await asyncio.to_thread(lambda: init_db(self.db_url).dispose())
        self.db_relay = Relay(self.pg.port).up()
        self.ami = FakeAmi(secret=AMI_SECRET)
        ami_port = await self.ami.start()
        self.ami_relay = Relay(ami_port).up()
        self.port = free_port()
        (self.folder / "flows").mkdir()
        shutil.copyfile(FLOW_FILE, self.folder / "flows" / f"{SCRIPT}.yaml")
        relayed = self.db_url.replace(f":{self.pg.port}/", f":{self.db_relay.port}/")
        (self.folder / "config.yaml").write_text(CONFIG.format(port=self.port, ami_port=self.ami_relay.port,
                                                               database=relayed), encoding="utf-8")
        await self.start_serve()

    async def start_serve(self) -> None:
        log = self.folder / f"serve-{len(self.logs) + 1}.log"
        self.logs.append(log)
        argv = ivr_command() + ["--config", str(self.folder / "config.yaml"), "serve",
                                "--host", "127.0.0.1", "--port", str(self.port), "--metrics-port", "0"]
        env = {**os.environ, "IVR_AMI_SECRET": AMI_SECRET}
        with open(log, "wb") as out:
            self.process = subprocess.Popen(argv, cwd=self.folder, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while "FastAGI listening on" not in log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ivr serve did not start; its log:\n{log.read_text(errors='replace')[-3000:]}")
            await asyncio.sleep(0.05)
        self.rss_samples = []

    async def stop_serve(self, timeout: float = 60.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"ivr serve did not stop within {timeout:.0f} s of SIGTERM")
            await asyncio.sleep(0.05)

    async def write_spooled(self, timeout: float = 120.0) -> None:
        """What the last `ivr serve` left in its spool (a backlog it could not write before its
        stop's deadline) is written by the next one to start, as on a site: one is started
        until the spool is empty, then stopped."""
        spool = self.folder / "spool"
        if not any(spool.glob("writer-*.jsonl")):
            return
        self.report.spool_restarts += 1
        await self.start_serve()
        deadline = time.monotonic() + timeout
        while any(p.stat().st_size for p in spool.glob("writer-*.jsonl") if p.exists()):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await self.stop_serve()

    async def teardown(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self.db_relay.down()
        self.ami_relay.down()
        await self.ami.close()
        if self.pg is not None:
            await asyncio.to_thread(self.pg.stop)
        if not self.args.keep:
            shutil.rmtree(self.folder, ignore_errors=True)

    # --- the load -------------------------------------------------------------------------
    async def place(self) -> None:
        loop = asyncio.get_running_loop()
        self.sequence += 1
        uniqueid = f"{int(time.time())}.{self.sequence}"
        call = Call(uniqueid, time.monotonic())
        self.calls.append(call)
        behaviour = self.long_wait if random.random() < self.args.long_share else self.behaviour

        def ended(protocol: AsteriskCall) -> None:
            call.ended_at = time.monotonic()
            call.ended_reason = protocol.error or ("" if protocol.hung_up else "closed")

        try:
            _, protocol = await loop.create_connection(
                lambda: AsteriskCall(self.tally, uniqueid, SCRIPT, behaviour, on_end=ended), "127.0.0.1", self.port)
            call.protocol = protocol
        except OSError:
            call.refused = True

    async def load(self, seconds: float) -> None:
        interval = 1.0 / self.args.rate
        began = time.monotonic()
        tasks: set[asyncio.Task] = set()
        n = 0
        while time.monotonic() - began < seconds:
            n += 1
            task = asyncio.create_task(self.place())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            wait = began + n * interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        if tasks:
            await asyncio.gather(*tasks)

    async def sample_memory(self) -> None:
        while True:
            if self.process is not None and self.process.poll() is None:
                mb = resident_mb([self.process.pid])
                if mb:
                    self.rss_samples.append((time.monotonic(), mb))
                    self.report.rss_peak = max(self.report.rss_peak, mb)
            await asyncio.sleep(0.5)

    # --- the faults -----------------------------------------------------------------------
    async def inject(self, fault: Fault, origin: float) -> None:
        await asyncio.sleep(max(0.0, origin + fault.at - time.monotonic()))
        fault.began = time.monotonic()
        print(f"  {fault.at:6.1f} s  {fault.kind:<9} for {fault.seconds:.1f} s  (ivr serve {self._rss_now():.1f} MB)",
              flush=True)
        if fault.kind == "db-locked":
            await asyncio.to_thread(self._lock_database, fault.seconds)
        elif fault.kind == "db-down":
            self.db_relay.down()
            await asyncio.sleep(fault.seconds)
            self.db_relay.up()
        elif fault.kind == "ami-down":
            self.ami_relay.down()
            await asyncio.sleep(fault.seconds)
            self.ami_relay.up()
        elif fault.kind == "restart":
            began = time.monotonic()
            await self.stop_serve()
            await asyncio.sleep(min(fault.seconds, 1.0))
            await self.start_serve()
            self.restart_windows.append((began - self.args.long_queue - 5.0, time.monotonic()))
            fault.note = f"down {time.monotonic() - began:.1f} s"
        elif fault.kind == "hostile":
            fault.note = await self._hostile(fault.seconds)
        fault.ended = time.monotonic()

    def _lock_database(self, seconds: float) -> None:
        import psycopg

        with psycopg.connect(self.db_url.replace("postgresql+psycopg", "postgresql")) as connection:
            connection.execute("LOCK TABLE calls, call_events IN ACCESS EXCLUSIVE MODE")
            time.sleep(seconds)
            connection.rollback()

    async def _hostile(self, seconds: float) -> str:
        """A few clients that never finish their environment block, and a few that send one
        short line a second; each must be closed by the server, not by us."""
        closed = 0
        opened = 0

        async def endless() -> bool:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            chunk = b"".join(b"agi_padding_%d: %s\n" % (i, b"x" * 200) for i in range(64))
            deadline = time.monotonic() + seconds
            try:
                while time.monotonic() < deadline:
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(0.001)
            except (ConnectionError, OSError):
                return True
            finally:
                writer.close()
            return False

        async def drip() -> bool:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            # one short line a second, for longer than any deadline for the block
            deadline = time.monotonic() + max(seconds, 12.0)
            try:
                while time.monotonic() < deadline:
                    writer.write(b"a\n")
                    await writer.drain()
                    try:
                        if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                            return True  # closed by the server
                    except asyncio.TimeoutError:
                        pass
            except (ConnectionError, OSError):
                return True
            finally:
                writer.close()
            return False

        results = await asyncio.gather(*([endless() for _ in range(3)] + [drip() for _ in range(3)]))
        opened = len(results)
        closed = sum(results)
        self.report.hostile_opened += opened
        self.report.hostile_closed += closed
        return f"{closed} of {opened} closed by the server"

    # --- the run --------------------------------------------------------------------------
    async def run(self) -> Report:
        args = self.args
        # the memory's start is read once every kind of call is in flight (the long waits too),
        # at most 40 s in: before that the process has not yet met the load it runs under
        warmup = min(max(10.0, args.long_queue + 10.0), 40.0, args.duration / 6)
        faults = plan_faults(args.duration, args.seed, warmup)
        print(f"soak: {args.duration:.0f} s at {args.rate:g} calls/s, {len(faults)} faults (seed {args.seed}); "
              f"folder {self.folder}", flush=True)
        await self.setup()
        sampler = asyncio.create_task(self.sample_memory())
        origin = time.monotonic()
        load = asyncio.create_task(self.load(args.duration))
        await asyncio.sleep(warmup)
        self.report.rss_start = self._rss_now()
        for fault in faults:  # one at a time: one that overruns its slot delays the next
            await self.inject(fault, origin)
        await load
        # every call ends (the long waits too), then the server is read and stopped
        deadline = time.monotonic() + args.long_queue + 30.0
        while any(c.protocol is not None and not c.protocol.ended for c in self.calls) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)
        self.report.rss_end = self._rss_now()
        sampler.cancel()
        await self.stop_serve()
        await self.write_spooled()
        await asyncio.to_thread(self.check)
        self.faults = faults
        return self.report

    def _rss_now(self) -> float:
        if self.process is None or self.process.poll() is not None:
            return 0.0
        return resident_mb([self.process.pid])

    def check(self) -> None:
        import psycopg

        report = self.report
        report.placed = len(self.calls)
        report.refused = sum(c.refused for c in self.calls)
        started = {c.uniqueid: c for c in self.calls if c.started}
        report.started = len(started)
        with psycopg.connect(self.db_url.replace("postgresql+psycopg", "postgresql")) as db:
            rows = db.execute("SELECT id, outcome FROM calls").fetchall()
            events: dict[str, list[tuple[int, str]]] = {}
            for call_id, seq, kind in db.execute("SELECT call_id, seq, type FROM call_events ORDER BY call_id, seq"):
                events.setdefault(call_id, []).append((seq, kind))
        outcome_of = dict(rows)
        for uniqueid in started:
            outcome = outcome_of.get(uniqueid)
            if outcome is None:
                report.missing.append(uniqueid)
                continue
            report.stored_with_outcome += 1
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
            seqs = events.get(uniqueid, [])
            if [s for s, _ in seqs] != list(range(len(seqs))) or not seqs or seqs[-1][1] != "outcome":
                report.gaps.append(uniqueid)
        for uniqueid, call in started.items():
            if call.ended_reason and not self._in_restart(call):
                report.hurt.append(f"{uniqueid}: {call.ended_reason}")
        for log in self.logs:
            text = log.read_text(errors="replace")
            report.tracebacks += text.count("Traceback (most recent call last)")
            # the writer's own words when it gives records up ("0 records dropped" is the good news)
            report.dropped_lines += [line for line in text.splitlines()
                                     if re.search(r"dropping call records|call records? .*(dropp|not written)", line)
                                     and "stops with call records not written" not in line
                                     and not re.search(r"\b0 records dropped", line)]

    def _in_restart(self, call: Call) -> bool:
        end = call.ended_at or time.monotonic()
        return any(call.started_at <= stop and end >= start for start, stop in self.restart_windows)


def print_report(soak: Soak, report: Report, seconds: float) -> None:
    print()
    print("faults:")
    for fault in soak.faults:
        print(f"  {fault.at:6.1f} s  {fault.kind:<9} {fault.seconds:4.1f} s  {fault.note}")
    print()
    print(f"calls placed {report.placed}; refused while ivr serve restarted {report.refused}; "
          f"started by the engine {report.started}")
    print(f"stored with an outcome {report.stored_with_outcome} of {report.started} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(report.outcomes.items()))})")
    print(f"events lost: {len(report.gaps)} calls with a gap or no outcome event; "
          f"calls failed outside a restart: {len(report.hurt)}")
    print(f"hostile connections closed by the server: {report.hostile_closed} of {report.hostile_opened}")
    print(f"ivr serve: {report.tracebacks} tracebacks, {len(report.dropped_lines)} lines about dropped records"
          + (", its spool written by one more start after the load" if report.spool_restarts else ""))
    print(f"resident memory: {report.rss_start:.1f} MB after the warm-up, {report.rss_end:.1f} MB at the end "
          f"({(report.rss_end / report.rss_start - 1) if report.rss_start else 0:+.0%}), peak {report.rss_peak:.1f} MB")
    problems = report.problems()
    print(f"soak of {seconds:.0f} s: " + ("PASS" if not problems else "FAIL: " + "; ".join(problems)))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    parser.add_argument("--rate", type=float, default=20.0, help="new calls a second (default 20)")
    parser.add_argument("--prompt", type=float, default=1.0, help="seconds each prompt plays (default 1)")
    parser.add_argument("--queue", type=float, default=3.0, help="seconds in the queue (default 3)")
    parser.add_argument("--long-queue", type=float, default=15.0,
                        help="seconds in the queue of the long waits (longer than the stop's 10 s grace)")
    parser.add_argument("--long-share", type=float, default=0.05, help="share of callers who wait long")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10_000, help="the faults' plan")
    parser.add_argument("--keep", action="store_true", help="keep the soak's folder (logs, config)")
    args = parser.parse_args(argv)
    random.seed(args.seed)
    soak = Soak(args)
    began = time.monotonic()

    async def run() -> Report:
        try:
            return await soak.run()
        finally:
            await soak.teardown()

    report = asyncio.run(run())
    print_report(soak, report, time.monotonic() - began)
    return 0 if not report.problems() else 1


if __name__ == "__main__":
    sys.exit(main())

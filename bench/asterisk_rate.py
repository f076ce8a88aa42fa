"""Real calls at a rate of new calls per second through the full IVR on the Asterisk test bed.

One SIPp process (`-r RATE -m TOTAL -l LIMIT`) calls the test bed's Asterisk 22; every
call is answered by the generated dialplan (MixMonitor records it), handed over FastAGI
to `ivr serve` (a process of its own, storing calls in SQLite), hears the bench flow
(bench/flows/bench.yaml: a welcome, a menu), presses 2 as RFC 4733 events, waits in
queue `bench` for one of the test bed's brief agents (`Local/3XXX@agents/n`: answer, 3 s
of tt-weasels, hang up) and is hung up by the engine after the agent. SIPp waits for
that BYE: a call the engine never ends fails in SIPp (time-out), and SIPp hangs it up.

After each run it counts: calls placed and failed by SIPp (with the reasons from its
statistics and error log), calls stored by `ivr serve` and their outcomes, a recording
on disk (more than a WAV header) and in the database for every stored call, Asterisk's
warnings and errors of the run (taskprocessor queue sizes, PJSIP), the deepest
taskprocessor queues, and the CPU seconds of Asterisk, SIPp and `ivr serve` (from
/proc/<pid>/stat, and SIPp's rusage) per call.

    python bench/asterisk_rate.py --rate 25 --duration 600 --high-rate   # one run
    python bench/asterisk_rate.py --search                               # 15, 20, 25, ... /s, 60 s each

The test bed's Asterisk runs as the live tests have it unless `--high-rate` (or one of
its parts, to change one thing at a time) asks for the settings of
`ivr.testbed.files.Tuning.high_rate()`. The engine's AMI user has the event filter
`ivr asterisk-config` writes; `--ami-filter off` takes it out, and `--ami-filter both` runs
without it and then with it, one right after the other, for the engine's CPU a call side by
side (docs/performance.md):

    python bench/asterisk_rate.py --rate 20 --duration 45 --high-rate --ami-filter both It uses the test bed (ivr.testbed.server) and
starts it when it is not running; the test bed's ports are fixed, so nothing else may use
it meanwhile. Exit status 0 unless the script itself broke (a failed call is a figure,
not an error).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import sqlalchemy as sa
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from the repository root
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other bench scripts (agi_profile's parts)

from ivr.asterisk.dialplan import with_members  # noqa: E402
from ivr.settings.config import load_config  # noqa: E402
from ivr.store.db import create_db_engine  # noqa: E402
from ivr.store.models import Call, CallEvent, Recording  # noqa: E402
from ivr.testbed.files import QUIET_AMI_EVENTS, Tuning  # noqa: E402
from ivr.testbed.server import Testbed, free_tcp_port  # noqa: E402
from ivr.testbed.sipp import message_pcap, shifted_pcap, shipped_pcap, sip_messages  # noqa: E402

FLOWS = REPO / "bench" / "flows"
IVR = Path(sys.executable).with_name("ivr")
DEPARTMENT = "bench"
AGENT_TALK = 3.0  # tt-weasels, the brief agents' words
WRAPUP = 10.0  # queues.conf's wrapuptime: an agent is rung again this long after a call
MAX_AGENTS = 1000  # Local/3000..3999@agents/n
KEY = "2"
KEY_AT = 4.0  # seconds after the answer: about 1 s into the menu's wait for a key (welcome 0.9 s, menu 2.1 s)
HOLD = 40.0  # seconds after the key for the engine to end the call
SEARCH_RATES = (15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80)
CALLER = "48"  # + SIPp's call number: each call has a caller number of its own
CPU_TICK = os.sysconf("SC_CLK_TCK")
Log = Callable[[str], None]


# --- what a run measured --------------------------------------------------------------------
@dataclass
class Run:
    rate: float
    duration: float
    transport: str
    agents: int
    caller_audio: bool = False  # callers send RTP audio before their key
    tuning: str = "as the live tests run it"  # the test bed's Asterisk settings (describe())
    placed: int = 0  # SIPp: calls created
    sipp_ok: int = 0
    sipp_failed: int = 0
    sipp_reasons: Counter = field(default_factory=Counter)  # SIPp failure counters and error lines
    retransmissions: int = 0
    max_up: int = 0  # most calls up at once (SIPp)
    setup_ms: float = 0.0  # SIPp: INVITE to 200 OK, mean
    call_seconds: float = 0.0  # SIPp: a call's length, mean
    seconds: float = 0.0  # SIPp's running time
    stored: int = 0  # calls rows
    outcomes: Counter = field(default_factory=Counter)
    answered_unique: int = 0  # answered calls, one per SIPp call number
    recorded: int = 0  # stored calls with a recording on disk (> a WAV header)
    recorded_answered: int = 0  # answered calls with a recording on disk
    linked: int = 0  # stored calls with a recordings row linked to them
    recording_bytes: int = 0
    ivr_p50: float = 0.0  # seconds in the IVR before the queue (duration - queue wait - talk)
    ivr_p95: float = 0.0
    queue_wait_p95: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # component -> CPU seconds over the run
    machine_busy: float = 0.0  # share of the machine's CPU time busy over the run (every process)
    others: float = 0.0  # CPU seconds of every other process of the machine over the run
    peak: str = ""  # the busiest 5 s of the run, per component
    serve_log: Counter = field(default_factory=Counter)  # ivr serve's warnings and errors, numbers masked
    profile: list[tuple[str, float]] = field(default_factory=list)  # --profile: (part, share of the samples)
    profile_samples: int = 0
    ami_filter: bool = True  # the engine's AMI user has the event filter of `ivr asterisk-config`
    ami_events: Optional[int] = None  # AMI events the engine read over its run (its metrics)
    ami_unused: Optional[int] = None  # AMI events sent to it that it does not read
    warnings: Counter = field(default_factory=Counter)  # Asterisk's warnings/errors, digits masked
    taskprocessors: list[tuple[str, int]] = field(default_factory=list)  # deepest queues (max depth)
    failures: list[str] = field(default_factory=list)  # calls that did not go through, why

    @property
    def failed(self) -> int:
        """Calls that did not go the whole way: SIPp failures, calls never stored as
        answered, and answered calls without their recording."""
        return max(self.placed - min(self.sipp_ok, self.answered_unique, self.recorded_answered), 0)

    @property
    def clean(self) -> bool:
        return self.placed > 0 and self.failed == 0

    def per_call(self, component: str) -> float:
        """CPU milliseconds of a component per call placed."""
        return 1000 * self.cpu.get(component, 0.0) / max(self.placed, 1)

    def ami_text(self) -> str:
        if self.ami_events is None or self.ami_unused is None:
            return "events not counted (ivr serve's metrics could not be read)"
        per = max(self.placed, 1)
        return (f"read {self.ami_events} events ({self.ami_events / per:.1f} a call), sent {self.ami_unused} "
                f"it does not read ({self.ami_unused / per:.1f} a call)")

    def table(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in self.sipp_reasons.most_common(6)) or "none"
        outcomes = ", ".join(f"{k} {v}" for k, v in self.outcomes.most_common()) or "none"
        warnings = "\n".join(f"    {v:6d} x {k}" for k, v in self.warnings.most_common(8)) or "    none"
        tps = ", ".join(f"{name} {depth}" for name, depth in self.taskprocessors) or "n/a"
        cpu = "  ".join(f"{name} {self.cpu.get(name, 0):.1f} s ({self.per_call(name):.1f} ms/call)"
                        for name in ("asterisk", "ivr serve", "sipp"))
        cpu += f"  this script {self.cpu.get('this script', 0):.1f} s"
        others = f"other processes {self.others:.1f} s; machine busy {100 * self.machine_busy:.0f}% of {os.cpu_count()} CPUs"
        serve_log = "\n".join(f"    {v:6d} x {k}" for k, v in self.serve_log.most_common(5)) or "    none"
        lines = [
            f"rate {self.rate:g}/s for {self.duration:g} s, SIPp -t {self.transport}"
            f"{', callers send audio' if self.caller_audio else ''}, {self.agents} agents: "
            f"{'CLEAN' if self.clean else 'FAILED'} ({self.failed} failed of {self.placed})",
            f"  Asterisk  tuning: {self.tuning}",
            f"  SIPp      placed {self.placed} in {self.seconds:.0f} s (with the last calls' end), "
            f"ok {self.sipp_ok}, failed {self.sipp_failed} ({reasons}), "
            f"retransmissions {self.retransmissions}, most calls up {self.max_up}, INVITE->200 {self.setup_ms:.0f} ms, "
            f"call length {self.call_seconds:.1f} s",
            f"  stored    {self.stored} calls ({outcomes}); answered, one per SIPp call: {self.answered_unique}",
            f"  recorded  {self.recorded} of the stored calls on disk ({self.recording_bytes / 1e6:.0f} MB), "
            f"{self.recorded_answered} of the answered; {self.linked} linked in the database",
            f"  time      in the IVR before the queue p50 {self.ivr_p50:.2f} s, p95 {self.ivr_p95:.2f} s; "
            f"queue wait p95 {self.queue_wait_p95:.2f} s",
            f"  CPU       {cpu}",
            f"  AMI       engine's user {'with' if self.ami_filter else 'WITHOUT'} the event filter: {self.ami_text()}",
            f"            {others}; busiest 5 s: {self.peak or 'n/a'}",
            f"  Asterisk  deepest taskprocessor queues (max depth): {tps}",
            f"  Asterisk  warnings and errors of the run:\n{warnings}",
            f"  ivr serve warnings and errors of the run:\n{serve_log}",
        ]
        if self.profile:
            lines.append(f"  ivr serve where its CPU went (py-spy, {self.profile_samples:,} samples of work; "
                         "ms of CPU a call):")
            per_call = self.per_call("ivr serve")
            lines += [f"    {name:<50} {share:>5.0%} {share * per_call:>7.2f}" for name, share in self.profile]
        if self.failures:
            lines.append("  failures  " + "\n            ".join(self.failures[:8]))
        return "\n".join(lines)


# --- the installation --------------------------------------------------------------------------
def installation(folder: Path, testbed: Testbed, agents: int) -> Path:
    """config.yaml of the bench's installation in `folder`: the repository's, with the calls
    in SQLite there, every number on the bench flow, one department whose queue holds
    `agents` brief agents, and the test bed's prompts and recordings folders."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["database"] = f"sqlite:///{folder / 'ivr.db'}"
    raw["recordings"] = {**raw.get("recordings", {}), "dir": str(testbed.recordings_dir)}
    raw["prompts"] = {**raw["prompts"], "dir": str(testbed.prompts_dir), "voices": {"en": "en-gb"}}
    raw["asterisk"]["agi"] = {**raw["asterisk"]["agi"], "port": free_tcp_port(testbed.config.asterisk.agi.port)}
    raw["lines"] = {"default": "bench"}
    raw["fallback"] = DEPARTMENT
    raw["departments"] = {DEPARTMENT: {"queue": DEPARTMENT, "members": list(agent_pool(agents)), "strategy": "rrmemory"}}
    raw.pop("segments", None)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def agent_pool(agents: int) -> tuple[str, ...]:
    return tuple(f"Local/{3000 + n}@agents/n" for n in range(agents))


def agents_for(rate: float) -> int:
    """Enough brief agents that a caller never waits for one: each is busy for its words
    and the queue's wrap-up time, plus a margin for ringing and scheduling."""
    return min(MAX_AGENTS, math.ceil(rate * (AGENT_TALK + WRAPUP + 3)) + 20)


def _free_udp_port(even: bool = False) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not even or port % 2 == 0 and port < 65530:
            return port
    raise RuntimeError("no free UDP port on 127.0.0.1 for SIPp")


def build_prompts(config_path: Path) -> None:
    done = subprocess.run([str(IVR), "--config", str(config_path), "prompts", "build", str(FLOWS)],
                          capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"`ivr prompts build` of the bench flow failed:\n{done.stdout}{done.stderr}")


@contextlib.contextmanager
def serve(testbed: Testbed, config_path: Path, log_path: Path) -> Iterator[subprocess.Popen]:
    """`ivr serve` on the bench installation, the test bed's dialplan and queue pointed at it."""
    config = load_config(config_path)
    members = config.departments[DEPARTMENT].members
    testbed.reconfigure(with_members(config, lambda department: members))
    env = {**os.environ, "IVR_AMI_SECRET": testbed.ami_secret}
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([str(IVR), "--config", str(config_path), "serve", "--metrics-port", "0", str(FLOWS)], cwd=REPO, env=env,
                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not all(line in log_path.read_text(errors="replace") for line in ("FastAGI listening", "AMI connected")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`ivr serve` did not start (exit {process.poll()}):\n"
                                   f"{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        testbed.reconfigure(testbed.config)


# --- SIPp ------------------------------------------------------------------------------------------
def scenario(key_pcap: Path, key_at: float = KEY_AT, hold: float = HOLD, voice_pcap: Optional[Path] = None) -> str:
    """INVITE (PCMU + telephone-event), ACK, key 2 `key_at` seconds after the answer, then
    the far end's BYE within `hold` seconds; without it the call fails (and SIPp hangs up).
    A BYE before the key ends the call too: the stored call then shows it never reached
    the queue. With `voice_pcap` the caller sends that audio from the answer to the key,
    as a phone sends RTP all along."""
    message = sip_messages(caller_name="bench", caller_id=CALLER + "[call_number]")
    voice = [f'  <nop><action><exec play_pcap_audio="{voice_pcap}"/></action></nop>'] if voice_pcap else []
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8" ?>', '<scenario name="ivr bench call">',
        f'  <send retrans="500">{message["invite"]}</send>',
        '  <recv response="100" optional="true"/>',
        '  <recv response="180" optional="true"/>',
        '  <recv response="183" optional="true"/>',
        '  <recv response="200" rtd="true"/>',
        f'  <send>{message["ack"]}</send>',
        *voice,
        f'  <recv request="BYE" timeout="{round(key_at * 1000)}" ontimeout="key" next="bye"/>',
        '  <label id="key"/>',
        f'  <nop><action><exec play_pcap_audio="{key_pcap}"/></action></nop>',
        f'  <recv request="BYE" timeout="{round(hold * 1000)}"/>',
        '  <label id="bye"/>',
        f'  <send>{message["ok"]}</send>',
        '</scenario>', ''])


def sipp_command(folder: Path, *, rate: float, total: int, limit: int, transport: str, seconds: float,
                 port: int) -> list[str]:
    sipp = shutil.which("sipp")
    if sipp is None:
        raise RuntimeError("sipp is missing: install sip-tester (scripts/bootstrap.sh test)")
    return [sipp, f"127.0.0.1:{port}", "-sf", str(folder / "bench.xml"), "-s", "100",
            "-r", f"{rate:g}", "-rp", "1000", "-m", str(total), "-l", str(limit), "-t", transport,
            "-i", "127.0.0.1", "-p", str(_free_udp_port()), "-mp", str(_free_udp_port(even=True)),
            "-aa", "-nostdin", "-timeout", f"{int(seconds)}s",
            "-trace_stat", "-stf", str(folder / "stat.csv"), "-fd", "5",
            "-trace_err", "-error_file", str(folder / "errors.log"),
            "-trace_screen", "-screen_file", str(folder / "screen.log")]


_FAILURE_COLUMNS = ("FailedCannotSendMessage", "FailedMaxUDPRetrans", "FailedTcpConnect", "FailedTcpClosed",
                    "FailedUnexpectedMessage", "FailedCallRejected", "FailedCmdNotSent", "FailedRegexpDoesntMatch",
                    "FailedRegexpShouldntMatch", "FailedRegexpHdrNotFound", "FailedOutboundCongestion",
                    "FailedTimeoutOnRecv", "FailedTimeoutOnSend")


def read_sipp_stats(folder: Path, run: Run) -> None:
    """The run's counters from SIPp's statistics file (its last row is the whole run)."""
    path = folder / "stat.csv"
    if not path.is_file():
        run.sipp_reasons["no statistics file (SIPp did not run)"] += 1
        return
    rows = list(csv.DictReader(path.read_text(errors="replace").splitlines(), delimiter=";"))
    if not rows:
        return
    last = rows[-1]

    def number(name: str, row: dict = last) -> int:
        with contextlib.suppress(ValueError, TypeError):
            return int(float(row.get(name) or 0))
        return 0

    run.placed = number("TotalCallCreated")
    run.sipp_ok = number("SuccessfulCall(C)")
    run.sipp_failed = number("FailedCall(C)")
    run.retransmissions = number("Retransmissions(C)")
    run.max_up = max(number("CurrentCall", row) for row in rows)
    for column in _FAILURE_COLUMNS:
        count = number(f"{column}(C)")
        if count:
            run.sipp_reasons[column] += count
    setup = last.get("ResponseTime1(C)", "")
    run.setup_ms = _hms_ms(setup)
    run.seconds = _hms_ms(last.get("ElapsedTime(C)", "")) / 1000
    run.call_seconds = _hms_ms(last.get("CallLength(C)", "")) / 1000
    errors = folder / "errors.log"
    if errors.is_file():
        # one entry per event, each after its time stamp (SIPp writes no line break between them)
        for entry in _SIPP_STAMP.split(errors.read_text(errors="replace"))[1:]:
            if "jumping to label" in entry:  # a wait that ended as planned (ontimeout)
                continue
            text = _mask(re.sub(r"^Call-Id: [^,]+, ", "", entry.strip()))
            run.sipp_reasons[f"error log: {text[:120]}"] += 1


_SIPP_STAMP = re.compile(r"\d{4}-\d\d-\d\d\t[\d:.]+\t[\d.]+: ")


def _hms_ms(value: str) -> float:
    """SIPp's `HH:MM:SS` or `HH:MM:SS:micros` as milliseconds."""
    parts = value.strip().split(":")
    try:
        if len(parts) in (3, 4):
            hours, minutes, secs = (int(p) for p in parts[:3])
            micros = int(parts[3]) if len(parts) == 4 else 0
            return ((hours * 60 + minutes) * 60 + secs) * 1000 + micros / 1000
    except ValueError:
        pass
    return 0.0


def _mask(text: str) -> str:
    """A log line with its numbers and call IDs masked, so alike lines count together."""
    text = re.sub(r"\b[0-9a-f]{8,}(-[0-9a-f]+)*\b", "#", text)
    return re.sub(r"\d+", "N", text)


# --- CPU ------------------------------------------------------------------------------------------
def cpu_seconds(pid: Optional[int]) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 when it is gone."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CPU_TICK


class Sampler:
    """CPU of the components and of the machine, once a second, in a thread: for the
    busiest 5 s of a run (a figure over the whole run hides a stall)."""

    def __init__(self, pids: dict[str, Callable[[], Optional[int]]]):
        self.pids = pids
        self.samples: list[tuple[float, dict[str, float], int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            busy, total = machine_ticks()
            self.samples.append((time.monotonic(), {name: cpu_seconds(pid()) for name, pid in self.pids.items()},
                                 busy, total))
            self._stop.wait(1.0)

    def busiest(self, window: int = 5) -> str:
        """The `window` seconds in which the machine was busiest: each component's share of a CPU."""
        best, text = -1.0, ""
        for a, b in zip(self.samples, self.samples[window:]):
            seconds = b[0] - a[0]
            machine = (b[2] - a[2]) / max(b[3] - a[3], 1)
            if machine > best:
                parts = [f"{name} {100 * max(b[1][name] - a[1][name], 0) / seconds:.0f}%" for name in self.pids
                         if a[1][name] and b[1][name]]
                best, text = machine, f"machine {100 * machine:.0f}% busy; " + ", ".join(parts) + " of one CPU"
        return text


def _own_cpu() -> float:
    """CPU seconds of this script and of the children it waited for (asterisk -rx, SIPp)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


# --- Asterisk's side --------------------------------------------------------------------------------
def messages_log(testbed: Testbed) -> Path:
    return testbed.root / "var/log/asterisk/messages.log"


def read_warnings(testbed: Testbed, offset: int, run: Run) -> None:
    """WARNING and ERROR lines Asterisk logged since `offset`, counted by kind."""
    path = messages_log(testbed)
    if not path.is_file():
        return
    with open(path, "rb") as handle:
        handle.seek(offset)
        for raw in handle:
            line = raw.decode(errors="replace")
            match = re.search(r"\b(WARNING|ERROR)\[\d+\](?:\[[^\]]*\])?:\s*(\S+)\s+(.*)", line)
            if match:
                where = match.group(2).split(":")[0]
                run.warnings[f"{match.group(1)} {where} {_mask(match.group(3))[:110]}"] += 1


def read_serve_log(path: Path, run: Run) -> None:
    """WARNING and ERROR lines of `ivr serve`'s log, counted by kind."""
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            match = re.search(r" (WARNING|ERROR|CRITICAL) (\S+): (.*)", line)
            if match:
                run.serve_log[f"{match.group(1)} {match.group(2)} {_mask(match.group(3))[:110]}"] += 1


def read_taskprocessors(testbed: Testbed, run: Run, top: int = 5) -> None:
    """The taskprocessors whose queue grew deepest (`core show taskprocessors`)."""
    try:
        text = testbed.rx("core show taskprocessors", timeout=30)
    except Exception:  # noqa: BLE001 - a figure missing, not a broken run
        return
    depths = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1].isdigit() and parts[3].isdigit():
            depths.append((_mask(parts[0]).replace("N", "*"), int(parts[3])))
    merged: dict[str, int] = {}
    for name, depth in depths:
        merged[name] = max(merged.get(name, 0), depth)
    run.taskprocessors = sorted(merged.items(), key=lambda item: -item[1])[:top]


def wait_idle(testbed: Testbed, seconds: float) -> int:
    """Until the test bed has no channel left; the channels left after `seconds`."""
    deadline = time.monotonic() + seconds
    left = -1
    while True:
        with contextlib.suppress(Exception):
            match = re.match(r"\s*(\d+) active channel", testbed.rx("core show channels count"))
            left = int(match.group(1)) if match else -1
            if left == 0:
                return 0
        if time.monotonic() > deadline:
            return left
        time.sleep(1)


# --- the stored calls ---------------------------------------------------------------------------------
def read_store(config_path: Path, recordings: Path, run: Run, expected: int, settle: float) -> list[Path]:
    """Counts of the stored calls (waiting up to `settle` seconds for every call to have its
    outcome); the recording files of the run, for the caller to remove."""
    db = create_db_engine(load_config(config_path).raw["database"])
    try:
        deadline = time.monotonic() + settle
        while True:
            with db.connect() as conn:
                rows = [dict(r) for r in conn.execute(sa.select(
                    Call.id, Call.uniqueid, Call.caller, Call.outcome, Call.duration, Call.queue_wait, Call.talk,
                    Call.started_at)).mappings()]
                linked = {r[0] for r in conn.execute(sa.select(Recording.call_id).where(Recording.call_id.is_not(None)))}
            pending = sum(r["outcome"] is None for r in rows)
            if (len(rows) >= expected and not pending) or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        db.dispose()
    run.stored = len(rows)
    run.outcomes = Counter(r["outcome"] or "no outcome yet" for r in rows)
    answered = [r for r in rows if r["outcome"] == "answered"]
    run.answered_unique = len({r["caller"] for r in answered})
    files: list[Path] = []
    answered_ids = {r["id"] for r in answered}
    for r in rows:
        path = _recording(recordings, r["uniqueid"], r["started_at"])
        if path is None:
            if len(run.failures) < 20:
                run.failures.append(f"call {r['caller']} ({r['uniqueid']}): no recording on disk")
            continue
        files.append(path)
        size = path.stat().st_size
        if size > 44:  # more than a WAV header
            run.recorded += 1
            run.recording_bytes += size
            if r["id"] in answered_ids:
                run.recorded_answered += 1
    run.linked = sum(r["id"] in linked for r in rows)
    unanswered = [r for r in rows if r["outcome"] != "answered"]
    if unanswered:
        run.failures.insert(0, _unanswered(rows, unanswered, menu_moments(config_path, [r["id"] for r in unanswered])))
    ivr = sorted((r["duration"] or 0) - (r["queue_wait"] or 0) - (r["talk"] or 0) for r in answered)
    waits = sorted(r["queue_wait"] or 0 for r in answered)
    run.ivr_p50, run.ivr_p95, run.queue_wait_p95 = _pct(ivr, 0.5), _pct(ivr, 0.95), _pct(waits, 0.95)
    return files


MENU_TIMEOUT = 6.0  # bench.yaml: the menu's wait for a key


def menu_moments(config_path: Path, call_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """For each of these calls, seconds after the answer at which it entered the menu
    (`entered`) and at which the menu's wait for a key ran out (`timeout`)."""
    db = create_db_engine(load_config(config_path).raw["database"])
    found: dict[str, dict[str, float]] = {}
    try:
        with db.connect() as conn:
            query = sa.select(CallEvent.call_id, CallEvent.type, CallEvent.t).where(
                CallEvent.call_id.in_(list(call_ids)[:5000]), CallEvent.node == "menu",
                CallEvent.type.in_(("node_entered", "timeout")))
            for call_id, kind, t in conn.execute(query):
                found.setdefault(call_id, {})["entered" if kind == "node_entered" else "timeout"] = t
    finally:
        db.dispose()
    return found


def _unanswered(rows: list[dict], unanswered: list[dict], menu: dict[str, dict[str, float]]) -> str:
    """The calls stored without an agent: how many, how they ended, when in the run, and
    when their menu began and its wait for a key, against the key's moment (a key pressed
    before the wait, in the prompt or between two AGI commands, is another matter than a
    key that never reached the channel)."""
    first = min(r["started_at"] for r in rows)
    at = sorted((r["started_at"] - first).total_seconds() for r in unanswered)
    outcomes = Counter(r["outcome"] or "no outcome" for r in unanswered)
    entered = sorted(m["entered"] for m in menu.values() if "entered" in m)
    waits = sorted(m["timeout"] - MENU_TIMEOUT for m in menu.values() if "timeout" in m)
    in_wait = sum(w < KEY_AT for w in waits)
    return (f"{len(unanswered)} calls without an agent ({', '.join(f'{k} {v}' for k, v in outcomes.items())}), "
            f"started {at[0]:.0f}-{at[-1]:.0f} s into the run; their menu began p50 {_pct(entered, 0.5):.2f} s "
            f"(max {max(entered, default=0):.2f} s), its wait for a key p50 {_pct(waits, 0.5):.2f} s "
            f"(max {max(waits, default=0):.2f} s) after the answer: {in_wait} of {len(waits)} were waiting "
            f"when the key was pressed ({KEY_AT:g} s)")


def _recording(recordings: Path, uniqueid: Optional[str], started: object) -> Optional[Path]:
    if not uniqueid:
        return None
    for day in _days(started):
        path = recordings / day / f"{uniqueid}.wav"
        if path.is_file():
            return path
    found = list(recordings.glob(f"*/{uniqueid}.wav"))
    return found[0] if found else None


def _days(started: object) -> list[str]:
    day = getattr(started, "strftime", None)
    return [started.strftime("%Y-%m-%d")] if day else []  # type: ignore[union-attr]


def _pct(values: Sequence[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


# --- the engine's own figures --------------------------------------------------------------------
def ami_event_counts(serve_log: Path) -> tuple[Optional[int], Optional[int]]:
    """(events read, events sent that it does not read) from the metrics of the running
    `ivr serve` whose log this is; (None, None) when they cannot be read."""
    found = re.search(r"health and metrics on .*?, (http://\S+/metrics)", serve_log.read_text(errors="replace"))
    if found is None:
        return None, None
    try:
        with urllib.request.urlopen(found.group(1), timeout=10) as answer:
            text = answer.read().decode()
    except OSError:
        return None, None
    values = dict(re.findall(r"^(ivr_ami_events(?:_unused)?_total) (\S+)$", text, re.M))
    try:
        return int(float(values["ivr_ami_events_total"])), int(float(values["ivr_ami_events_unused_total"]))
    except (KeyError, ValueError):
        return None, None


# --- the profile of ivr serve ------------------------------------------------------------------
def start_profile(pid: int, output: Path) -> subprocess.Popen:
    """py-spy sampling `ivr serve` (100 a second) until `read_profile` stops it."""
    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--rate", "100",
                            "--format", "raw", "--output", str(output)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # it attaches
    if spy.poll() is not None:
        raise RuntimeError(f"py-spy could not sample ivr serve: {spy.stderr.read().decode(errors='replace')}")
    return spy


def read_profile(spy: subprocess.Popen, output: Path, run: "Run") -> None:
    from agi_profile import group

    spy.send_signal(signal.SIGINT)
    spy.wait(60)
    parts, total = group(output.read_text(encoding="utf-8", errors="replace"))
    run.profile_samples = total
    run.profile = [(name, count / total) for name, count in parts.most_common()] if total else []


# --- a run ---------------------------------------------------------------------------------------------
def run_rate(testbed: Testbed, rate: float, duration: float, *, agents: Optional[int] = None, transport: str = "u1",
             caller_audio: bool = False, keep: bool = False, profile: bool = False, log: Log = print) -> Run:
    """Place `rate` new calls a second for `duration` seconds through the bench flow and
    count what went through (see the module docstring). The test bed must be running.
    `caller_audio`: each caller sends RTP audio from the answer to its key, as a phone
    does (a SIPp caller is otherwise silent but for the key). `profile`: py-spy samples
    `ivr serve` over the run and its CPU is split into its parts (the AMI's among them)."""
    agents = agents or agents_for(rate)
    total = max(1, round(rate * duration))
    run = Run(rate=rate, duration=duration, transport=transport, agents=agents, caller_audio=caller_audio,
              tuning=describe(testbed.tuning))
    folder = Path(tempfile.mkdtemp(prefix="ivr-rate-"))
    files: list[Path] = []
    try:
        config_path = installation(folder, testbed, agents)
        build_prompts(config_path)
        key_pcap, voice_pcap = folder / "key2.pcap", None
        seq, ts = 1000, 160000
        if caller_audio:  # tone bursts up to just before the key, then the key in the same stream
            voice_pcap = folder / "voice.pcap"
            seq, ts = message_pcap(shipped_pcap("0"), voice_pcap, seq, ts, seconds=KEY_AT - 0.2)
        shifted_pcap(shipped_pcap(KEY), key_pcap, seq, ts)
        (folder / "bench.xml").write_text(scenario(key_pcap, voice_pcap=voice_pcap), encoding="utf-8")
        call_seconds = KEY_AT + HOLD
        limit = max(50, math.ceil(rate * (call_seconds + 10)))
        with serve(testbed, config_path, folder / "serve.log") as server:
            offset = messages_log(testbed).stat().st_size if messages_log(testbed).is_file() else 0
            asterisk_pid = testbed.pid()
            before = {"asterisk": cpu_seconds(asterisk_pid), "ivr serve": cpu_seconds(server.pid)}
            own0 = _own_cpu()
            busy0, total0 = machine_ticks()
            log(f"rate {rate:g}/s: {total} calls over {duration:g} s, {agents} agents, SIPp -t {transport}")
            command = sipp_command(folder, rate=rate, total=total, limit=limit, transport=transport,
                                   seconds=duration + call_seconds + 60, port=testbed.sip_port)
            with open(folder / "sipp.err", "wb") as sipp_err:
                sipp = subprocess.Popen(command, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=sipp_err)
            sampler = Sampler({"asterisk": lambda: asterisk_pid, "ivr serve": lambda: server.pid,
                               "sipp": lambda: sipp.pid if sipp.returncode is None else None})
            spy = start_profile(server.pid, folder / "profile.txt") if profile else None
            with sampler:
                _, status, usage = os.wait4(sipp.pid, 0)
                sipp.returncode = os.waitstatus_to_exitcode(status)
                run.cpu["sipp"] = usage.ru_utime + usage.ru_stime
                left = wait_idle(testbed, 60)
                files = read_store(config_path, testbed.recordings_dir, run, total, settle=60)
                run.cpu["asterisk"] = cpu_seconds(asterisk_pid) - before["asterisk"]
                run.cpu["ivr serve"] = cpu_seconds(server.pid) - before["ivr serve"]
                if spy is not None:
                    read_profile(spy, folder / "profile.txt", run)
                busy1, total1 = machine_ticks()
                run.cpu["this script"] = _own_cpu() - own0 - run.cpu["sipp"]
            run.ami_filter = testbed.tuning.ami_event_filter
            run.ami_events, run.ami_unused = ami_event_counts(folder / "serve.log")
            run.machine_busy = (busy1 - busy0) / max(total1 - total0, 1)
            run.others = max((busy1 - busy0) / CPU_TICK - sum(run.cpu.values()), 0.0)
            run.peak = sampler.busiest()
            read_serve_log(folder / "serve.log", run)
            read_warnings(testbed, offset, run)
            read_taskprocessors(testbed, run)
            if left:
                run.failures.append(f"{left} channels still up in Asterisk a minute after SIPp ended")
        read_sipp_stats(folder, run)
        if sipp.returncode not in (0, 1):  # 1: some calls failed, a figure of the run
            run.failures.append(f"SIPp exited {sipp.returncode}: {(folder / 'sipp.err').read_text(errors='replace')[-500:]}")
        return run
    finally:
        if keep:
            log(f"kept {folder}")
        else:
            for path in files:
                path.unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)


def search(testbed: Testbed, rates: Sequence[float], duration: float, log: Log = print, **options) -> list[Run]:
    """Runs at each rate in turn until the first that fails."""
    runs = []
    for rate in rates:
        run = run_rate(testbed, rate, duration, log=log, **options)
        runs.append(run)
        log(run.table())
        if not run.clean:
            break
        wait_idle(testbed, 60)
    return runs


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=15, help="new calls per second (default 15)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of new calls (default 60)")
    parser.add_argument("--search", action="store_true",
                        help="step the rate up (--rates) with runs of --duration until one fails")
    parser.add_argument("--rates", default=",".join(str(r) for r in SEARCH_RATES), help="rates for --search")
    parser.add_argument("--agents", type=int,
                        help=f"brief agents in the queue (default: enough for the rate; at most {MAX_AGENTS})")
    parser.add_argument("--transport", choices=("u1", "un"), default="u1",
                        help="SIPp's UDP sockets: u1 one for every call (default), un one per call")
    tuning = parser.add_argument_group(
        "the test bed's Asterisk (ivr.testbed.files.Tuning; default: as the live tests run it)")
    tuning.add_argument("--high-rate", action="store_true",
                        help="all of Tuning.high_rate(): the options below but the threadpool")
    tuning.add_argument("--quiet-log", action="store_true", help="verbose 0, no verbose lines in messages.log")
    tuning.add_argument("--rtp-ports", metavar="LOW-HIGH", help="rtp.conf's port range (2 ports a call)")
    tuning.add_argument("--strict-rtp", choices=("yes", "seqno", "no"),
                        help="rtp.conf strictrtp (the live tests': yes)")
    tuning.add_argument("--no-cdr", action="store_true", help="cdr.conf enable = no")
    tuning.add_argument("--quiet-ami", action="store_true",
                        help="manager.conf disabledevents = the events no client reads (Newexten, VarSet, ...)")
    tuning.add_argument("--pjsip-threads", type=int, metavar="N", help="pjsip.conf [system] threadpool_max_size")
    parser.add_argument("--ami-filter", choices=("on", "off", "both"), default="on",
                        help="the engine's AMI user with the event filter of `ivr asterisk-config` (on, the "
                             "default), without it (off), or a run without it and then one with it (both)")
    parser.add_argument("--caller-audio", action="store_true",
                        help="each caller sends RTP audio (tone bursts) from the answer to its key, as a phone does")
    parser.add_argument("--keep", action="store_true", help="keep each run's folder (SIPp's files, serve.log, the database)")
    parser.add_argument("--profile", action="store_true",
                        help="sample ivr serve with py-spy and split its CPU a call into its parts (AMI, engine, ...)")
    args = parser.parse_args(argv)
    if args.agents is not None and not 1 <= args.agents <= MAX_AGENTS:
        parser.error(f"--agents must be 1..{MAX_AGENTS}")
    tuning = tuning_of(args, parser)
    bed = Testbed(REPO / "config.yaml", log=print, tuning=tuning)
    with bed:
        if not bed.started_here:
            bed.reconfigure(bed.config)  # the tuning of this run, on an Asterisk already running
        print(f"test bed: Asterisk pid {bed.pid()}, tuning: {describe(tuning)}; "
              f"recordings in {bed.recordings_dir} ({_filesystem(bed.recordings_dir)})")
        options = {"agents": args.agents, "transport": args.transport, "keep": args.keep,
                   "caller_audio": args.caller_audio, "profile": args.profile}
        filters = {"on": [True], "off": [False], "both": [False, True]}[args.ami_filter]
        runs = []
        for i, ami_filter in enumerate(filters):
            bed.tuning = replace(tuning, ami_event_filter=ami_filter)  # written by the next reconfigure
            if args.search:
                rates = [float(r) for r in args.rates.split(",") if r.strip()]
                runs += search(bed, rates, args.duration, **options)
            else:
                runs.append(run_rate(bed, args.rate, args.duration, **options))
            if i < len(filters) - 1:
                wait_idle(bed, 60)
    print()
    for run in runs:
        print(run.table())
        print()
    if args.ami_filter == "both" and not args.search:
        print(filter_comparison(*runs))
    if args.search:
        clean = [run.rate for run in runs if run.clean]
        print(f"highest clean rate: {max(clean):g} new calls/s" if clean else "no rate was clean")
    return 0


def filter_comparison(without: Run, with_filter: Run) -> str:
    """The engine's CPU and AMI events a call, without the event filter and with it."""
    before, after = without.per_call("ivr serve"), with_filter.per_call("ivr serve")
    change = f"{100 * (before - after) / before:.0f}% less" if before else "n/a"
    lines = [f"ivr serve's CPU a call: {before:.2f} ms without the AMI event filter, {after:.2f} ms with it ({change})",
             f"  without: {without.ami_text()}", f"  with:    {with_filter.ami_text()}",
             f"  Asterisk's CPU a call: {without.per_call('asterisk'):.1f} ms without, "
             f"{with_filter.per_call('asterisk'):.1f} ms with; machine busy {100 * without.machine_busy:.0f}% and "
             f"{100 * with_filter.machine_busy:.0f}%"]
    if not (without.clean and with_filter.clean):
        lines.append("  (a run was not clean: compare with care)")
    return "\n".join(lines)


def tuning_of(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Tuning:
    tuning = Tuning.high_rate() if args.high_rate else Tuning()
    if args.quiet_log:
        tuning = replace(tuning, verbose=0, log_verbose=False)
    if args.rtp_ports:
        match = re.fullmatch(r"(\d+)-(\d+)", args.rtp_ports)
        if not match or not 1024 <= int(match.group(1)) < int(match.group(2)) <= 65535:
            parser.error("--rtp-ports must be LOW-HIGH, 1024 <= LOW < HIGH <= 65535")
        tuning = replace(tuning, rtp_ports=(int(match.group(1)), int(match.group(2))))
    if args.strict_rtp:
        tuning = replace(tuning, strict_rtp=args.strict_rtp)
    if args.no_cdr:
        tuning = replace(tuning, cdr=False)
    if args.quiet_ami:
        tuning = replace(tuning, ami_disabled_events=QUIET_AMI_EVENTS)
    if args.pjsip_threads is not None:
        tuning = replace(tuning, threadpool_max=args.pjsip_threads)
    return tuning


def describe(tuning: Tuning) -> str:
    """The tuning in a line, what differs from the live tests' test bed."""
    default = Tuning()
    changed = []
    for name in tuning.__dataclass_fields__:
        value = getattr(tuning, name)
        if value != getattr(default, name):
            if name == "ami_disabled_events":
                changed.append(f"disabledevents {len(value)} events")
            elif name == "ami_event_filter":
                changed.append("the engine's AMI user without its event filter")
            else:
                changed.append(f"{name} {value!r}")
    return ", ".join(changed) or "as the live tests run it"


def _filesystem(path: Path) -> str:
    """The type of file system a folder is on (tmpfs or a disk's)."""
    best, kind = "", "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if str(path.resolve()).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


if __name__ == "__main__":
    sys.exit(main())

"""Asterisk's side of AGI for the load generator (bench/agi_load.py): the environment block
of a call, the command line read as res_agi reads it, the reply Asterisk 22 gives, and the
timing of every command.

One `AsteriskCall` is one call. It is an asyncio protocol for both transports Asterisk
uses: a FastAGI socket (`loop.create_connection`) and the stdin/stdout pipes of an AGI
process (`loop.subprocess_exec`, a process per call as pyst2 scripts run). No stream
objects and no task per call: a line is answered inside `data_received`, so the generator
costs little beside the server it measures (they share the machine's cores).

Replies follow res_agi (Asterisk 22): ANSWER `200 result=0`; SET VARIABLE `200 result=1`;
GET VARIABLE `200 result=1 (value)`, or `200 result=0` when unset; GET FULL VARIABLE
`200 result=1 (<expression with every ${...} replaced>)`; CHANNEL STATUS `200 result=6`
(up); STREAM FILE `200 result=0 endpos=<samples>` when the prompt has played; WAIT FOR
DIGIT `200 result=50` (key 2) at once; EXEC Queue `200 result=0` when the queue call ends
(QUEUESTATUS and the agent are set then, as app_queue does); HANGUP `200 result=1`, then
the line closes; an unknown command `510 Invalid or unknown command` (counted as an error).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
from dataclasses import dataclass, field
from time import perf_counter
from typing import Callable, Optional

SAMPLE_RATE = 8000  # endpos counts 8 kHz samples, as for the project's prompts
KEY = "2"  # the key every caller presses in the menu
UNKNOWN = b"510 Invalid or unknown command\n"

# ${NAME} or ${FUNC(args)} with nothing nested inside: replaced innermost first, so nested
# expressions such as ${CUT(${X},|,1)} resolve as Asterisk resolves them
_EXPRESSION = re.compile(r"\$\{([^${}]*)\}")


def parse_args(line: str) -> list[str]:
    """A command line split into arguments as res_agi's parse_args does: blanks separate,
    a `"` opens or closes a quoted argument, `\\` takes the next character as it is."""
    if "\\" not in line:
        if '"' not in line:
            return line.split()
        # fast path: the pieces between quotes alternate outside, inside, outside, ...
        args: list[str] = []
        for i, piece in enumerate(line.split('"')):
            if i % 2:
                args.append(piece)
            else:
                args.extend(piece.split())
        return args
    args, current, quoted, escaped, started = [], [], False, False, False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = started = True
        elif char == '"':
            quoted = not quoted
            started = True
        elif char in " \t" and not quoted:
            if started:
                args.append("".join(current))
                current, started = [], False
        else:
            current.append(char)
            started = True
    if started:
        args.append("".join(current))
    return args


def substitute(expression: str, variables: dict[str, str]) -> str:
    """Every `${NAME}` and `${FUNC(args)}` replaced by the call's value, unknown ones by ""."""
    if "${" not in expression:
        return expression
    while True:
        replaced = _EXPRESSION.sub(lambda m: variables.get(m.group(1), ""), expression)
        if replaced == expression or "${" not in replaced:
            return replaced
        expression = replaced


def environment_block(uniqueid: str, script: str, *, network: bool = True, caller: str = "48221234567",
                      caller_name: str = "Load Caller", extension: str = "100") -> bytes:
    """The `agi_*` lines Asterisk 22 writes first (launch_netscript, then setup_env), and
    the blank line that ends them."""
    lines = []
    if network:
        lines += [("agi_network", "yes"), ("agi_network_script", script)]
    lines += [
        ("agi_request", f"agi://127.0.0.1/{script}" if network else script),
        ("agi_channel", f"PJSIP/trunk-{uniqueid.replace('.', '')[-8:]}"),
        ("agi_language", "en"),
        ("agi_type", "PJSIP"),
        ("agi_uniqueid", uniqueid),
        ("agi_version", "22.10.1"),
        ("agi_callerid", caller),
        ("agi_calleridname", caller_name),
        ("agi_callingpres", "0"),
        ("agi_callingani2", "0"),
        ("agi_callington", "0"),
        ("agi_callingtns", "0"),
        ("agi_dnid", extension),
        ("agi_rdnis", "unknown"),
        ("agi_context", "ivr"),
        ("agi_extension", extension),
        ("agi_priority", "5"),
        ("agi_enhanced", "0.0"),
        ("agi_accountcode", ""),
        ("agi_threadid", "140000000000000"),
    ]
    return ("".join(f"{k}: {v}\n" for k, v in lines) + "\n").encode()


@dataclass
class Behaviour:
    """How long Asterisk holds each command: prompts and the queue (0: reply at once)."""

    prompt_seconds: float = 0.0
    queue_seconds: float = 0.0
    jitter: float = 0.0  # +- this fraction, drawn for every prompt
    recordings: str = "/var/spool/asterisk/recordings"
    date: str = field(default_factory=lambda: dt.date.today().isoformat())  # IVR_RECORDING's folder

    def prompt(self) -> float:
        if self.prompt_seconds <= 0:
            return 0.0
        if not self.jitter:
            return self.prompt_seconds
        return self.prompt_seconds * random.uniform(1 - self.jitter, 1 + self.jitter)


@dataclass
class Tally:
    """What one run of calls measured, added up across its calls."""

    latencies: list[float] = field(default_factory=list)  # seconds, every command of every measured call
    placed: int = 0
    completed: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # reason -> calls
    unknown_commands: dict[str, int] = field(default_factory=dict)  # command line -> times
    commands: int = 0
    closed_without_hangup: int = 0
    expected_commands: Optional[int] = None  # the recorded call's length: a call that ends shorter or longer fails
    first_connect: Optional[float] = None
    last_close: Optional[float] = None

    def fail(self, reason: str) -> None:
        self.failed += 1
        self.failures[reason] = self.failures.get(reason, 0) + 1


class AsteriskCall(asyncio.Protocol, asyncio.SubprocessProtocol):
    """One call, Asterisk's side: writes the environment block, answers each command."""

    def __init__(self, tally: Tally, uniqueid: str, script: str, behaviour: Behaviour, *, measure: bool = True,
                 network: bool = True, on_end: Optional[Callable[["AsteriskCall"], None]] = None,
                 record: Optional[list[str]] = None):
        self.tally = tally
        self.uniqueid = uniqueid
        self.script = script
        self.behaviour = behaviour
        self.measure = measure  # False during a warm-up: the call runs, its latencies are not kept
        self.network = network
        self.on_end = on_end
        self.record = record  # every command line received, when asked (to build the floor's list)
        self.variables: dict[str, str] = {
            "CHANNEL(state)": "Up",
            "CHANNEL(language)": "en",
            "UNIQUEID": uniqueid,
            "IVR_RECORDING": f"{behaviour.recordings}/{behaviour.date}/{uniqueid}.wav",
        }
        self.transport: Optional[asyncio.BaseTransport] = None
        self._write: Callable[[bytes], None] = lambda data: None
        self._buffer = b""
        self.last_write = 0.0  # when the previous reply (or the block) went out
        self.last_activity = 0.0
        self.pending: Optional[asyncio.TimerHandle] = None  # a reply held back (prompt, queue)
        self.commands = 0
        self.hung_up = False  # the server sent HANGUP
        self.ended = False
        self.error: Optional[str] = None
        self.latencies = tally.latencies if measure else None

    # --- the transport ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if isinstance(transport, asyncio.SubprocessTransport):
            stdin = transport.get_pipe_transport(0)
            self._write = stdin.write  # type: ignore[union-attr]
        else:
            self._write = transport.write  # type: ignore[attr-defined]
        now = perf_counter()
        if self.tally.first_connect is None:
            self.tally.first_connect = now
        self._write(environment_block(self.uniqueid, self.script, network=self.network))
        self.last_write = self.last_activity = perf_counter()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        now = perf_counter()
        self.last_activity = now
        buffer = self._buffer + data
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                break
            line, buffer = buffer[:end], buffer[end + 1:]
            self._command(line, now)
        self._buffer = buffer

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if exc is not None and not self.hung_up:
            self._end(f"connection lost: {type(exc).__name__}")
        else:
            self._end(None)

    def process_exited(self) -> None:
        self._end(None)

    def eof_received(self) -> Optional[bool]:
        return None  # close our side too

    # --- the commands -------------------------------------------------------------------
    def _command(self, raw: bytes, now: float) -> None:
        if self.ended:
            return
        if self.pending is not None:  # a command before the reply to the last one: a protocol error
            self._fail("a command arrived before the reply to the previous one")
            return
        self.commands += 1
        if self.latencies is not None:
            self.latencies.append(now - self.last_write)
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if self.record is not None:
            self.record.append(line)
        reply, delay, close = self.answer(line)
        if delay > 0:
            self.pending = asyncio.get_running_loop().call_later(delay, self._send, reply, close)
        else:
            self._send(reply, close)

    def answer(self, line: str) -> tuple[bytes, float, bool]:
        """The reply to one command line, how long Asterisk holds it, and whether the line
        closes after it."""
        args = parse_args(line)
        verb = " ".join(args[:3]).upper()
        head2 = " ".join(args[:2]).upper()
        head1 = args[0].upper() if args else ""
        variables = self.variables
        if verb == "GET FULL VARIABLE" and len(args) >= 4:
            return f"200 result=1 ({substitute(args[3], variables)})\n".encode(), 0.0, False
        if verb == "WAIT FOR DIGIT":
            return b"200 result=" + str(ord(KEY)).encode() + b"\n", 0.0, False
        if head2 == "GET VARIABLE" and len(args) >= 3:
            value = variables.get(args[2])
            if value is None:
                return b"200 result=0\n", 0.0, False
            return f"200 result=1 ({value})\n".encode(), 0.0, False
        if head2 == "SET VARIABLE" and len(args) >= 4:
            variables[args[2]] = args[3]
            return b"200 result=1\n", 0.0, False
        if head2 == "STREAM FILE":
            seconds = self.behaviour.prompt()
            return f"200 result=0 endpos={int(seconds * SAMPLE_RATE)}\n".encode(), seconds, False
        if head2 == "CHANNEL STATUS":
            return b"200 result=6\n", 0.0, False
        if head1 == "ANSWER":
            return b"200 result=0\n", 0.0, False
        if head1 == "EXEC" and len(args) >= 2:
            app = args[1].lower()
            if app == "queue":
                self._queue_ends(args[2] if len(args) > 2 else "")
                return b"200 result=0\n", self.behaviour.queue_seconds, False
            if app in ("playback", "background"):
                return b"200 result=0\n", self.behaviour.prompt(), False
            return b"200 result=0\n", 0.0, False
        if head1 == "HANGUP":
            self.hung_up = True
            return b"200 result=1\n", 0.0, True
        if head1 in ("VERBOSE", "NOOP"):
            return b"200 result=1\n", 0.0, False
        self.tally.unknown_commands[line] = self.tally.unknown_commands.get(line, 0) + 1
        self.error = self.error or f"unknown command: {line[:80]}"
        return UNKNOWN, 0.0, False

    def _queue_ends(self, queue_args: str) -> None:
        """What app_queue leaves on the channel when an agent answered and hung up."""
        queue = queue_args.split(",", 1)[0] or "support"
        self.variables.update({
            "QUEUESTATUS": "CONTINUE",
            "MEMBERINTERFACE": f"Local/{queue}-agent@agents",
            "MEMBERNAME": f"Agent {queue}",
            "QEHOLDTIME": str(int(self.behaviour.queue_seconds)),
        })

    def _send(self, reply: bytes, close: bool) -> None:
        self.pending = None
        if self.ended:
            return
        self._write(reply)
        self.last_write = perf_counter()
        if close:
            self._close()

    # --- the end ------------------------------------------------------------------------
    def _close(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if isinstance(transport, asyncio.SubprocessTransport):
            stdin = transport.get_pipe_transport(0)
            if stdin is not None:
                stdin.close()  # as Asterisk closes the pipes; the script exits on its own
        else:
            transport.close()

    def _fail(self, reason: str) -> None:
        self.error = self.error or reason
        self._close()
        if isinstance(self.transport, asyncio.SubprocessTransport):
            self.transport.kill()

    def timed_out(self, seconds: float) -> None:
        self._fail(f"no command for {seconds:.0f} s (time-out)")
        self._end(self.error)

    def _end(self, reason: Optional[str]) -> None:
        if self.ended:
            return
        self.ended = True
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
            reason = reason or "the server closed the line while a prompt or the queue was playing"
        reason = self.error or reason
        if reason is None and not self.hung_up and self.commands == 0:
            reason = "the server closed the line without a command"
        expected = self.tally.expected_commands
        if reason is None and expected is not None and self.commands != expected:
            reason = f"the call ended after {self.commands} commands, not the {expected} of the recorded call"
        tally = self.tally
        tally.last_close = perf_counter()
        tally.commands += self.commands
        if reason is not None:
            tally.fail(reason)
        else:
            tally.completed += 1
            if not self.hung_up:
                tally.closed_without_hangup += 1
        if self.on_end is not None:
            self.on_end(self)


"""The live channel: a call that Asterisk hands over by FastAGI, and the FastAGI server.

Nodes become AGI commands: prompts by STREAM FILE with the menu's keys as escape digits
(barge-in), keys by WAIT FOR DIGIT, transfers by `Queue` with the `c` option (so the flow
goes on to the survey when the agent hangs up), voicemail by RECORD FILE. A STREAM FILE
answer of -1 means a hang-up or a missing file; one CHANNEL STATUS tells which.

Each command is a round trip the caller hears as a gap, so the channel sends none that
would change nothing: the call's first command (the FastAGI server's, which ends the
environment block) also reads the channel's state, language and queue priority, so ANSWER
is not sent to a call the dialplan answered, nor a language or priority the channel already
has; and after a Queue one GET FULL VARIABLE reads all of its results.
"""

from __future__ import annotations

import functools
import logging
import time
from time import perf_counter
from pathlib import Path
from typing import Optional, Protocol

from ivr.channels.agi_connection import AgiConnection
from ivr.channels.agi_timing import CommandTimes
from ivr.channels.agi_wire import (AgiDeadChannel, AgiEnvironment, AgiHangupNotice, Reply, command, full_data,
                                   reply_of, split_values, values_expression)
from ivr.engine.channel import (
    CallbackRequest,
    QueueLoad,
    TransferRequest,
    TransferResult,
    VoicemailResult,
)
from ivr.errors import CallerHangup, ChannelError
from ivr.events import TransferStatus
from ivr.flow.model import Prompt
from ivr.prompts.build import output_path
from ivr.filemodes import shared_dir

log = logging.getLogger(__name__)

INTER_DIGIT_SECONDS = 3.0  # after the first key of an input, the wait for the next
# QUEUESTATUS values that mean no agent took the call: the flow's on_timeout handles them
_NOT_ANSWERED = {"TIMEOUT", "FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL"}
STATE, LANGUAGE, PRIORITY = "CHANNEL(state)", "CHANNEL(language)", "QUEUE_PRIO"
# what the first command reads for the channel (see ivr.channels.fastagi)
KNOWN_AT_START = (STATE, LANGUAGE, PRIORITY)
# what Queue() leaves; MEMBERNAME last: it is the one free text (an agent's name from queues.conf)
QUEUE_RESULTS = ("QUEUESTATUS", "QEHOLDTIME", "ABANDONED", "MEMBERINTERFACE", "MEMBERNAME")
# app_queue sets these only when they apply (an agent answered, the caller abandoned): a second
# Queue() of the call would read the first one's. The same command clears them once read.
QUEUE_CLEARED = ("QEHOLDTIME", "ABANDONED", "MEMBERINTERFACE", "MEMBERNAME")


@functools.lru_cache(maxsize=16)
def clearing(names: tuple[str, ...]) -> str:
    """The part of a GET FULL VARIABLE expression that unsets `names` and reads as ""."""
    return "".join("${SET(" + name + "=)}" for name in names)


@functools.lru_cache(maxsize=4096)
def _prompt_file(prompts_dir: Path, flow: str, name: str, language: str) -> str:
    # the same few paths for every call: built once, not with pathlib on every prompt
    return str(output_path(prompts_dir, flow, name, language).with_suffix(""))


class ManagerServices(Protocol):
    """What a live line needs from Asterisk beyond its own AGI channel: the manager
    interface (AMI), which the runtime connects once and lends to every call."""

    async def mute(self, channel: str, muted: bool) -> None:
        """Mute (or unmute) the caller's side of the channel's recording (MixMonitorMute)."""

    async def book_callback(self, request: CallbackRequest) -> None:
        """Book a call-back (stored; dialled into the department's queue when the caller's turn
        comes, or by the promised time); raises if it cannot be booked."""

    def queue_load(self, queue: str) -> Optional[QueueLoad]:
        """The queue's live state as the manager connection keeps it (no round trip); None
        when it knows no such queue. Marked not fresh while the connection is down."""


class AgiChannel:
    __slots__ = ("connection", "env", "prompts_dir", "recordings_dir", "manager", "sent", "known", "dead",
                 "_in_sync", "timings", "__dict__")  # __dict__: subclasses (a test's capturing channel) may add their own
    # every command line sent, kept for tests and debugging (a subclass sets it): some 1 KB
    # a call that a server with thousands of calls up does not carry
    keep_sent: bool = False

    def __init__(
        self,
        connection: AgiConnection,
        env: AgiEnvironment,
        *,
        prompts_dir: Path,
        recordings_dir: Path,
        manager: Optional[ManagerServices] = None,
        timings: Optional[CommandTimes] = None,
    ):
        self.connection = connection  # Asterisk's end: it reads and bounds the replies
        self.env = env
        self.prompts_dir = prompts_dir
        self.recordings_dir = recordings_dir
        self.manager = manager  # None: no AMI; no call-backs, and the recorder is stopped instead of muted
        self.sent: list[bytes] = [env.first_command] if env.first_command and self.keep_sent else []
        # channel values as last read or set: a command that would set one to what it is is not sent
        self.known: dict[str, str] = {name: env.asked[name] for name in KNOWN_AT_START if name in env.asked}
        self.dead = env.hung_up  # a caller gone before the first answer: nothing is sent
        self._in_sync = True  # every reply read: the next line is the next command's reply
        self.timings = timings  # each command's round trip, for `ivr serve`'s metrics (None: not measured)

    # --- the wire -----------------------------------------------------------------------
    async def send(self, verb: str, *args: object, dead_ok: bool = False) -> Reply:
        """One command and its reply. `dead_ok`: a command Asterisk still carries out after
        the caller hung up (GET VARIABLE): its reply, which follows the HANGUP line, is
        returned instead of raising, so what the call left (the queue's agent) can be read."""
        if self.dead and not (dead_ok and self._in_sync):
            raise AgiDeadChannel("the caller hung up")
        line = command(verb, *args)
        if self.keep_sent:
            self.sent.append(line)
        try:
            try:
                timings = self.timings
                if timings is None:
                    return reply_of(await self.connection.exchange(line))
                started = perf_counter()  # the vDSO clock: no system call
                unit = await self.connection.exchange(line)
                timings.observe(verb, perf_counter() - started)
                return reply_of(unit)
            except AgiHangupNotice:
                self.dead = True
                if not dead_ok:
                    raise
                return reply_of(await self.connection.reply())
        except AgiDeadChannel:
            self.dead = True
            self._in_sync = False  # a reply may still be on its way: nothing more is sent
            raise

    async def _alive(self) -> bool:
        """After a -1: is the caller still there? (CHANNEL STATUS 6 means up.)"""
        try:
            reply = await self.send("CHANNEL STATUS")
        except CallerHangup:
            return False
        return reply.number >= 0

    async def _get(self, name: str, dead_ok: bool = False) -> Optional[str]:
        reply = await self.send("GET VARIABLE", name, dead_ok=dead_ok)
        return reply.data if reply.number == 1 else None

    async def read_values(self, names: tuple[str, ...], dead_ok: bool = False,
                          clear: tuple[str, ...] = ()) -> dict[str, str]:
        """Several variables (or functions) in one round trip; an unset one is "". `clear`:
        variables unset by the same command once read (Asterisk evaluates the expression
        left to right; each `${SET(NAME=)}` adds nothing to the last value)."""
        reply = await self.send("GET FULL VARIABLE", values_expression(names) + clearing(clear), dead_ok=dead_ok)
        if reply.number != 1:
            return dict.fromkeys(names, "")
        return split_values(full_data(reply.line), names)

    async def set_variable(self, name: str, value: object) -> None:
        """Set a channel variable, unless the channel is known to have that value already."""
        text = str(value)
        if self.known.get(name) == text:
            return
        await self.send("SET VARIABLE", name, text)
        self.known[name] = text

    # --- Channel ------------------------------------------------------------------------
    async def answer(self) -> None:
        if self.known.get(STATE) == "Up":  # the dialplan answered (ANSWER would do nothing)
            return
        await self.send("ANSWER")
        self.known[STATE] = "Up"

    async def set_language(self, language: str) -> None:
        await self.set_variable(LANGUAGE, language)

    def prompt_file(self, prompt: Prompt, language: str) -> str:
        """The built prompt as Asterisk opens it: the path without its extension."""
        return _prompt_file(self.prompts_dir, prompt.flow, prompt.name, language)

    async def play(self, prompt: Prompt, language: str, escape: str = "") -> Optional[str]:
        reply = await self.send("STREAM FILE", self.prompt_file(prompt, language), escape)
        if reply.number > 0:
            return chr(reply.number)
        if reply.number < 0:
            if await self._alive():
                raise ChannelError(f'Asterisk cannot play prompt "{prompt.name}" ({language}); run `ivr prompts build`')
            raise AgiDeadChannel("the caller hung up during a prompt")
        return None

    async def read_digits(self, max_digits: int, timeout: float, terminator: Optional[str] = None, first: str = "") -> str:
        digits = ""
        pending = first
        wait = timeout
        while len(digits) < max_digits:
            if pending:
                key, pending = pending[0], ""
            else:
                reply = await self.send("WAIT FOR DIGIT", int(wait * 1000))
                if reply.number < 0:
                    raise AgiDeadChannel("the caller hung up while we waited for a key")
                if reply.number == 0:
                    break
                key = chr(reply.number)
            if terminator and key == terminator:
                break
            digits += key
            wait = INTER_DIGIT_SECONDS
        return digits

    async def transfer(self, request: TransferRequest) -> TransferResult:
        # unset is priority 0 to app_queue: a normal caller on a plain channel costs no command
        self.known.setdefault(PRIORITY, "")
        if not (request.priority == 0 and self.known[PRIORITY] in ("", "0")):
            await self.set_variable(PRIORITY, request.priority)
        timeout = "" if request.max_wait is None else int(request.max_wait)
        started = time.monotonic()
        # options: c = go on in the flow when the agent hangs up
        reply = await self.send("EXEC", "Queue", f"{request.department.queue},c,,,{timeout}")
        elapsed = time.monotonic() - started
        # read even when the caller has hung up (the usual end of a call with an agent)
        results = await self.read_values(QUEUE_RESULTS, dead_ok=True, clear=QUEUE_CLEARED)
        status = results["QUEUESTATUS"].upper()
        if status in _NOT_ANSWERED:
            return TransferResult(TransferStatus.TIMED_OUT, elapsed, ended=status)
        agent = results["MEMBERNAME"] or results["MEMBERINTERFACE"] or None
        hold = results["QEHOLDTIME"]
        wait = float(hold) if hold.isdigit() else elapsed
        if reply.number < 0 or self.dead or results["ABANDONED"].upper() == "TRUE":
            if not agent:
                return TransferResult(TransferStatus.ABANDONED, elapsed)
            self.dead = True  # talked to an agent, then hung up: answered all the same
        return TransferResult(TransferStatus.ANSWERED, wait, agent, max(0.0, elapsed - wait))

    def queue_load(self, queue: str) -> Optional[QueueLoad]:
        # without the AMI the line knows nothing of its queues: callers queue as usual
        read = getattr(self.manager, "queue_load", None)  # a manager may keep no queue state
        return read(queue) if read is not None else None

    async def request_callback(self, request: CallbackRequest) -> None:
        if self.manager is None:
            raise ChannelError("call-backs need the AMI connection; none is configured")
        await self.manager.book_callback(request)

    async def record_voicemail(self, mailbox: str, max_length: float) -> VoicemailResult:
        base = self.recordings_dir / "voicemail" / mailbox / (self.env.uniqueid or str(int(time.time())))
        shared_dir(base.parent)  # Asterisk writes the message: group write, nothing for others
        # dead_ok: hanging up is how most callers end a message; Asterisk keeps the file
        # and still answers `result=-1 (hangup) endpos=N` (after the HANGUP line, if any)
        reply = await self.send("RECORD FILE", str(base), "wav", "#", int(max_length * 1000), "BEEP", "s=5",
                                dead_ok=True)
        endpos = reply.fields.get("endpos", "0")
        seconds = int(endpos) / 8000 if endpos.isdigit() else 0.0
        if reply.number < 0 and (self.dead or not await self._alive()):
            self.dead = True
            if seconds <= 0:
                raise AgiDeadChannel("the caller hung up before leaving a message")
            # the message is left: the flow records it, and stops at its next command
        return VoicemailResult(seconds, str(base) + ".wav")

    async def pause_recording(self) -> None:
        await self._mute(True)

    async def resume_recording(self) -> None:
        await self._mute(False)

    async def _mute(self, muted: bool) -> None:
        if self.manager is not None:
            try:
                await self.manager.mute(self.env.channel, muted)
                return
            except Exception as exc:  # noqa: BLE001 - AMI down: the AGI way below still protects the digits
                log.warning("muting the recording over AMI failed (%s); stopping the recorder instead", exc)
        # Without AMI: stop the recorder, and start it again appending to the same file.
        # The gap is lost from the timeline, but no key of a card number is recorded.
        if muted:
            await self.send("EXEC", "StopMixMonitor", "")
        else:
            target = self.known.get("IVR_RECORDING") or await self._get("IVR_RECORDING")
            if target:
                await self.send("EXEC", "MixMonitor", f"{target},a")

    async def hangup(self) -> None:
        if self.connection.broken:  # closed already: Asterisk's AGI() has returned
            return
        try:
            await self.send("HANGUP")
        except CallerHangup:
            pass

"""The live channel: a call that Asterisk hands over by FastAGI, and the FastAGI server.

Nodes become AGI commands: prompts by STREAM FILE with the menu's keys as escape digits
(barge-in), keys by WAIT FOR DIGIT, transfers by `Queue` with the `c` option (so the flow
goes on to the survey when the agent hangs up), voicemail by RECORD FILE. A STREAM FILE
answer of -1 means a hang-up or a missing file; one CHANNEL STATUS tells which.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Optional, Protocol

from ivr.channels.agi_wire import AgiDeadChannel, AgiEnvironment, AgiHangupNotice, Reply, command, read_reply
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

log = logging.getLogger(__name__)

INTER_DIGIT_SECONDS = 3.0  # after the first key of an input, the wait for the next
# QUEUESTATUS values that mean no agent took the call: the flow's on_timeout handles them
_NOT_ANSWERED = {"TIMEOUT", "FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL"}


class ManagerServices(Protocol):
    """What a live line needs from Asterisk beyond its own AGI channel: the manager
    interface (AMI), which the runtime connects once and lends to every call."""

    async def mute(self, channel: str, muted: bool) -> None:
        """Mute (or unmute) the caller's side of the channel's recording (MixMonitorMute)."""

    async def book_callback(self, request: CallbackRequest) -> None:
        """Have Asterisk call the customer back and put them through to the department's queue."""

    def queue_load(self, queue: str) -> Optional[QueueLoad]:
        """The queue's live state as the manager connection keeps it (no round trip); None
        when it knows no such queue. Marked not fresh while the connection is down."""


class AgiChannel:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        env: AgiEnvironment,
        *,
        prompts_dir: Path,
        recordings_dir: Path,
        manager: Optional[ManagerServices] = None,
    ):
        self.reader = reader
        self.writer = writer
        self.env = env
        self.prompts_dir = prompts_dir
        self.recordings_dir = recordings_dir
        self.manager = manager  # None: no AMI; no call-backs, and the recorder is stopped instead of muted
        self.sent: list[bytes] = []  # every command line, for logs and tests
        self.dead = False
        self._in_sync = True  # every reply read: the next line is the next command's reply

    # --- the wire -----------------------------------------------------------------------
    async def send(self, verb: str, *args: object, dead_ok: bool = False) -> Reply:
        """One command and its reply. `dead_ok`: a command Asterisk still carries out after
        the caller hung up (GET VARIABLE): its reply, which follows the HANGUP line, is
        returned instead of raising, so what the call left (the queue's agent) can be read."""
        if self.dead and not (dead_ok and self._in_sync):
            raise AgiDeadChannel("the caller hung up")
        line = command(verb, *args)
        self.sent.append(line)
        try:
            self.writer.write(line)
            await self.writer.drain()
            try:
                return await read_reply(self.reader)
            except AgiHangupNotice:
                self.dead = True
                if not dead_ok:
                    raise
                return await read_reply(self.reader)
        except AgiDeadChannel:
            self.dead = True
            self._in_sync = False  # a reply may still be on its way: nothing more is sent
            raise
        except (ConnectionError, OSError) as exc:
            self.dead = True
            raise AgiDeadChannel(f"the connection failed: {exc}") from None

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

    async def get_variable(self, name: str) -> Optional[str]:
        """A channel variable's value (None when unset)."""
        return await self._get(name)

    # --- Channel ------------------------------------------------------------------------
    async def answer(self) -> None:
        await self.send("ANSWER")

    async def set_language(self, language: str) -> None:
        await self.send("SET VARIABLE", "CHANNEL(language)", language)

    def prompt_file(self, prompt: Prompt, language: str) -> str:
        """The built prompt as Asterisk opens it: the path without its extension."""
        return str(output_path(self.prompts_dir, prompt.flow, prompt.name, language).with_suffix(""))

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
        await self.send("SET VARIABLE", "QUEUE_PRIO", request.priority)
        timeout = "" if request.max_wait is None else int(request.max_wait)
        started = time.monotonic()
        # options: c = go on in the flow when the agent hangs up
        reply = await self.send("EXEC", "Queue", f"{request.department.queue},c,,,{timeout}")
        elapsed = time.monotonic() - started
        # read even when the caller has hung up (the usual end of a call with an agent)
        status = (await self._get("QUEUESTATUS", dead_ok=True) or "").upper()
        if status in _NOT_ANSWERED:
            return TransferResult(TransferStatus.TIMED_OUT, elapsed, ended=status)
        agent = await self._get("MEMBERNAME", dead_ok=True) or await self._get("MEMBERINTERFACE", dead_ok=True)
        hold = await self._get("QEHOLDTIME", dead_ok=True)
        wait = float(hold) if hold and hold.isdigit() else elapsed
        if reply.number < 0 or self.dead or (await self._get("ABANDONED", dead_ok=True) or "").upper() == "TRUE":
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
        base.parent.mkdir(parents=True, exist_ok=True)
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
            target = await self._get("IVR_RECORDING")
            if target:
                await self.send("EXEC", "MixMonitor", f"{target},a")

    async def hangup(self) -> None:
        try:
            await self.send("HANGUP")
        except CallerHangup:
            pass

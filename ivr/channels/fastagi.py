"""The FastAGI server: Asterisk connects once per call (`AGI(agi://host:4573/main)`).

One asyncio task per call, so one process carries thousands of calls. The script path
names the flow (`/main`, `/faq?lang=en`); query parameters and `agi_arg_N` become call
variables. Each call runs on the engine that was current when it started: a reload
changes what new calls get, never a call in progress. A script path that names no loaded
flow is the engine's to handle too: it sends the caller to the fallback queue, and the
call is recorded like any other. A call whose dialplan started no recording (no
`IVR_RECORDING`) is recorded by the engine itself (`ivr.channels.agi_recording`).

The server's first command, which makes sure the environment block has ended, also reads
what the call needs before its flow starts (the recording's name, the channel's state,
language and queue priority, and the day's folder in case the engine must start the
recording): one round trip where there were three to five.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable, Optional

from ivr.channels.agi import KNOWN_AT_START, AgiChannel, ManagerServices
from ivr.channels.agi_recording import DATE, start_recording
from ivr.channels.agi_wire import read_environment
from ivr.engine import Engine
from ivr.events import Event
from ivr.errors import CallerHangup, ChannelError

log = logging.getLogger(__name__)

EventSink = Callable[[Event], None]
ENVIRONMENT_TIMEOUT = 10.0  # seconds a new connection has for its whole environment block
RECORDING = "IVR_RECORDING"
# read by the first command; the recording's path last: it is the one free text among them
ASKED_AT_START = (*KNOWN_AT_START, DATE, RECORDING)


class FastAgiServer:
    def __init__(
        self,
        engine: Callable[[], Engine],
        *,
        prompts_dir: Path,
        recordings_dir: Path,
        host: str = "127.0.0.1",
        port: int = 4573,
        on_event: Optional[EventSink] = None,
        manager: Optional[ManagerServices] = None,
    ):
        self.engine = engine
        self.prompts_dir = prompts_dir
        self.recordings_dir = recordings_dir
        self.host = host
        self.port = port
        self.on_event = on_event  # every event of every call (the call-records writer)
        self.manager = manager
        self.server: Optional[asyncio.AbstractServer] = None
        self.active: set[asyncio.Task] = set()
        # connections whose environment block is not complete yet, by deadline (oldest first):
        # one sweep a second ends the late ones, instead of a timer for every call
        self._opening: dict[asyncio.StreamWriter, float] = {}
        self._late: set[asyncio.StreamWriter] = set()
        self._sweeper: Optional[asyncio.Task] = None
        self._ending = False  # close() is ending the calls still in progress

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port, backlog=1024, limit=1 << 16)
        sockets = self.server.sockets or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("FastAGI listening on %s:%s", self.host, self.port)
        self._sweeper = asyncio.create_task(self._sweep(), name="fastagi-environment-deadlines")

    async def _sweep(self, every: float = 0.5) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            while self._opening:
                writer, deadline = next(iter(self._opening.items()))
                if deadline > now:
                    break
                del self._opening[writer]
                self._late.add(writer)
                try:
                    writer.transport.abort()  # its read ends at once; handle() says why
                except Exception:  # noqa: BLE001 - the sweep must go on for the other connections
                    log.exception("closing a connection whose AGI environment is late failed")

    async def close(self, grace: float = 5.0, reason: str = "the engine stopped") -> tuple[int, int]:
        """Stop taking calls; give calls in progress `grace` seconds, then end them: each call's
        task is cancelled with `reason`, which the engine records as the call's interruption
        (ivr.engine.engine), and its line closes without a HANGUP, so Asterisk's dialplan
        takes a caller still on it to the fail-safe queue. Returns (calls in progress when
        asked, calls ended here)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.server is not None:
            self.server.close()  # no new connection from here on; wait_closed() waits for calls too
        running = set(self.active)
        if running:
            await asyncio.wait(running, timeout=grace)
        newer = [task for task in self.active if task not in running]  # accepted as the listener closed
        late = [task for task in running if not task.done()] + newer
        self._ending = True
        for task in late:
            task.cancel(reason)
        if late:  # each records its interruption and closes its line
            await asyncio.wait(late, timeout=5.0)
        if self.server is not None:
            await self.server.wait_closed()
        return len(running) + len(newer), len(late)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.active.add(task)
        try:
            await self.handle(reader, writer)
        except asyncio.CancelledError:
            if not self._ending:
                raise
            # ended by close(): the engine has recorded the call as interrupted. The task ends as
            # a finished one: the stream server logs a traceback for a cancelled one (Python 3.11)
        finally:
            if task is not None:
                self.active.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._opening[writer] = asyncio.get_running_loop().time() + ENVIRONMENT_TIMEOUT
        try:
            env = await read_environment(reader, None, writer=writer, ask=ASKED_AT_START)
        except (ChannelError, CallerHangup) as exc:
            if writer in self._late:
                exc = ChannelError(f"Asterisk sent no complete AGI environment within {ENVIRONMENT_TIMEOUT:g} s")
            log.warning("a connection without a usable AGI environment: %s", exc)
            return
        finally:
            self._opening.pop(writer, None)
            self._late.discard(writer)
        env.keep_only_used()
        engine = self.engine()
        channel = AgiChannel(reader, writer, env, prompts_dir=self.prompts_dir, recordings_dir=self.recordings_dir,
                             manager=self.manager)
        flow = env.script or "main"
        # repr(): a caller-ID name is untrusted; quotes and line breaks stay visible, one log line.
        # DEBUG (`ivr serve --log-level debug`): at thousands of calls a second a line each cost
        # a tenth of the server's time; the call's record holds all of it
        log.debug("call %s on %s from %r %r to flow %r", env.uniqueid, env.channel, env.caller, env.caller_name, flow)
        variables = {k: v for k, v in env.query.items() if k != "lang"}
        variables.update({f"arg{i}": value for i, value in enumerate(env.args, 1)})
        details = {"channel": env.channel, "uniqueid": env.uniqueid, "caller_name": env.caller_name, "source": "live"}
        call = f"{env.uniqueid} on {env.channel!r}"
        # the dialplan names the call's recording; the record links to it
        recording: Optional[str] = env.asked.get(RECORDING) or None
        if not recording:  # a hand-written dialplan: record the call here
            try:
                recording = await start_recording(channel, self.recordings_dir, call, env.asked.get(DATE, ""))
            # the recording is no reason to drop a call: whatever goes wrong here, the engine runs
            # it (and sends it to the fallback queue itself if the channel is really broken)
            except CallerHangup:
                recording = None
            except Exception:  # noqa: BLE001 - a bug here must not keep the call from its record
                log.exception("call %s: starting its recording failed; the call goes on unrecorded", call)
                recording = None
        if recording:
            details["recording"] = recording
            channel.known[RECORDING] = recording
        await engine.run(
            channel, flow,
            caller=env.caller,
            language=env.query.get("lang") or None,
            variables=variables,
            call_id=env.uniqueid or None,
            on_event=self.on_event,
            details=details,
        )

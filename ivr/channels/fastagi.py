"""The FastAGI server: Asterisk connects once per call (`AGI(agi://host:4573/main)`).

One asyncio task per call, so one process carries thousands of calls. The script path
names the flow (`/main`, `/faq?lang=en`); query parameters and `agi_arg_N` become call
variables, except `node=<name>`, which names the Asterisk the call came from when there
are several (its manager services are that node's: `NodeRoutes`). Each call runs on the
engine that was current when it started: a reload changes what new calls get, never a
call in progress. A script path that names no loaded
flow is the engine's to handle too: it sends the caller to the fallback queue, and the
call is recorded like any other. A call whose dialplan started no recording (no
`IVR_RECORDING`) is recorded by the engine itself (`ivr.channels.agi_recording`).

The server's first command, which makes sure the environment block has ended, also reads
what the call needs before its flow starts (the recording's name, the channel's state,
language and queue priority, and the day's folder in case the engine must start the
recording): one round trip where there were three to five.

Each connection is an `AgiConnection` (asyncio's Protocol interface), which reads and bounds
Asterisk's bytes; the server keeps the one deadline of every connection whose environment
is not complete yet (one sweep for all of them, not a timer each), caps how many may be
opening at once, and logs the connections it closes in one rate-limited line.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable, Optional, Protocol

from ivr.channels.agi import KNOWN_AT_START, AgiChannel, ManagerServices
from ivr.channels.agi_connection import AgiConnection
from ivr.channels.agi_recording import DATE, start_recording
from ivr.channels.agi_refusals import RefusalLog
from ivr.channels.agi_timing import CommandTimes
from ivr.channels.agi_wire import AgiEnvironment
from ivr.engine import Engine
from ivr.events import Event
from ivr.errors import CallerHangup

log = logging.getLogger(__name__)

EventSink = Callable[[Event], None]
ENVIRONMENT_TIMEOUT = 10.0  # seconds a new connection has for its whole environment block
# connections that have not sent their block's blank line, at most, and the bytes they may
# hold together. Asterisk writes the block as soon as it connects, so a real call is in this
# state for well under a millisecond; but a spike of 5,000 calls at once can have all of them
# connected before any block is read (bench/agi_load.py --mode spike does just that), so the
# count is twice that. An idle connection costs some 4 kB; what a flood can make the process
# hold beyond that is the byte budget: 64 MB, sixty times what 10,000 real blocks (about 1 kB
# each) need at once. (Connections past the blank line wait for the answer to our own first
# command: bounded by the same deadline and by the block's own limit.)
MAX_OPENING = 10_000
MAX_OPENING_BYTES = 64 * 1024 * 1024
RECORDING = "IVR_RECORDING"
# read by the first command; the recording's path last: it is the one free text among them
ASKED_AT_START = (*KNOWN_AT_START, DATE, RECORDING)


NODE_ARGUMENT = "node="  # AGI(agi://..., node=<name>): the Asterisk the call came from (ivr.asterisk.dialplan)


class NodeRoutes(Protocol):
    """Which Asterisk a call came from, and its manager services (ivr.live.nodes)."""

    def route(self, name: Optional[str], call: str) -> tuple[str, ManagerServices]: ...


def node_argument(args: list[str]) -> tuple[list[str], Optional[str]]:
    """The AGI arguments without the first `node=<name>`, and that name (None: none given).
    Untrusted: the caller of this checks the name against the configured nodes."""
    for i, arg in enumerate(args):
        if arg.startswith(NODE_ARGUMENT):
            return args[:i] + args[i + 1:], arg[len(NODE_ARGUMENT):]
    return args, None


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
        timings: Optional[CommandTimes] = None,
        nodes: Optional[NodeRoutes] = None,
    ):
        self.engine = engine
        self.prompts_dir = prompts_dir
        self.recordings_dir = recordings_dir
        self.host = host
        self.port = port
        self.on_event = on_event  # every event of every call (the call-records writer)
        self.manager = manager
        # several Asterisks: each call's manager is its node's (named by the AGI argument node=)
        self.nodes = nodes
        self.timings = timings  # every command's round trip, for the metrics (ivr.channels.agi_timing)
        self.server: Optional[asyncio.AbstractServer] = None
        self.active: set[asyncio.Task] = set()
        # connections whose environment block is not complete yet, by deadline (oldest first):
        # one sweep a second ends the late ones, instead of a timer for every call
        self._opening: dict[AgiConnection, float] = {}
        self._sweeper: Optional[asyncio.Task] = None
        self._ending = False  # close() is ending the calls still in progress
        self._in_block = 0  # connections that have not sent their block's blank line
        self._block_bytes = 0  # what they hold
        self.refusals = RefusalLog(log)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: AgiConnection(self, ASKED_AT_START), self.host, self.port,
                                               backlog=1024)
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
                connection, deadline = next(iter(self._opening.items()))
                if deadline > now:
                    break
                try:
                    connection.refuse(f"sent no complete AGI environment within {ENVIRONMENT_TIMEOUT:g} s")
                except Exception:  # noqa: BLE001 - the sweep must go on for the other connections
                    log.exception("closing a connection whose AGI environment is late failed")
                self._opening.pop(connection, None)

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
        # a connection still sending its block has no call yet: closed now, Asterisk's dialplan
        # takes its caller to the fail-safe queue at once
        for connection in list(self._opening):
            connection.close()
        self._opening.clear()
        self._in_block = self._block_bytes = 0
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
        self.refusals.stop()
        return len(running) + len(newer), len(late)

    # --- what a connection tells the server (ivr.channels.agi_connection.ConnectionOwner) ---
    def connection_opened(self, connection: AgiConnection) -> None:
        if self._in_block >= MAX_OPENING:
            connection.in_block = False  # not counted
            connection.refuse(f"came while {MAX_OPENING:,} connections had sent no complete block (the limit)")
            return
        self._in_block += 1
        self._opening[connection] = asyncio.get_running_loop().time() + ENVIRONMENT_TIMEOUT

    def block_received(self, connection: AgiConnection) -> None:
        self._in_block -= 1
        self._block_bytes -= connection.held

    def hold(self, connection: AgiConnection, size: int) -> bool:
        if self._block_bytes + size > MAX_OPENING_BYTES:
            return False
        self._block_bytes += size
        return True

    def connection_refused(self, connection: AgiConnection, reason: str) -> None:
        self._opening.pop(connection, None)
        if connection.in_block:
            connection.in_block = False
            self._in_block -= 1
            self._block_bytes -= connection.held
        self.refusals.count(reason)

    def environment_ready(self, connection: AgiConnection, env: AgiEnvironment) -> None:
        self._opening.pop(connection, None)
        task = asyncio.get_running_loop().create_task(self._serve(connection, env))
        self.active.add(task)
        task.add_done_callback(self.active.discard)

    async def _serve(self, connection: AgiConnection, env: AgiEnvironment) -> None:
        try:
            await self.handle(connection, env)
        except asyncio.CancelledError:
            if not self._ending:
                raise
            # ended by close(): the engine has recorded the call as interrupted; the task ends
            # as a finished one
        except Exception:  # noqa: BLE001 - a bug: said here, as nobody awaits a call's task
            log.exception("call %s on %r failed outside its flow", env.uniqueid, env.channel)
        finally:
            connection.close()

    async def handle(self, connection: AgiConnection, env: AgiEnvironment) -> None:
        """Run the call whose environment the connection read."""
        env.keep_only_used()
        engine = self.engine()
        call = f"{env.uniqueid} on {env.channel!r}"
        args, named = node_argument(env.args)
        manager, node = self.manager, None
        if self.nodes is not None:
            node, manager = self.nodes.route(named, call)
        channel = AgiChannel(connection, env, prompts_dir=self.prompts_dir, recordings_dir=self.recordings_dir,
                             manager=manager, timings=self.timings)
        flow = env.script or "main"
        # repr(): a caller-ID name is untrusted; quotes and line breaks stay visible, one log line.
        # DEBUG (`ivr serve --log-level debug`): at thousands of calls a second a line each cost
        # a tenth of the server's time; the call's record holds all of it
        log.debug("call %s on %s from %r %r to flow %r", env.uniqueid, env.channel, env.caller, env.caller_name, flow)
        variables = {k: v for k, v in env.query.items() if k != "lang"}
        variables.update({f"arg{i}": value for i, value in enumerate(args, 1)})
        details = {"channel": env.channel, "uniqueid": env.uniqueid, "caller_name": env.caller_name, "source": "live"}
        if node is not None:
            details["asterisk_node"] = node
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

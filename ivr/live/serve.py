"""`ivr serve`: the live runtime. FastAGI for calls, hot reload of the flows, the call
records writer, the survey's sampling counter in the database, and (when configured) the
AMI connection and the call-back scheduler (ivr.live.callbacks), in one asyncio process.

Stateless between calls, so several of these can sit behind Asterisk's `hagi://`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ivr.channels.agi import ManagerServices
from ivr.channels.fastagi import FastAgiServer
from ivr.engine.channel import CallbackRequest, QueueLoad
from ivr.errors import ChannelError
from ivr.events import Event
from ivr.prompts import build as prompts_build
from ivr.live.reload import FlowReloader
from ivr.filemodes import recordings_root

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    reloader: FlowReloader
    host: str = "127.0.0.1"
    port: int = 4573
    watch_interval: float = 1.0
    on_event: Optional[Callable[[Event], None]] = None
    manager: Optional[ManagerServices] = None  # the AMI part, when config.yaml has asterisk.ami
    extras: list[Any] = field(default_factory=list)  # parts with async start()/close()
    server: Optional[FastAgiServer] = None

    async def start(self) -> None:
        engine = self.reloader.current()
        config = engine.config
        prompts_dir = prompts_build.prompts_dir(config)
        recordings_dir = config.recordings_dir
        said = recordings_root(recordings_dir)  # made 2770 for Asterisk and the engine, or closed to others
        if said:
            log.warning("the recordings folder: %s", said)
        await self.reloader.start()  # the lookups' client, made before the first call and its time-out
        for part in self.extras:
            await part.start()
        self.server = FastAgiServer(self.reloader.current, prompts_dir=prompts_dir.resolve(),
                                    recordings_dir=recordings_dir.resolve(), host=self.host, port=self.port,
                                    on_event=self.on_event, manager=self.manager)
        await self.server.start()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
        for part in reversed(self.extras):
            try:
                await part.close()
            except Exception:  # noqa: BLE001 - close the rest all the same
                log.exception("closing %s failed", type(part).__name__)
        await self.reloader.close()  # the segment lookups' connections

    async def run_forever(self) -> None:
        """Serve until SIGTERM/SIGINT; SIGHUP reloads the flows."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reloader.reload)
        await self.start()
        watcher = asyncio.create_task(self.reloader.watch(self.watch_interval))
        try:
            await stop.wait()
        finally:
            watcher.cancel()
            await self.close()


class AmiPart:
    """The AMI connection as a part of the runtime, and the ManagerServices of every live
    call: recording mutes, call-backs and the queues' live state (the AMI client's queue
    board, read without a round trip). It never stops calls from being served.

    If Asterisk's manager cannot be reached at start, the server runs without it (sensitive
    input then stops the recorder over AGI instead of muting it) and keeps trying.
    """

    def __init__(self, client: Any, retry: float = 5.0, callbacks: Any = None):
        self.client = client
        self.retry = retry
        self.callbacks = callbacks  # the call-back scheduler (ivr.live.callbacks): bookings are stored there
        self._task: Optional[asyncio.Task] = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="ami-connect")

    async def _connect(self) -> None:
        while True:
            try:
                await self.client.start()
                log.info("AMI connected")
                return
            except Exception as exc:  # noqa: BLE001 - log and try again; calls go on meanwhile
                log.error("AMI not connected (%s); calls are served without it, retrying in %.0f s", exc, self.retry)
                await asyncio.sleep(self.retry)

    async def mute(self, channel: str, muted: bool) -> None:
        if not self.client.connected:
            raise ConnectionError("AMI is not connected")
        await self.client.mute(channel, muted)

    async def book_callback(self, request: CallbackRequest) -> None:
        # stored, not dialled: the scheduler dials it when the caller's turn comes
        if self.callbacks is None:
            raise ChannelError("call-backs need the call records database; `ivr serve` runs without it")
        await self.callbacks.book(request)

    def queue_load(self, queue: str) -> Optional[QueueLoad]:
        snapshot = self.client.board.snapshot(queue)
        if not snapshot.known and snapshot.fresh:
            return None  # Asterisk has no such queue: nothing to compare
        return QueueLoad(snapshot.waiting, snapshot.longest_wait, snapshot.free_agents, snapshot.logged_in,
                         snapshot.fresh)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.client.close()


class WriterPart:
    """The call-records writer as a part of the runtime: every event of every call goes to it."""

    def __init__(self, writer: Any):
        self.writer = writer

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        # the writer's thread writes what is left; off the event loop, which is closing
        await asyncio.get_running_loop().run_in_executor(None, self.writer.close)


class SurveyCounterPart:
    """The survey's sampling counter in the database as a part of the runtime: closed with it."""

    def __init__(self, counter: Any):
        self.counter = counter

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self.counter.close()  # waits for no count in progress: quick


# The call-records writer is a thread: while it holds the interpreter, no call is answered.
# Python hands the interpreter over every 5 ms by default, a gap a caller would hear; 0.5 ms
# keeps a busy writer from delaying the next AGI command by more than that.
SWITCH_INTERVAL = 0.0005


def serve_forever(runtime: Runtime) -> None:
    """Run `runtime` until SIGTERM/SIGINT, tuned for thousands of calls in one process.

    On uvloop when it is installed (Linux, macOS: the default install has it; set
    IVR_EVENT_LOOP=asyncio to use the standard loop), which halves the cost of the event
    loop's socket work per AGI command (docs/performance.md). The objects loaded at start
    (flows, config, SQLAlchemy's tables) are moved out of the garbage collector's reach, so
    its passes over the young objects of calls do not walk them again and again.
    """
    sys.setswitchinterval(SWITCH_INTERVAL)

    async def main() -> None:
        gc.collect()
        gc.freeze()
        await runtime.run_forever()

    if os.environ.get("IVR_EVENT_LOOP", "uvloop") == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.info("uvloop is not installed: the standard asyncio event loop serves the calls")
        else:
            uvloop.run(main())
            return
    asyncio.run(main())


def open_writer(config: Any) -> Any:
    """The call-records writer of the installation, its database migrated to the newest schema."""
    from ivr.store import CallWriter, database_url, init_db

    init_db(database_url(config)).dispose()  # the writer opens its own engine
    return CallWriter.from_config(config)


def build_runtime(flow_paths: list[Path], config_path: Optional[Path], *, host: Optional[str] = None,
                  port: Optional[int] = None, ami: bool = True, store: bool = True) -> Runtime:
    """The runtime of an installation, from config.yaml (asterisk.agi, asterisk.ami)."""
    reloader = FlowReloader(flow_paths, config_path)
    engine = reloader.load()
    asterisk = engine.config.asterisk
    runtime = Runtime(reloader, host=host if host is not None else asterisk.agi.host,
                      port=port if port is not None else asterisk.agi.port)
    writer = open_writer(engine.config) if store else None
    if writer is not None:
        runtime.extras.append(WriterPart(writer))
        runtime.on_event = writer.submit  # it links a call's recording from its call_started event
        from ivr.engine.sampling import SurveySampler
        from ivr.store import DatabaseSurveyCounter

        counter = DatabaseSurveyCounter(writer.engine)  # the writer's connection pool; migrated by open_writer
        runtime.extras.append(SurveyCounterPart(counter))
        reloader.use_sampler(SurveySampler(counter))  # shared with other engines, kept over a restart
    if ami and asterisk.ami is not None:
        from ivr.asterisk.ami import AmiClient
        from ivr.errors import ConfigError

        try:
            client = AmiClient.from_settings(asterisk, on_queue_event=writer.queue_event if writer else None)
        except ConfigError as exc:  # the secret is not in the environment
            log.error("AMI disabled: %s", exc)
        else:
            scheduler = callback_scheduler(writer, client, reloader) if writer is not None else None
            part = AmiPart(client, callbacks=scheduler)
            runtime.extras.append(part)
            if scheduler is not None:
                runtime.extras.append(scheduler)  # after the AMI part: it dials through it
            runtime.manager = part
    return runtime


def callback_scheduler(writer: Any, client: Any, reloader: FlowReloader) -> Any:
    """The call-back scheduler on the writer's database and the AMI client; the schedules
    of the config.yaml loaded now (a reload brings new hours to pending call-backs too)."""
    from ivr.live.callbacks import CallbackScheduler, LiveQueueBoard
    from ivr.store.callbacks import CallbackStore

    return CallbackScheduler(CallbackStore(writer.engine), client, LiveQueueBoard(client),
                             lambda: reloader.current().config.schedules, ring_timeout=client.callback.timeout)

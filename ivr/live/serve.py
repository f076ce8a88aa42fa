"""`ivr serve`: the live runtime. FastAGI for calls, hot reload of the flows, the call
records writer, the survey's sampling counter in the database, and (when configured) the
AMI connection and the call-back scheduler (ivr.live.callbacks), in one asyncio process.

Stateless between calls, so several of these can sit behind HAProxy (docs/deployment.md).
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
from typing import TYPE_CHECKING, Any, Callable, Optional

from ivr.channels.agi import ManagerServices
from ivr.channels.fastagi import FastAgiServer, NodeRoutes
from ivr.engine.channel import CallbackRequest, QueueLoad
from ivr.errors import ChannelError
from ivr.events import Event
from ivr.prompts import build as prompts_build
from ivr.live.reload import FlowReloader
from ivr.filemodes import recordings_root

if TYPE_CHECKING:
    from ivr.live.health import HealthServer
    from ivr.live.metrics import ServeMetrics

log = logging.getLogger(__name__)

DEFAULT_GRACE = 10.0  # seconds; a prompt and a menu's answer fit, a queue's wait does not


@dataclass
class Runtime:
    reloader: FlowReloader
    host: str = "127.0.0.1"
    port: int = 4573
    watch_interval: float = 1.0
    on_event: Optional[Callable[[Event], None]] = None
    manager: Optional[ManagerServices] = None  # the AMI part, when config.yaml has asterisk.ami (the first node's)
    # with several Asterisks (asterisk.nodes): each call's node and that node's AMI part
    nodes: Optional[NodeRoutes] = None
    extras: list[Any] = field(default_factory=list)  # parts with async start()/close()
    server: Optional[FastAgiServer] = None
    # seconds calls in progress have to finish at a stop (SIGTERM, SIGINT); the rest are
    # ended as interrupted (config.yaml asterisk.agi.shutdown_grace, `ivr serve --grace`)
    grace: float = DEFAULT_GRACE
    stop_reason: str = "the engine stopped"
    # health and Prometheus metrics over HTTP (ivr.live.health); None: not served (a runtime
    # built in a test); 0: a free port, which the start's log line names
    metrics_host: str = "127.0.0.1"
    metrics_port: Optional[int] = None
    metrics: Optional["ServeMetrics"] = None
    health: Optional["HealthServer"] = None
    stopping: bool = False  # from the stop's first moment: /health/ready says no

    async def start(self) -> None:
        if self.metrics_port is not None:
            await self._start_health()
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
        metrics = self.metrics
        self.server = FastAgiServer(self.reloader.current, prompts_dir=prompts_dir.resolve(),
                                    recordings_dir=recordings_dir.resolve(), host=self.host, port=self.port,
                                    on_event=metrics.calls.counting(self.on_event) if metrics else self.on_event,
                                    manager=self.manager, timings=metrics.timings if metrics else None,
                                    nodes=self.nodes)
        await self.server.start()

    async def _start_health(self) -> None:
        """Health and metrics first: a balancer asking during the start hears "not ready"."""
        from ivr.errors import ListenError
        from ivr.live.health import HealthServer
        from ivr.live.metrics import ServeMetrics

        self.metrics = ServeMetrics(self)
        self.health = HealthServer(self.metrics, self.metrics_host, self.metrics_port or 0)
        try:
            await self.health.start()
        except OSError as exc:
            raise ListenError(f"health and metrics cannot listen on {self.metrics_host}:{self.metrics_port}: "
                              f"{exc.strerror or exc} (another `ivr serve` on this host needs another port: "
                              f"config.yaml asterisk.agi.metrics_port or `ivr serve --metrics-port`)") from None
        address = self.health.address
        log.info("health and metrics on %s/health/live, %s/health/ready, %s/metrics", address, address, address)

    async def close(self) -> None:
        """Stop: no new call; calls in progress get the grace period, the rest are ended as
        interrupted; every part closes (the writer writes what is left). One line says how
        it went."""
        in_progress = ended = 0
        self.stopping = True
        if self.server is not None:
            in_progress, ended = await self.server.close(
                self.grace, f"{self.stop_reason} with the call in progress after a {self.grace:g} s grace period")
        for part in reversed(self.extras):
            try:
                await part.close()
            except Exception:  # noqa: BLE001 - close the rest all the same
                log.exception("closing %s failed", type(part).__name__)
        await self.reloader.close()  # the segment lookups' connections
        if self.health is not None:  # last: a balancer hears "not ready" through the grace period
            await self.health.close()
        if self.server is not None:
            log.info("stopped: %d call%s in progress, %d finished within %g s, %d ended as interrupted", in_progress,
                     "" if in_progress == 1 else "s", in_progress - ended, self.grace, ended)

    async def run_forever(self) -> None:
        """Serve until SIGTERM/SIGINT (then stop as `close` says); SIGHUP reloads the flows."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def stopping(sig: signal.Signals) -> None:
            if stop.is_set():
                return  # a second signal changes nothing: the grace period runs once
            self.stop_reason = f"ivr serve stopped ({sig.name})"
            self.stopping = True
            log.info("%s: no new calls; calls in progress have %g s to finish", sig.name, self.grace)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping, sig)
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
    input then stops the recorder over AGI instead of muting it) and keeps trying. With
    several Asterisks there is one of these per node (`node`: its name), each on its own:
    one node's AMI down stops nothing of the others'.
    """

    def __init__(self, client: Any, retry: float = 5.0, callbacks: Any = None, node: Optional[str] = None):
        self.client = client
        self.node = node
        self.retry = retry
        self.callbacks = callbacks  # the call-back scheduler (ivr.live.callbacks): bookings are stored there
        self._task: Optional[asyncio.Task] = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="ami-connect")

    async def _connect(self) -> None:
        while True:
            try:
                await self.client.start()
                log.info("AMI connected%s", self._of_node)
                return
            except Exception as exc:  # noqa: BLE001 - log and try again; calls go on meanwhile
                log.error("AMI%s not connected (%s); calls are served without it, retrying in %.0f s", self._of_node,
                          exc, self.retry)
                await asyncio.sleep(self.retry)

    @property
    def _of_node(self) -> str:
        return f" of node {self.node}" if self.node else ""

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
                         snapshot.fresh, self.node or "")

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
# A full garbage collection walks every object of every call in progress: with 5,000 callers
# arriving at once, Python's default (one after every ten passes over the middle generation)
# ran several, each a pause every caller waiting for a command heard. One in a hundred
# passes halves the spike's worst delay (docs/performance.md); the young generations are
# collected as often as by default, so a call's short-lived garbage goes as soon as before.
GC_THRESHOLDS = (700, 10, 100)


def serve_forever(runtime: Runtime) -> None:
    """Run `runtime` until SIGTERM/SIGINT, tuned for thousands of calls in one process.

    On uvloop when it is installed (Linux, macOS: the default install has it; set
    IVR_EVENT_LOOP=asyncio to use the standard loop), which halves the cost of the event
    loop's socket work per AGI command (docs/performance.md). The objects loaded at start
    (flows, config, SQLAlchemy's tables) are moved out of the garbage collector's reach, so
    its passes over the young objects of calls do not walk them again and again, and full
    collections come a tenth as often as by default (GC_THRESHOLDS).
    """
    sys.setswitchinterval(SWITCH_INTERVAL)

    async def main() -> None:
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
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


def open_writer(config: Any, owner: Optional[str] = None) -> Any:
    """The call-records writer of the installation, its database migrated to the newest schema;
    `owner` names the engine its calls run on.

    A database that cannot be reached at start does not keep calls from being served: the
    writer keeps their records in its spool and migrates the database when it can reach it.
    A database that is reached but cannot be migrated stops the start, as any broken
    installation does.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from ivr.store import CallWriter, database_url, init_db
    from ivr.store.db import create_db_engine, safe_url

    url = database_url(config)
    if url.get_backend_name() == "sqlite" and url.database and not url.database.startswith(("file:", ":memory:")):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)  # a new installation's: made, not "away"
    probe = create_db_engine(url)
    try:
        with probe.connect():
            pass
    except SQLAlchemyError as exc:
        reason = str(exc.orig if getattr(exc, "orig", None) is not None else exc).strip().splitlines()[0]
        log.error("the database %s cannot be reached (%s): calls are served, and their records are kept in "
                  "the spool until it can be", safe_url(url), reason)
        return CallWriter.from_config(config, prepare=init_db, owner=owner)
    finally:
        probe.dispose()
    init_db(url).dispose()  # the writer opens its own engine
    return CallWriter.from_config(config, owner=owner)


def build_runtime(flow_paths: list[Path], config_path: Optional[Path], *, host: Optional[str] = None,
                  port: Optional[int] = None, ami: bool = True, store: bool = True,
                  grace: Optional[float] = None, metrics_port: Optional[int] = None) -> Runtime:
    """The runtime of an installation, from config.yaml (asterisk.agi, asterisk.ami);
    `metrics_port` overrides asterisk.agi.metrics_port (0: a free port)."""
    from ivr.store.callbacks import default_owner

    reloader = FlowReloader(flow_paths, config_path)
    engine = reloader.load()
    asterisk = engine.config.asterisk
    runtime = Runtime(reloader, host=host if host is not None else asterisk.agi.host,
                      port=port if port is not None else asterisk.agi.port,
                      grace=grace if grace is not None else asterisk.agi.shutdown_grace,
                      metrics_host=asterisk.agi.metrics_host,
                      metrics_port=metrics_port if metrics_port is not None else asterisk.agi.metrics_port)
    owner = default_owner()  # this engine: in its calls' rows, its heartbeat and its call-back tries
    writer = open_writer(engine.config, owner) if store else None
    if writer is not None:
        runtime.extras.append(WriterPart(writer))
        from ivr.live.presence import EnginePresence
        from ivr.store.engines import EngineRegistry

        # closed before the writer: it waits for the last calls to be written, then leaves
        runtime.extras.append(EnginePresence(EngineRegistry(writer.engine, owner, outbox=writer.outbox), writer))
        runtime.on_event = writer.submit  # it links a call's recording from its call_started event
        from ivr.engine.sampling import SurveySampler
        from ivr.store import DatabaseSurveyCounter

        counter = DatabaseSurveyCounter(writer.engine)  # the writer's connection pool; migrated by open_writer
        runtime.extras.append(SurveyCounterPart(counter))
        reloader.use_sampler(SurveySampler(counter))  # shared with other engines, kept over a restart
        if engine.config.crm.webhook is not None:
            from ivr.live.webhook import WebhookDeliverer

            # closed before the writer (parts close in reverse): it stops posting, the writer writes on
            runtime.extras.append(WebhookDeliverer(writer.engine, engine.config.crm.webhook))
    if ami and asterisk.ami is not None:
        _ami_parts(runtime, asterisk, writer, reloader, owner)
    return runtime


def _ami_parts(runtime: Runtime, asterisk: Any, writer: Any, reloader: FlowReloader, owner: str) -> None:
    """One AMI client, queue board and call-back scheduler per Asterisk (one with `ami:`, one
    per node with `asterisk.nodes`); a node whose secret is missing is left out, said in the log."""
    from dataclasses import replace

    from ivr.asterisk.ami import AmiClient
    from ivr.errors import ConfigError
    from ivr.live.nodes import NodeRouter

    nodes = asterisk.all_nodes
    names = tuple(node.name for node in nodes)
    parts: dict[str, AmiPart] = {}
    for node in nodes:
        try:
            client = AmiClient.from_settings(replace(asterisk, ami=node.ami),
                                             on_queue_event=writer.queue_event if writer else None)
        except ConfigError as exc:  # the secret is not in the environment
            log.error("AMI%s disabled: %s", f" of node {node.name}" if asterisk.multi_node else "", exc)
            continue
        scheduler = None
        if writer is not None:
            # one Asterisk: every call-back is its; several: each node's own, and the first takes
            # those of no node or of a node no longer configured
            store_node = node.name if asterisk.multi_node else None
            scheduler = callback_scheduler(writer, client, reloader, owner, node=store_node,
                                           adopt=names if store_node is not None and node is nodes[0] else None,
                                           grace=runtime.grace)
        part = AmiPart(client, callbacks=scheduler, node=node.name if asterisk.multi_node else None)
        runtime.extras.append(part)
        if scheduler is not None:
            runtime.extras.append(scheduler)  # after the AMI part: it dials through it
        parts[node.name] = part
    if not parts:
        return
    runtime.manager = next(iter(parts.values()))
    if asterisk.multi_node:
        runtime.nodes = NodeRouter(parts)


def callback_scheduler(writer: Any, client: Any, reloader: FlowReloader, owner: Optional[str] = None, *,
                       node: Optional[str] = None, adopt: Optional[tuple[str, ...]] = None,
                       grace: Optional[float] = None) -> Any:
    """The call-back scheduler on the writer's database and the AMI client (of `node`, with
    several Asterisks); the schedules of the config.yaml loaded now (a reload brings new hours
    to pending call-backs too). At a stop it waits up to `grace` seconds (default: config.yaml's
    asterisk.agi.shutdown_grace), at most the ring time, for the answers of tries ringing then."""
    from ivr.live.callbacks import CallbackScheduler, LiveQueueBoard
    from ivr.store.callbacks import CallbackStore

    if grace is None:
        grace = reloader.current().config.asterisk.agi.shutdown_grace
    store = CallbackStore(writer.engine, owner, node=node, adopt=adopt)
    return CallbackScheduler(store, client, LiveQueueBoard(client), lambda: reloader.current().config.schedules,
                             ring_timeout=client.callback.timeout, stop_wait=min(grace, client.callback.timeout))

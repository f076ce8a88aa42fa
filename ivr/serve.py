"""`ivr serve`: the live runtime. FastAGI for calls, hot reload of the flows, the call
records writer and (when configured) the AMI connection, in one asyncio process.

Stateless between calls, so several of these can sit behind Asterisk's `hagi://`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ivr.channels.agi_wire import AgiEnvironment
from ivr.channels.fastagi import FastAgiServer
from ivr.engine.events import Event
from ivr.reload import FlowReloader

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    reloader: FlowReloader
    host: str = "127.0.0.1"
    port: int = 4573
    watch_interval: float = 1.0
    event_sink: Optional[Callable[[AgiEnvironment], Callable[[Event], None]]] = None
    recording: Any = None  # a RecordingControl (AMI) when connected
    on_callback: Any = None
    extras: list[Any] = field(default_factory=list)  # parts with async start()/close()
    server: Optional[FastAgiServer] = None

    async def start(self) -> None:
        engine = self.reloader.current()
        config = engine.config
        prompts_dir = config.root / config.prompts.dir
        recordings = config.raw.get("recordings") or {}
        recordings_dir = config.root / (recordings.get("dir", "recordings") if isinstance(recordings, dict) else "recordings")
        for part in self.extras:
            await part.start()
        self.server = FastAgiServer(self.reloader.current, prompts_dir=prompts_dir.resolve(),
                                    recordings_dir=recordings_dir.resolve(), host=self.host, port=self.port,
                                    sink=self.event_sink, recording=self.recording, on_callback=self.on_callback)
        await self.server.start()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
        for part in reversed(self.extras):
            try:
                await part.close()
            except Exception:  # noqa: BLE001 - close the rest all the same
                log.exception("closing %s failed", type(part).__name__)

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


def build_runtime(flow_paths: list[Path], config_path: Optional[Path], *, host: Optional[str] = None,
                  port: Optional[int] = None) -> Runtime:
    """The runtime of an installation, from config.yaml (asterisk.agi host and port)."""
    reloader = FlowReloader(flow_paths, config_path)
    engine = reloader.load()
    agi = ((engine.config.raw.get("asterisk") or {}).get("agi") or {})
    return Runtime(reloader, host=host or agi.get("host", "127.0.0.1"), port=port or int(agi.get("port", 4573)))

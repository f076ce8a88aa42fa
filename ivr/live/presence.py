"""This engine's presence on the call records database, as a part of `ivr serve`: it
registers the engine, beats every HEARTBEAT seconds, and closes as interrupted the calls
that dead engines left open (ivr.store.engines): at start-up, before the first call, and
every REPAIR_EVERY seconds after, so a surviving engine repairs a dead one's calls. Never
while the call writer still writes the spools of stopped writers (ivr.store.spool): those
may hold the real ends of the calls that look open.

At a clean stop it waits for the call-records writer to write every call (each has ended
by then: finished, or interrupted by the runtime) and takes its row away; if the records
could not all be written, the row stays, goes stale, and another engine (or the next
start) closes what was left open.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from ivr.errors import StoreError
from ivr.store.engines import HEARTBEAT, EngineRegistry, Repaired

log = logging.getLogger(__name__)

REPAIR_EVERY = 15.0  # seconds between two looks for dead engines
FLUSH_TIMEOUT = 10.0  # seconds the writer has at a stop to write the last calls
REPLAY_WAIT = 10.0  # seconds the start-up repair waits for the spools of stopped writers to be written


class EnginePresence:
    def __init__(self, registry: EngineRegistry, writer: Any, *, heartbeat: float = HEARTBEAT,
                 repair_every: float = REPAIR_EVERY):
        self.registry = registry
        self.writer = writer
        self.heartbeat = heartbeat
        self.repair_every = repair_every
        self._task: Optional[asyncio.Task] = None
        self._failing = False

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.registry.register)
        except StoreError as exc:  # the database away: calls are served all the same; the beat registers later
            log.error("engine %s: not registered yet (%s); retrying with each heartbeat", self.registry.id, exc)
            self._failing = True
        else:
            # a stopped engine's spool may hold the ends of the calls it left open: written first
            if getattr(self.writer, "replaying", False):
                await asyncio.to_thread(self.writer.flush, REPLAY_WAIT)
            await self._repair()
        self._task = asyncio.create_task(self._run(), name="engine-heartbeat")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_repair = loop.time() + self.repair_every
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                if not await asyncio.to_thread(self.registry.beat):
                    log.warning("engine %s: its heartbeat row was gone (taken for dead after a stall?); made again",
                                self.registry.id)
                if self._failing:
                    log.warning("engine %s: heartbeat written again", self.registry.id)
                    self._failing = False
            except StoreError as exc:
                if not self._failing:  # once per spell: the writer says the rest
                    log.error("engine %s: heartbeat not written (%s); retrying", self.registry.id, exc)
                    self._failing = True
                continue
            if loop.time() >= next_repair:
                next_repair = loop.time() + self.repair_every
                await self._repair()

    async def _repair(self) -> list[Repaired]:
        if getattr(self.writer, "replaying", False):
            return []  # the next look, once the stopped writers' records are in
        try:
            done = await asyncio.to_thread(self.registry.repair)
        except StoreError as exc:
            log.error("looking for calls left open by stopped engines failed: %s", exc)
            return []
        for repaired in done:
            whose = f"engine {repaired.engine}" if repaired.engine else "an engine of an earlier version"
            seen = f" (last heartbeat {repaired.last_seen:%Y-%m-%d %H:%M:%S} UTC)" if repaired.last_seen else ""
            log.warning("closed %d call(s) left open by %s%s as interrupted at their last event",
                        repaired.calls, whose, seen)
        return done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        written = await asyncio.to_thread(self.writer.flush, FLUSH_TIMEOUT)
        stats = self.writer.stats
        if not written or stats.pending or stats.queued:
            log.error("engine %s stops with call records not written; its open calls are closed at the next start",
                      self.registry.id)
            return
        try:
            await asyncio.to_thread(self.registry.unregister)
        except StoreError as exc:
            log.error("engine %s: %s", self.registry.id, exc)

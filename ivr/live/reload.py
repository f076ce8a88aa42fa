"""Hot reload of flows, config.yaml and the segments' CSV files for a running server.

On SIGHUP, or when a watched file changes, everything is checked again. A set that
compiles becomes the engine for new calls; calls in progress keep the engine (and so the
flows and segment numbers) they started on. A set that fails to compile is logged with
every error and changes nothing: a broken flow, or a CSV file that cannot be read, never
replaces a running one. The same broken files are checked (and logged) once, not on every
watch tick: the next check comes with the next change.

The watched files are the flows, config.yaml and the CSV files named by the segments of
the running config (a segment file is part of the installation like a flow). The HTTP
lookups of segments are one `HttpLookups` for every engine, so their cache and the
failure spell they log once carry on across reloads.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from ivr.engine import Engine
from ivr.engine.sampling import SurveySampler
from ivr.errors import IvrError
from ivr.flow.project import flow_files
from ivr.installation import check_installation
from ivr.lookup import HttpLookups

log = logging.getLogger(__name__)


class FlowReloader:
    """Holds the current engine; `reload()` swaps it only for a set without errors."""

    def __init__(self, paths: Sequence[Path], config_path: Optional[Path]):
        self.paths = [Path(p) for p in paths]
        self.config_path = config_path
        self.sampler = SurveySampler()  # one for every engine: survey sampling counts on across reloads
        self.lookups = HttpLookups()  # one for every engine too: the cache and the failure spells carry on
        self._engine: Optional[Engine] = None
        self._stamp: dict[Path, tuple[int, int]] = {}
        self.generation = 0
        self.failures = 0  # reloads refused (the running flows stayed), for the metrics

    @property
    def loaded(self) -> bool:
        """Flows are loaded: a call can be run."""
        return self._engine is not None

    def current(self) -> Engine:
        if self._engine is None:
            raise IvrError("no flows are loaded")
        return self._engine

    def use_sampler(self, sampler: SurveySampler) -> None:
        """Count the survey's calls with `sampler` from now on, in this engine and every reload's
        (the runtime sets the database's once config.yaml, which names the database, is loaded)."""
        self.sampler = sampler
        if self._engine is not None:
            self._engine.sampler = sampler

    def load(self) -> Engine:
        """The first load: errors raise, as nothing runs yet."""
        if not self.reload():
            raise IvrError("the flows have errors; see the log (or run `ivr validate`)")
        return self.current()

    def reload(self) -> bool:
        """Check everything again; swap the engine when it compiles. True when swapped."""
        # the files' times before they are read: a save during the check is seen next round;
        # kept whatever the outcome, so the same broken files are not checked every second
        self._stamp = self._stamps()
        try:
            report = check_installation(self.paths, self.config_path)
        except IvrError as exc:
            log.error("reload refused: %s; the running flows stay", exc)
            self.failures += 1
            return False
        if not report.ok:
            for diagnostic in report.errors:
                log.error("reload refused: %s", diagnostic)
            log.error("reload refused: %d error(s); the running flows stay, with their segments' numbers", len(report.errors))
            self.failures += 1
            return False
        engine = Engine(report.flow_set(), report.config, sampler=self.sampler, lookups=self.lookups)
        replaced, self._engine = self._engine, engine
        self.generation += 1
        if replaced is not None:
            # `ivr serve` froze what it loaded at start out of the collector's reach
            # (ivr.live.serve): give it back, so the flows replaced now can be freed
            gc.unfreeze()
        versions = ", ".join(f"{f.id}@{f.version}" for f in engine.flows.flows.values())
        log.info("flows loaded (generation %d): %s", self.generation, versions)
        for segment in engine.config.segments.values():
            if segment.lookup is not None:
                log.info('segment "%s": lookup %s, time-out %d ms', segment.name, segment.lookup.url,
                         round(segment.lookup.timeout * 1000))
            else:
                log.info('segment "%s": %d number(s)%s', segment.name, len(segment.numbers),
                         f" from {segment.source}" if segment.source else "")
        # rows of a segment's CSV file left out: the admin who just saved it should hear of them
        sources = {s.source.resolve() for s in engine.config.segments.values() if s.source is not None}
        for diagnostic in report.diagnostics:
            if not diagnostic.is_error and Path(diagnostic.location.file).resolve() in sources:
                log.warning("%s", diagnostic)
        # the new config's files are watched from now on (those it no longer names are not);
        # for the others, the times from before the check stand, so a save during it is seen
        fresh = self._stamps()
        self._stamp = {path: self._stamp.get(path, stamp) for path, stamp in fresh.items()}
        return True

    def changed(self) -> bool:
        return self._stamps() != self._stamp

    def _stamps(self) -> dict[Path, tuple[int, int]]:
        files = list(flow_files(self.paths))
        if self.config_path is not None:
            files.append(Path(self.config_path))
        files.extend(self._segment_files())
        stamps = {}
        for path in files:
            try:
                stat = os.stat(path)
            except OSError:
                stamps[path] = (-1, -1)
            else:
                # the size too: a rewrite within the file system's time granularity still shows
                stamps[path] = (stat.st_mtime_ns, stat.st_size)
        return stamps

    def _segment_files(self) -> list[Path]:
        """The CSV files of the running config's segments."""
        if self._engine is None:
            return []
        return [s.source for s in self._engine.config.segments.values() if s.source is not None]

    def changed_files(self) -> list[Path]:
        """The watched files changed since the last check (added and removed ones too)."""
        now = self._stamps()
        return sorted(p for p in set(now) | set(self._stamp) if now.get(p) != self._stamp.get(p))

    async def start(self) -> None:
        """Makes the lookups' HTTP client before the first call, so no caller waits for it;
        none when no segment has a lookup (a reload that adds one has the first lookup make it)."""
        if any(s.lookup is not None for s in self.current().config.segments.values()):
            await self.lookups.start()

    async def close(self) -> None:
        """Closes the lookups' connections; the server closes this with itself."""
        await self.lookups.close()

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the files (no inotify needed, works on shared storage) and reload on change."""
        while True:
            await asyncio.sleep(interval)
            try:
                changed = self.changed_files()
                if changed:
                    log.info("changed: %s; reloading", ", ".join(str(p) for p in changed))
                    self.reload()
            except Exception:  # noqa: BLE001 - a watcher must outlive one bad pass
                log.exception("reload check failed")

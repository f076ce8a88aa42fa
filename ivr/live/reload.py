"""Hot reload of flows and config.yaml for a running server.

On SIGHUP, or when a watched file changes, everything is checked again. A set that
compiles becomes the engine for new calls; calls in progress keep the engine (and so the
flows) they started on. A set that fails to compile is logged with every error and
changes nothing: a broken flow never replaces a running one.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from ivr.engine import Engine
from ivr.engine.sampling import SurveySampler
from ivr.errors import IvrError
from ivr.flow.project import flow_files
from ivr.installation import check_installation

log = logging.getLogger(__name__)


class FlowReloader:
    """Holds the current engine; `reload()` swaps it only for a set without errors."""

    def __init__(self, paths: Sequence[Path], config_path: Optional[Path]):
        self.paths = [Path(p) for p in paths]
        self.config_path = config_path
        self.sampler = SurveySampler()  # one for every engine: survey sampling counts on across reloads
        self._engine: Optional[Engine] = None
        self._stamp: dict[Path, int] = {}
        self.generation = 0

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
            return False
        if not report.ok:
            for diagnostic in report.errors:
                log.error("reload refused: %s", diagnostic)
            log.error("reload refused: %d error(s); the running flows stay", len(report.errors))
            return False
        engine = Engine(report.flow_set(), report.config, sampler=self.sampler)
        self._engine = engine
        self.generation += 1
        versions = ", ".join(f"{f.id}@{f.version}" for f in engine.flows.flows.values())
        log.info("flows loaded (generation %d): %s", self.generation, versions)
        return True

    def changed(self) -> bool:
        return self._stamps() != self._stamp

    def _stamps(self) -> dict[Path, int]:
        files = list(flow_files(self.paths))
        if self.config_path is not None:
            files.append(Path(self.config_path))
        stamps = {}
        for path in files:
            try:
                stamps[path] = os.stat(path).st_mtime_ns
            except OSError:
                stamps[path] = -1
        return stamps

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the files (no inotify needed, works on shared storage) and reload on change."""
        while True:
            await asyncio.sleep(interval)
            try:
                if self.changed():
                    log.info("flow files changed; reloading")
                    self.reload()
            except Exception:  # noqa: BLE001 - a watcher must outlive one bad pass
                log.exception("reload check failed")

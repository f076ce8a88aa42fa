"""The work `ivr web` does in the background: the recordings index (every minute, so a
live call's waveform, duration and checksum appear without anyone running `ivr recordings
index`), the retention purge (every hour, as `ivr recordings purge` does from cron) and the
prune of the CRM webhook's delivered rows (every hour too, as `ivr webhook prune` does).

Each job runs at start and then every so many seconds, on a thread of its own. A job that
fails is logged and tried again next round; it never stops the web app.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Optional

from ivr.settings.config import Config

if TYPE_CHECKING:
    from ivr.recordings.index import IndexReport
    from ivr.store.outbox_prune import PruneReport

log = logging.getLogger("ivr.web.housekeeping")


_WARNED: dict[str, str] = {}  # recordings whose problem the log has named already, with it
_WARNED_MAX = 10_000


class IndexWatch:
    """What the background index has done, for `ivr web`'s metrics (ivr.web.health): its
    lag is the time since the start of the last pass that finished, so a recording finished
    before then is indexed (or named as a problem); before any has, since the watch began.
    Written by the index's thread, read by a scrape's: whole values, each set at once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.since = clock()  # start of the last pass that finished (at first: the app's start)
        self.passes = 0  # passes that finished
        self.failures = 0  # passes that failed (the database away, the folder unreadable)
        self.indexed = 0  # recordings indexed, all passes together
        self.pending = 0  # files the last pass left for later: still being written
        self.errors = 0  # files the last pass could not index
        self.last_seconds = 0.0  # how long the last pass that finished took

    def lag(self) -> float:
        return max(self.clock() - self.since, 0.0)

    def passed(self, started: float, report: "IndexReport") -> None:
        self.indexed += len(report.indexed)
        self.pending = len(report.pending)
        self.errors = len(report.errors)
        self.last_seconds = self.clock() - started
        self.since = started
        self.passes += 1


def index_once(config: Config, watch: Optional[IndexWatch] = None) -> None:
    """Index new recordings; a line in the log when something was indexed or went wrong, and a
    warning naming each file that cannot be indexed (once per file and reason, not every run).
    `watch`: told of the pass, for the metrics."""
    from ivr.recordings.index import index_recordings

    started = watch.clock() if watch is not None else 0.0
    try:
        report = index_recordings(config)
    except Exception:
        if watch is not None:
            watch.failures += 1
        raise
    if watch is not None:
        watch.passed(started, report)
    if report.indexed or report.errors:
        log.info("recordings index: %s", report.summary())
    for problem in report.errors:
        if _WARNED.get(problem.path) != problem.reason:
            if len(_WARNED) >= _WARNED_MAX:
                _WARNED.clear()
            _WARNED[problem.path] = problem.reason
            log.warning("recordings index: %s: %s", problem.path, problem.reason)


LISTED = 10  # paths named in the log line of a purge before "and N more"


def purge_once(config: Config) -> None:
    """Apply retention as `ivr recordings purge` does (with its audit entries); one line in the
    log naming what was deleted, when anything was, and a line for each file that could not be."""
    from ivr.recordings.purge import purge_recordings

    report = purge_recordings(config, dry_run=False)
    if report.deleted or report.errors:
        paths = [p.path for p in report.deleted]
        named = ", ".join(paths[:LISTED]) + (f" and {len(paths) - LISTED} more" if len(paths) > LISTED else "")
        log.info("retention purge: %s%s", report.summary(), f": {named}" if named else "")
    for problem in report.errors:
        log.warning("retention purge: %s", problem)


class PruneWatch:
    """What the background prune of the webhook outbox has done, for `ivr web`'s metrics:
    written by the prune's thread, read by a scrape's (whole values, each set at once)."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.runs = 0  # prunes that finished
        self.failures = 0  # prunes that failed (the database away)
        self.deleted = 0  # rows deleted, all prunes together
        self.last_success: Optional[float] = None  # when the last prune that finished did (Unix time)

    def pruned(self, report: "PruneReport") -> None:
        self.deleted += report.deleted
        self.runs += 1
        self.last_success = self.clock()


def prune_outbox_once(config: Config, watch: Optional[PruneWatch] = None) -> None:
    """Delete the webhook outbox's rows delivered longer ago than crm.webhook.keep_delivered,
    as `ivr webhook prune` does; a line in the log when any were. `watch`: told, for the metrics."""
    from ivr.store.outbox_prune import prune_outbox

    try:
        report = prune_outbox(config)
    except Exception:
        if watch is not None:
            watch.failures += 1
        raise
    if watch is not None:
        watch.pruned(report)
    if report.deleted:
        log.info("webhook outbox prune: %s in %d batch(es)", report.summary(), report.batches)


def repeat(name: str, every: float, job: Callable[[], None]) -> threading.Event:
    """Run `job` now and then every `every` seconds on a daemon thread; set the event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - logged; the next round tries again
                log.warning("%s failed: %s", name, exc)
            stop.wait(every)

    threading.Thread(target=loop, name=name.replace(" ", "-"), daemon=True).start()
    return stop

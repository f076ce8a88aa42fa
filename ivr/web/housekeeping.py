"""The work `ivr web` does in the background: the recordings index (every minute, so a
live call's waveform, duration and checksum appear without anyone running `ivr recordings
index`) and the retention purge (every hour, as `ivr recordings purge` does from cron).

Each job runs at start and then every so many seconds, on a thread of its own. A job that
fails is logged and tried again next round; it never stops the web app.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from ivr.settings.config import Config

log = logging.getLogger("ivr.web.housekeeping")


_WARNED: dict[str, str] = {}  # recordings whose problem the log has named already, with it
_WARNED_MAX = 10_000


def index_once(config: Config) -> None:
    """Index new recordings; a line in the log when something was indexed or went wrong, and a
    warning naming each file that cannot be indexed (once per file and reason, not every run)."""
    from ivr.recordings.index import index_recordings

    report = index_recordings(config)
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

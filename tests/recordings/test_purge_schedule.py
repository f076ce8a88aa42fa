"""The retention purge `ivr web` runs in the background: a purge that fails is logged and
tried again next round, and the round after the problem is gone purges as the command does."""

from __future__ import annotations

import datetime as dt
import logging
import time

from ivr.recordings.index import index_recordings
from ivr.web.housekeeping import purge_once, repeat

from .support import UTC, add_call, recordings, write_wav


def wait_for(condition, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_failing_purge_is_logged_and_the_next_round_purges(config, engine, caplog):
    root = config.recordings_dir
    add_call(engine, "old", uniqueid="old", started_at=dt.datetime.now(UTC) - dt.timedelta(days=100))
    write_wav(root / "2026-08-01" / "old.wav", 0.5)
    assert len(index_recordings(config, engine=engine).indexed) == 1
    away = root.with_name("recordings.away")
    root.rename(away)
    root.write_text("not a folder")  # the purge cannot work here: RecordingError
    with caplog.at_level(logging.INFO, logger="ivr.web.housekeeping"):
        stop = repeat("retention purge", 0.1, lambda: purge_once(config))
        try:
            wait_for(lambda: any("retention purge failed" in r.getMessage() and "is not a folder" in r.getMessage()
                                 for r in caplog.records), "the failure was never logged")
            root.unlink()
            away.rename(root)
            wait_for(lambda: not (root / "2026-08-01" / "old.wav").exists(), "the next rounds never purged")
            wait_for(lambda: any("retention purge: deleted 1 recording(s)" in r.getMessage()
                                 for r in caplog.records), "the purge was never logged")
        finally:
            stop.set()
    assert recordings(engine)["2026-08-01/old.wav"].deleted_at is not None

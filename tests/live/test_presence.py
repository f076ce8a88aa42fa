"""The engine's presence as a part of `ivr serve`: it registers before the first call,
beats, repairs a dead engine's calls while it runs (not only at start-up), and at a clean
stop leaves only once its writer has written every call; with records left unwritten it
stays, so that its open calls are closed later."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))

from test_engines import calls, engines, write  # noqa: E402
from ivr.live.presence import EnginePresence  # noqa: E402
from ivr.store.db import init_db  # noqa: E402
from ivr.store.engines import EngineRegistry  # noqa: E402
from ivr.store.models import EngineBeat  # noqa: E402
from ivr.store.writer import CallWriter  # noqa: E402


def test_a_running_engine_repairs_an_engine_that_dies_while_it_runs_and_leaves_cleanly(tmp_path, caplog):
    db = init_db(f"sqlite:///{tmp_path / 'ivr.db'}")
    writer = CallWriter(db, owner="me:1:a")
    presence = EnginePresence(EngineRegistry(db, "me:1:a", stale=1.0), writer, heartbeat=0.1, repair_every=0.2)

    async def run() -> None:
        await presence.start()
        assert engines(db) == {"me:1:a"}
        other = EngineRegistry(db, "other:2:b")
        other.machine = "elsewhere"
        other.register()
        write(db, other.id, "x1", "x2")
        await asyncio.sleep(0.5)
        assert calls(db)["x1"]["outcome"] is None  # alive a moment ago: untouched
        with db.begin() as conn:  # it stops beating
            conn.execute(sa.update(EngineBeat).where(EngineBeat.id == other.id)
                         .values(seen_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)))
        for _ in range(50):
            await asyncio.sleep(0.1)
            if calls(db)["x1"]["outcome"] == "interrupted":
                break
        await presence.close()

    with caplog.at_level(logging.INFO, logger="ivr"):
        asyncio.run(run())
    rows = calls(db)
    assert rows["x1"]["outcome"] == rows["x2"]["outcome"] == "interrupted"
    assert engines(db) == set()  # it left: every call written
    assert any("closed 2 call(s) left open by engine other:2:b" in r.getMessage() for r in caplog.records)
    writer.close()
    db.dispose()


def test_an_engine_whose_records_are_not_all_written_stays_to_be_repaired(tmp_path, caplog):
    db = init_db(f"sqlite:///{tmp_path / 'ivr.db'}")

    class Stuck(CallWriter):
        def flush(self, timeout=10.0):
            return False  # the database is away: the last records wait

    writer = Stuck(db, owner="me:1:a")
    presence = EnginePresence(EngineRegistry(db, "me:1:a"), writer)

    async def run() -> None:
        await presence.start()
        await presence.close()

    with caplog.at_level(logging.ERROR, logger="ivr"):
        asyncio.run(run())
    assert engines(db) == {"me:1:a"}
    assert any("stops with call records not written" in r.getMessage() for r in caplog.records)
    writer.close()
    db.dispose()

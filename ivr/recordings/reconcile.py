"""Where the database and the recordings folder disagree, after an index run: recording
rows whose file has gone (and was not purged), and calls that ended without a recording.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Collection

from sqlalchemy import Engine, and_, exists, func, or_, select

from ivr.recordings.store import batches
from ivr.store.models import Call, Recording

CALLS_LISTED = 50  # calls without a file listed (newest first); all of them are counted


@dataclass(frozen=True)
class CallWithoutFile:
    call_id: str
    started_at: dt.datetime
    source: str


def missing_files(engine: Engine, seen: Collection[str], settled_before: dt.datetime) -> list[str]:
    """Paths of recording rows, not purged, whose file is not among `seen`. Rows of calls
    still running, and fresh rows of no call yet (the runtime links a recording as the
    call starts, maybe before its call row is written) are not missing yet."""
    stmt = (select(Recording.path)
            .select_from(Recording).outerjoin(Call, Call.id == Recording.call_id)
            .where(Recording.deleted_at.is_(None),
                   or_(Call.outcome.is_not(None),
                       and_(Recording.call_id.is_(None),
                            or_(Recording.indexed_at.is_not(None), Recording.created_at < settled_before))))
            .order_by(Recording.path)
            .execution_options(yield_per=2000))
    with engine.connect() as conn:
        return [path for (path,) in conn.execute(stmt) if path not in seen]


def calls_without_file(engine: Engine, busy: Collection[str],
                       limit: int = CALLS_LISTED) -> tuple[list[CallWithoutFile], int]:
    """Calls that ended and have no recording indexed (nor purged): the newest `limit`, and
    how many there are. `busy` calls have a file in the folder that is still being
    written or could not be read: they are reported as such, not here."""
    has_file = exists().where(Recording.call_id == Call.id,
                              or_(Recording.indexed_at.is_not(None), Recording.deleted_at.is_not(None)))
    lacking = and_(Call.outcome.is_not(None), ~has_file)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(Call).where(lacking)).scalar_one()
        for chunk in batches(sorted(busy)):
            count -= conn.execute(select(func.count()).select_from(Call)
                                  .where(lacking, Call.id.in_(chunk))).scalar_one()
        rows = conn.execute(select(Call.id, Call.started_at, Call.source).where(lacking)
                            .order_by(Call.started_at.desc(), Call.id).limit(limit + len(busy))).all()
    listed = [CallWithoutFile(r.id, r.started_at, r.source) for r in rows if r.id not in busy]
    return listed[:limit], count

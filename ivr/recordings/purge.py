"""`purge_recordings`: retention. Delete recording files older than config.yaml's
`recordings.retention_days`, except those of calls on hold.

A recording's age is its call's start (or, for a file of no call, its own time). Its row
stays, with `deleted_at` set, and each deleted file leaves an `AuditEntry` (action
"purge", no user: the command line). Files are deleted first and marked after, in one
short transaction per batch: if marking fails, the next purge finds the file gone and
marks it then. A file that cannot be deleted is an error of the report; the others go.
Only files the index (or the live runtime) knows are purged: run `ivr recordings index`
before.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from sqlalchemy import Engine, and_, exists, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from ivr.settings.config import Config
from ivr.errors import RecordingError, StoreError
from ivr.recordings.files import FileProblem, inside
from ivr.recordings.store import batches, open_database
from ivr.store.db import safe_url
from ivr.store.models import AuditEntry, Call, Hold, Recording, to_utc

ACTION = "purge"


@dataclass(frozen=True)
class Purged:
    """A recording deleted (or, on a dry run, to be deleted)."""

    recording_id: int
    call_id: Optional[str]
    path: str
    size: Optional[int]
    at: dt.datetime  # its age: the call's start, or the file's time for an orphan


@dataclass
class PurgeReport:
    folder: Path
    retention_days: Optional[int]  # None: recordings are kept for ever, nothing was purged
    cutoff: Optional[dt.datetime]  # recordings from before this go
    dry_run: bool
    deleted: list[Purged] = field(default_factory=list)  # on a dry run: those that would be
    already_gone: int = 0  # of those, files that were not there any more (marked all the same)
    held: list[Purged] = field(default_factory=list)  # old enough, kept: their call is on hold
    errors: list[FileProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def bytes(self) -> int:
        return sum(p.size or 0 for p in self.deleted)

    def summary(self) -> str:
        """One line: what went (or would go), what was held, how many errors."""
        if self.retention_days is None or self.cutoff is None:
            return "recordings.retention_days is null in config.yaml: recordings are kept for ever; nothing purged"
        verb = "would delete" if self.dry_run else "deleted"
        gone = f" ({self.already_gone} already gone)" if self.already_gone else ""
        return (f"{verb} {len(self.deleted)} recording(s) from before {self.cutoff:%Y-%m-%d %H:%M} UTC "
                f"({self.retention_days} days), {self.bytes / 1e6:.1f} MB{gone}; {len(self.held)} held; "
                f"{len(self.errors)} error(s)")


def purge_recordings(config: Config, *, dry_run: bool, now: Optional[dt.datetime] = None,
                     engine: Optional[Engine] = None) -> PurgeReport:
    """Delete the files of recordings past retention (none with `dry_run`); the report.

    RecordingError when the recordings folder is no folder; StoreError when the database fails.
    """
    now = to_utc(now) if now else dt.datetime.now(dt.timezone.utc)
    root = config.recordings_dir
    days = config.recordings.retention_days
    if days is None:
        return PurgeReport(root, None, None, dry_run)
    if root.exists() and not root.is_dir():
        raise RecordingError(f"{root}: the recordings folder (config.yaml recordings.dir) is not a folder")
    report = PurgeReport(root, days, now - dt.timedelta(days=days), dry_run)
    own_engine = engine is None
    db = engine if engine is not None else open_database(config)
    try:
        due = _due(db, report.cutoff)
        report.held = [p for p, held in due if held]
        for batch in batches([p for p, held in due if not held]):
            _purge_batch(db, root, batch, report, now)
    except SQLAlchemyError as exc:  # files deleted so far are marked by the next purge
        raise StoreError(f"recordings purge: the database {safe_url(db.url)} failed: {exc}") from exc
    finally:
        if own_engine:
            db.dispose()
    return report


def _due(engine: Engine, cutoff: dt.datetime) -> list[tuple[Purged, bool]]:
    """Recordings not purged yet from before `cutoff`, oldest first, and whether each is held."""
    R = Recording
    held = exists().where(Hold.call_id == R.call_id)
    stmt = (select(R.id, R.call_id, R.path, R.size, R.created_at, Call.started_at, held.label("held"))
            .select_from(R).outerjoin(Call, Call.id == R.call_id)
            .where(R.deleted_at.is_(None),
                   or_(and_(R.call_id.is_not(None), Call.started_at < cutoff),
                       and_(R.call_id.is_(None), R.created_at < cutoff)))
            .order_by(R.id))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    due = [(Purged(r.id, r.call_id, r.path, r.size, r.started_at or r.created_at), bool(r.held)) for r in rows]
    return sorted(due, key=lambda item: (item[0].at, item[0].recording_id))


def _purge_batch(engine: Engine, root: Path, batch: Sequence[Purged], report: PurgeReport, now: dt.datetime) -> None:
    gone: list[Purged] = []
    for item in batch:
        try:
            path = inside(root, item.path)
        except ValueError as exc:  # the row was not written by the index: never follow it out
            report.errors.append(FileProblem(item.path, f"not deleted: {exc}"))
            continue
        if report.dry_run:
            report.deleted.append(item)
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            report.already_gone += 1
        except OSError as exc:
            report.errors.append(FileProblem(item.path, f"cannot delete it: {exc.strerror or exc}"))
            continue
        else:
            _remove_empty_folders(root, path.parent)
        gone.append(item)
        report.deleted.append(item)
    if not gone:
        return
    R = Recording.__table__
    with engine.begin() as conn:
        conn.execute(update(R).where(R.c.id.in_([p.recording_id for p in gone]), R.c.deleted_at.is_(None))
                     .values(deleted_at=now))
        conn.execute(insert(AuditEntry.__table__), [
            {"at": now, "user": None, "action": ACTION, "call_id": p.call_id, "recording_id": p.recording_id,
             "address": None, "detail": p.path} for p in gone])


def _remove_empty_folders(root: Path, folder: Path) -> None:
    """Remove the date folders a purge emptied (never the recordings folder itself)."""
    while folder != root and root in folder.parents:
        try:
            os.rmdir(folder)
        except OSError:  # not empty (or in use): it stays
            return
        folder = folder.parent

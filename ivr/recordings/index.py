"""`index_recordings`: bring the `recordings` table in line with the recordings folder.

Each WAV file is linked to its call (see `files.py` for the names) and its size,
duration, sha256, waveform peaks, time (the file's mtime) and the time of indexing are
stored; a row the live runtime made for the file is completed, never duplicated.

Run it as often as you like: a file whose size and mtime are those stored when it was
indexed is not opened again. A file still being written is left for a later run: one
modified in the last `settle_seconds`, one whose call has no outcome yet, and one whose
WAV header does not fit its size (MixMonitor writes the sizes when it closes the file).
A file nothing has written to for `finished_after` seconds is finished, whatever its
call row says; if its header is still wrong, that is an error. A file that cannot be
read is reported with the reason, and the run goes on.

A recording that holds much less than its call is not indexed either: its recorder stopped
early (MixMonitor on a full disk closes a shorter, well-formed file), and QA must not take
it for the whole call. It is reported, with the seconds it holds and the call's.
"""

from __future__ import annotations

import datetime as dt
import struct
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from ivr.settings.config import Config
from ivr.errors import RecordingError, StoreError
from ivr.recordings.facts import read_facts
from ivr.recordings.files import FileProblem, FoundFile, walk
from ivr.recordings.reconcile import CallWithoutFile, calls_without_file, missing_files
from ivr.recordings.store import batches, open_database, upsert_for
from ivr.recordings.waveform import MAX_BUCKETS
from ivr.recordings.wavheader import NotWav, read_layout
from ivr.store.db import safe_url
from ivr.store.models import Call, CallEvent, Recording, to_utc

DEFAULT_SETTLE_SECONDS = 10.0
DEFAULT_FINISHED_AFTER = 3600.0
# A recording may be this much shorter than its call and still be whole: the recorder starts
# a moment after the call (a hand-written dialplan's, with the engine's first command) and the
# call's end is taken when the engine lets go. More is a recorder that stopped early.
SHORT_SLACK_SECONDS = 5.0
SHORT_SLACK_SHARE = 0.10
VOICEMAIL = "voicemail/"  # messages: voicemail/<mailbox>/<uniqueid>.wav (ivr.recordings.files)
RECORDING_EVENT = "recording"  # the event a pause of the recording leaves (ivr.events, below this package)

Progress = Callable[[int, int], None]  # (files done, files in all)


@dataclass(frozen=True)
class Pending:
    """A file left for a later run, and why."""

    path: str
    reason: str


@dataclass
class IndexReport:
    folder: Path
    folder_exists: bool = True
    files: int = 0  # recordings found in the folder
    indexed: list[str] = field(default_factory=list)  # read and stored this run
    unchanged: int = 0  # indexed before, not opened
    linked: int = 0  # indexed before as orphans, linked to their call now
    pending: list[Pending] = field(default_factory=list)  # still being written
    orphans: list[str] = field(default_factory=list)  # files of no known call
    calls_without_file: list[CallWithoutFile] = field(default_factory=list)  # the newest ones
    calls_without_file_count: int = 0  # all of them
    missing: list[str] = field(default_factory=list)  # rows whose file is gone (not purged)
    errors: list[FileProblem] = field(default_factory=list)
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        return (f"{self.files} recording(s): {len(self.indexed)} indexed, {self.unchanged} unchanged, "
                f"{len(self.pending)} still being written, {len(self.orphans)} orphan(s), "
                f"{self.calls_without_file_count} call(s) without a file, {len(self.missing)} missing, "
                f"{len(self.errors)} error(s)")


@dataclass(frozen=True)
class _Row:
    id: int
    call_id: Optional[str]
    uniqueid: Optional[str]
    size: Optional[int]
    created_at: dt.datetime
    indexed_at: Optional[dt.datetime]
    deleted_at: Optional[dt.datetime]


@dataclass
class _Call:
    id: str
    uniqueid: Optional[str]
    outcome: Optional[str]
    duration: Optional[float] = None  # seconds, once the call has ended
    unrecorded: float = 0.0  # seconds the recorder was paused for sensitive keys (it may leave a gap)

    def shortest_whole(self) -> Optional[float]:
        """The fewest seconds a whole recording of this call holds; None when not known."""
        if self.duration is None:
            return None
        expected = self.duration - self.unrecorded
        return expected - max(SHORT_SLACK_SECONDS, SHORT_SLACK_SHARE * expected)


def index_recordings(config: Config, *, progress: Optional[Progress] = None, now: Optional[dt.datetime] = None,
                     settle_seconds: float = DEFAULT_SETTLE_SECONDS, finished_after: float = DEFAULT_FINISHED_AFTER,
                     engine: Optional[Engine] = None, max_buckets: int = MAX_BUCKETS) -> IndexReport:
    """Index the installation's recordings folder; the report of what was found.

    `engine`: the database to use (default: config.yaml's, migrated). RecordingError when
    the recordings folder is no folder; StoreError when the database fails.
    """
    root = config.recordings_dir
    if root.exists() and not root.is_dir():
        raise RecordingError(f"{root}: the recordings folder (config.yaml recordings.dir) is not a folder")
    own_engine = engine is None
    db = engine if engine is not None else open_database(config)
    try:
        return _Indexer(db, root, to_utc(now) if now else dt.datetime.now(dt.timezone.utc), settle_seconds,
                        finished_after, max_buckets).run(progress)
    except SQLAlchemyError as exc:
        raise StoreError(f"recordings index: the database {safe_url(db.url)} failed: {exc}") from exc
    finally:
        if own_engine:
            db.dispose()


class _Indexer:
    """One run: the folder is walked, then each batch of files is looked up in the database,
    read, and written back."""

    def __init__(self, engine: Engine, root: Path, now: dt.datetime, settle: float, finished_after: float,
                 max_buckets: int):
        self.engine, self.root, self.now = engine, root, now
        self.settle, self.finished_after, self.max_buckets = settle, finished_after, max_buckets
        self.report = IndexReport(root, folder_exists=root.is_dir())
        self.busy: set[str] = set()  # calls whose file is there but not indexed this run

    def run(self, progress: Optional[Progress]) -> IndexReport:
        found = list(walk(self.root, self.report.errors))
        self.report.files = len(found)
        done = 0
        for batch in batches(found):
            rows, calls = self._look_up(batch)
            writes: list[tuple[Optional[_Row], dict[str, Any]]] = []
            links: list[tuple[int, _Call]] = []
            for f in batch:
                self._one(f, rows.get(f.path), calls, writes, links)
                done += 1
                if progress is not None:
                    progress(done, len(found))
            self._write(writes, links)
        report = self.report
        seen = {f.path for f in found}
        report.missing = missing_files(self.engine, seen, self.now - dt.timedelta(seconds=self.settle))
        report.calls_without_file, report.calls_without_file_count = calls_without_file(self.engine, self.busy)
        return report

    # --- one batch: look-ups in one short read, files read outside any transaction ----------
    def _look_up(self, batch: Sequence[FoundFile]) -> tuple[dict[str, _Row], dict[str, _Call]]:
        R = Recording
        with self.engine.connect() as conn:
            rows = {r.path: _Row(r.id, r.call_id, r.uniqueid, r.size, r.created_at, r.indexed_at, r.deleted_at)
                    for r in conn.execute(select(R.id, R.path, R.call_id, R.uniqueid, R.size, R.created_at,
                                                 R.indexed_at, R.deleted_at)
                                          .where(R.path.in_([f.path for f in batch])))}
            keys = {f.key for f in batch} | {r.call_id for r in rows.values() if r.call_id} \
                | {r.uniqueid for r in rows.values() if r.uniqueid}
            calls: dict[str, _Call] = {}
            for c in conn.execute(select(Call.id, Call.uniqueid, Call.outcome, Call.duration)
                                  .where(or_(Call.id.in_(keys), Call.uniqueid.in_(keys)))):
                call = _Call(c.id, c.uniqueid, c.outcome, c.duration)
                if c.uniqueid:
                    calls.setdefault("u:" + c.uniqueid, call)
                calls["i:" + c.id] = call
            by_id = {call.id: call for call in calls.values()}
            paused: dict[str, float] = {}
            for call_id, at, data in conn.execute(select(CallEvent.call_id, CallEvent.t, CallEvent.data)
                                                  .where(CallEvent.call_id.in_(list(by_id)),
                                                         CallEvent.type == RECORDING_EVENT)
                                                  .order_by(CallEvent.call_id, CallEvent.seq)):
                state = data.get("state") if isinstance(data, dict) else None
                if state == "paused":
                    paused[call_id] = at
                elif state == "resumed" and call_id in paused:
                    by_id[call_id].unrecorded += max(0.0, at - paused.pop(call_id))
            for call_id, since in paused.items():  # never resumed: unrecorded to the end
                call = by_id[call_id]
                if call.duration is not None:
                    call.unrecorded += max(0.0, call.duration - since)
        return rows, calls

    @staticmethod
    def _call_for(f: FoundFile, row: Optional[_Row], calls: dict[str, _Call]) -> Optional[_Call]:
        if row is not None and row.call_id:  # linked already (by the runtime, or an earlier run)
            return calls.get("i:" + row.call_id)
        for key in ([row.uniqueid] if row is not None and row.uniqueid else []) + [f.key]:
            call = calls.get("i:" + key)
            if call is None and not f.simulated:  # a simulated call is named by its id only
                call = calls.get("u:" + key)
            if call is not None:
                return call
        return None

    def _one(self, f: FoundFile, row: Optional[_Row], calls: dict[str, _Call],
             writes: list[tuple[Optional[_Row], dict[str, Any]]], links: list[tuple[int, _Call]]) -> None:
        report = self.report
        call = self._call_for(f, row, calls)
        if (row is not None and row.indexed_at is not None and row.deleted_at is None and row.size == f.size
                and row.created_at == f.mtime):
            report.unchanged += 1
            if row.call_id is None and call is not None:
                links.append((row.id, call))
                report.linked += 1
            elif row.call_id is None:
                report.orphans.append(f.path)
            return
        age = (self.now - f.mtime).total_seconds()
        finished = age >= self.finished_after
        if age < self.settle:
            self._pending(f, call, f"modified {max(age, 0):.0f} s ago (less than {self.settle:g} s)")
            return
        if call is not None and call.outcome is None and not finished:
            self._pending(f, call, "its call is still running")
            return
        path = self.root / f.path
        try:
            layout = read_layout(path)
            if layout.file_size != f.size:
                self._pending(f, call, "it changed while being indexed")
                return
            if not layout.finished:
                if not finished:
                    self._pending(f, call, "its WAV header is not final yet (still being recorded)")
                    return
                self._error(f, call, f"{layout.mismatch}; nothing wrote to it for {age / 3600:.1f} h, "
                                            "so its recorder never finished it")
                return
            facts = read_facts(path, self.max_buckets)
        except NotWav as exc:
            if f.size == 0:
                self._error(f, call, "an empty file: its recorder wrote nothing (was the disk full?)")
            else:
                self._error(f, call, f"not a WAV file: {exc}")
            return
        except (wave.Error, EOFError, struct.error) as exc:
            self._error(f, call, f"not a readable WAV file: {exc or type(exc).__name__}")
            return
        except FileNotFoundError:  # deleted since the walk (a purge): nothing to index, nor to report
            report.files -= 1
            return
        except OSError as exc:
            self._error(f, call, f"cannot read it: {exc.strerror or exc}")
            return
        if facts.size != f.size:
            self._pending(f, call, "it changed while being read")
            return
        # a voicemail message is a part of its call by nature; the call's recording is all of it
        shortest = call.shortest_whole() if call is not None and not f.path.startswith(VOICEMAIL) else None
        if shortest is not None and facts.duration < shortest:
            self._error(f, call, f"cut short: it holds {facts.duration:.1f} s of a {call.duration:.1f} s call "
                                 "(its recorder stopped early: was the disk full?); not indexed")
            return
        report.bytes_read += facts.size
        report.indexed.append(f.path)
        if call is None:
            report.orphans.append(f.path)
        uniqueid = (row.uniqueid if row is not None else None) or (call.uniqueid if call is not None else None)
        if uniqueid is None and call is None:  # an orphan keeps its name, so the writer links it when the call comes
            uniqueid = f.key
        writes.append((row, {
            "path": f.path, "call_id": call.id if call is not None else None, "uniqueid": uniqueid,
            "size": facts.size, "duration": facts.duration, "checksum": facts.checksum, "peaks": facts.peaks,
            "created_at": f.mtime, "indexed_at": self.now, "deleted_at": None,
        }))

    def _pending(self, f: FoundFile, call: Optional[_Call], reason: str) -> None:
        self.report.pending.append(Pending(f.path, reason))
        if call is not None:
            self.busy.add(call.id)

    def _error(self, f: FoundFile, call: Optional[_Call], reason: str) -> None:
        self.report.errors.append(FileProblem(f.path, reason))
        if call is not None:
            self.busy.add(call.id)

    # --- one short write transaction per batch ----------------------------------------------
    def _write(self, writes: list[tuple[Optional[_Row], dict[str, Any]]], links: list[tuple[int, _Call]]) -> None:
        if not writes and not links:
            return
        R = Recording.__table__
        with self.engine.begin() as conn:
            upsert = upsert_for(conn)
            for row, values in writes:
                if row is not None:
                    # only if no purge marked the row since we looked (its file is gone then)
                    same = R.c.deleted_at.is_(None) if row.deleted_at is None else R.c.deleted_at == row.deleted_at
                    values = {**values, "call_id": row.call_id or values["call_id"]}
                    conn.execute(update(R).where(R.c.id == row.id, same).values(**values))
                    continue
                stmt = upsert(R).values(**values)
                # the runtime may have linked the file since we looked: keep its call
                conn.execute(stmt.on_conflict_do_update(index_elements=["path"], set_={
                    **{k: stmt.excluded[k] for k in values if k not in ("path", "call_id", "uniqueid")},
                    "call_id": func.coalesce(R.c.call_id, stmt.excluded.call_id),
                    "uniqueid": func.coalesce(R.c.uniqueid, stmt.excluded.uniqueid),
                }))
            for rid, call in links:
                conn.execute(update(R).where(R.c.id == rid, R.c.call_id.is_(None))
                             .values(call_id=call.id, uniqueid=func.coalesce(R.c.uniqueid, call.uniqueid)))

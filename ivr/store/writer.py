"""CallWriter: the record of live calls, written off the call path.

The engine calls `submit(event)` for every event of a call (it is the `on_event` sink).
`submit` only puts the event on a queue: O(1), it never waits for the database and never
raises. A thread of its own, with its own connection, takes what is queued in batches
and writes each batch in one transaction: the events, and the calls row of every call the
batch touched (built up from the events by `CallSummary`: path, keys, transfer, survey,
outcome), and the link to the call's recording that its call_started event names. The AMI
layer's queue events and recording links take the same queue, so every write to the
database keeps one order and one thread.

When the database fails (down, locked, unreachable), the writer logs it once and retries
with a growing pause; when it comes back, it logs that and how much was lost. With a spool
folder (`spool_dir`; `ivr serve` has one, `spool/` in the installation) what it could not
write goes to a file there at once (`ivr.store.spool`), so an outage of any length loses
nothing, nor does stopping or killing the process during one: the batches are written
back in their order when the database is back, by this writer or by the next to start
(`ivr.store.spool_replay`, through this writer's own transaction).
Without a spool, or with the spool full, the batches wait in a bounded buffer: past the
bounds (`max_queue` items waiting to be taken, `max_pending` items waiting to be written)
the oldest events are dropped and counted (`stats.dropped`), but the calls rows they
touched are kept and written later. A batch the database refuses for its content (not for
being away) is tried three times, then dropped.

    writer = CallWriter(database_url(config))       # after init_db(...) at start-up
    await engine.run(channel, flow, on_event=writer.submit, ...)
    writer.queue_event("AgentConnect", uniqueid, "sales", fields)
    writer.link_recording(uniqueid, "2026/11/24/1700000000.12.wav")
    writer.close()                                   # at shut-down: writes what is left
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from sqlalchemy import JSON, Engine, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ivr import events as ev
from ivr.events import Event, jsonable
from ivr.settings.config import Config
from ivr.store.db import (UrlLike, create_db_engine, database_url, dialect_insert, json_dumps, resolve_url,
                          safe_url)
from ivr.store.models import Call, CallEvent, CallNode, QueueEvent, Recording, to_utc
from ivr.store import outbox
from ivr.store.spool import Spool
from ivr.store.spool_replay import SpoolReplay, Turn
from ivr.store.summary import CallSummary, clean_text

log = logging.getLogger(__name__)

_EVENT, _QUEUE_EVENT, _RECORDING, _FLUSH, _STOP = range(5)
_CALL_COLUMNS = [c.name for c in Call.__table__.columns if c.name not in ("id", "reviewed")]
_ATTEMPTS_ON_BAD_DATA = 3
_ENDED_REMEMBERED = 10_000  # calls whose outcome came: a late event must not reset their row
# A call's row is written when it starts and when it ends; in between at most this often.
# Each write of the row touches all of its indexes, and the events of a live call come
# seconds apart: writing the row with each one cost more than the events themselves.
ROW_REFRESH = 5.0
SPOOL_FOLDER = "spool"  # in the installation's folder
# A rush: records arriving faster than this (items a second; a call of the bench flow makes
# about ten) means calls are pouring in, a burst or a spike. A writer that is caught up then
# holds its writes for up to RUSH_HOLD seconds, or until the rush ends: the calls keep the
# interpreter while they need it most, and the rush is written after it in big transactions,
# which cost less per record. Live calls at the rates a site sees stay far below it.
RUSH_RATE = 5_000.0
RUSH_HOLD = 2.0
RUSH_WINDOW = 0.05  # the rate is judged over this many seconds at a time


# A write waits this long at most for a lock, a statement or a connection; then it counts as a
# failure (the records go to the spool and are retried), so a locked or cut-off database never
# holds the writer, and a stop, beyond its deadline. SQLite's wait is its busy timeout.
PG_LOCK_TIMEOUT_MS = 5_000
PG_STATEMENT_TIMEOUT_MS = 20_000
PG_CONNECT_TIMEOUT_S = 5


def _bounded_waits(url: UrlLike, root: Optional[Path]) -> dict[str, Any]:
    if resolve_url(url, root).get_backend_name() != "postgresql":
        return {}
    options = f"-c lock_timeout={PG_LOCK_TIMEOUT_MS} -c statement_timeout={PG_STATEMENT_TIMEOUT_MS}"
    # prepare_threshold None: psycopg would prepare every statement run five times, and the
    # writer's many-row INSERTs differ with each batch's size: some MB a connection, kept
    return {"connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT_S, "options": options, "prepare_threshold": None}}


class _NotReady(Exception):
    """The database could not be made ready (migrated) for the records: they wait, never dropped."""


@dataclass(frozen=True)
class WriterStats:
    submitted: int  # events, queue events and recording links handed to the writer
    written: int  # of those, committed to the database
    dropped: int  # of those, given up (queue full, buffer full, refused by the database, closed)
    queued: int  # waiting to be taken by the writer thread
    pending: int  # taken, waiting to be written (retried while the database fails)
    failures: int  # failed write attempts
    last_error: Optional[str]
    healthy: bool  # the last write attempt succeeded (or none was needed)
    spooled: int = 0  # call records kept in the spool on disk, waiting to be written
    adopted: int = 0  # call records of stopped writers' spools written by this one


@dataclass
class _Batch:
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> calls row (upserted)
    known_calls: dict[str, dict[str, Any]] = field(default_factory=dict)  # rows only made if missing
    started: list[dict[str, Any]] = field(default_factory=list)  # calls begun: adopt their orphan recordings
    events: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    queue_events: list[dict[str, Any]] = field(default_factory=list)
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> link
    # path -> link named by a call_started event: part of that event, not an item of its own
    named_recordings: dict[str, dict[str, Any]] = field(default_factory=dict)
    markers: list[threading.Event] = field(default_factory=list)
    attempts: int = 0

    @property
    def items(self) -> int:
        return len(self.events) + len(self.queue_events) + len(self.recordings)

    def merge(self, later: "_Batch") -> None:
        """Take `later` into this batch (its rows are the newer ones)."""
        self.calls.update(later.calls)
        for key, row in later.known_calls.items():
            self.known_calls.setdefault(key, row)
        self.started += later.started
        self.events += later.events
        self.nodes += later.nodes
        self.queue_events += later.queue_events
        self.recordings.update(later.recordings)
        self.named_recordings.update(later.named_recordings)
        self.markers += later.markers

    _SPOOLED = ("calls", "known_calls", "started", "events", "nodes", "queue_events", "recordings",
                "named_recordings")

    def to_record(self) -> dict[str, Any]:
        """What the spool keeps of the batch: its rows (its flush markers stay in memory)."""
        return {name: getattr(self, name) for name in self._SPOOLED}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "_Batch":
        # copies: a merge must not change the spool's record, which a failed write reads again
        return cls(**{name: record[name].copy() for name in cls._SPOOLED if record.get(name)})  # the rest: empty

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> "_Batch":
        """One batch of several spooled ones, oldest first (written in one transaction)."""
        batch = cls.from_record(records[0])
        for record in records[1:]:
            batch.merge(cls.from_record(record))
        return batch

    def carry_rows_into(self, later: "_Batch") -> int:
        """Drop this batch but for its call rows and links, which go into `later`; return items lost."""
        lost = len(self.events) + len(self.queue_events)
        later.calls = {**self.calls, **later.calls}
        later.known_calls = {**self.known_calls, **later.known_calls}
        later.started = self.started + later.started
        later.nodes = self.nodes + later.nodes
        later.recordings = {**self.recordings, **later.recordings}
        later.named_recordings = {**self.named_recordings, **later.named_recordings}
        later.markers = self.markers + later.markers
        return lost


class CallWriter:
    """Writes calls, their events, queue events and recording links from a thread of its own.

    `url` is a database URL (resolved against `root` like config.yaml's) or an Engine.
    `source` is the calls' source unless their call_started event says otherwise.
    Paths of recordings under `recordings_dir` are stored relative to it.
    """

    def __init__(
        self,
        url: Union[UrlLike, Engine],
        *,
        root: Optional[Path] = None,
        source: str = "live",
        recordings_dir: Optional[Path] = None,
        max_queue: int = 100_000,
        max_batch: int = 1_000,
        max_pending: int = 100_000,
        linger: float = 0.01,
        rush_rate: float = RUSH_RATE,
        rush_hold: float = RUSH_HOLD,
        retry_min: float = 0.5,
        retry_max: float = 30.0,
        spool_dir: Optional[Path] = None,
        max_spool_bytes: Optional[int] = None,
        prepare: Optional[Callable[[Engine], Any]] = None,
        start: bool = True,
        owner: Optional[str] = None,
        outbox: bool = False,
    ):
        self.owner = owner  # the engine the calls run on (calls.engine_id): whose open calls they are
        self.outbox = outbox  # queue each ended call for the CRM webhook (ivr.store.outbox), in its end's transaction
        self._own_engine = not isinstance(url, Engine)
        self.engine: Engine = create_db_engine(url, root=root, **_bounded_waits(url, root)) \
            if not isinstance(url, Engine) else url
        self.source = source
        self.recordings_dir = Path(recordings_dir).resolve() if recordings_dir is not None else None
        self._recordings_prefix = f"{self.recordings_dir.as_posix().rstrip('/')}/" if self.recordings_dir else ""
        self._statements: dict[str, _Statements] = {}  # by dialect: built once, not per batch
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.max_pending = max(max_pending, max_batch)
        self.linger = linger
        self.rush_rate, self.rush_hold = rush_rate, rush_hold
        self._marks_lock = threading.Lock()
        self._marks_put = 0  # flush() and close() markers handed over (caller threads, under the lock)
        self._marks_taken = 0  # ... and taken (the writer thread): a rush never holds one back
        self._rate_mark = (time.monotonic(), 0)  # (when, items submitted) at the writer's last take
        self.retry_min, self.retry_max = retry_min, retry_max
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._wake = threading.Event()  # ends the writer's gathering wait at once (flush, close)
        self._closed = False
        # counters: each written by one thread only
        self._submitted = 0  # caller threads (a lost increment under a race only skews the figure)
        self._dropped_full = 0  # caller threads
        self._written = 0
        self._dropped = 0
        self._failures = 0
        self._healthy = True
        self._last_error: Optional[str] = None
        # the writer thread's state
        self._calls: dict[str, CallSummary] = {}
        self._refresh_at: dict[str, float] = {}  # call -> when its row may be written again
        self._stale: dict[str, None] = {}  # calls whose row changed since it was written, oldest first
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._pending: list[_Batch] = []
        self._unwritten = 0  # items left unwritten when the thread stopped
        self._retry_at = 0.0
        self._delay = retry_min
        self._outage_started: Optional[float] = None
        self._outage_dropped = 0
        self._warned_full = False
        # the batches the database did not take, on disk (None: kept in memory only)
        self._spool: Optional[Spool] = None
        self._replay: Optional[SpoolReplay[_Batch]] = None  # the spool written back (ivr.store.spool_replay)
        if spool_dir is not None:
            self._spool = Spool(spool_dir) if max_spool_bytes is None else Spool(spool_dir, max_spool_bytes)
            # looked up at each call, not bound now: a test (or a subclass) may replace the write
            self._replay = SpoolReplay(self._spool, max_batch=self.max_batch, load=_Batch.from_records,
                                       write=lambda batch: self._write(batch),
                                       refused=lambda exc: not _transient(exc),
                                       failed=lambda batch, exc, tries: self._failed(batch, exc, spooled_attempts=tries),
                                       wrote=lambda items, adopted: self._wrote_spooled(items, adopted))
        self._spool_markers: list[threading.Event] = []  # flushes waiting for spooled batches
        # run once before the first write (the migration, when the database was away at start)
        self._prepare_db = prepare
        self._adopted = 0
        self._stop_deadline: Optional[float] = None  # close(): when the writer thread must be done
        self._warned_spool_full = False
        self._thread = threading.Thread(target=self._run, name="ivr-call-writer", daemon=True)
        if start:
            self._thread.start()

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> "CallWriter":
        """The writer of an installation: config.yaml's database and recordings folder, and
        `spool/` in the installation for what the database cannot take while it is away."""
        kwargs.setdefault("recordings_dir", config.recordings_dir)
        kwargs.setdefault("spool_dir", config.root / SPOOL_FOLDER)
        kwargs.setdefault("outbox", config.crm.webhook is not None)
        return cls(database_url(config), **kwargs)

    # --- the call path: never blocks, never raises ------------------------------------------
    def submit(self, event: Event) -> None:
        """Hand one event of a call to the writer (the engine's `on_event`)."""
        self._put((_EVENT, event))

    def queue_event(self, kind: str, uniqueid: Optional[str], queue: Optional[str],
                    data: Optional[Mapping[str, Any]] = None, at: Optional[dt.datetime] = None) -> None:
        """Record an AMI queue event (QueueCallerJoin, AgentConnect, QueueCallerAbandon, ...)."""
        self._put((_QUEUE_EVENT, kind, uniqueid, queue, dict(data or {}), at or dt.datetime.now(dt.timezone.utc)))

    def link_recording(self, call: str, path: Union[str, PurePath], at: Optional[dt.datetime] = None) -> None:
        """Record that the file at `path` is the recording of `call` (a call id or an Asterisk
        uniqueid). A call not (yet) in the database leaves an orphan, linked when the call comes."""
        self._put((_RECORDING, call, path, at or dt.datetime.now(dt.timezone.utc)))

    def _put(self, item: tuple[Any, ...]) -> None:
        self._submitted += 1
        if self._closed or self._queue.qsize() >= self.max_queue:
            self._dropped_full += 1
            if not self._warned_full:
                self._warned_full = True
                log.error("call writer %s: dropping call records (%d waiting to be written)",
                          "closed" if self._closed else "full", self._queue.qsize())
            return
        self._queue.put(item)

    # --- control -----------------------------------------------------------------------------
    def flush(self, timeout: Optional[float] = 10.0) -> bool:
        """Wait until everything handed over before is written (or dropped); False on time-out."""
        if self._closed or not self._thread.is_alive():  # closing: close() writes what is left
            if self._thread.is_alive():
                self._thread.join(timeout)
            return not self._pending and not self._unwritten and not self._thread.is_alive() and not self._spooled()
        marker = threading.Event()
        with self._marks_lock:
            self._marks_put += 1
        self._queue.put((_FLUSH, marker))
        self._wake.set()
        return marker.wait(timeout)

    def close(self, timeout: Optional[float] = 10.0) -> bool:
        """Write what is left (trying for up to `timeout` seconds), then stop; True when all was written."""
        if self._closed:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        self._closed = True
        # the thread stops trying a little before we stop waiting for it, so it can count its losses
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout - min(0.25, timeout / 4))
        if self._thread.is_alive():
            with self._marks_lock:
                self._marks_put += 1
            self._queue.put((_STOP, deadline))
            self._wake.set()
            self._thread.join(timeout)
        done = not self._thread.is_alive()
        if done and self._spooled():
            return False  # kept on disk, not written (yet)
        if not done:
            log.error("call writer still waiting for the database after %.1f s; %d call records not written",
                      timeout or 0.0, sum(b.items for b in self._pending) + self._queue.qsize())
        elif self._own_engine:
            self.engine.dispose()
        return done and not self._unwritten

    def __enter__(self) -> "CallWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def stats(self) -> WriterStats:
        pending = sum(b.items for b in list(self._pending))
        return WriterStats(self._submitted, self._written, self._dropped + self._dropped_full, self._queue.qsize(),
                           pending, self._failures, self._last_error, self._healthy, self._spooled(), self._adopted)

    def _spooled(self) -> int:
        return self._spool.items if self._spool is not None else 0

    # --- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        deadline: Optional[float] = None
        stopping = False
        if self._replay is not None:
            self._replay.adopt()
        while True:
            try:
                if stopping:  # only the pending batches are left (submits are refused now)
                    now = time.monotonic()
                    if not self._unwritten_left() or (deadline is not None and now >= deadline):
                        break
                    if self._spool is not None and not self._healthy:  # kept on disk: no need to wait
                        self._spill_pending()
                        break
                    wake = self._retry_at if deadline is None else min(self._retry_at, deadline)
                    time.sleep(max(0.0, wake - now))
                    self._write_pending()
                    continue
                now = time.monotonic()
                timeout = None if not self._unwritten_left() else max(0.0, self._retry_at - now)
                if self._stale:  # wake for the oldest row that is due to be written
                    due = max(0.0, self._refresh_at.get(next(iter(self._stale)), now) - now)
                    timeout = due if timeout is None else min(timeout, due)
                items = self._take(timeout)
                stop = next((item for item in items if item[0] == _STOP), None)
                if stop is not None:
                    stopping, deadline = True, stop[1]
                    self._stop_deadline = deadline
                    self._retry_at = 0.0  # one more try at once
                batch = self._prepare(items)
                if batch is not None:
                    self._add_pending(batch)
                if stopping and self._spool is not None:
                    # on disk first: whatever the database does now, the stop keeps its deadline
                    # and the next writer to start writes what this one could not
                    self._spill_pending()
                if self._unwritten_left() and time.monotonic() >= self._retry_at:
                    self._write_pending()
            except Exception:  # noqa: BLE001 - the writer must outlive any bug of its own
                log.exception("call writer: unexpected error")
                time.sleep(self.retry_min)
        if self._spool is not None:
            self._spill_pending()  # nothing is lost: the next writer to start writes them
            if self._spool.waiting:
                log.warning("call writer stopped with %d call records in its spool %s; the next writer "
                            "to start writes them when the database is back", self._spool.items, self._spool.path)
            self._spool.close()
            for marker in self._spool_markers:
                marker.set()
            self._spool_markers = []
        left = self._unwritten = sum(b.items for b in self._pending)
        if left:
            self._dropped += left
            log.error("call writer stopped with %d call records not written (database %s: %s)",
                      left, safe_url(self.engine.url), self._last_error)
        for batch in self._pending:
            for marker in batch.markers:
                marker.set()
        self._pending = []
        while True:  # handed over while close() ran: never to be written
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item[0] == _FLUSH:
                item[1].set()
            elif item[0] != _STOP:
                self._dropped += 1

    def _take(self, timeout: Optional[float]) -> list[tuple[Any, ...]]:
        try:
            first = self._queue.get(timeout=timeout) if timeout != 0.0 else self._queue.get_nowait()
        except queue.Empty:
            return []
        items = [first]
        if self.linger and first[0] not in (_FLUSH, _STOP) and self._queue.qsize() == 0:
            # the writer was idle: gather what comes for `linger` into one transaction, and
            # leave the interpreter to the calls meanwhile (a burst of calls is served first,
            # its records follow); flush() and close() cut the wait short
            self._wake.wait(self.linger)
            self._wake.clear()
        if first[0] not in (_FLUSH, _STOP):
            self._hold_through_rush()
        try:
            while len(items) < self.max_batch and items[-1][0] != _STOP:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        self._marks_taken += sum(1 for item in items if item[0] in (_FLUSH, _STOP))
        return items

    def _hold_through_rush(self) -> None:
        """While records pour in faster than `rush_rate` a second, wait instead of writing, for
        up to `rush_hold` seconds (see RUSH_RATE). Only a writer that is caught up holds (less
        than a batch waiting), so a rush that outlasts the hold is written as it comes, as
        without one; a flush or a stop waiting ends the hold at once."""
        start, before = time.monotonic(), self._submitted
        since, then = self._rate_mark
        self._rate_mark = (start, before)
        if self.rush_hold <= 0 or self._queue.qsize() >= self.max_batch:
            return
        # the rate since the last take, judged over one window at least: arrivals come in clumps
        # of a few milliseconds. Below it the writer works as with no hold at all.
        window = RUSH_WINDOW
        if before - then < self.rush_rate * max(start - since, window):
            return
        while self._marks_put == self._marks_taken and time.monotonic() - start < self.rush_hold:
            if self._wake.wait(window):
                if self._marks_put != self._marks_taken:
                    return
                self._wake.clear()  # a wake-up whose marker was taken already: wait a whole window
                continue
            after = self._submitted
            self._rate_mark = (time.monotonic(), after)
            if after - before < self.rush_rate * window or self._queue.qsize() >= self.max_queue // 2:
                return
            before = after

    def _unwritten_left(self) -> bool:
        return bool(self._pending) or (self._spool is not None and self._spool.waiting)

    @property
    def replaying(self) -> bool:
        """Records of writers that stopped (their spools) are still to be written: until then the
        calls they hold look open in the database, though their ends may be in those records."""
        return self._replay is not None and self._replay.replaying

    def _spill(self, batch: _Batch) -> bool:
        """Move a batch to the spool on disk; False if it must stay in memory."""
        if self._spool is None:
            return False
        try:
            kept = self._spool.put(batch.to_record(), batch.items)
        except (OSError, TypeError, ValueError) as exc:
            if not self._warned_spool_full:
                self._warned_spool_full = True
                log.error("call writer: the spool %s cannot take call records (%s); they wait in memory",
                          self._spool.path, exc)
            return False
        if not kept:
            if not self._warned_spool_full:
                self._warned_spool_full = True
                log.error("call writer: the spool %s is full (%d bytes); call records wait in memory",
                          self._spool.path, self._spool.max_bytes)
            return False
        self._spool_markers += batch.markers
        return True

    def _spill_pending(self) -> None:
        # oldest first: everything in the spool is older than anything still in memory
        while self._pending and self._spill(self._pending[0]):
            self._pending.pop(0)

    def _add_pending(self, batch: _Batch) -> None:
        if self._outage_started is not None and self._spool is not None:
            self._spill_pending()
            if not self._pending and self._spill(batch):
                return
        last = self._pending[-1] if self._pending else None
        if last is not None and last.items + batch.items <= self.max_batch:
            last.merge(batch)
        else:
            self._pending.append(batch)
        while len(self._pending) > 1 and sum(b.items for b in self._pending) > self.max_pending:
            if self._spill(self._pending[0]):
                self._pending.pop(0)
                continue
            lost = self._pending.pop(0).carry_rows_into(self._pending[0])
            self._dropped += lost
            self._outage_dropped += lost

    def _write_spooled(self) -> bool:
        """Write back up to a few batches of the spool; True when it is empty."""
        if self._replay is None:
            return True
        turn = self._replay.write_back(self._stop_deadline)
        if turn is Turn.MORE:
            self._retry_at = 0.0  # the next turn goes on at once, after taking what came meanwhile
        if turn is not Turn.EMPTY:
            return False
        for marker in self._spool_markers:
            marker.set()
        self._spool_markers = []
        return True

    def _wrote_spooled(self, items: int, adopted: bool) -> None:
        if adopted:
            self._adopted += items
        else:
            self._written += items
        self._recovered()

    def _write_pending(self) -> None:
        if not self._write_spooled():  # older than anything in memory: first
            return
        while self._pending:
            batch = self._pending[0]
            wrote = bool(batch.items or batch.calls or batch.known_calls or batch.nodes)
            try:
                if wrote:
                    self._write(batch)
            except Exception as exc:  # noqa: BLE001 - a failing database must not stop the writer
                self._failed(batch, exc)
                return
            self._pending.pop(0)
            self._written += batch.items
            if wrote:
                self._recovered()
            for marker in batch.markers:
                marker.set()

    def _failed(self, batch: _Batch, exc: Exception, spooled_attempts: Optional[int] = None) -> bool:
        """Count a failed write and plan the next; True when the batch is given up. A batch of
        the spool counts its tries in the read-back (`spooled_attempts`), one in memory in itself."""
        self._failures += 1
        self._healthy = False
        self._last_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        transient = _transient(exc)
        spooled = spooled_attempts is not None
        if spooled_attempts is not None:
            attempts = spooled_attempts
        else:
            batch.attempts += 1
            attempts = batch.attempts
        if self._outage_started is None:
            self._outage_started = time.monotonic()
            if self._spool is not None:
                log.error("call records cannot be written to %s (%s); keeping them in the spool %s and retrying",
                          safe_url(self.engine.url), self._last_error, self._spool.path)
            else:
                log.error("call records cannot be written to %s (%s); keeping up to %d and retrying",
                          safe_url(self.engine.url), self._last_error, self.max_pending)
        else:
            log.debug("call writer: write failed again: %s", self._last_error)
        given_up = not transient and attempts >= _ATTEMPTS_ON_BAD_DATA
        if given_up and spooled:
            log.error("call writer: the database refuses a spooled batch of %d call records (%s); dropping it",
                      batch.items, self._last_error, exc_info=exc)
            self._dropped += batch.items
            self._outage_dropped += batch.items
        elif given_up:
            log.error("call writer: the database refuses a batch of %d call records (%s); dropping it",
                      batch.items, self._last_error, exc_info=exc)
            self._pending.pop(0)
            self._dropped += batch.items
            self._outage_dropped += batch.items
            self._forget_written(batch)
            if self._pending:
                self._pending[0].markers = batch.markers + self._pending[0].markers
            else:
                for marker in batch.markers:
                    marker.set()
        elif transient and not spooled:
            self._spill_pending()  # away, not refusing: on disk at once, in case this process stops
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.retry_max)
        return given_up

    def _recovered(self) -> None:
        self._healthy = True
        self._delay = self.retry_min
        self._retry_at = 0.0
        if self._outage_started is not None:
            log.warning("call records are written to %s again after %.1f s (%d failed attempts; %d records dropped)",
                        safe_url(self.engine.url), time.monotonic() - self._outage_started, self._failures,
                        self._outage_dropped)
            self._outage_started = None
            self._outage_dropped = 0
            self._warned_full = False

    # --- from queue items to rows ------------------------------------------------------------
    def _prepare(self, items: list[tuple[Any, ...]]) -> Optional[_Batch]:
        now = time.monotonic()
        if not items and not (self._stale and self._refresh_at.get(next(iter(self._stale)), now) <= now):
            return None
        batch = _Batch()
        touched: dict[str, CallSummary] = {}
        for item in items:
            kind = item[0]
            if kind == _EVENT:
                self._take_event(item[1], batch, touched)
            elif kind == _QUEUE_EVENT:
                _, name, uniqueid, queue_name, data, at = item
                batch.queue_events.append({"kind": clean_text(name), "uniqueid": clean_text(uniqueid),
                                           "queue": clean_text(queue_name), "data": jsonable(data), "at": to_utc(at)})
            elif kind == _RECORDING:
                _, call, path, at = item
                batch.recordings.update(self._link_row(call, path, at))
            elif kind == _FLUSH:
                batch.markers.append(item[1])
        everything = any(item[0] in (_FLUSH, _STOP) for item in items)  # flush() and close() write every row
        for call_id, summary in touched.items():
            batch.nodes += summary.take_new_nodes()
            if summary.ended or everything or self._refresh_at.get(call_id, 0.0) <= now:
                self._row_into(batch, call_id, summary, now)
            else:
                self._stale.setdefault(call_id, None)
        while self._stale:
            call_id = next(iter(self._stale))
            if not everything and self._refresh_at.get(call_id, 0.0) > now:
                break
            summary = self._calls.get(call_id)
            if summary is None:  # ended meanwhile: its last row went with its outcome
                del self._stale[call_id]
            else:
                self._row_into(batch, call_id, summary, now)
        return batch

    def _forget_written(self, batch: _Batch) -> None:
        """A batch given up: the rows it carried never reached the database, so the next event
        of each of its calls writes the row again (its events need the row to be there)."""
        for call_id in {*batch.calls, *(row["call_id"] for row in batch.events)}:
            if call_id in self._refresh_at:
                self._refresh_at[call_id] = 0.0

    def _row_into(self, batch: _Batch, call_id: str, summary: CallSummary, now: float) -> None:
        batch.calls[call_id] = summary.row.to_dict()
        self._stale.pop(call_id, None)
        if summary.ended:
            self._refresh_at.pop(call_id, None)
        else:
            self._refresh_at[call_id] = now + ROW_REFRESH

    def _take_event(self, event: Event, batch: _Batch, touched: dict[str, CallSummary]) -> None:
        call_id = clean_text(event.call_id) or ""
        shown = event.to_dict()
        # a call to a flow that is not loaded names it as the AGI script path had it: untrusted
        shown["flow"], shown["node"] = clean_text(event.flow) or "", clean_text(event.node)
        data = {key: shown[key] for key in event.data}
        row = {"call_id": call_id, "seq": event.seq, "t": shown["t"], "type": event.type,
               "flow": shown["flow"], "node": shown["node"], "data": data}
        batch.events.append(row)
        summary = self._calls.get(call_id)
        if summary is None:
            if call_id in self._ended:  # a late event: the row is written already
                if call_id not in batch.calls:
                    batch.known_calls.setdefault(call_id, self._skeleton(event, call_id).row.to_dict())
                return
            summary = self._calls[call_id] = self._skeleton(event, call_id)
        shown["call"] = call_id  # the row's own copy of the event: the summary reads it as stored
        summary.apply(shown)
        touched[call_id] = summary
        if event.type == ev.CALL_STARTED:
            batch.started.append({"u": summary.row["uniqueid"] or call_id, "cid": call_id})
            if data.get("recording"):  # the live line names the call's recording
                links = self._link_row(call_id, data["recording"], summary.row["started_at"])
                for link in links.values():  # its call is in this batch: no need to look it up
                    link["uniqueid"] = summary.row["uniqueid"] or call_id
                batch.named_recordings.update(links)
        if summary.ended:
            del self._calls[call_id]
            self._ended[call_id] = None
            while len(self._ended) > _ENDED_REMEMBERED:
                self._ended.popitem(last=False)

    def _skeleton(self, event: Event, call_id: str) -> CallSummary:
        started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=max(0.0, event.t))
        summary = CallSummary(call_id, clean_text(event.flow) or "", started, self.source)
        summary.row["engine_id"] = self.owner
        return summary

    def _link_row(self, call: str, path: Union[str, PurePath], at: dt.datetime) -> dict[str, dict[str, Any]]:
        relative = self._relative(path)
        return {relative: {"key": clean_text(call), "path": relative, "at": to_utc(at)}}

    def _relative(self, path: Union[str, PurePath]) -> str:
        text = str(path)
        if self._recordings_prefix and text.startswith(self._recordings_prefix) and "/." not in text and "//" not in text:
            return clean_text(text[len(self._recordings_prefix):]) or ""  # the usual case, with no file system call
        p = Path(path)
        if self.recordings_dir is not None and p.is_absolute():
            try:
                p = p.resolve().relative_to(self.recordings_dir)
            except ValueError:
                pass
        return clean_text(p.as_posix()) or ""

    # --- one transaction ---------------------------------------------------------------------
    def _write(self, batch: _Batch) -> None:
        if self._prepare_db is not None:
            try:
                self._prepare_db(self.engine)
            except Exception as exc:  # noqa: BLE001 - whatever it is, the records wait for it
                raise _NotReady(f"{type(exc).__name__}: {exc}") from exc
            self._prepare_db = None
        with self.engine.begin() as conn:
            name = conn.dialect.name
            stmts = self._statements.get(name) or self._statements.setdefault(name, _Statements.build(name))
            if batch.calls:
                conn.execute(stmts.upsert_calls, list(batch.calls.values()))
                if self.outbox:  # a spooled batch comes this way too
                    outbox.queue_ended(conn, [key for key, row in batch.calls.items() if row.get("outcome")])
            known = [row for key, row in batch.known_calls.items() if key not in batch.calls]
            if known:
                conn.execute(stmts.add_calls, known)
            if batch.nodes:
                stmts.add_nodes.run(conn, batch.nodes)
            if batch.events:
                stmts.add_events.run(conn, batch.events)
            if batch.queue_events:
                conn.execute(stmts.add_queue_events, batch.queue_events)
            if batch.started:  # recordings that came before their call
                conn.execute(stmts.adopt_recordings, batch.started)
            named = [{"call_id": link["key"], "uniqueid": link["uniqueid"], "path": link["path"],
                      "created_at": link["at"]} for link in batch.named_recordings.values()]
            if named:  # their calls are in this transaction: one statement for all
                conn.execute(stmts.link_recordings, named)
            for link in batch.recordings.values():
                self._link(conn, stmts.upsert, link)

    @staticmethod
    def _link(conn: Any, upsert: Any, link: dict[str, Any]) -> None:
        calls, recordings = Call.__table__, Recording.__table__
        key = link["key"]
        found = conn.execute(select(calls.c.id, calls.c.uniqueid)
                             .where(or_(calls.c.id == key, calls.c.uniqueid == key)).limit(1)).first()
        stmt = upsert(recordings).values(call_id=found.id if found else None,
                                         uniqueid=(found.uniqueid or key) if found else key,
                                         path=link["path"], created_at=link["at"])
        stmt = stmt.on_conflict_do_update(index_elements=["path"], set_=_keep_known(stmt, recordings))
        conn.execute(stmt)


def _transient(exc: Exception) -> bool:
    """The database is away or busy (tried again), not refusing the records (given up)."""
    return isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, _NotReady)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


def _keep_known(stmt: Any, recordings: Any) -> dict[str, Any]:
    """On a path already linked: take the new call and uniqueid, but never replace one by nothing."""
    return {"call_id": func.coalesce(stmt.excluded.call_id, recordings.c.call_id),
            "uniqueid": func.coalesce(stmt.excluded.uniqueid, recordings.c.uniqueid)}


@dataclass(frozen=True)
class _Rows:
    """An INSERT of many rows of plain values. On SQLite it goes to the driver as compiled
    once, its JSON columns serialized here: SQLAlchemy's per-row parameter processing cost
    more than SQLite's own work on the rows of a call's events (docs/performance.md)."""

    stmt: Any
    sql: Optional[str] = None  # the driver's SQL with positional parameters (SQLite only)
    columns: tuple[str, ...] = ()
    json_columns: frozenset[str] = frozenset()

    @classmethod
    def build(cls, stmt: Any, dialect: str) -> "_Rows":
        if dialect != "sqlite":
            return cls(stmt)
        from sqlalchemy.dialects import sqlite

        table = stmt.table
        columns = tuple(c.name for c in table.columns)
        compiled = stmt.compile(dialect=sqlite.dialect(), column_keys=list(columns))
        json_columns = frozenset(c.name for c in table.columns if isinstance(c.type, JSON))
        return cls(stmt, compiled.string, tuple(compiled.positiontup or ()), json_columns)

    def run(self, conn: Any, rows: list[dict[str, Any]]) -> None:
        if self.sql is None:
            conn.execute(self.stmt, rows)
            return
        dump = json_dumps
        params = [tuple(dump(row[c]) if c in self.json_columns else row[c] for c in self.columns) for row in rows]
        conn.exec_driver_sql(self.sql, params)


@dataclass(frozen=True)
class _Statements:
    """The writer's statements for one dialect. Building an upsert of the calls row (its
    `excluded` columns) cost more than running it, once per batch."""

    upsert: Any
    upsert_calls: Any
    add_calls: Any
    add_nodes: Any
    add_events: Any
    add_queue_events: Any
    adopt_recordings: Any
    link_recordings: Any

    @classmethod
    def build(cls, dialect: str) -> "_Statements":
        upsert = dialect_insert(dialect)
        calls, recordings = Call.__table__, Recording.__table__
        stmt = upsert(calls)
        upsert_calls = stmt.on_conflict_do_update(index_elements=["id"], set_={c: stmt.excluded[c] for c in _CALL_COLUMNS})
        link = upsert(recordings)
        return cls(
            upsert=upsert,
            upsert_calls=upsert_calls,
            add_calls=upsert(calls).on_conflict_do_nothing(index_elements=["id"]),
            add_nodes=_Rows.build(upsert(CallNode.__table__).on_conflict_do_nothing(), dialect),
            add_events=_Rows.build(upsert(CallEvent.__table__).on_conflict_do_nothing(), dialect),
            add_queue_events=insert(QueueEvent.__table__),
            adopt_recordings=(update(recordings)
                              .where(recordings.c.call_id.is_(None), recordings.c.uniqueid == bindparam("u"))
                              .values(call_id=bindparam("cid"))),
            link_recordings=link.on_conflict_do_update(index_elements=["path"], set_=_keep_known(link, recordings)),
        )

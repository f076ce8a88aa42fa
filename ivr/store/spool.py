"""The call writer's spool: batches of call records kept on local disk while the database
is away, written to it in the order they were made when it is back.

A locked database is waited out in memory; an unreachable one (down, refused, the disk
of its host gone) can stay away for longer than memory should hold, and a process that
stops or is killed meanwhile would take its records with it. So the writer moves what
it could not write into a file of its own, one JSON line per batch, synced to disk, and
reads the file back, oldest first, before anything newer.

Each writer appends to a file named after its host, process and a random part, and holds
an exclusive lock on it (`flock`) for as long as it lives. A file nobody holds is left by
a writer that stopped before the database came back (or was killed): the next writer to
start adopts it and writes its batches before its own. How far a file has been written is
kept beside it (`<file>.pos`), so a writer killed while catching up repeats at most the
batch it was writing (events and nodes are written once whatever happens; see the writer).

    spool = Spool(folder)
    spool.put(record, items)       # a batch the database did not take
    record = spool.peek()          # the oldest batch not yet written (orphans' first)
    spool.done()                   # it is written: move on
    records = spool.peek_many(1000)  # the oldest batches, up to 1,000 call records in all
    spool.done(len(records))       # all of them written (in one transaction)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any, BinaryIO, Optional

from ivr.errors import StoreError

log = logging.getLogger(__name__)

PREFIX = "writer-"
SUFFIX = ".jsonl"
# The one type in a batch that JSON has not: a timestamp. The tag holds a NUL, which no
# key of a record can (texts are cleaned of control characters before they are stored).
_DATETIME = "\x00dt"
MAX_BYTES = 1 << 30  # 1 GiB: at ~1 KB a call, a million calls of a long outage


def encode(record: Any) -> bytes:
    """One line of the spool."""
    return json.dumps(record, default=_default, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def decode(line: bytes) -> Any:
    return json.loads(line, object_hook=_object)


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {_DATETIME: value.isoformat()}
    raise TypeError(f"a {type(value).__name__} cannot be spooled")


def _object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _DATETIME in obj:
        return dt.datetime.fromisoformat(obj[_DATETIME])
    return obj


class _Segment:
    """One spool file being read back: its own, or an orphan adopted from a stopped writer."""

    def __init__(self, path: Path, handle: BinaryIO, own: bool):
        self.path = path
        self.handle = handle  # locked for as long as this process has the file
        self.own = own
        self.position = _read_position(path)
        self.ahead: list[tuple[Any, int]] = []  # records read from `position` on, and where each ends

    @property
    def mark(self) -> Path:
        return self.path.with_name(self.path.name + ".pos")

    def next_record(self) -> Optional[Any]:
        records = self.read_ahead(1)
        return records[0] if records else None

    def read_ahead(self, max_items: int) -> list[Any]:
        """The records from `position` on, as many as hold `max_items` call records (one at
        least, if there is one)."""
        items = sum(_items_in(record) for record, _ in self.ahead)
        end = self.ahead[-1][1] if self.ahead else self.position
        self.handle.seek(end)  # once: each line read moves on to the next
        while not self.ahead or items < max_items:
            line = self.handle.readline()
            if not line:
                break
            if not line.endswith(b"\n"):  # cut short by a crash while it was written: never complete
                if not self.ahead:
                    log.warning("spool %s ends in a record cut short (%d bytes); it is skipped",
                                self.path.name, len(line))
                    self.position += len(line)
                break
            try:
                record = decode(line)
            except ValueError as exc:
                if self.ahead:  # skipped once the records before it are written
                    break
                log.error("spool %s: a record that cannot be read at byte %d (%s); it is skipped",
                          self.path.name, self.position, exc)
                self.position += len(line)
                end = self.position
                _write_position(self.mark, self.position)
                continue
            end += len(line)
            self.ahead.append((record, end))
            items += _items_in(record)
        taken: list[Any] = []
        items = 0
        for record, _ in self.ahead:  # read ahead for more before: give no more than asked
            if taken and items >= max_items:
                break
            taken.append(record)
            items += _items_in(record)
        return taken

    def advance(self, count: int = 1) -> list[Any]:
        """The first `count` records read ahead are written: move past them; return them."""
        assert 0 < count <= len(self.ahead)
        done, self.ahead = self.ahead[:count], self.ahead[count:]
        self.position = done[-1][1]
        _write_position(self.mark, self.position)
        return [record for record, _ in done]


class Spool:
    """The spool folder as this writer sees it: the files of stopped writers, then its own."""

    def __init__(self, folder: Path, max_bytes: int = MAX_BYTES):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # callers' numbers: the service's only
        except OSError as exc:
            raise StoreError(f"cannot create the call writer's spool folder {self.folder}: {exc}") from None
        name = f"{PREFIX}{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}{SUFFIX}"
        self.path = self.folder / name
        self._own: Optional[_Segment] = None
        self._orphans: list[_Segment] = []
        self.records = 0  # batches spooled and not yet written back (own and adopted)
        self.items = 0  # their call records, as the writer counts them
        self.size = 0  # bytes of the own file

    # --- writing ------------------------------------------------------------------------
    def put(self, record: Any, items: int) -> bool:
        """Append one batch, synced to disk; False when the spool is full (it is not kept)."""
        line = encode({"items": items, "batch": record})
        if self.size + len(line) > self.max_bytes:
            return False
        own = self._open_own()
        own.handle.seek(0, os.SEEK_END)
        own.handle.write(line)
        own.handle.flush()
        os.fsync(own.handle.fileno())
        self.size += len(line)
        self.records += 1
        self.items += items
        return True

    def _open_own(self) -> _Segment:
        if self._own is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            handle = os.fdopen(fd, "a+b")
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._own = _Segment(self.path, handle, own=True)
        return self._own

    # --- reading back -------------------------------------------------------------------
    def adopt(self) -> int:
        """Take the files of writers that stopped (nobody holds their lock); return how many
        batches they hold. Called once at start, before this writer writes anything."""
        found = 0
        for path in sorted(self.folder.glob(f"{PREFIX}*{SUFFIX}"), key=_age):
            if path == self.path or any(s.path == path for s in self._orphans):
                continue
            try:
                handle = open(path, "r+b")
            except OSError as exc:
                log.error("spool %s cannot be opened (%s); its call records are not written", path, exc)
                continue
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a live writer's own file
                handle.close()
                continue
            segment = _Segment(path, handle, own=False)
            count = items = 0
            handle.seek(segment.position)
            for line in handle:
                if line.endswith(b"\n"):
                    count += 1
                    items += _items_of(line)
            if count == 0:
                self._remove(segment)
                continue
            self._orphans.append(segment)
            self.records += count
            self.items += items
            found += count
        return found

    @property
    def waiting(self) -> bool:
        return self.records > 0

    def peek(self) -> Optional[Any]:
        """The oldest batch not yet written back, or None."""
        batches = self.peek_many(1)
        return batches[0] if batches else None

    def peek_many(self, max_items: int) -> list[Any]:
        """The oldest batches not yet written back, as many as hold `max_items` call records
        (one at least), all from one file: the writer writes them in one transaction."""
        while self._orphans:
            segment = self._orphans[0]
            records = segment.read_ahead(max_items)
            if records:
                return [record["batch"] for record in records]
            self._orphans.pop(0)
            self._remove(segment)
        if self._own is not None:
            records = self._own.read_ahead(max_items)
            if records:
                return [record["batch"] for record in records]
            self._reset_own()
        self.records = self.items = 0  # nothing left, whatever the count said (a skipped record)
        return []

    @property
    def adopted_waiting(self) -> bool:
        """Batches of stopped writers are still to be written back."""
        return bool(self._orphans)

    def head_is_adopted(self) -> bool:
        """The batches `peek` gave came from another writer's file."""
        return bool(self._orphans)

    def done(self, count: int = 1) -> int:
        """The first `count` batches `peek_many` gave are written; return their call records."""
        segment = self._orphans[0] if self._orphans else self._own
        assert segment is not None and segment.ahead
        items = sum(_items_in(record) for record in segment.advance(count))
        self.records = max(0, self.records - count)
        self.items = max(0, self.items - items)
        if not segment.ahead and segment.position >= os.fstat(segment.handle.fileno()).st_size:
            if segment.own:  # all of it written back
                self._reset_own()
            else:
                self._orphans.remove(segment)
                self._remove(segment)
        return items

    def _reset_own(self) -> None:
        """All of the own file is written back: empty it, so it does not grow for ever."""
        own = self._own
        if own is None or own.position == 0:
            return
        own.handle.truncate(0)
        own.handle.flush()
        own.position = 0
        own.ahead = []
        self.size = 0
        try:
            own.mark.unlink()
        except FileNotFoundError:
            pass

    def _remove(self, segment: _Segment) -> None:
        for path in (segment.path, segment.mark):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        segment.handle.close()
        log.info("spool %s is written to the database and removed", segment.path.name)

    def close(self) -> None:
        """Let go of the files; the own file goes too when nothing in it is left to write."""
        if self._own is not None:
            if self._own.next_record() is None:
                self._remove(self._own)
            else:
                self._own.handle.close()
            self._own = None
        for segment in self._orphans:
            segment.handle.close()
        self._orphans = []


def _read_position(path: Path) -> int:
    try:
        return int(path.with_name(path.name + ".pos").read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _write_position(mark: Path, position: int) -> None:
    # not synced: after a crash at most the last batch is written again
    mark.write_text(str(position))


def _age(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _items_in(record: Any) -> int:
    return int(record.get("items", 0)) if isinstance(record, dict) else 0


def _items_of(line: bytes) -> int:
    head = line[:40]  # {"items":N,... is how `put` begins every line
    if head.startswith(b'{"items":'):
        digits = head[9:].split(b",", 1)[0]
        if digits.isdigit():
            return int(digits)
    return 0

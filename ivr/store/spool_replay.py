"""The call writer's spool written back: the batches the database did not take, its own and
those of writers that stopped before their database came back (adopted), oldest first,
before anything newer the writer holds in memory.

The writer owns the spool's other side (what goes into it, the flushes waiting on it) and
what a write is; this is the read-back alone, with the state only it needs: whether the
stopped writers' spools have been looked for yet, the failed tries of the oldest batch,
and how many batches to write one at a time after a write of several together failed.

    replay = SpoolReplay(spool, max_batch=1000, load=..., write=..., refused=..., failed=..., wrote=...)
    replay.adopt()                     # once, when the writer's thread starts
    turn = replay.write_back(deadline)  # each time the writer writes: EMPTY, MORE or WAIT

Its log lines are the writer's (the `ivr.store.writer` logger): one story for an admin.
"""

from __future__ import annotations

import enum
import logging
import time
from typing import Any, Callable, Generic, Mapping, Optional, Sequence, TypeVar

from ivr.store.spool import Spool

log = logging.getLogger("ivr.store.writer")

B = TypeVar("B")  # the writer's batch
SPOOL_BATCHES_PER_TURN = 20  # transactions written back between two takes of new items: catching up never stalls them


class Turn(enum.Enum):
    """How a turn of writing back ended."""

    EMPTY = "empty"  # nothing is left in the spool
    MORE = "more"  # the turn's share is written and more waits: go on at once, after the new items
    WAIT = "wait"  # a write failed (its retry is planned), or the stop's deadline came


class SpoolReplay(Generic[B]):
    """Writes one writer's spool back, through the writer's own write.

    `load` makes one batch of spool records (several are written in one transaction);
    `write` writes a batch in one transaction, raising when the database does not take it;
    `refused` tells a refusal of the content from a database that is away or busy;
    `failed` counts a failed write (the batch, the error, the tries of the spool's oldest
    batch so far) and says whether the batch is given up; `wrote` counts a batch written
    (its items, and whether they came from a stopped writer's spool).
    """

    def __init__(self, spool: Spool, *, max_batch: int, load: Callable[[Sequence[Mapping[str, Any]]], B],
                 write: Callable[[B], None], refused: Callable[[Exception], bool],
                 failed: Callable[[B, Exception, int], bool], wrote: Callable[[int, bool], None],
                 per_turn: int = SPOOL_BATCHES_PER_TURN):
        self.spool = spool
        self.max_batch = max_batch
        self.per_turn = per_turn
        self._load, self._write, self._refused, self._failed, self._wrote = load, write, refused, failed, wrote
        self.adopting = True  # until the stopped writers' spools have been looked for
        self.attempts = 0  # failed writes of the spool's oldest batch
        self.one_by_one = 0  # spooled batches to write one at a time: a write of them together failed

    @property
    def replaying(self) -> bool:
        """Records of writers that stopped are still to be written (or not looked for yet)."""
        return self.adopting or self.spool.adopted_waiting

    def adopt(self) -> None:
        """Take the spools of writers that stopped before their database came back."""
        try:
            found = self.spool.adopt()
        except OSError as exc:
            log.error("call writer: the spool folder %s cannot be read (%s)", self.spool.folder, exc)
            return
        finally:
            self.adopting = False
        if found:
            log.warning("call writer: %d call records left in the spool by writers that stopped; "
                        "writing them first", self.spool.items)

    def write_back(self, deadline: Optional[float] = None) -> Turn:
        """Write back up to `per_turn` transactions of the spool, stopping at `deadline`
        (time.monotonic(); the stop's) and at the first write that fails."""
        spool = self.spool
        for _ in range(self.per_turn):
            if deadline is not None and time.monotonic() >= deadline:
                return Turn.WAIT  # stopping: the rest stays in the spool for the next writer
            # many spooled batches in one transaction (an outage spools a small batch every few
            # milliseconds: one transaction each would fall behind the calls); after a failure,
            # the oldest alone, so that one the database refuses is given up by itself
            alone = self.attempts or self.one_by_one
            records = spool.peek_many(1 if alone else self.max_batch) if spool.waiting else []
            if not records:
                break
            adopted = spool.head_is_adopted()
            batch = self._load(records)
            try:
                self._write(batch)
            except Exception as exc:  # noqa: BLE001 - a failing database must not stop the writer
                if self._refused(exc):  # one of them is refused: find it, alone
                    self.one_by_one = max(self.one_by_one, len(records))
                self.attempts += 1
                if not self._failed(batch, exc, self.attempts):
                    return Turn.WAIT
                self.attempts = 0
                spool.done(len(records))  # refused for its content: given up
                self.one_by_one = max(0, self.one_by_one - 1)
                continue
            items = spool.done(len(records))
            self.attempts = 0
            if alone:
                self.one_by_one = max(0, self.one_by_one - 1)
            self._wrote(items, adopted)
        return Turn.MORE if spool.waiting else Turn.EMPTY

"""The spool's read-back on its own, on a real spool folder, with a write that stands in for
the database: a stopped writer's batches first and counted as adopted; several batches in
one transaction; a write that fails waits, and the oldest batch is then tried alone; one
the database refuses is given up by itself; a stop's deadline leaves the rest for the next
writer; a turn writes its share and says more is waiting."""

from __future__ import annotations

import time

from ivr.store.spool import Spool
from ivr.store.spool_replay import SpoolReplay, Turn


class Refused(Exception):
    pass


class Away(Exception):
    pass


class Target:
    """The writer's side: batches are lists of record names; `fail` decides each write."""

    def __init__(self, fail=lambda names: None):
        self.fail = fail
        self.written: list[list[str]] = []
        self.tries: list[int] = []
        self.counted: list[tuple[int, bool]] = []

    def replay(self, spool: Spool, **kwargs) -> SpoolReplay:
        return SpoolReplay(spool, max_batch=kwargs.pop("max_batch", 100),
                           load=lambda records: [r["name"] for r in records], write=self.write,
                           refused=lambda exc: isinstance(exc, Refused), failed=self.failed,
                           wrote=lambda items, adopted: self.counted.append((items, adopted)), **kwargs)

    def write(self, names: list[str]) -> None:
        problem = self.fail(names)
        if problem is not None:
            raise problem
        self.written.append(names)

    def failed(self, names: list[str], exc: Exception, attempts: int) -> bool:
        self.tries.append(attempts)
        return isinstance(exc, Refused) and attempts >= 3  # as the writer: refused three times, given up


def spooled(folder, *names: str, stop: bool = False) -> Spool:
    spool = Spool(folder)
    for name in names:
        assert spool.put({"name": name}, 2)
    if stop:
        spool.close()
    return spool


def test_a_stopped_writers_batches_go_first_in_one_transaction_and_count_as_adopted(tmp_path):
    spooled(tmp_path, "old1", "old2", stop=True)
    mine = spooled(tmp_path, "new1")
    target = Target()
    replay = target.replay(mine)
    assert replay.replaying  # not looked yet
    replay.adopt()
    assert replay.replaying and not replay.adopting
    assert replay.write_back() is Turn.EMPTY
    assert target.written == [["old1", "old2"], ["new1"]]
    assert target.counted == [(4, True), (2, False)]
    assert not replay.replaying and not mine.waiting


def test_a_failed_write_waits_then_the_oldest_goes_alone_and_a_refused_one_is_given_up_by_itself(tmp_path):
    spool = spooled(tmp_path, "a", "bad", "c")
    away = [True]

    def fail(names):
        if away[0]:
            return Away("the database is away")
        return Refused("no") if "bad" in names else None

    target = Target(fail)
    replay = target.replay(spool)
    replay.adopt()
    assert replay.write_back() is Turn.WAIT and target.tries == [1] and spool.waiting
    away[0] = False
    # after a failure: one at a time; the refused batch three times, then given up, alone
    assert replay.write_back() is Turn.WAIT  # "a" alone, then "bad" fails (a refusal: tried again later)
    assert replay.write_back() is Turn.WAIT
    assert replay.write_back() is Turn.EMPTY
    assert target.written == [["a"], ["c"]]
    assert target.tries == [1, 1, 2, 3]
    assert [items for items, _ in target.counted] == [2, 2]


def test_a_stops_deadline_leaves_the_rest_and_a_turn_writes_its_share(tmp_path):
    spool = spooled(tmp_path, *[f"b{n}" for n in range(5)])
    target = Target()
    replay = target.replay(spool, max_batch=2, per_turn=2)  # 2 records a transaction, 2 transactions a turn
    replay.adopt()
    assert replay.write_back(deadline=time.monotonic() - 1) is Turn.WAIT and target.written == []
    assert replay.write_back() is Turn.MORE
    assert target.written == [["b0"], ["b1"]]  # one record already holds max_batch (2) items
    assert replay.write_back() is Turn.MORE
    assert replay.write_back() is Turn.EMPTY
    assert [n for names in target.written for n in names] == [f"b{n}" for n in range(5)]

"""The call-back scheduler of `ivr serve`: it books call-backs in the database and dials
each when its turn comes, by its promised time at the latest, in opening hours only.

Every `poll` seconds it reads the pending call-backs (oldest place in line first) and
dials one when
  (a) its turn has come: the department's queue has a free agent (not paused, not on a
      call, not already kept for another call-back ringing now) and no caller waiting in
      that queue joined before the call-back's place in line; or
  (b) its due-by time has come (the promise);
and only while the call-back's schedule (config.yaml) is open. The queue is read through
a `QueueBoard`: the AMI client's live queue board, or QueueStatus for that queue when the
board cannot vouch for itself (off the call path either way).

At most max(1, free agents) call-backs of one queue ring at once (a due one waits for a
ringing one to end), so call-backs that all come due at opening time are dialled a few at
a time; a pass reads at most PENDING_LIMIT of them, oldest place first.

With several Asterisks (config.yaml asterisk.nodes) each node has a scheduler of its own:
it dials that node's call-backs through that node's AMI, judging their turn on that node's
queue, since callers wait on the node their call landed on (docs/nodes.md).

Each try is claimed in the database before the Originate is sent (ivr.store.callbacks),
so two engines, or one restarted, never dial it twice; its result comes from Asterisk's
OriginateResponse. A try left open (its engine was killed while the phone rang) is closed
as interrupted, by whichever engine looks, only once it cannot still ring: begun more than
the ring time + STALE_MARGIN ago; it is retried after the pause, never at once. Owner
names play no part: two engines on one host never close each other's ringing tries. That
recovery and the expiry run at start-up and every HOUSEKEEPING seconds, not every pass;
a pass itself only reads, unless it claims a try.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Protocol

from ivr.asterisk.callback import OriginateOutcome
from ivr.asterisk.queue_board import MemberState
from ivr.clock import Clock, SystemClock
from ivr.engine.channel import CallbackRequest
from ivr.errors import AmiError, AmiRefused, ChannelError, IvrError
from ivr.settings.hours import OPEN, Schedule
from ivr.store.callbacks import INTERRUPTED, Booking, CallbackStore, Claim, Pending

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
BOOK_TIMEOUT = 3.0  # seconds a caller waits at most for their call-back to be stored
EXPIRE_AFTER = dt.timedelta(days=3)  # a long weekend and a holiday are waited out; a week is not
STALE_MARGIN = 30.0  # seconds past the ring time after which a try still "ringing" is taken for lost
HOUSEKEEPING = 30.0  # seconds between two recoveries/expiries (each a write transaction)
PENDING_LIMIT = 200  # call-backs read per pass, oldest place first


@dataclass(frozen=True)
class QueueSnapshot:
    """What the scheduler needs to know of a queue now."""

    free_agents: int
    waiting_since: tuple[dt.datetime, ...] = ()  # when each caller waiting now joined


class QueueBoard(Protocol):
    async def snapshot(self, queue: str) -> QueueSnapshot: ...


class Dialler(Protocol):
    """What dials a call-back: the AMI client (`ivr.asterisk.ami.AmiClient`)."""

    @property
    def connected(self) -> bool: ...

    async def call_back(self, number: str, department_queue: str, *, priority: Optional[int] = None,
                        action_id: Optional[str] = None) -> OriginateOutcome: ...


class LiveQueueBoard:
    """A queue as the AMI client's live queue board holds it (`ivr.asterisk.queue_board`, kept
    from queue events: no round trip); when the board cannot vouch for itself (the
    connection was down, no recent QueueStatus), as QueueStatus shows it now."""

    def __init__(self, client: Any, clock: Optional[Clock] = None):
        self.client = client
        self.status = AmiQueueBoard(client, clock)

    async def snapshot(self, queue: str) -> QueueSnapshot:
        board = getattr(self.client, "board", None)
        if board is not None:
            live = board.snapshot(queue)
            if live.fresh and live.known:
                return QueueSnapshot(live.free_agents, tuple(live.waiting_since))
        return await self.status.snapshot(queue)


class AmiQueueBoard:
    """A queue as AMI QueueStatus shows it: members free now, and when waiting callers joined."""

    def __init__(self, client: Any, clock: Optional[Clock] = None):
        self.client = client
        self.clock = clock or SystemClock()

    async def snapshot(self, queue: str) -> QueueSnapshot:
        state = await self.client.queue_status(queue)
        now = self.clock.now()
        return QueueSnapshot(sum(1 for m in state.members if member_free(m, now)),
                             tuple(now - dt.timedelta(seconds=_number(e.get("Wait"))) for e in state.entries))


def member_free(member: Mapping[str, Any], now: dt.datetime) -> bool:
    """A QueueMember that would take a call now: the queue board's rule (`MemberState.free_at`)."""
    state = MemberState.from_headers({"Interface": "?", **member})  # the interface does not matter here
    return state is not None and state.free_at(now)


def _number(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


class CallbackScheduler:
    """A part of the runtime (start/close), and where live calls book their call-backs."""

    def __init__(self, store: CallbackStore, dialler: Dialler, board: QueueBoard,
                 schedules: Callable[[], Mapping[str, Schedule]], *, ring_timeout: float = 30.0,
                 poll: float = POLL_SECONDS, expire_after: dt.timedelta = EXPIRE_AFTER, clock: Optional[Clock] = None,
                 book_timeout: float = BOOK_TIMEOUT, stop_wait: float = 0.0):
        self.store = store  # with several Asterisks, one node's call-backs (CallbackStore.node)
        self.dialler = dialler
        self.board = board
        self.schedules = schedules
        self.ring_timeout = ring_timeout
        self.poll = poll
        self.book_timeout = book_timeout
        # seconds a stop waits for the answers of tries ringing now (the runtime's grace period)
        self.stop_wait = stop_wait
        self.expire_after = expire_after
        self.clock = clock or SystemClock()
        self.ringing: Counter[str] = Counter()  # queue -> call-backs of this engine ringing now
        self._dials: set[asyncio.Task] = set()
        self._task: Optional[asyncio.Task] = None
        self._housekept: Optional[dt.datetime] = None
        self._unknown_schedules: set[str] = set()

    async def _db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))

    # --- the runtime's part ----------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._housekeep(self.clock.now())
        except IvrError as exc:
            log.error("call-backs: recovery failed (%s); tries left ringing are closed later", exc)
        self._task = asyncio.create_task(self._run(), name="callback-scheduler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        # a try ringing now keeps its result if the answer comes within the stop's wait: a
        # restart then leaves it for no recovery, which would take it for lost and dial again
        if self._dials and self.stop_wait > 0:
            waited = len(self._dials)
            _, left = await asyncio.wait(list(self._dials), timeout=self.stop_wait)
            if left:
                log.warning("call-backs: %d of %d tr%s ringing at the stop had no answer within %g s; the next "
                            "start closes %s as interrupted", len(left), waited, "y" if waited == 1 else "ies",
                            self.stop_wait, "it" if len(left) == 1 else "them")
        # a try still ringing is left to the next start's recovery: it cannot be taken back
        for task in list(self._dials):
            task.cancel()
        await asyncio.gather(*self._dials, return_exceptions=True)

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self.tick()
                if failing:
                    log.info("call-backs: the scheduler works again")
                failing = False
            except Exception as exc:  # noqa: BLE001 - one bad pass (database away) must not stop it
                if not failing:
                    log.error("call-backs: a pass of the scheduler failed: %s", exc)
                failing = True
            await asyncio.sleep(self.poll)

    # --- booking (the call's side) -----------------------------------------------------------
    async def book(self, request: CallbackRequest) -> int:
        now = self.clock.now()
        booked = request.booked_at or now
        booking = Booking(
            call_id=request.call_id, number=request.number, department=request.department.name,
            queue=request.department.queue, place_at=request.place_at or booked, booked_at=booked,
            due_by=request.due_by or booked + dt.timedelta(hours=1), schedule=request.schedule,
            max_attempts=request.attempts, retry_pause=request.retry_pause, priority=request.priority,
            node=self.store.node)
        try:
            # bounded: the caller is on the line, and a database that hangs must not hold them
            callback_id = await asyncio.wait_for(self._db(self.store.book, booking), self.book_timeout)
        except asyncio.TimeoutError:
            log.error("call-back on call %s not booked: the database did not answer within %g s; the caller "
                      "goes to the fallback queue", request.call_id, self.book_timeout)
            raise ChannelError(f"the call-back was not booked within {self.book_timeout:g} s") from None
        except IvrError as exc:
            log.error("call-back on call %s not booked (%s); the caller goes to the fallback queue",
                      request.call_id, exc)
            raise ChannelError(f"the call-back was not booked: {exc}") from exc
        log.info("call-back %d booked on call %s for queue %s%s, due by %s", callback_id, request.call_id,
                 booking.queue, f" of node {booking.node}" if booking.node else "",
                 booking.due_by.isoformat(timespec="seconds"))
        return int(callback_id)

    # --- one pass ----------------------------------------------------------------------------
    def stale_before(self, now: dt.datetime) -> dt.datetime:
        """A try begun before this cannot still ring (its Originate's ring time, and a margin
        for its answer, are over): an open one was lost with its engine."""
        return now - dt.timedelta(seconds=self.ring_timeout + STALE_MARGIN)

    async def _housekeep(self, now: dt.datetime) -> None:
        """Close the tries that cannot ring any more, expire the promises long past."""
        self._housekept = now
        closed = await self._db(self.store.recover, now, stale_before=self.stale_before(now))
        if closed:
            log.warning("call-backs: %d tr%s left ringing when the engine stopped: closed as interrupted, "
                        "retried after the pause", closed, "y" if closed == 1 else "ies")
        expired = await self._db(self.store.expire, now, self.expire_after)
        if expired:
            log.warning("call-backs: %d expired, not dialled within %s of their promised time", expired, self.expire_after)

    async def tick(self) -> list[Claim]:
        """Look at the pending call-backs once; the tries started (their dials run on)."""
        now = self.clock.now()
        if self._housekept is None or (now - self._housekept).total_seconds() >= HOUSEKEEPING:
            await self._housekeep(now)
        if not self.dialler.connected:
            return []  # claimed tries would only fail: they wait for the AMI
        started: list[Claim] = []
        snapshots: dict[str, QueueSnapshot] = {}
        for pending in await self._db(self.store.pending, now, PENDING_LIMIT):
            if not self._open(pending, now):
                continue
            snapshot = await self._snapshot(pending.queue, snapshots)
            if self.ringing[pending.queue] >= max(1, snapshot.free_agents):
                continue  # enough of this queue's call-backs ring now: the next pass
            reason = "due" if now >= pending.due_by else self._turn(pending, snapshot)
            if reason is None:
                continue
            claim = await self._db(self.store.claim, pending.id, reason, now)
            if claim is None:
                continue  # another engine took it
            started.append(claim)
            self.ringing[claim.queue] += 1
            task = asyncio.create_task(self._dial(claim, now), name=f"callback-{claim.callback_id}")
            self._dials.add(task)
            task.add_done_callback(self._dials.discard)
        return started

    def _open(self, pending: Pending, now: dt.datetime) -> bool:
        if not pending.schedule:
            return True
        schedule = self.schedules().get(pending.schedule)
        if schedule is None:
            if pending.schedule not in self._unknown_schedules:
                self._unknown_schedules.add(pending.schedule)
                log.error('call-backs: schedule "%s" is no longer in config.yaml; its call-backs are dialled at any '
                          "time", pending.schedule)
            return True
        return schedule.state(now) == OPEN

    async def _snapshot(self, queue: str, snapshots: dict[str, QueueSnapshot]) -> QueueSnapshot:
        """The queue now, read once per pass."""
        if queue not in snapshots:
            try:
                snapshots[queue] = await self.board.snapshot(queue)
            except AmiError as exc:
                log.warning("call-backs: cannot read queue %s (%s); waiting for the due time", queue, exc)
                snapshots[queue] = QueueSnapshot(0)
        return snapshots[queue]

    def _turn(self, pending: Pending, snapshot: QueueSnapshot) -> Optional[str]:
        """"turn" if the call-back's turn in its queue has come, else None."""
        if snapshot.free_agents - self.ringing[pending.queue] <= 0:
            return None
        if any(joined < pending.place_at for joined in snapshot.waiting_since):
            return None  # someone who was ahead still waits
        return "turn"

    async def _dial(self, claim: Claim, started: dt.datetime) -> None:
        detail = ""
        try:
            outcome = await self.dialler.call_back(claim.number, claim.queue, priority=claim.priority,
                                                   action_id=f"ivr-callback-{claim.attempt_id}")
        except AmiRefused as exc:  # nothing rings: the same request would be refused again
            outcome, detail = OriginateOutcome("failed", ""), str(exc)
        except AmiError as exc:  # the connection dropped, no answer: the phone may ring all the same
            outcome, detail = OriginateOutcome(INTERRUPTED, ""), str(exc)
        except asyncio.CancelledError:
            raise  # the engine stops: the next start closes the try as interrupted
        except Exception as exc:  # noqa: BLE001 - recorded as a failed try, never lost
            log.exception("call-back %d: dialling failed", claim.callback_id)
            outcome, detail = OriginateOutcome("failed", ""), repr(exc)
        finally:
            self.ringing[claim.queue] -= 1
        try:
            # an interrupted try may still ring: its retry never comes before it cannot
            not_before = started + dt.timedelta(seconds=self.ring_timeout + STALE_MARGIN) \
                if outcome.result == INTERRUPTED else None
            status = await self._db(self.store.finish, claim.attempt_id, outcome.result, self.clock.now(),
                                    asterisk_reason=outcome.reason or None, uniqueid=outcome.uniqueid,
                                    channel=outcome.channel, detail=detail, retry_not_before=not_before)
        except IvrError as exc:
            log.error("call-back %d: try %d ended %s but cannot be stored (%s); closed at the next start",
                      claim.callback_id, claim.seq, outcome.result, exc)
            return
        log.info("call-back %d try %d (%s) for queue %s: %s (Asterisk reason %s); call-back %s", claim.callback_id,
                 claim.seq, claim.reason, claim.queue, outcome.result, outcome.reason or "-", status)

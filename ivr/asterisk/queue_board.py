"""The live queue board: each Asterisk queue's callers and members, kept from the AMI.

The engine reads it before a caller joins a queue (overflow at peaks) and call-backs may
read it to choose their moment; reading is synchronous and costs no round trip.

Kept from two sources:
- events, as they come: `QueueCallerJoin` / `QueueCallerLeave` / `QueueCallerAbandon`
  (callers, each with the time it joined), `QueueMemberAdded` / `QueueMemberRemoved` /
  `QueueMemberStatus` / `QueueMemberPause` (members: device state, paused, in a call),
  `AgentConnect` / `AgentComplete` (a member's call with a queue caller starts and ends);
- a full `QueueStatus` after each (re)connect and every few seconds after that
  (`apply_status`), which corrects whatever an event that was lost or never sent got
  wrong. Events newer than the QueueStatus request win over its answer: an event seen
  after the request was sent is applied again on top of it (see `begin_sync`).

A member is FREE when it can take a call this moment: not paused, not in a call, and its
device NOT_INUSE (or UNKNOWN, which Asterisk's queue also rings), and past its wrap-up time
after its last call (`LastCall` + `Wrapuptime`, as Asterisk reports them), since Asterisk's
queue does not ring it before; a `Status` that is no number is not free. It is LOGGED IN
unless its device is UNAVAILABLE or INVALID; a busy or paused member is logged in.
`MemberState.free_at` is this rule, the one the call-back scheduler uses too.

The board says when it cannot vouch for what it holds (`QueueSnapshot.fresh` is False):
while the connection is down, before the first QueueStatus, and when the last one is
older than `max_age` seconds. Callers of `snapshot` then act as if no state were known.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

from ivr.clock import Clock, SystemClock

log = logging.getLogger(__name__)

__all__ = ["EVENTS", "MemberState", "QueueBoard", "QueueSnapshot", "device_free", "device_logged_in"]

# the AMI events the board reads
EVENTS = ("QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "QueueMemberAdded", "QueueMemberRemoved",
          "QueueMemberStatus", "QueueMemberPause", "AgentConnect", "AgentComplete")

# Asterisk's AST_DEVICE_* codes (the `Status` of a queue member)
UNKNOWN, NOT_INUSE, INUSE, BUSY, INVALID, UNAVAILABLE, RINGING, RINGINUSE, ONHOLD = range(9)
_FREE = (UNKNOWN, NOT_INUSE)
_LOGGED_OUT = (INVALID, UNAVAILABLE)


def device_free(status: int) -> bool:
    return status in _FREE


def device_logged_in(status: int) -> bool:
    return status not in _LOGGED_OUT


@dataclass(frozen=True)
class QueueSnapshot:
    """One queue on the board at one moment."""

    queue: str
    waiting: int  # callers in the queue now
    longest_wait: float  # seconds the first of them has waited (0 with nobody waiting)
    free_agents: int  # members that could take a call this moment
    logged_in: int  # members that can take calls at all (busy and paused ones included)
    waiting_since: tuple[dt.datetime, ...]  # when each waiting caller joined, oldest first
    fresh: bool  # False: the board cannot vouch for this (connection down, or no recent QueueStatus)
    known: bool = True  # False: Asterisk reported no such queue


@dataclass
class MemberState:
    """One member of one queue, as far as the AMI has told."""

    interface: str
    name: str = ""
    status: int = UNKNOWN
    paused: bool = False
    in_call: bool = False
    wrapup: float = 0.0  # seconds of wrap-up after each call (Wrapuptime), 0 for none
    last_call: float = 0.0  # when its last call ended, epoch seconds (LastCall), 0 for never

    def free_at(self, now: dt.datetime) -> bool:
        """Could take a call at `now`: device free, not paused, not in a call, past its wrap-up."""
        if not device_free(self.status) or self.paused or self.in_call:
            return False
        return not (self.wrapup and self.last_call and self.last_call + self.wrapup > now.timestamp())

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any]) -> Optional["MemberState"]:
        """A member from a QueueMember's or a member event's headers; None without an interface."""
        return _member(headers)

    @property
    def logged_in(self) -> bool:
        return device_logged_in(self.status)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def _seconds(value: Any) -> float:
    try:
        return max(0.0, float(str(value).strip()))
    except (TypeError, ValueError):
        return 0.0


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "yes", "true")


def _member(headers: Mapping[str, Any], old: Optional[MemberState] = None) -> Optional[MemberState]:
    """A member from an event's or a QueueStatus entry's headers (they name fields differently)."""
    interface = headers.get("Interface") or headers.get("Location") or (old.interface if old else "")
    if not interface:
        return None
    member = MemberState(str(interface)) if old is None else MemberState(old.interface, old.name, old.status,
                                                                         old.paused, old.in_call, old.wrapup,
                                                                         old.last_call)
    name = headers.get("MemberName") or headers.get("Name")
    if name:
        member.name = str(name)
    if "Status" in headers:
        member.status = _int(headers["Status"], INVALID)  # a Status that is no number: not free
    if "Paused" in headers:
        member.paused = _flag(headers["Paused"])
    if "InCall" in headers:
        member.in_call = _flag(headers["InCall"])
    if "Wrapuptime" in headers:
        member.wrapup = _seconds(headers["Wrapuptime"])
    if "LastCall" in headers:
        member.last_call = _seconds(headers["LastCall"])
    return member


class _Queue:
    def __init__(self) -> None:
        self.callers: dict[str, tuple[dt.datetime, int]] = {}  # uniqueid -> (joined, seq of the event)
        self.members: dict[str, tuple[MemberState, int]] = {}  # interface -> (state, seq)
        self.left: dict[str, int] = {}  # uniqueid -> seq: callers gone since the last sync
        self.removed: dict[str, int] = {}  # interface -> seq: members gone since the last sync
        self.changed = 0  # seq of the last event about this queue


class QueueBoard:
    """Callers and members of every queue, from AMI events corrected by QueueStatus."""

    def __init__(self, clock: Optional[Clock] = None, *, max_age: float = 60.0):
        self.clock = clock or SystemClock()
        self.max_age = max_age
        self._queues: dict[str, _Queue] = {}
        self._seq = 0  # events applied so far
        self._synced_at: Optional[dt.datetime] = None
        self._live = False  # a connection is up and has synced since it came up
        self.syncs = 0  # QueueStatus answers applied
        self.healed = 0  # callers and members a QueueStatus corrected (a missed event)

    # --- reading -------------------------------------------------------------------------
    @property
    def fresh(self) -> bool:
        if not self._live or self._synced_at is None:
            return False
        return (self.clock.now() - self._synced_at).total_seconds() <= self.max_age

    def queues(self) -> list[str]:
        return sorted(self._queues)

    def snapshot(self, queue: str) -> QueueSnapshot:
        """The queue now; an unknown queue has nobody in it (`known` False)."""
        state = self._queues.get(queue)
        if state is None:
            return QueueSnapshot(queue, 0, 0.0, 0, 0, (), self.fresh, known=False)
        since = tuple(sorted(joined for joined, _seq in state.callers.values()))
        now = self.clock.now()
        longest = max(0.0, (now - since[0]).total_seconds()) if since else 0.0
        members = [member for member, _seq in state.members.values()]
        return QueueSnapshot(queue, len(since), longest, sum(1 for m in members if m.free_at(now)),
                             sum(1 for m in members if m.logged_in), since, self.fresh)

    def members(self, queue: str) -> list[MemberState]:
        state = self._queues.get(queue)
        return [] if state is None else [member for member, _seq in state.members.values()]

    def waiting(self, queue: str) -> list[str]:
        """Uniqueids of the callers waiting in `queue`, first come first."""
        state = self._queues.get(queue)
        if state is None:
            return []
        return [uid for uid, _ in sorted(state.callers.items(), key=lambda item: item[1][0])]

    # --- the connection ------------------------------------------------------------------
    def connection_lost(self) -> None:
        """The AMI connection dropped: events may be missed until the next sync."""
        self._live = False

    def begin_sync(self) -> int:
        """Call just before sending QueueStatus; pass the token to `apply_status`."""
        return self._seq

    # --- events --------------------------------------------------------------------------
    def handle(self, event: str, headers: Mapping[str, Any], at: dt.datetime) -> None:
        """Apply one AMI event (headers in AMI spelling); events the board does not read are ignored."""
        queue = headers.get("Queue")
        if event not in EVENTS or not queue:
            return
        self._seq += 1
        state = self._queues.setdefault(str(queue), _Queue())
        state.changed = self._seq
        uniqueid = str(headers.get("Uniqueid") or "")
        if event == "QueueCallerJoin" and uniqueid:
            state.callers[uniqueid] = (at, self._seq)
            state.left.pop(uniqueid, None)
        elif event in ("QueueCallerLeave", "QueueCallerAbandon") and uniqueid:
            state.callers.pop(uniqueid, None)
            state.left[uniqueid] = self._seq
        elif event == "QueueMemberRemoved":
            interface = str(headers.get("Interface") or "")
            state.members.pop(interface, None)
            state.removed[interface] = self._seq
        elif event in ("AgentConnect", "AgentComplete"):
            interface = str(headers.get("Interface") or "")
            if interface in state.members:
                member = _member({}, state.members[interface][0])
                assert member is not None
                member.in_call = event == "AgentConnect"
                state.members[interface] = (member, self._seq)
        else:  # QueueMemberAdded / Status / Pause carry the member's whole state
            interface = str(headers.get("Interface") or "")
            old = state.members.get(interface)
            member = _member(headers, old[0] if old else None)
            if member is not None:
                state.members[member.interface] = (member, self._seq)
                state.removed.pop(member.interface, None)

    # --- QueueStatus ---------------------------------------------------------------------
    def apply_status(self, messages: Iterable[Mapping[str, Any]], token: int, at: dt.datetime) -> None:
        """Correct the board with a QueueStatus answer (its QueueParams, QueueMember and
        QueueEntry events' headers), requested when `begin_sync` returned `token`.

        What the answer says replaces what the board held, except what an event told after
        the request was sent (its seq is above `token`): that is newer than the answer.
        """
        params: set[str] = set()
        members: dict[str, list[Mapping[str, Any]]] = {}
        entries: dict[str, list[Mapping[str, Any]]] = {}
        for message in messages:
            kind, queue = message.get("Event"), message.get("Queue")
            if not queue:
                continue
            queue = str(queue)
            if kind == "QueueParams":
                params.add(queue)
            elif kind == "QueueMember":
                members.setdefault(queue, []).append(message)
            elif kind == "QueueEntry":
                entries.setdefault(queue, []).append(message)
        for name in list(self._queues):
            if name not in params and self._queues[name].changed <= token:
                del self._queues[name]  # Asterisk has no such queue (any more)
        for name in params:
            state = self._queues.setdefault(name, _Queue())
            self._sync_callers(name, state, entries.get(name, []), token, at)
            self._sync_members(name, state, members.get(name, []), token)
            state.left = {uid: seq for uid, seq in state.left.items() if seq > token}
            state.removed = {i: seq for i, seq in state.removed.items() if seq > token}
        self._synced_at = at
        self._live = True
        self.syncs += 1

    def _sync_callers(self, name: str, state: _Queue, entries: list[Mapping[str, Any]], token: int,
                      at: dt.datetime) -> None:
        reported = {}
        for entry in entries:
            uid = str(entry.get("Uniqueid") or "")
            if not uid or state.left.get(uid, 0) > token:
                continue  # gone since the request
            known = state.callers.get(uid)
            if known is not None:
                reported[uid] = known  # the join event's time is the more precise
            else:
                wait = max(0, _int(entry.get("Wait")))
                reported[uid] = (at - dt.timedelta(seconds=wait), 0)
                self._heal("caller %s found waiting in %s (its join event was missed)", uid, name)
        for uid, (joined, seq) in state.callers.items():
            if uid not in reported:
                if seq > token:
                    reported[uid] = (joined, seq)  # joined since the request
                else:
                    self._heal("caller %s no longer in %s (its leave event was missed)", uid, name)
        state.callers = reported

    def _sync_members(self, name: str, state: _Queue, members: list[Mapping[str, Any]], token: int) -> None:
        reported: dict[str, tuple[MemberState, int]] = {}
        for headers in members:
            member = _member(headers)
            if member is None or state.removed.get(member.interface, 0) > token:
                continue
            known = state.members.get(member.interface)
            if known is not None and known[1] > token:
                reported[member.interface] = known  # an event since the request is newer
                continue
            if known is None or (known[0].status, known[0].paused, known[0].in_call) != (
                    member.status, member.paused, member.in_call):
                self._heal("member %s of %s corrected by QueueStatus", member.interface, name)
            reported[member.interface] = (member, 0)
        for interface, (member, seq) in state.members.items():
            if interface not in reported and seq > token:
                reported[interface] = (member, seq)  # added since the request
            elif interface not in reported:
                self._heal("member %s no longer in %s (its removal event was missed)", interface, name)
        state.members = reported

    def _heal(self, message: str, *args: Any) -> None:
        if self.syncs:  # the first QueueStatus seeds the board: nothing was wrong before it
            self.healed += 1
            log.info("queue board: " + message, *args)

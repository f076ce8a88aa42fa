"""Queue facts per call, from the AMI's queue events.

Asterisk's `Queue()` tells the AMI what happens to a caller in a department queue:
`QueueCallerJoin` (position), `QueueCallerAbandon` (hung up while waiting, with the wait),
`QueueCallerLeave` (out of the queue, to an agent or not), `AgentConnect` (which member
answered, after how long), `AgentComplete` (talk time and who hung up) and, for any
channel, `Hangup` (the cause). The tracker turns them into facts keyed by the caller's
Uniqueid, which is the FastAGI call id (`agi_uniqueid`) of the same channel, and reports
each fact as `on_queue_event(kind, uniqueid, queue, data, at)`.

A call that meets several queues (an overflow from sales to backup) has one stint per
queue; `facts()` is the latest, `stints()` all of them. After a reconnect the AMI client
calls `reconcile()` with QueueStatus and CoreShowChannels, so calls that joined, left or
ended while the connection was down are brought up to date (marked `resynced`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

log = logging.getLogger(__name__)

# kinds handed to on_queue_event
JOINED, LEFT, ABANDONED = "queue_joined", "queue_left", "queue_abandoned"
AGENT_CONNECTED, AGENT_COMPLETED, AGENT_NO_ANSWER, HANGUP = (
    "agent_connected", "agent_completed", "agent_no_answer", "hangup")

# the AMI events the tracker reads
EVENTS = ("QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentConnect", "AgentComplete",
          "AgentRingNoAnswer", "Hangup")

QueueEventSink = Callable[[str, str, str, dict, dt.datetime], Any]

# statuses of a stint
WAITING, ANSWERED, COMPLETED, ABANDONED_STATUS, LEFT_STATUS = "waiting", "answered", "completed", "abandoned", "left"


@dataclass
class QueueFacts:
    """One caller's stay in one queue, as far as the AMI has told."""

    uniqueid: str
    queue: str
    channel: Optional[str] = None
    linkedid: Optional[str] = None
    caller: Optional[str] = None
    joined_at: Optional[dt.datetime] = None
    position: Optional[int] = None  # on joining
    left_at: Optional[dt.datetime] = None
    abandoned: bool = False
    agent: Optional[str] = None  # MemberName
    interface: Optional[str] = None  # e.g. PJSIP/101
    connected_at: Optional[dt.datetime] = None
    wait: Optional[float] = None  # seconds in the queue (HoldTime)
    ring: Optional[float] = None  # seconds the answering member's phone rang
    talk: Optional[float] = None  # seconds with the agent (TalkTime)
    reason: Optional[str] = None  # who ended the agent call: caller, agent, transfer
    completed_at: Optional[dt.datetime] = None
    hangup_cause: Optional[int] = None
    hangup_cause_text: Optional[str] = None
    no_answer: list[str] = field(default_factory=list)  # members that rang and did not answer
    resynced: bool = False  # some fact was inferred after a reconnect, not seen as an event

    @property
    def status(self) -> str:
        if self.completed_at is not None:
            return COMPLETED
        if self.connected_at is not None:
            return ANSWERED
        if self.abandoned:
            return ABANDONED_STATUS
        if self.left_at is not None:
            return LEFT_STATUS
        return WAITING


def _int(value: Any) -> Optional[int]:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _seconds(value: Any, at: dt.datetime) -> Optional[float]:
    """A duration header in seconds. Some Asterisk documents call QueueCallerAbandon's
    HoldTime an epoch time; a value that large is read as one."""
    number = _int(value)
    if number is None:
        return None
    if number > 1_000_000_000:
        return max(0.0, at.timestamp() - number)
    return float(max(0, number))


class QueueTracker:
    """Turns queue events into per-call facts; keeps the newest `max_calls` calls."""

    def __init__(self, on_queue_event: Optional[QueueEventSink] = None, *, max_calls: int = 10_000):
        self.on_queue_event = on_queue_event
        self.max_calls = max_calls
        self._calls: OrderedDict[str, list[QueueFacts]] = OrderedDict()

    # --- reading -------------------------------------------------------------------------
    def facts(self, uniqueid: str) -> Optional[QueueFacts]:
        """The caller's latest queue stint, or None if the call met no queue."""
        stints = self._calls.get(uniqueid)
        return stints[-1] if stints else None

    def stints(self, uniqueid: str) -> list[QueueFacts]:
        return list(self._calls.get(uniqueid, ()))

    def waiting(self) -> list[QueueFacts]:
        return [s[-1] for s in self._calls.values() if s and s[-1].status == WAITING]

    # --- events --------------------------------------------------------------------------
    def handle(self, event: str, headers: Mapping[str, str], at: dt.datetime) -> None:
        """Apply one AMI event (its headers as a case-sensitive mapping, AMI spelling)."""
        handler = getattr(self, "_on_" + event.lower(), None)
        uniqueid = headers.get("Uniqueid", "")
        if handler is None or not uniqueid:
            return
        handler(uniqueid, headers, at)

    def _emit(self, kind: str, facts: QueueFacts, data: dict, at: dt.datetime) -> None:
        if self.on_queue_event is None:
            return
        try:
            self.on_queue_event(kind, facts.uniqueid, facts.queue, data, at)
        except Exception:  # noqa: BLE001 - a failing sink must not stop the event stream
            log.exception("on_queue_event failed for %s of call %s", kind, facts.uniqueid)

    def _current(self, uniqueid: str, queue: str) -> Optional[QueueFacts]:
        """The stint in `queue` (an open one), if the tracker knows it."""
        stints = self._calls.get(uniqueid)
        if not stints:
            return None
        for stint in reversed(stints):
            if stint.queue == queue:
                return stint
        return None

    def _start(self, uniqueid: str, queue: str) -> QueueFacts:
        facts = QueueFacts(uniqueid, queue)
        self._calls.setdefault(uniqueid, []).append(facts)
        self._calls.move_to_end(uniqueid)
        while len(self._calls) > self.max_calls:
            self._calls.popitem(last=False)
        return facts

    def _stint(self, uniqueid: str, headers: Mapping[str, str]) -> QueueFacts:
        """The stint an event is about; one is started if the join was missed."""
        queue = headers.get("Queue", "")
        return self._current(uniqueid, queue) or self._start(uniqueid, queue)

    def _on_queuecallerjoin(self, uniqueid: str, h: Mapping[str, str], at: dt.datetime) -> None:
        facts = self._start(uniqueid, h.get("Queue", ""))
        facts.channel, facts.linkedid = h.get("Channel"), h.get("Linkedid")
        facts.caller = h.get("CallerIDNum")
        facts.joined_at, facts.position = at, _int(h.get("Position"))
        self._emit(JOINED, facts, {"position": facts.position, "count": _int(h.get("Count")),
                                   "channel": facts.channel, "caller": facts.caller, "linkedid": facts.linkedid}, at)

    def _on_queuecallerabandon(self, uniqueid: str, h: Mapping[str, str], at: dt.datetime) -> None:
        facts = self._stint(uniqueid, h)
        facts.abandoned = True
        facts.wait = _seconds(h.get("HoldTime"), at)
        facts.left_at = facts.left_at or at
        self._emit(ABANDONED, facts, {"position": _int(h.get("Position")),
                                      "original_position": _int(h.get("OriginalPosition")), "wait": facts.wait}, at)

    def _on_queuecallerleave(self, uniqueid: str, h: Mapping[str, str], at: dt.datetime) -> None:
        facts = self._stint(uniqueid, h)
        facts.left_at = at
        if facts.wait is None and facts.joined_at is not None:
            facts.wait = max(0.0, (at - facts.joined_at).total_seconds())
        self._emit(LEFT, facts, {"position": _int(h.get("Position")), "count": _int(h.get("Count")),
                                 "wait": facts.wait}, at)

    def _on_agentconnect(self, uniqueid: str, h: Mapping[str, str], at: dt.datetime) -> None:
        facts = self._stint(uniqueid, h)
        facts.agent, facts.interface = h.get("MemberName"), h.get("Interface")
        facts.connected_at = at
        facts.wait = _seconds(h.get("HoldTime"), at)
        facts.ring = _seconds(h.get("RingTime"), at)
        self._emit(AGENT_CONNECTED, facts, {"agent": facts.agent, "interface": facts.interface, "wait": facts.wait,
                                            "ring": facts.ring, "agent_channel": h.get("DestChannel")}, at)

    def _on_agentcomplete(self, uniqueid: str, h: Mapping[str, str], at: dt.datetime) -> None:
        facts = self._stint(uniqueid, h)
        facts.agent = h.get("MemberName") or facts.agent
        facts.interface = h.get("Interface") or facts.interface
        facts.wait = _seconds(h.get("HoldTime"), at) if h.get("HoldTime") else facts.wait
        facts.talk = _seconds(h.get("TalkTime"), at)
        facts.reason = h.get("Reason") or None
        facts.completed_at = at
        facts.connected_at = facts.connected_at or at
        self._emit(AGENT_COMPLETED, facts, {"agent": facts.agent, "interface": facts.interface, "wait": facts.wait,
                                            "talk": facts.talk, "reason": facts.reason}, at)

    def _on_agentringnoanswer(self, uniqueid: str, h: Mapping[str, str], at: dt.datetime) -> None:
        facts = self._current(uniqueid, h.get("Queue", ""))
        if facts is None:
            return
        member = h.get("MemberName") or h.get("Interface") or ""
        facts.no_answer.append(member)
        self._emit(AGENT_NO_ANSWER, facts, {"agent": h.get("MemberName"), "interface": h.get("Interface"),
                                            "ring": _seconds(h.get("RingTime"), at)}, at)

    def _on_hangup(self, uniqueid: str, h: Mapping[str, str], at: dt.datetime) -> None:
        facts = self.facts(uniqueid)
        if facts is None:  # not a caller we saw in a queue
            return
        facts.hangup_cause, facts.hangup_cause_text = _int(h.get("Cause")), h.get("Cause-txt")
        self._emit(HANGUP, facts, {"cause": facts.hangup_cause, "cause_text": facts.hangup_cause_text}, at)

    # --- after a reconnect ---------------------------------------------------------------
    def reconcile(self, entries: Sequence[Mapping[str, str]], channels: Sequence[Mapping[str, str]],
                  at: dt.datetime) -> None:
        """Bring the facts up to date with Asterisk's state after events may have been missed.

        `entries` are QueueStatus's QueueEntry events (callers waiting now), `channels`
        CoreShowChannels' CoreShowChannel events (channels alive now).
        """
        alive = {c.get("Uniqueid") for c in channels}
        present: set[tuple[str, str]] = set()
        for entry in entries:
            uniqueid, queue = entry.get("Uniqueid", ""), entry.get("Queue", "")
            if not uniqueid:
                continue
            present.add((uniqueid, queue))
            facts = self._current(uniqueid, queue)
            if facts is not None and facts.status == WAITING:
                continue
            waited = _seconds(entry.get("Wait"), at) or 0.0
            facts = self._start(uniqueid, queue)
            facts.channel, facts.caller = entry.get("Channel"), entry.get("CallerIDNum")
            facts.joined_at, facts.position = at - dt.timedelta(seconds=waited), _int(entry.get("Position"))
            facts.resynced = True
            self._emit(JOINED, facts, {"position": facts.position, "channel": facts.channel, "caller": facts.caller,
                                       "wait": waited, "resynced": True}, at)
        for stints in list(self._calls.values()):
            facts = stints[-1]
            if facts.status == WAITING and (facts.uniqueid, facts.queue) not in present:
                # left the queue unseen: to an agent, a time-out or a hang-up; which one is lost
                facts.left_at, facts.resynced = at, True
                if facts.joined_at is not None:
                    facts.wait = max(0.0, (at - facts.joined_at).total_seconds())
                self._emit(LEFT, facts, {"wait": facts.wait, "channel_alive": facts.uniqueid in alive,
                                         "resynced": True}, at)
            elif facts.status == ANSWERED and facts.uniqueid not in alive:
                # the agent call ended while we were away; its talk time is unknown
                facts.completed_at, facts.resynced = at, True
                self._emit(AGENT_COMPLETED, facts, {"agent": facts.agent, "interface": facts.interface,
                                                    "wait": facts.wait, "talk": None, "reason": None,
                                                    "resynced": True}, at)

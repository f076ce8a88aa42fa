"""What callers did in the menus over a dashboard's range, counted in SQL.

Per node: the calls that entered it (`call_nodes`, once per call), the calls that ended there
abandoned (`calls.last_node`), and the time-outs and invalid keys that happened there
(`call_events`). Per edge: the callers who went from one node to the next, read from the
`node_entered` events of each call (the node of the event before it, by `seq`, is
where the caller came from: every event names the node it happened in, and a call's events are
numbered without gaps) and the `via` the engine wrote (the key or exit taken). A call whose
events were cut short (the writer drops events only when the database is away too long)
leaves edges without a source; they are counted, not drawn.
`call_nodes.t` alone could not say this: nodes that take no time (hours, route, goto) share a
`t`, so their order would be a guess.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, aliased

from ivr import events as ev
from ivr.store.models import Call, CallEvent, CallNode
from ivr.web.metrics import Scope

NodeKey = tuple[str, str]  # (flow, node)
# (from flow, from node, via, to flow, to node); from is None for the node a call started in
EdgeKey = tuple[Optional[str], Optional[str], str, str, str]


@dataclass
class NodeCounts:
    entered: int = 0  # calls that entered the node (once per call)
    hangups: int = 0  # calls that ended there abandoned
    timeouts: int = 0  # time-out events there (a call may time out more than once)
    invalid: int = 0  # invalid keys (or input) there


@dataclass
class Usage:
    nodes: dict[NodeKey, NodeCounts] = field(default_factory=dict)
    edges: dict[EdgeKey, int] = field(default_factory=dict)  # callers (distinct calls) who took each edge

    def node(self, flow: str, node: str) -> NodeCounts:
        return self.nodes.get((flow, node)) or NodeCounts()

    def _at(self, flow: Optional[str], node: Optional[str]) -> Optional[NodeCounts]:
        if flow is None or node is None:
            return None
        return self.nodes.setdefault((flow, node), NodeCounts())

    def edge(self, flow: str, source: str, label: str, target: str) -> int:
        return self.edges.get((flow, source, label, flow, target), 0)


def usage(session: Session, scope: Scope) -> Usage:
    """The counts of `scope`'s calls: three grouped queries."""
    found = Usage()
    where = and_(*scope.conditions())
    entered = (select(CallNode.flow, CallNode.node, func.count())
               .join(Call, Call.id == CallNode.call_id).where(where)
               .group_by(CallNode.flow, CallNode.node))
    for flow, node, count in session.execute(entered):
        found._at(flow, node).entered = count  # type: ignore[union-attr]
    hung_up = (select(Call.last_flow, Call.last_node, func.count())
               .where(where, Call.outcome == ev.Outcome.ABANDONED)
               .group_by(Call.last_flow, Call.last_node))
    for flow, node, count in session.execute(hung_up):
        counts = found._at(flow, node)
        if counts is not None:
            counts.hangups = count

    entering = CallEvent.type == ev.NODE_ENTERED
    before = aliased(CallEvent)
    steps = (select(CallEvent.call_id.label("call_id"), CallEvent.type.label("type"),
                    CallEvent.flow.label("flow"), CallEvent.node.label("node"),
                    case((entering, CallEvent.data["via"].as_string())).label("via"),
                    before.flow.label("from_flow"), before.node.label("from_node"))
             .select_from(Call)
             .join(CallEvent, CallEvent.call_id == Call.id)
             # the event just before: a primary-key probe, where a window (LAG) would sort every event
             .outerjoin(before, and_(entering, before.call_id == CallEvent.call_id, before.seq == CallEvent.seq - 1))
             .where(where, CallEvent.type.in_((ev.NODE_ENTERED, ev.TIMEOUT, ev.INVALID)))
             .subquery())
    # grouped over a subquery: PostgreSQL then sees `via` as one column, not two copies of an expression
    grouped = (select(steps.c.type, steps.c.flow, steps.c.node, steps.c.via, steps.c.from_flow, steps.c.from_node,
                      func.count(), func.count(steps.c.call_id.distinct()))
               .group_by(steps.c.type, steps.c.flow, steps.c.node, steps.c.via, steps.c.from_flow, steps.c.from_node))
    for kind, flow, node, via, from_flow, from_node, times, calls in session.execute(grouped):
        if kind == ev.NODE_ENTERED:
            if from_node is None:  # after call_started (or a gap): no node to come from
                from_flow = None
            key: EdgeKey = (from_flow, from_node, via or "", flow, node)
            found.edges[key] = found.edges.get(key, 0) + calls
        else:
            counts = found._at(flow, node)
            if counts is not None:
                if kind == ev.TIMEOUT:
                    counts.timeouts += times
                else:
                    counts.invalid += times
    return found


def add(total: Usage, part: Usage) -> None:
    """Count `part` into `total` (calls of different days: their callers never overlap)."""
    for key, counts in part.nodes.items():
        into = total.nodes.setdefault(key, NodeCounts())
        into.entered += counts.entered
        into.hangups += counts.hangups
        into.timeouts += counts.timeouts
        into.invalid += counts.invalid
    for edge, n in part.edges.items():
        total.edges[edge] = total.edges.get(edge, 0) + n


SETTLED_DAY_SECONDS = 1800.0  # a day over (and an hour for its last calls to end) changes little
OPEN_DAY_SECONDS = 120.0  # today, or a day just over: its calls are still being written


def usage_by_day(session: Session, scope: Scope, cache: "TtlCache", now: Optional[dt.datetime] = None) -> Usage:
    """`usage(scope)` counted a day at a time, each day kept in `cache`: the last 7, 30 and 90
    days share their days, and after the first count only today's calls are read again."""
    now = now or dt.datetime.now(dt.timezone.utc)
    total = Usage()
    for day in scope.days:
        one = dataclasses.replace(scope, first=day, last=day)
        settled = one.bounds()[1] + dt.timedelta(hours=1) <= now
        part = cache.get_or_make(("day", *one.key()), lambda: usage(session, one),
                                 SETTLED_DAY_SECONDS if settled else OPEN_DAY_SECONDS)
        add(total, part)
    return total


class TtlCache:
    """A bounded dictionary whose entries expire: counts and drawings for a little while."""

    def __init__(self, seconds: float = 60.0, size: int = 32):
        self.seconds, self.size = seconds, size
        self.clock: Callable[[], float] = time.monotonic
        self._items: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def peek(self, key: Any) -> Any:
        """The value kept for `key`, or None when there is none or it has expired."""
        with self._lock:
            hit = self._items.get(key)
            return hit[1] if hit is not None and hit[0] > self.clock() else None

    def get_or_make(self, key: Any, make: Callable[[], Any], seconds: Optional[float] = None) -> Any:
        now = self.clock()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = make()  # outside the lock: two requests may both make it, neither waits on the other
        with self._lock:
            self._items[key] = (now + (self.seconds if seconds is None else seconds), value)
            if len(self._items) > self.size:
                for stale in sorted(self._items, key=lambda k: self._items[k][0])[: len(self._items) - self.size]:
                    del self._items[stale]
        return value

"""What the engine asks when a route rule tests a lookup segment, and what it gets back.

The engine does no I/O of its own: whoever runs it hands it a `SegmentLookups` (the live
runtime and `ivr simulate` the HTTP one of `ivr.lookup`, journey tests the answers their
cases give). Whatever that does, a call is never held up longer than the segment's
time-out (plus a small margin) and never dropped: an answer that does not come, or an
exception, counts as "not in the segment", recorded on the route event with the reason.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from ivr.settings.segments import Segment

MEMBER = "member"
NOT_MEMBER = "not_member"
FAILED = "failed"
NO_NUMBER = "no_number"  # a withheld or empty caller ID: nothing to ask about
GRACE = 0.25  # seconds beyond the segment's own time-out before the engine stops waiting


@dataclass(frozen=True)
class LookupAnswer:
    segment: str
    result: str  # MEMBER, NOT_MEMBER, FAILED or NO_NUMBER
    ms: int = 0  # how long the caller waited for it
    error: Optional[str] = None  # why it failed, for the call's record and the log
    cached: bool = False

    @property
    def member(self) -> bool:
        return self.result == MEMBER

    def to_event(self) -> dict[str, Any]:
        """The answer as an entry of the route event's `lookups`."""
        entry: dict[str, Any] = {"segment": self.segment, "result": self.result, "ms": self.ms}
        if self.error:
            entry["error"] = self.error
        if self.cached:
            entry["cached"] = True
        return entry


class SegmentLookups(Protocol):
    async def ask(self, segment: Segment, caller: str) -> LookupAnswer:
        """Whether `caller` is in the lookup segment `segment`; never raises by contract."""


class NoLookups:
    """For engines run without a lookup (unit tests, the demo): every lookup fails, so the
    caller goes the normal path, as on a live line whose lookup is down."""

    async def ask(self, segment: Segment, caller: str) -> LookupAnswer:
        return LookupAnswer(segment.name, FAILED, 0, "no lookup in this run")


async def ask_guarded(lookups: SegmentLookups, segment: Segment, caller: str) -> LookupAnswer:
    """`lookups.ask`, bounded by the segment's time-out; a failure of any kind is an answer."""
    assert segment.lookup is not None
    limit = segment.lookup.timeout
    started = time.monotonic()
    try:
        return await asyncio.wait_for(lookups.ask(segment, caller), limit + GRACE)
    except asyncio.TimeoutError:
        error = f"no answer within {_ms(limit)} ms"
    except Exception as exc:  # noqa: BLE001 - a broken lookup must not drop the call
        error = f"the lookup broke: {type(exc).__name__}"
    return LookupAnswer(segment.name, FAILED, _ms(time.monotonic() - started), error)


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))

"""Which calls hear the survey: every N-th call reaching it, and every call shorter than a limit.

The sampler decides; a `SurveyCounter` counts the calls that reach each survey node. The
simulator, journey tests and the demo count in memory (`MemoryCounter`); the live runtime
counts in the database (`ivr.store.survey_counts`), so the count survives a restart and
several engines share it.

The fallback rule, when the counter fails or does not answer within `timeout` seconds:
the call is never held up. The sampler counts on in memory from the last count the
counter gave it (so about every N-th call is still asked, though calls of other engines
are not seen), says so once in the log, and asks the counter again after `retry`
seconds; when it answers again, that is logged too, and its count is used from then on.
The `shorter_than` rule needs no count and holds throughout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Optional, Protocol

from ivr.flow.nodes.survey import Survey

log = logging.getLogger(__name__)

TIMEOUT = 2.0  # seconds a call waits for the count, at most
RETRY = 30.0  # seconds between tries of a counter that failed; calls in between count in memory


class SurveyCounter(Protocol):
    """Counts the calls reaching a survey node of a flow."""

    async def increment(self, flow: str, node: str) -> int:
        """Add one call to the count of `node` of `flow`, atomically; the new count (1 for the first call)."""
        ...


class MemoryCounter:
    """Counts in the memory of this process (simulated calls, journey tests, the demo)."""

    def __init__(self, start: int = 0):
        self._counts: defaultdict[tuple[str, str], int] = defaultdict(lambda: start)

    async def increment(self, flow: str, node: str) -> int:
        self._counts[(flow, node)] += 1
        return self._counts[(flow, node)]


class SurveySampler:
    """Decides whether a call reaching a survey node is asked (a reload keeps the sampler)."""

    def __init__(self, counter: Optional[SurveyCounter] = None, *, start: int = 0,
                 timeout: float = TIMEOUT, retry: float = RETRY):
        self.counter: SurveyCounter = counter if counter is not None else MemoryCounter(start)
        self.timeout = timeout
        self.retry = retry
        self._last: defaultdict[tuple[str, str], int] = defaultdict(lambda: start)  # the fallback's count
        self._failing_since: Optional[float] = None
        self._next_try = 0.0

    async def should_ask(self, flow_id: str, node: Survey, elapsed: float) -> bool:
        sample = node.sample
        if sample is None:
            return True
        short = sample.shorter_than is not None and elapsed < sample.shorter_than
        if sample.every is None:
            return short
        count = await self._count(flow_id, node.name)
        return count % sample.every == 0 or short

    async def _count(self, flow: str, node: str) -> int:
        key = (flow, node)
        now = time.monotonic()
        if self._failing_since is None or now >= self._next_try:
            try:
                count = await asyncio.wait_for(self.counter.increment(flow, node), self.timeout)
            except Exception as exc:  # noqa: BLE001 - no failure of the count may stop a call
                self._failed(exc, now)
            else:
                if self._failing_since is not None:
                    log.warning("survey counter answers again after %.0f s; sampling counts in it again",
                                now - self._failing_since)
                    self._failing_since = None
                self._last[key] = count
                return count
        self._last[key] += 1
        return self._last[key]

    def _failed(self, exc: BaseException, now: float) -> None:
        if self._failing_since is None:
            self._failing_since = now
            reason = "no answer within %.1f s" % self.timeout if isinstance(exc, asyncio.TimeoutError) else str(exc)
            log.error("survey counter failed (%s); survey sampling counts in memory until it answers again", reason)
        self._next_try = now + self.retry

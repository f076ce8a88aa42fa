"""Clocks: the wall clock for live calls, a virtual one for simulations and tests.

The hours node asks the clock what time it is, so a test can place a call on Christmas
Day; a virtual clock also moves on by the time prompts and waits would take.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current moment, with a time zone."""

    def elapsed(self) -> float:
        """Seconds on a monotonic scale (differences only mean something)."""


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def elapsed(self) -> float:
        return time.monotonic()


class VirtualClock:
    """Starts at a given moment and moves only when told to.

    A start without a time zone stays naive: schedules read it in their own zone, so
    "10:00" means ten o'clock at the office whatever the machine's zone.
    """

    __slots__ = ("start", "offset")

    def __init__(self, start: dt.datetime | None = None):
        self.start = start or dt.datetime.now(dt.timezone.utc)
        self.offset = 0.0

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.offset)

    def elapsed(self) -> float:
        return self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

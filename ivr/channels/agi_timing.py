"""How long each AGI command took, from the line sent to its reply, counted per command.

The figures behind `ivr serve`'s `ivr_agi_command_seconds` histogram. They are taken on the
call path, thousands of times a second, so nothing here locks or allocates: every command
of every call runs on the one event-loop thread, which alone writes the counts; a scrape
(on the same loop, `ivr.live.health`) reads them. One observation is a dictionary look-up,
a bisection and two additions.

A command's time is Asterisk's: a STREAM FILE takes as long as its prompt plays, a WAIT FOR
DIGIT as long as the caller thinks, an EXEC of Queue as long as the caller waits; hence
the buckets from half a millisecond (a GET VARIABLE on a quiet Asterisk) to ten minutes,
and a series per command (its verb), so the quick ones show Asterisk's own latency.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Iterator

# upper bounds in seconds (Prometheus' `le`); a value above the last is counted in +Inf
BOUNDS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                             30.0, 60.0, 120.0, 300.0, 600.0)


class _Series:
    """One command's counts: per bucket (not cumulative; the last is +Inf) and the sum."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BOUNDS) + 1)
        self.total = 0.0


class CommandTimes:
    """Per-command histograms of AGI round trips, written on the event loop's thread only."""

    __slots__ = ("_series",)

    def __init__(self) -> None:
        self._series: dict[str, _Series] = {}

    def observe(self, verb: str, seconds: float) -> None:
        """One command's round trip. `verb` is the command's name as the channel wrote it in
        its code (STREAM FILE, GET FULL VARIABLE, ...): a handful, never caller input."""
        series = self._series.get(verb)
        if series is None:
            series = self._series[verb] = _Series()
        series.buckets[bisect_left(BOUNDS, seconds)] += 1
        series.total += seconds

    def histograms(self) -> Iterator[tuple[str, list[tuple[str, int]], float]]:
        """Each command's (verb, cumulative buckets as (le, count) with "+Inf" last, sum)."""
        for verb, series in sorted(self._series.items()):
            running = 0
            cumulative = []
            for bound, count in zip((*(repr(b) for b in BOUNDS), "+Inf"), series.buckets):
                running += count
                cumulative.append((bound, running))
            yield verb, cumulative, series.total

    def count(self, verb: str) -> int:
        """Commands of `verb` observed so far."""
        series = self._series.get(verb)
        return sum(series.buckets) if series is not None else 0

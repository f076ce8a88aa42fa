"""The waveform picture of the call page: Recording.peaks drawn as one inline SVG path.

Peaks are 0..1 (the loudest sample of each slice of the recording). They come from the
database, so they are checked here: anything that is not a finite number counts as
silence, values are clamped to 0..1, and a long list is thinned (keeping each bucket's
loudest) so the page stays small. The SVG is stretched to the player's width; one unit of
its view box is one bar, and timeline moments are marked at `t / length` of the width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional

MAX_BARS = 1200
FLAT_WIDTH = 1000  # the view box of a recording without peaks (not indexed yet)
HEIGHT = 100
MARKED = ("key", "input", "invalid", "timeout", "transfer", "agent", "outcome", "hangup")


@dataclass(frozen=True)
class Mark:
    x: float
    kind: str
    id: str  # the timeline entry it stands for


@dataclass(frozen=True)
class Waveform:
    width: int
    path: str  # "" when the recording has no peaks yet
    marks: list[Mark]

    @classmethod
    def of(cls, peaks: Any, length: Optional[float], entries: Iterable[Any] = ()) -> "Waveform":
        bars = thin(clean(peaks), MAX_BARS)
        width = len(bars) or FLAT_WIDTH
        marks: list[Mark] = []
        if length and length > 0:
            for entry in entries:
                if entry.kind in MARKED and 0 <= entry.t <= length:
                    marks.append(Mark(round(entry.t / length * width, 2), entry.kind, entry.id))
        return cls(width, bars_path(bars), marks)


def clean(peaks: Any) -> list[float]:
    if not isinstance(peaks, (list, tuple)):
        return []
    out = []
    for value in peaks:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
        out.append(min(1.0, max(0.0, number)) if math.isfinite(number) else 0.0)
    return out


def thin(values: list[float], limit: int) -> list[float]:
    """At most `limit` values, each the largest of its bucket (a peak must not vanish)."""
    if len(values) <= limit:
        return values
    size = len(values) / limit
    return [max(values[int(i * size): max(int((i + 1) * size), int(i * size) + 1)]) for i in range(limit)]


def bars_path(bars: list[float]) -> str:
    """One vertical stroke per bar, centred on the middle line; silence keeps a hairline."""
    middle = HEIGHT / 2
    parts = []
    for i, value in enumerate(bars):
        half = max(value * (middle - 2), 0.5)
        parts.append(f"M{i + 0.5:g} {middle - half:.1f}V{middle + half:.1f}")
    return "".join(parts)

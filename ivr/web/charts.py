"""Bar charts of the dashboard as geometry for server-side SVG (templates/dashboard_chart.html).

No chart library and no script: the page's Content-Security-Policy allows neither inline
scripts nor outside resources, so a chart is rectangles, ticks and labels computed here and
drawn by the template with presentation attributes and CSS classes. Every bar carries its
value as a tooltip (<title>), and the template puts the same numbers in a table.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

WIDTH, HEIGHT = 560, 230
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 44  # room for the axes' ticks and labels


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str  # CSS class: the colour of its series
    tip: str  # the tooltip: day, series and value


@dataclass
class Tick:
    at: float  # x of an x tick, y of a y tick
    label: str


@dataclass
class Chart:
    key: str  # unique on the page: ids of the title and description
    title: str
    desc: str
    x_label: str
    y_label: str
    bars: list[Bar] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (CSS class, label)
    reference: Optional[Tick] = None  # a dashed line across, e.g. the rate over the whole range
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP

    @property
    def right(self) -> int:
        return self.width - RIGHT

    @property
    def bottom(self) -> int:
        return self.height - BOTTOM


def nice_ceiling(value: float) -> tuple[float, float]:
    """(top of the axis, tick step): 1, 2 or 5 times a power of ten, four or five steps."""
    if value <= 0:
        return 1.0, 0.25
    raw = value / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return step * math.ceil(value / step - 1e-9), step


def _frame(chart: Chart, days: Sequence[dt.date], top: float, step: float,
           y_text: Callable[[float], str]) -> tuple[float, Callable[[float], float]]:
    """Ticks of both axes; the width of a day's slot and the y of a value."""
    plot_h = chart.bottom - chart.top
    slot = (chart.right - chart.left) / max(1, len(days))
    every = max(1, math.ceil(len(days) / 10))
    for i, day in enumerate(days):
        if i % every == 0:
            chart.x_ticks.append(Tick(chart.left + (i + 0.5) * slot, day.strftime("%d %b")))
    value = 0.0
    while value <= top + 1e-9:
        chart.y_ticks.append(Tick(chart.bottom - value / top * plot_h, y_text(value)))
        value += step
    return slot, lambda v: chart.bottom - v / top * plot_h


def stacked_bars(key: str, title: str, desc: str, days: Sequence[dt.date],
                 series: Sequence[tuple[str, str, Sequence[int]]], y_label: str) -> Chart:
    """One bar a day, stacked by series: (CSS class, label, value a day) each."""
    chart = Chart(key, title, desc, "Day", y_label, legend=[(css, label) for css, label, _ in series])
    totals = [sum(values[i] for _, _, values in series) for i in range(len(days))]
    top, step = nice_ceiling(max(totals, default=0))
    if step < 1:  # counts are whole: no ticks at 0.25 calls
        top, step = 4.0, 1.0
    slot, y_of = _frame(chart, days, top, step, lambda v: f"{v:,.0f}")
    for i, day in enumerate(days):
        below = 0
        for css, label, values in series:
            if values[i]:
                y = y_of(below + values[i])
                chart.bars.append(Bar(chart.left + i * slot + slot * 0.1, y, slot * 0.8, y_of(below) - y, css,
                                      f"{day.isoformat()}: {label} {values[i]:,} of {totals[i]:,}"))
                below += values[i]
    return chart


def bars(key: str, title: str, desc: str, days: Sequence[dt.date], values: Sequence[Optional[float]],
         y_label: str, fmt: Callable[[float], str], css: str, empty: str,
         overall: Optional[float] = None, floor: float = 0.0) -> Chart:
    """One bar a day; a day without a value (None) has no bar and says `empty` in its place."""
    chart = Chart(key, title, desc, "Day", y_label)
    known = [v for v in values if v is not None] + ([overall] if overall is not None else [])
    top, step = nice_ceiling(max(known + [floor], default=0))
    slot, y_of = _frame(chart, days, top, step, fmt)
    for i, (day, value) in enumerate(zip(days, values)):
        x = chart.left + i * slot + slot * 0.1
        if value is None:
            chart.bars.append(Bar(x, chart.bottom - 2, slot * 0.8, 2, "bar-none", f"{day.isoformat()}: {empty}"))
            continue
        y = y_of(value)
        chart.bars.append(Bar(x, y, slot * 0.8, max(chart.bottom - y, 0.5), css, f"{day.isoformat()}: {fmt(value)}"))
    if overall is not None:
        chart.reference = Tick(y_of(overall), f"whole range {fmt(overall)}")
    return chart

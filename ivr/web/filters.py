"""Jinja filters of the QA pages: durations, times, numbers."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from flask import Flask


def duration(seconds: Optional[float]) -> str:
    """`1:05` for 65 s; `1:02:03` past an hour; a dash for nothing."""
    if seconds is None:
        return "–"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def install(app: Flask) -> None:
    config = app.extensions["ivr"].config
    zone = config.timezone

    def local(moment: Optional[dt.datetime], fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """A stored UTC time in the installation's time zone (its first schedule's)."""
        if moment is None:
            return "–"
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return moment.astimezone(zone).strftime(fmt)

    def number(value: Any, digits: int = 0) -> str:
        if value is None:
            return "–"
        return f"{value:,.{digits}f}"

    app.jinja_env.filters.update(duration=duration, local=local, number=number)
    app.jinja_env.globals.update(timezone_name=str(zone))

"""Jinja filters of the QA pages: durations (written as events write them), times, numbers."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from flask import Flask

from ivr.events import duration_text


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

    app.jinja_env.filters.update(duration=duration_text, local=local, number=number)
    app.jinja_env.globals.update(timezone_name=str(zone))

"""Opening hours: weekly ranges, holidays and a time zone, as config.yaml's `schedules`.

Holidays are data: dates listed in the file, an .ics calendar, or a country's public
holidays from the `holidays` package (Poland's, say), in any mix.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ivr.yamldoc.diagnostics import Findings, did_you_mean
from ivr.yamldoc.loader import describe

OPEN, CLOSED, HOLIDAY = "open", "closed", "holiday"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DATE = re.compile(r"^\s*\d{4}-\d{1,2}-\d{1,2}\s*$")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class HolidayCalendar:
    """Dates the line is closed: fixed dates, yearly (month, day) pairs, and country rules."""

    dates: frozenset[dt.date] = frozenset()
    yearly: frozenset[tuple[int, int]] = frozenset()
    countries: tuple[Any, ...] = ()  # `holidays` objects; `date in obj` fills years lazily

    def __contains__(self, day: dt.date) -> bool:
        if day in self.dates or (day.month, day.day) in self.yearly:
            return True
        return any(day in country for country in self.countries)


@dataclass(frozen=True)
class Schedule:
    name: str
    timezone: ZoneInfo
    weekly: tuple[tuple[tuple[int, int], ...], ...]  # per weekday: (start, end) in minutes
    holidays: HolidayCalendar

    def state(self, at: dt.datetime) -> str:
        """OPEN, CLOSED or HOLIDAY at the given moment (naive times are taken as local)."""
        local = at.astimezone(self.timezone) if at.tzinfo else at.replace(tzinfo=self.timezone)
        if local.date() in self.holidays:
            return HOLIDAY
        minute = local.hour * 60 + local.minute
        for start, end in self.weekly[local.weekday()]:
            if start <= minute < end:
                return OPEN
        return CLOSED


def parse_schedule(name: str, value: Any, path: tuple, findings: Findings, base_dir: Path) -> Schedule | None:
    if not isinstance(value, dict):
        findings.error(path, f'schedule "{name}" must be a mapping with timezone, weekly and holidays, not {describe(value)}')
        return None
    for key in value:
        if key not in ("timezone", "weekly", "holidays", "description"):
            findings.error(path + (key,), f'"{key}" is no field of a schedule{did_you_mean(key, ["timezone", "weekly", "holidays"])}', at_key=True)
    zone = _parse_zone(value.get("timezone"), path + ("timezone",), findings, name)
    weekly = _parse_weekly(value.get("weekly"), path + ("weekly",), findings, name)
    holidays = parse_holidays(value.get("holidays"), path + ("holidays",), findings, base_dir)
    if zone is None or weekly is None or holidays is None:
        return None
    return Schedule(name, zone, weekly, holidays)


def _parse_zone(value: Any, path: tuple, findings: Findings, name: str) -> ZoneInfo | None:
    if value is None:
        findings.error(path[:-1], f'schedule "{name}" needs a timezone, such as Europe/Warsaw', at_key=True)
        return None
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        findings.error(path, f"unknown time zone {describe(value)}{_zone_hint(str(value))}")
        return None


def _zone_hint(text: str) -> str:
    """A likely zone for a misspelt one, or how zones are named."""
    advice = "; use an IANA name such as Europe/Warsaw"
    if re.match(r"^\s*[A-Za-z]{2,5}\s*[+-]\s*\d", text):  # UTC+2, CEST+1: an offset misses summer time
        return f"{advice}, which also follows summer time"
    zones = available_timezones()
    by_city = {zone.rsplit("/", 1)[-1].lower(): zone for zone in zones if "/" in zone}
    city = text.strip().replace(" ", "_").lower()
    if city in by_city:
        return f' (did you mean "{by_city[city]}"?)'
    match = difflib.get_close_matches(text, zones, n=1, cutoff=0.8) or difflib.get_close_matches(city, by_city, n=1, cutoff=0.8)
    if match:
        return f' (did you mean "{by_city.get(match[0], match[0])}"?)'
    return advice


def _parse_weekly(value: Any, path: tuple, findings: Findings, name: str):
    if value is None:
        findings.error(path[:-1], f'schedule "{name}" needs weekly hours, such as {{mon-fri: "08:00-18:00"}}', at_key=True)
        return None
    if not isinstance(value, dict):
        findings.error(path, f"weekly hours must be a mapping of days to hours, not {describe(value)}")
        return None
    days: list[list[tuple[int, int]]] = [[] for _ in DAYS]
    seen: dict[int, str] = {}
    ok = True
    for spec, hours in value.items():
        indexes = _parse_days(str(spec))
        if indexes is None:
            findings.error(path + (spec,), f'"{spec}" is not a day or day range; use mon..sun, "mon-fri" or "sat,sun"', at_key=True)
            ok = False
            continue
        ranges = _parse_ranges(hours, path + (spec,), findings)
        if ranges is None:
            ok = False
            continue
        for index in indexes:
            if index in seen:
                findings.error(path + (spec,), f'{DAYS[index]} is given twice (also in "{seen[index]}")', at_key=True)
                ok = False
            seen[index] = str(spec)
            days[index].extend(ranges)
    return tuple(tuple(sorted(d)) for d in days) if ok else None


def _parse_days(spec: str) -> list[int] | None:
    result: list[int] = []
    for part in spec.replace(" ", "").lower().split(","):
        if "-" in part:
            first, _, last = part.partition("-")
            if first not in DAYS or last not in DAYS:
                return None
            a, b = DAYS.index(first), DAYS.index(last)
            result.extend(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        elif part in DAYS:
            result.append(DAYS.index(part))
        else:
            return None
    return result


def _parse_ranges(value: Any, path: tuple, findings: Findings) -> list[tuple[int, int]] | None:
    if value in ("closed", None, False):
        return []
    items: Iterable[Any] = value if isinstance(value, list) else str(value).split(",")
    ranges = []
    for item in items:
        match = _RANGE.match(str(item))
        if not match:
            findings.error(path, f'hours must look like "08:00-18:00" (or "closed"), not {describe(item)}')
            return None
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or start > 1440 or end > 1440:
            findings.error(path, f'"{item}" is not a time of day')
            return None
        if end <= start:
            findings.error(
                path,
                f'"{item}" ends before it starts; write hours past midnight as two ranges, '
                f'"{h1:02d}:{m1:02d}-24:00" on one day and "00:00-{h2:02d}:{m2:02d}" on the next',
            )
            return None
        ranges.append((start, end))
    return ranges


def parse_holidays(value: Any, path: tuple, findings: Findings, base_dir: Path) -> HolidayCalendar | None:
    """Holidays: a list of dates and/or {country: PL} / {ics: file}, or one such mapping."""
    if value is None:
        return HolidayCalendar()
    items = value if isinstance(value, list) else [value]
    dates: set[dt.date] = set()
    yearly: set[tuple[int, int]] = set()
    countries: list[Any] = []
    ok = True
    for i, item in enumerate(items):
        where = path + (i,) if isinstance(value, list) else path
        if isinstance(item, dt.datetime):
            item = item.date()
        if isinstance(item, dt.date):
            dates.add(item)
        elif isinstance(item, str) and (day := _iso_date(item)):
            dates.add(day)
        elif isinstance(item, str) and _DATE.match(item):
            findings.error(where, f"holiday {describe(item)} is not a real date ({_date_problem(item)}); write year-month-day, such as 2026-12-24")
            ok = False
        elif isinstance(item, dict):
            ok &= _holiday_source(item, where, findings, base_dir, dates, yearly, countries)
        else:
            findings.error(where, f"a holiday must be a date (2026-12-24), {{country: PL}} or {{ics: file.ics}}, not {describe(item)}")
            ok = False
    return HolidayCalendar(frozenset(dates), frozenset(yearly), tuple(countries)) if ok else None


def _holiday_source(item: dict, path: tuple, findings: Findings, base_dir: Path, dates, yearly, countries) -> bool:
    ok = True
    for key, val in item.items():
        if key == "country":
            country = _country(str(val), item.get("subdivision"))
            if country is None:
                findings.error(path + (key,), f"no public holidays are known for country {describe(val)}; use a code such as PL or DE{_country_hint(val)}")
                ok = False
            else:
                countries.append(country)
        elif key == "ics":
            file = (base_dir / str(val))
            try:
                fixed, recurring = read_ics(file.read_text(encoding="utf-8"))
            except OSError:
                findings.error(path + (key,), f"cannot read holiday calendar {describe(val)} (looked at {file.name} beside config.yaml)")
                ok = False
                continue
            except ValueError as exc:
                findings.error(path + (key,), f"holiday calendar {describe(val)}: {exc}")
                ok = False
                continue
            dates.update(fixed)
            yearly.update(recurring)
        elif key == "dates":
            sub = parse_holidays(val, path + (key,), findings, base_dir)
            if sub is None:
                ok = False
            else:
                dates.update(sub.dates)
        elif key != "subdivision":
            findings.error(path + (key,), f'"{key}" is no holiday source{did_you_mean(key, ["country", "ics", "dates"])}; use country, ics or dates', at_key=True)
            ok = False
    return ok


def _country(code: str, subdivision: Any) -> Any | None:
    import holidays  # imported here: it is large, and only schedules with a country need it

    try:
        return holidays.country_holidays(code.upper(), subdiv=subdivision)
    except (NotImplementedError, KeyError, AttributeError):
        return None


def _country_hint(value: Any) -> str:
    """' (Poland is PL)' when a country is written by name instead of its code."""
    try:
        from holidays.registry import COUNTRIES
    except ImportError:  # pragma: no cover - the registry moved in another version
        return ""
    entry = COUNTRIES.get(str(value).strip().lower().replace(" ", "_"))
    return f" ({entry[0]} is {entry[1]})" if entry else ""


def _date_problem(text: str) -> str:
    """Why year-month-day digits are no date ("month must be in 1..12")."""
    try:
        dt.date(*(int(part) for part in text.strip().split("-")))
    except ValueError as exc:
        return str(exc)
    return "unknown"  # pragma: no cover - called for dates _iso_date refused only


def _iso_date(text: str) -> dt.date | None:
    """The date of "2026-12-24" (or "2026-1-6", as YAML also reads dates)."""
    if not _DATE.match(text):
        return None
    try:
        return dt.date(*(int(part) for part in text.strip().split("-")))
    except ValueError:
        return None


def read_ics(text: str) -> tuple[set[dt.date], set[tuple[int, int]]]:
    """All-day events of an iCalendar file: fixed dates, and (month, day) of yearly ones."""
    fixed: set[dt.date] = set()
    yearly: set[tuple[int, int]] = set()
    # Unfold continuation lines (RFC 5545 3.1) before reading properties.
    lines = re.sub(r"\r?\n[ \t]", "", text).splitlines()
    if not any(line.strip() == "BEGIN:VCALENDAR" for line in lines):
        raise ValueError("not an iCalendar file (no BEGIN:VCALENDAR)")
    start: dt.date | None = None
    rule = ""
    for line in lines:
        name, _, val = line.partition(":")
        prop = name.split(";")[0].upper()
        if prop == "BEGIN" and val.strip() == "VEVENT":
            start, rule = None, ""
        elif prop == "DTSTART":
            digits = val.strip()[:8]
            try:
                start = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
            except ValueError:
                raise ValueError(f"bad DTSTART {val.strip()!r}") from None
        elif prop == "RRULE":
            rule = val.upper()
        elif prop == "END" and val.strip() == "VEVENT" and start is not None:
            if "FREQ=YEARLY" in rule:
                yearly.add((start.month, start.day))
            else:
                fixed.add(start)
    return fixed, yearly

"""Opening hours (ivr.settings.hours): weekly ranges and their boundary minutes, Saturdays and
closed Sundays, holidays from listed dates, a country's public holidays and an .ics
calendar, time zones, and naive times read in the schedule's own zone."""

import datetime as dt
import textwrap
from zoneinfo import ZoneInfo

import pytest

from ivr.settings.config import check_config
from ivr.settings.hours import CLOSED, HOLIDAY, OPEN, HolidayCalendar, read_ics

WARSAW = ZoneInfo("Europe/Warsaw")
UTC = dt.timezone.utc


def schedule(tmp_path, body: str, name: str = "office"):
    """The schedule `name` of a config.yaml holding `body` under schedules/name."""
    text = "schedules:\n  " + name + ":\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    config, findings = check_config(path)
    assert config is not None, [str(d) for d in findings]
    return config.schedules[name]


OFFICE = """
timezone: Europe/Warsaw
weekly: {mon-fri: "08:00-18:00", sat: "09:00-13:00"}
holidays: [2026-12-24, 2026-12-25]
"""


@pytest.fixture
def office(tmp_path):
    return schedule(tmp_path, OFFICE)


def warsaw(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=WARSAW)


@pytest.mark.parametrize(
    "moment, state",
    [
        (warsaw(2026, 11, 24, 7, 59), CLOSED),  # Tuesday, a minute before opening
        (warsaw(2026, 11, 24, 8, 0), OPEN),  # the opening minute is open
        (warsaw(2026, 11, 24, 12, 0), OPEN),
        (warsaw(2026, 11, 24, 17, 59), OPEN),
        (warsaw(2026, 11, 24, 17, 59, 59), OPEN),
        (warsaw(2026, 11, 24, 18, 0), CLOSED),  # the closing minute is closed
        (warsaw(2026, 11, 24, 23, 0), CLOSED),
        (warsaw(2026, 11, 27, 10, 0), OPEN),  # Friday
        (warsaw(2026, 11, 28, 8, 59), CLOSED),  # Saturday: 09:00-13:00
        (warsaw(2026, 11, 28, 9, 0), OPEN),
        (warsaw(2026, 11, 28, 12, 59), OPEN),
        (warsaw(2026, 11, 28, 13, 0), CLOSED),
        (warsaw(2026, 11, 29, 10, 0), CLOSED),  # Sunday: not listed, so closed
        (warsaw(2026, 11, 30, 8, 0), OPEN),  # Monday
    ],
)
def test_weekly_ranges(office, moment, state):
    assert office.state(moment) == state


def test_listed_holidays_close_the_whole_day(office):
    assert office.state(warsaw(2026, 12, 24, 10, 0)) == HOLIDAY
    assert office.state(warsaw(2026, 12, 25, 0, 0)) == HOLIDAY
    assert office.state(warsaw(2026, 12, 25, 23, 59)) == HOLIDAY
    assert office.state(warsaw(2026, 12, 23, 10, 0)) == OPEN
    assert office.state(warsaw(2026, 12, 28, 10, 0)) == OPEN
    # a listed date is that year's only
    assert office.state(warsaw(2027, 12, 24, 10, 0)) == OPEN


def test_country_holidays(tmp_path):
    poland = schedule(tmp_path, """
        timezone: Europe/Warsaw
        weekly: {mon-fri: "08:00-18:00"}
        holidays: {country: PL}
    """)
    assert poland.state(warsaw(2026, 11, 11, 10, 0)) == HOLIDAY  # Independence Day, a Wednesday
    assert poland.state(warsaw(2026, 11, 12, 10, 0)) == OPEN
    assert poland.state(warsaw(2026, 12, 24, 10, 0)) == HOLIDAY  # Christmas Eve, a holiday since 2025
    assert poland.state(warsaw(2026, 12, 25, 10, 0)) == HOLIDAY
    assert poland.state(warsaw(2027, 3, 29, 10, 0)) == HOLIDAY  # Easter Monday: a moving feast, next year
    assert poland.state(warsaw(2026, 12, 31, 10, 0)) == OPEN


def test_country_and_listed_dates_mix(tmp_path):
    mixed = schedule(tmp_path, """
        timezone: Europe/Warsaw
        weekly: {mon-fri: "08:00-18:00"}
        holidays:
          - {country: PL}
          - 2026-12-31
    """)
    assert mixed.state(warsaw(2026, 12, 31, 10, 0)) == HOLIDAY
    assert mixed.state(warsaw(2026, 11, 11, 10, 0)) == HOLIDAY
    assert mixed.state(warsaw(2026, 12, 30, 10, 0)) == OPEN


ICS = (
    "BEGIN:VCALENDAR\r\n"
    "VERSION:2.0\r\n"
    "PRODID:-//Example//Holidays//EN\r\n"
    "BEGIN:VEVENT\r\n"
    "DTSTART;VALUE=DATE:20200615\r\n"
    "RRULE:FREQ=YEARLY\r\n"
    "SUMMARY:Company day: every year on the fifteenth of June, written long enough\r\n"
    "  to be folded\r\n"
    "END:VEVENT\r\n"
    "BEGIN:VEVENT\r\n"
    "DTSTART;VALUE=DATE:20260814\r\n"
    "SUMMARY:Bridge day\r\n"
    "END:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def test_ics_calendar_yearly_and_fixed(tmp_path):
    (tmp_path / "holidays.ics").write_text(ICS, encoding="utf-8")
    office = schedule(tmp_path, """
        timezone: Europe/Warsaw
        weekly: {mon-sun: "08:00-18:00"}
        holidays: {ics: holidays.ics}
    """)
    assert office.state(warsaw(2026, 6, 15, 10, 0)) == HOLIDAY  # yearly rule
    assert office.state(warsaw(2031, 6, 15, 10, 0)) == HOLIDAY
    assert office.state(warsaw(2026, 6, 16, 10, 0)) == OPEN
    assert office.state(warsaw(2026, 8, 14, 10, 0)) == HOLIDAY  # fixed date
    assert office.state(warsaw(2027, 8, 14, 10, 0)) == OPEN


def test_read_ics():
    fixed, yearly = read_ics(ICS)
    assert fixed == {dt.date(2026, 8, 14)}
    assert yearly == {(6, 15)}
    with pytest.raises(ValueError):
        read_ics("BEGIN:VEVENT\nEND:VEVENT\n")


def test_holiday_calendar_membership():
    calendar = HolidayCalendar(frozenset({dt.date(2026, 5, 4)}), frozenset({(1, 1)}))
    assert dt.date(2026, 5, 4) in calendar
    assert dt.date(2027, 5, 4) not in calendar
    assert dt.date(2030, 1, 1) in calendar


def test_time_zone_conversion(tmp_path, office):
    in_utc = schedule(tmp_path, """
        timezone: UTC
        weekly: {mon-fri: "08:00-18:00"}
    """, name="utc")
    # 07:30 UTC is 08:30 in Warsaw in winter (UTC+1): the office is open, a UTC office not yet
    moment = dt.datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    assert office.state(moment) == OPEN
    assert in_utc.state(moment) == CLOSED
    # 17:30 UTC is 18:30 in Warsaw: closed there, open in UTC
    moment = dt.datetime(2026, 11, 24, 17, 30, tzinfo=UTC)
    assert office.state(moment) == CLOSED
    assert in_utc.state(moment) == OPEN
    # summer time (UTC+2): 06:30 UTC is 08:30 in Warsaw, 16:30 UTC is 18:30
    assert office.state(dt.datetime(2026, 7, 14, 6, 30, tzinfo=UTC)) == OPEN
    assert office.state(dt.datetime(2026, 7, 14, 16, 30, tzinfo=UTC)) == CLOSED
    # an offset other than UTC: 10:00 in New York is 16:00 in Warsaw
    assert office.state(dt.datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("America/New_York"))) == OPEN
    assert office.state(dt.datetime(2026, 11, 24, 13, 0, tzinfo=ZoneInfo("America/New_York"))) == CLOSED


def test_holiday_is_the_local_date(office):
    # 23:30 UTC on the 23rd is already the 24th in Warsaw
    assert office.state(dt.datetime(2026, 12, 23, 23, 30, tzinfo=UTC)) == HOLIDAY
    assert office.state(dt.datetime(2026, 12, 25, 23, 30, tzinfo=UTC)) == CLOSED  # 00:30 on the 26th


def test_naive_times_are_read_in_the_schedules_zone(office):
    # were 07:30 read as UTC, it would be 08:30 in Warsaw and open
    assert office.state(dt.datetime(2026, 11, 24, 7, 30)) == CLOSED
    assert office.state(dt.datetime(2026, 11, 24, 8, 0)) == OPEN
    assert office.state(dt.datetime(2026, 11, 24, 17, 30)) == OPEN
    assert office.state(dt.datetime(2026, 12, 24, 10, 0)) == HOLIDAY


def test_several_ranges_a_day_and_closed_days(tmp_path):
    lunch = schedule(tmp_path, """
        timezone: Europe/Warsaw
        weekly:
          mon-fri: "08:00-12:00, 13:00-17:00"
          sat: closed
          sun: "00:00-24:00"
    """)
    assert lunch.state(warsaw(2026, 11, 24, 11, 59)) == OPEN
    assert lunch.state(warsaw(2026, 11, 24, 12, 0)) == CLOSED
    assert lunch.state(warsaw(2026, 11, 24, 12, 59)) == CLOSED
    assert lunch.state(warsaw(2026, 11, 24, 13, 0)) == OPEN
    assert lunch.state(warsaw(2026, 11, 28, 10, 0)) == CLOSED
    assert lunch.state(warsaw(2026, 11, 29, 0, 0)) == OPEN
    assert lunch.state(warsaw(2026, 11, 29, 23, 59)) == OPEN


def test_day_lists(tmp_path):
    split = schedule(tmp_path, """
        timezone: Europe/Warsaw
        weekly: {"mon,wed": "10:00-11:00", "sat-sun": "10:00-11:00"}
    """)
    opened = [d for d in range(23, 30) if split.state(warsaw(2026, 11, d, 10, 30)) == OPEN]
    assert opened == [23, 25, 28, 29]  # Monday, Wednesday, Saturday, Sunday


def test_repository_config_schedule():
    from helpers import REPO
    from ivr.settings.config import load_config

    office = load_config(REPO / "config.yaml").schedules["office"]
    assert office.state(dt.datetime(2026, 11, 24, 10, 0, tzinfo=WARSAW)) == OPEN
    assert office.state(dt.datetime(2026, 12, 25, 10, 0, tzinfo=WARSAW)) == HOLIDAY
    assert office.state(dt.datetime(2026, 11, 11, 10, 0, tzinfo=WARSAW)) == HOLIDAY

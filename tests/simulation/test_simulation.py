"""Simulated calls (ivr.simulation.simulate): times given to `--at` and journey tests, and
`simulate` placing a call on the scripted channel with a virtual clock."""

import datetime as dt

import pytest

from helpers import make_flow
from ivr.simulation.simulate import parse_time


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-24T10:00:00+01:00", dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))),
        ("2026-11-24T07:30:00Z", dt.datetime(2026, 11, 24, 7, 30, tzinfo=dt.timezone.utc)),
        ("2026-11-24T08:00", dt.datetime(2026, 11, 24, 8, 0)),
        ("2026-11-24", dt.datetime(2026, 11, 24, 10, 0)),  # a date alone means 10:00 that day
        (" 2026-12-25 ", dt.datetime(2026, 12, 25, 10, 0)),
        (dt.date(2026, 12, 25), dt.datetime(2026, 12, 25, 10, 0)),
        (dt.datetime(2026, 12, 25, 8, 0), dt.datetime(2026, 12, 25, 8, 0)),
        (None, None),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-11-24T25:00", "24.11.2026"])
def test_parse_time_rejects_other_text(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_simulate_places_the_call_at_the_given_time(run_flow):
    text = make_flow(
        """
        check:
          type: hours
          schedule: office
          open: opened
          closed: shut
        opened:
          type: hangup
        shut:
          type: hangup
        """,
        start="check",
    )
    assert run_flow(text, at=parse_time("2026-11-24")).call.path == ["check", "opened"]
    sim = run_flow(text, at=parse_time("2026-11-24T20:00:00+01:00"))
    assert sim.call.path == ["check", "shut"]
    assert sim.call.started_at == dt.datetime(2026, 11, 24, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert sim.channel.clock is sim.call.clock

"""Nodes that branch without asking the caller: hours (open, closed, holiday by the
call's clock) and route (caller segment, a variable's pattern, the caller's number,
the language, otherwise)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from helpers import make_flow, of_type
from ivr import events as ev

WARSAW = ZoneInfo("Europe/Warsaw")

HOURS = make_flow(
    """
    check:
      type: hours
      schedule: office
      open: opened
      closed: shut
      holiday: feast
    opened:
      type: hangup
    shut:
      type: hangup
    feast:
      type: hangup
    """,
    start="check",
)


@pytest.mark.parametrize(
    "at, state, target",
    [
        (dt.datetime(2026, 11, 24, 10, 0, tzinfo=WARSAW), "open", "opened"),
        (dt.datetime(2026, 11, 24, 8, 0, tzinfo=WARSAW), "open", "opened"),
        (dt.datetime(2026, 11, 24, 18, 0, tzinfo=WARSAW), "closed", "shut"),
        (dt.datetime(2026, 11, 29, 10, 0, tzinfo=WARSAW), "closed", "shut"),  # Sunday
        (dt.datetime(2026, 12, 25, 10, 0, tzinfo=WARSAW), "holiday", "feast"),
        (dt.datetime(2026, 11, 24, 7, 30, tzinfo=dt.timezone.utc), "open", "opened"),  # 08:30 in Warsaw
        (dt.datetime(2026, 11, 24, 7, 30), "closed", "shut"),  # naive: office time
    ],
)
def test_hours_node_branches_on_the_calls_clock(run_flow, at, state, target):
    call = run_flow(HOURS, at=at).call
    assert call.path == ["check", target]
    [hours] = of_type(call, ev.HOURS)
    assert hours.data == {"schedule": "office", "state": state}
    assert of_type(call, ev.NODE_ENTERED)[1].data["via"] == state


def test_holiday_goes_to_closed_when_the_node_names_no_holiday_target(run_flow):
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
    call = run_flow(text, at=dt.datetime(2026, 12, 24, 10, 0, tzinfo=WARSAW)).call
    assert call.path == ["check", "shut"]
    assert of_type(call, ev.HOURS)[0].data["state"] == "holiday"


def test_call_started_event_records_the_moment(run_flow):
    at = dt.datetime(2026, 11, 24, 10, 0, tzinfo=WARSAW)
    call = run_flow(HOURS, at=at, caller="+48221234567").call
    started = call.events[0]
    assert started.data["at"] == "2026-11-24T10:00:00+01:00"
    assert started.data["caller"] == "+48221234567"
    assert started.data["language"] == "pl"
    assert started.data["version"] == call.flow.version
    assert started.node is None


ROUTE = make_flow(
    r"""
    r:
      type: route
      when:
        - {segment: vip, next: vip}
        - {var: account, matches: "^9", next: business}
        - {caller: "^\\+44", next: uk}
        - {language: en, next: english}
      otherwise: other
    vip:
      type: hangup
    business:
      type: hangup
    uk:
      type: hangup
    english:
      type: hangup
    other:
      type: hangup
    """,
    start="r",
)


@pytest.mark.parametrize("caller", ["+48 22 555 01 01", "0225550101", "48225550101", "+48225550101"])
def test_segment_matches_numbers_written_differently(run_flow, caller):
    call = run_flow(ROUTE, caller=caller).call
    assert call.path == ["r", "vip"]
    assert of_type(call, ev.ROUTE)[0].data == {"rule": "segment vip"}
    assert of_type(call, ev.NODE_ENTERED)[1].data["via"] == "segment vip"


@pytest.mark.parametrize("caller", ["", "anonymous", "+48 22 555 01 02"])
def test_segment_never_matches_an_empty_or_other_number(run_flow, caller):
    assert run_flow(ROUTE, caller=caller).call.path == ["r", "other"]


def test_var_rule_matches_the_variables_pattern(run_flow):
    assert run_flow(ROUTE, variables={"account": "912345"}).call.path == ["r", "business"]
    assert run_flow(ROUTE, variables={"account": "123459"}).call.path == ["r", "other"]
    assert run_flow(ROUTE, variables={}).call.path == ["r", "other"]


def test_caller_rule_matches_the_raw_number(run_flow):
    call = run_flow(ROUTE, caller="+44 20 7946 0000").call
    assert call.path == ["r", "uk"]
    assert of_type(call, ev.ROUTE)[0].data == {"rule": "caller ~ ^\\+44"}
    assert run_flow(ROUTE, caller="0044 20 7946 0000").call.path == ["r", "other"]


def test_language_rule(run_flow):
    assert run_flow(ROUTE, language="en").call.path == ["r", "english"]
    assert run_flow(ROUTE, language="pl").call.path == ["r", "other"]


def test_first_matching_rule_wins(run_flow):
    call = run_flow(ROUTE, caller="+48 22 555 01 01", variables={"account": "9"}, language="en").call
    assert call.path == ["r", "vip"]
    call = run_flow(ROUTE, caller="+44 1", variables={"account": "9"}, language="en").call
    assert call.path == ["r", "business"]


def test_otherwise(run_flow):
    call = run_flow(ROUTE).call
    assert call.path == ["r", "other"]
    assert of_type(call, ev.ROUTE)[0].data == {"rule": "otherwise"}
    assert of_type(call, ev.NODE_ENTERED)[1].data["via"] == "otherwise"


def test_unknown_start_language_falls_back_to_the_flows_first(run_flow):
    call = run_flow(ROUTE, language="de").call
    assert call.language == "pl"
    assert call.path == ["r", "other"]

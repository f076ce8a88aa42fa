"""The callback node: the caller keeps their number or types another, a withheld number
types one (or is not offered a call-back), wrong and missing numbers use attempts, the
booking carries the place in line and the promise; and the node's checks, each at its
file:line:col."""

from __future__ import annotations

import datetime as dt

import pytest

from helpers import compile_flows, make_flow, of_type
from ivr import events as ev
from ivr.errors import FlowError

CALLER = "+48221234567"
AT = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone.utc)


def flow(drop: tuple = (), **fields: object) -> str:
    """The test flow; `drop`: callback fields left out, `fields`: callback fields set (last)."""
    text = _flow()
    lines = [line for line in text.splitlines() if not any(line.startswith(f"    {name}:") for name in (*drop, *fields))]
    at = lines.index("    declined: leave_msg") + 1
    lines[at:at] = [f"    {name}: {value}" for name, value in fields.items()]
    return "\n".join(lines) + "\n"


def _flow() -> str:
    return make_flow(
        f"""
        t:
          type: transfer
          department: sales
          max_wait: 1m
          on_timeout: cb
        cb:
          type: callback
          prompt: offer
          department: sales
          number_prompt: menu
          type_prompt: enter
          invalid_prompt: short
          timeout_prompt: no_input
          attempts: 2
          within: 2h
          schedule: office
          call_attempts: 4
          retry_pause: 2m
          priority: 5
          confirm_prompt: booked
          next: bye
          declined: leave_msg
        leave_msg:
          type: voicemail
          prompt: leave
          mailbox: sales
          next: bye
        bye:
          type: hangup
          prompt: bye
        """,
        start="t",
    )


def test_the_caller_keeps_their_own_number(run_flow, config):
    sim = run_flow(flow(), "1 1", caller=CALLER, queue=["timeout"], at=AT)
    call = sim.call
    [booked] = sim.channel.callbacks
    assert (booked.number, booked.department.name, booked.call_id) == (CALLER, "sales", call.id)
    assert (booked.schedule, booked.attempts, booked.retry_pause, booked.priority) == ("office", 4, 120.0, 5)
    # the place in line: when the caller joined the sales queue, a minute before the offer
    [transfer] = of_type(call, ev.TRANSFER)
    assert booked.place_at == call.started_at + dt.timedelta(seconds=transfer.t)
    assert booked.booked_at - booked.place_at >= dt.timedelta(minutes=1)
    assert booked.due_by == booked.booked_at + dt.timedelta(hours=2)
    assert call.heard == ["offer", "menu", "booked", "bye"]
    assert of_type(call, ev.CALLBACK)[0].data == {"offered": True, "accepted": True, "department": "sales",
                                                  "number_from": "caller", "within": 7200.0}
    assert call.outcome == ev.Outcome.CALLBACK


def test_the_caller_types_another_number(run_flow):
    sim = run_flow(flow(), "1 2 601999888#", caller=CALLER, queue=["timeout"], at=AT)
    [booked] = sim.channel.callbacks
    assert booked.number == "601999888"
    assert sim.call.heard == ["offer", "menu", "enter", "booked", "bye"]
    assert of_type(sim.call, ev.CALLBACK)[0].data["number_from"] == "typed"
    assert of_type(sim.call, ev.INPUT)[0].data == {"digits": "601999888", "var": "callback_number", "sensitive": False}


def test_a_short_number_and_a_wrong_key_use_attempts(run_flow):
    sim = run_flow(flow(), "1 7 2 123# 601999888#", caller=CALLER, queue=["timeout"], at=AT)
    assert sim.channel.callbacks[0].number == "601999888"
    assert sim.call.heard == ["offer", "menu", "short", "menu", "enter", "short", "enter", "booked", "bye"]
    assert [e.data.get("key") or e.data.get("digits") for e in of_type(sim.call, ev.INVALID)] == ["7", "123"]


def test_no_number_after_the_last_attempt_books_nothing(run_flow):
    sim = run_flow(flow(), "1 2 - -", caller=CALLER, queue=["timeout"], at=AT)
    assert sim.channel.callbacks == []
    assert of_type(sim.call, ev.CALLBACK)[0].data == {"offered": True, "accepted": False, "reason": "no number to call"}
    assert sim.call.outcome == ev.Outcome.VOICEMAIL


@pytest.mark.parametrize("caller", ["anonymous", "", "Restricted", "100"])
def test_a_withheld_number_types_one(run_flow, caller):
    sim = run_flow(flow(), "1 221234567#", caller=caller, queue=["timeout"], at=AT)
    assert sim.channel.callbacks[0].number == "221234567"
    assert sim.call.heard == ["offer", "enter", "booked", "bye"]  # no "the number you call from"


def test_without_a_type_prompt_a_withheld_number_is_not_offered(run_flow):
    text = flow(drop=("number_prompt", "type_prompt"))
    sim = run_flow(text, "1", caller="anonymous", queue=["timeout"], at=AT)
    assert of_type(sim.call, ev.CALLBACK)[0].data == {"offered": False, "reason": "no caller number"}
    assert sim.channel.callbacks == []
    # and a caller with a number is booked on it without being asked
    sim = run_flow(text, "1", caller=CALLER, queue=["timeout"], at=AT)
    assert sim.channel.callbacks[0].number == CALLER and sim.call.heard == ["offer", "booked", "bye"]


def test_only_digits_reach_the_booking(run_flow):
    sim = run_flow(flow(), "1 1", caller="+48 (22) 123-45-67", queue=["timeout"], at=AT)
    assert sim.channel.callbacks[0].number == "+48221234567"


@pytest.mark.parametrize("fields, where, message", [
    ({"min_digits": 12, "max_digits": 9}, "min_digits", "min_digits (12) of callback \"cb\" is more than max_digits (9)"),
    ({"other_key": '"1"'}, "other_key", 'other_key of callback "cb" is accept_key ("1") too'),
    ({"within": "30s"}, "within", '"within" of callback "cb" is the promised time of the call-back: from 1m to 168h, not 30s'),
    ({"retry_pause": "5s"}, "retry_pause", '"retry_pause" of callback "cb" must be at least 10s'),
    ({"call_attempts": 0}, "call_attempts", '"call_attempts" of callback "cb" must be a whole number from 1 to 10, not 0'),
    ({"schedule": "ofice"}, "schedule", 'did you mean "office"?'),
])
def test_bad_fields_are_reported_where_they_stand(config, fields, where, message):
    text = flow(**fields)
    with pytest.raises(FlowError) as raised:
        compile_flows(config, text)
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines, 1) if line.strip().startswith(f"{where}:"))
    found = [str(d) for d in raised.value.diagnostics]
    assert any(d.startswith(f"t.yaml:{row}:") and message in d for d in found), found


def test_a_number_prompt_needs_a_type_prompt(config):
    text = flow(drop=("type_prompt",))
    with pytest.raises(FlowError) as raised:
        compile_flows(config, text)
    assert any("has number_prompt but no type_prompt" in str(d) for d in raised.value.diagnostics)

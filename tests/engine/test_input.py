"""Input nodes: minimum and maximum digits, the terminator, time-outs and too short
entries; sensitive input pauses the recording around the prompt and the typing, and its
digits never show in an event, a JSON line or the call's variables, while route rules
still match the real digits."""

import json

import pytest

from helpers import make_flow, of_type, types
from ivr.channels.scripted import ScriptedChannel
from ivr.clock import VirtualClock
from ivr import events as ev
from ivr.events import Secret


def input_flow(sensitive: bool) -> str:
    return make_flow(
        f"""
        acct:
          type: input
          prompt: enter
          min_digits: 6
          max_digits: 10
          terminator: "#"
          timeout: 3s
          attempts: 2
          invalid_prompt: short
          timeout_prompt: no_input
          sensitive: {str(sensitive).lower()}
          save_as: account
          next: check
          on_fail: failed
        check:
          type: route
          when:
            - {{var: account, matches: "^9", next: business}}
          otherwise: normal
        business:
          type: hangup
          prompt: bye
        normal:
          type: hangup
        failed:
          type: hangup
        """,
        start="acct",
    )


PLAIN = input_flow(False)
SENSITIVE = input_flow(True)


def test_digits_ended_by_the_terminator_are_saved(run_flow):
    sim = run_flow(PLAIN, "123456#")
    call = sim.call
    assert call.vars == {"account": "123456"}
    [entry] = of_type(call, ev.INPUT)
    assert entry.data == {"digits": "123456", "var": "account", "sensitive": False}
    assert call.path == ["acct", "check", "normal"]
    assert call.heard == ["enter"]


def test_input_stops_at_max_digits(run_flow):
    sim = run_flow(PLAIN, "12345678901234")
    assert sim.call.vars["account"] == "1234567890"
    assert sim.call.path == ["acct", "check", "normal"]


def test_terminator_ends_the_input_early_and_is_not_kept(run_flow):
    sim = run_flow(PLAIN, "1234567#89")
    assert sim.call.vars["account"] == "1234567"


def test_exactly_min_digits_is_enough(run_flow):
    assert run_flow(PLAIN, "912345#").call.path == ["acct", "check", "business"]


def test_time_out_uses_an_attempt_and_plays_the_timeout_prompt(run_flow):
    sim = run_flow(PLAIN, "- 123456#")
    call = sim.call
    [timeout] = of_type(call, ev.TIMEOUT)
    assert timeout.data == {"attempt": 1, "attempts": 2}
    assert call.heard == ["enter", "no_input", "enter"]
    assert call.vars["account"] == "123456"


def test_too_short_entry_is_invalid(run_flow):
    sim = run_flow(PLAIN, "12345# 123456#")
    call = sim.call
    [invalid] = of_type(call, ev.INVALID)
    assert invalid.data == {"digits": "12345", "attempt": 1, "attempts": 2}
    assert call.heard == ["enter", "short", "enter"]
    assert call.path == ["acct", "check", "normal"]


def test_terminator_alone_is_no_entry(run_flow):
    sim = run_flow(PLAIN, "# 123456#")
    assert [e.type for e in sim.call.events if e.type in (ev.TIMEOUT, ev.INVALID)] == [ev.TIMEOUT]


def test_after_the_last_attempt_the_call_goes_to_on_fail(run_flow):
    sim = run_flow(PLAIN, "123# -")
    call = sim.call
    assert call.path == ["acct", "failed"]
    assert "account" not in call.vars
    assert of_type(call, ev.NODE_ENTERED)[-1].data["via"] == "fail"
    assert call.heard == ["enter", "short", "enter", "no_input"]


def test_digits_typed_during_the_prompt_count(run_flow):
    sim = run_flow(PLAIN, "123456#", barge_in=True)
    assert sim.call.vars["account"] == "123456"
    assert sim.channel.played == [("enter", "pl")]


class LoggingChannel(ScriptedChannel):
    """Notes every channel call with the recording state at that moment."""

    def __post_init__(self):
        super().__post_init__()
        self.log = []

    async def play(self, prompt, language, escape=""):
        self.log.append(("play", prompt.name, self.recording_paused))
        return await super().play(prompt, language, escape)

    async def read_digits(self, max_digits, timeout, terminator=None, first=""):
        self.log.append(("read", self.recording_paused))
        return await super().read_digits(max_digits, timeout, terminator, first)

    async def pause_recording(self):
        self.log.append(("pause",))
        await super().pause_recording()

    async def resume_recording(self):
        self.log.append(("resume",))
        await super().resume_recording()


def test_sensitive_input_pauses_the_recording_before_the_prompt(run_flow):
    channel = LoggingChannel("12# 987654#", VirtualClock())
    sim = run_flow(SENSITIVE, channel=channel)
    assert channel.log == [
        ("pause",),
        ("play", "enter", True),
        ("read", True),
        ("play", "short", True),
        ("play", "enter", True),
        ("read", True),
        ("resume",),
        ("play", "bye", False),
    ]
    assert channel.recording_paused is False
    seq = [e.type for e in sim.call.events if e.type in (ev.RECORDING, ev.PROMPT, ev.INPUT, ev.INVALID)]
    assert seq == [ev.RECORDING, ev.PROMPT, ev.INVALID, ev.PROMPT, ev.PROMPT, ev.INPUT, ev.RECORDING, ev.PROMPT]
    assert [e.data for e in of_type(sim.call, ev.RECORDING)] == [{"state": "paused"}, {"state": "resumed"}]
    assert all(e.node == "acct" for e in of_type(sim.call, ev.RECORDING))


def test_sensitive_digits_are_masked_everywhere_but_still_routed(run_flow):
    sim = run_flow(SENSITIVE, "98# 987654#")
    call = sim.call
    # the real digits decide the route: business accounts start with 9
    assert call.path == ["acct", "check", "business"]
    assert call.var_text("account") == "987654"
    assert call.vars["account"] == Secret("987654")
    assert call.safe_vars() == {"account": "******"}
    [entry] = of_type(call, ev.INPUT)
    assert entry.to_dict()["digits"] == "******"
    assert entry.data["sensitive"] is True
    [invalid] = of_type(call, ev.INVALID)
    assert invalid.to_dict()["digits"] == "**"
    for event in call.events:
        line = event.to_json()
        json.loads(line)
        assert "987654" not in line and "98765" not in line
        assert "987654" not in repr(event) and "987654" not in str(event.to_dict())
    [route] = of_type(call, ev.ROUTE)
    assert route.data == {"rule": "account ~ ^9"}


def test_caller_hanging_up_during_sensitive_input_resumes_the_recording(run_flow):
    sim = run_flow(SENSITIVE, "hangup")
    call = sim.call
    assert call.outcome == ev.Outcome.ABANDONED
    assert sim.channel.recording_paused is False
    assert types(call)[-4:] == [ev.PROMPT, ev.RECORDING, ev.CALLER_HANGUP, ev.OUTCOME]
    assert of_type(call, ev.CALLER_HANGUP)[0].node == "acct"


def test_secret_never_shows_its_value():
    secret = Secret("4111111111")
    assert str(secret) == "**********"
    assert repr(secret) == "**********"
    assert f"{secret}" == "**********"
    assert secret.reveal() == "4111111111"
    assert secret == Secret("4111111111") and secret != Secret("4111111112")
    assert secret != "4111111111"


@pytest.mark.parametrize("value", [Secret("1234"), {"nested": Secret("1234")}, [Secret("1234")]])
def test_secrets_anywhere_in_event_data_are_masked_in_json(value):
    event = ev.Event("c", 0, 0.0, ev.VARIABLE, "t", "n", {"value": value})
    assert "1234" not in event.to_json()
    assert "****" in event.to_json()

"""Menu nodes: keys after and during the prompt, time-outs, wrong keys, attempts, the
repeat key, options that switch the language or set variables, and language menus that
play their prompt once per flow language."""

import pytest

from helpers import make_flow, of_type, types
from ivr.channels.scripted import KEY_SECONDS, prompt_seconds
from ivr import events as ev
from ivr.engine.nodes.menu import FREE_REPEATS

MENU = make_flow(
    """
    main:
      type: menu
      prompt: menu
      options:
        "1": one
        "2": {next: two, language: en}
        "3": {next: one, set: {topic: delivery, level: 2}}
      repeat_key: "*"
      timeout: 4s
      attempts: 3
      invalid_prompt: invalid
      timeout_prompt: no_input
      on_fail: failed
    one:
      type: hangup
      prompt: bye
    two:
      type: hangup
      prompt: bye
    failed:
      type: hangup
    """,
    start="main",
)

MENU_SECONDS = prompt_seconds("menu po polsku.")


def test_key_after_the_prompt_takes_its_option(run_flow):
    sim = run_flow(MENU, "1")
    call = sim.call
    assert call.path == ["main", "one"]
    assert sim.channel.played == [("menu", "pl"), ("bye", "pl")]
    [key] = of_type(call, ev.KEY)
    assert key.data == {"key": "1"}
    assert key.node == "main"
    assert key.t == pytest.approx(MENU_SECONDS + KEY_SECONDS)
    assert of_type(call, ev.NODE_ENTERED)[1].data == {"node_type": "hangup", "via": "1"}
    assert call.outcome == ev.Outcome.SELF_SERVICE
    assert not of_type(call, ev.TIMEOUT) and not of_type(call, ev.INVALID)
    assert sim.channel.unused_keys == []


def test_key_pressed_during_the_prompt_counts(run_flow):
    sim = run_flow(MENU, "1", barge_in=True)
    assert sim.call.path == ["main", "one"]
    [key] = of_type(sim.call, ev.KEY)
    assert key.data == {"key": "1"}
    # the prompt was cut short: the key came halfway through it, and nobody waited after it
    assert key.t == pytest.approx(MENU_SECONDS / 2)
    assert sim.channel.played == [("menu", "pl"), ("bye", "pl")]


def test_key_that_is_no_option_does_not_cut_the_prompt(run_flow):
    sim = run_flow(MENU, "7 1", barge_in=True)
    [invalid] = of_type(sim.call, ev.INVALID)
    assert invalid.data == {"key": "7", "attempt": 1, "attempts": 3}
    assert invalid.t == pytest.approx(MENU_SECONDS + KEY_SECONDS)
    assert sim.call.path == ["main", "one"]


def test_time_out_uses_an_attempt_and_plays_the_timeout_prompt(run_flow):
    sim = run_flow(MENU, "- 1")
    call = sim.call
    [timeout] = of_type(call, ev.TIMEOUT)
    assert timeout.data == {"attempt": 1, "attempts": 3}
    assert timeout.t == pytest.approx(MENU_SECONDS + 4.0)  # the menu's 4 s time-out
    assert call.heard == ["menu", "no_input", "menu", "bye"]
    assert call.path == ["main", "one"]


def test_wrong_key_plays_the_invalid_prompt(run_flow):
    sim = run_flow(MENU, "9 1")
    [invalid] = of_type(sim.call, ev.INVALID)
    assert invalid.data == {"key": "9", "attempt": 1, "attempts": 3}
    assert sim.call.heard == ["menu", "invalid", "menu", "bye"]
    assert sim.call.path == ["main", "one"]


def test_after_the_last_attempt_the_call_goes_to_on_fail(run_flow):
    sim = run_flow(MENU, "- 9 -")
    call = sim.call
    assert call.path == ["main", "failed"]
    assert call.heard == ["menu", "no_input", "menu", "invalid", "menu", "no_input"]
    fails = [(e.type, e.data["attempt"]) for e in call.events if e.type in (ev.TIMEOUT, ev.INVALID)]
    assert fails == [(ev.TIMEOUT, 1), (ev.INVALID, 2), (ev.TIMEOUT, 3)]
    assert of_type(call, ev.NODE_ENTERED)[-1].data["via"] == "fail"
    assert call.outcome == ev.Outcome.SELF_SERVICE


def test_third_attempt_can_still_succeed(run_flow):
    sim = run_flow(MENU, "- 9 1")
    assert sim.call.path == ["main", "one"]


def test_repeat_key_replays_without_using_an_attempt(run_flow):
    sim = run_flow(MENU, "* - * 9 1")
    call = sim.call
    assert call.path == ["main", "one"]
    assert len(of_type(call, ev.REPEAT)) == 2
    assert call.heard == ["menu", "menu", "no_input", "menu", "menu", "invalid", "menu", "bye"]
    # two real failures so far: the third try was still allowed
    assert [e.data["attempt"] for e in call.events if e.type in (ev.TIMEOUT, ev.INVALID)] == [1, 2]


def test_repeat_key_during_the_prompt_replays_it(run_flow):
    sim = run_flow(MENU, "* 1", barge_in=True)
    assert sim.call.heard == ["menu", "menu", "bye"]
    assert types(sim.call).count(ev.REPEAT) == 1


def test_too_many_repeats_eventually_use_attempts(run_flow):
    assert FREE_REPEATS == 5
    # 5 free repeats, then each repeat uses an attempt: 7 repeats leave one attempt
    sim = run_flow(MENU, " ".join(["*"] * 7 + ["1"]))
    assert sim.call.path == ["main", "one"]
    # the 8th repeat uses the third attempt: on to on_fail, no endless replay
    sim = run_flow(MENU, " ".join(["*"] * 8))
    assert sim.call.path == ["main", "failed"]
    assert sim.call.heard.count("menu") == 8
    assert sim.channel.unused_keys == []


def test_option_with_a_language_switches_the_call_language(run_flow):
    sim = run_flow(MENU, "2")
    call = sim.call
    assert call.language == "en"
    assert sim.channel.language == "en"
    [change] = of_type(call, ev.LANGUAGE)
    assert change.data == {"language": "en"}
    assert sim.channel.played == [("menu", "pl"), ("bye", "en")]
    assert [e.data["language"] for e in of_type(call, ev.PROMPT)] == ["pl", "en"]


def test_option_set_sets_variables(run_flow):
    sim = run_flow(MENU, "3")
    call = sim.call
    assert call.path == ["main", "one"]
    assert call.vars == {"topic": "delivery", "level": "2"}
    assert [e.data for e in of_type(call, ev.VARIABLE)] == [
        {"name": "topic", "value": "delivery"},
        {"name": "level", "value": "2"},
    ]


def test_menu_without_extra_prompts_stays_silent_between_tries(run_flow):
    text = make_flow(
        """
        main:
          type: menu
          prompt: menu
          options: {"1": one}
          attempts: 2
          on_fail: one
        one:
          type: hangup
        """,
        start="main",
    )
    sim = run_flow(text, "- 5")
    assert sim.call.heard == ["menu", "menu"]
    assert sim.call.path == ["main", "one"]
    assert of_type(sim.call, ev.NODE_ENTERED)[-1].data["via"] == "fail"


def test_flow_defaults_apply_to_menus(run_flow):
    text = make_flow(
        """
        main:
          type: menu
          prompt: menu
          options: {"1": one}
          on_fail: one
        one:
          type: hangup
        """,
        start="main",
        defaults="""
        timeout: 7s
        attempts: 1
        timeout_prompt: no_input
        """,
    )
    sim = run_flow(text, "-")
    assert sim.call.heard == ["menu", "no_input"]
    assert of_type(sim.call, ev.TIMEOUT)[0].data == {"attempt": 1, "attempts": 1}
    assert of_type(sim.call, ev.TIMEOUT)[0].t == pytest.approx(MENU_SECONDS + 7.0)


LANGUAGE_MENU = make_flow(
    """
    language:
      type: menu
      prompt: lang
      all_languages: true
      options:
        "1": {next: done, language: pl}
        "2": {next: done, language: en}
      on_fail: done
    done:
      type: hangup
      prompt: bye
    """,
    start="language",
)


def test_all_languages_plays_the_prompt_once_per_flow_language(run_flow):
    sim = run_flow(LANGUAGE_MENU, "2")
    assert sim.channel.played == [("lang", "pl"), ("lang", "en"), ("bye", "en")]
    assert [(e.data["prompt"], e.data["language"]) for e in of_type(sim.call, ev.PROMPT)] == [
        ("lang", "pl"), ("lang", "en"), ("bye", "en"),
    ]
    assert sim.call.language == "en"


def test_all_languages_replays_every_language_after_a_time_out(run_flow):
    sim = run_flow(LANGUAGE_MENU, "- 1")
    assert sim.channel.played == [("lang", "pl"), ("lang", "en"), ("lang", "pl"), ("lang", "en"), ("bye", "pl")]


def test_key_during_the_first_language_stops_the_rest(run_flow):
    sim = run_flow(LANGUAGE_MENU, "2", barge_in=True)
    assert sim.channel.played == [("lang", "pl"), ("bye", "en")]
    assert sim.call.language == "en"
    assert sim.channel.language == "en"

"""Survey nodes: scores on the keypad (0-10, with and without '#'), answers outside the
scale, skipping after the attempts, the score in the outcome, and sampling (every N-th
call reaching the survey, and every call shorter than a limit)."""

import pytest

from helpers import make_flow, of_type
from ivr.channels.scripted import QueueScript
from ivr import events as ev
from ivr.engine.sampling import SurveySampler

SURVEY = make_flow(
    """
    s:
      type: survey
      prompt: nps
      scale: [0, 10]
      attempts: 2
      invalid_prompt: invalid
      thanks_prompt: thanks
      next: bye
    bye:
      type: hangup
    """,
    start="s",
)


@pytest.mark.parametrize("keys, score", [("10#", 10), ("10", 10), ("0#", 0), ("0", 0), ("7#", 7), ("07", 7)])
def test_scores_on_the_scale(run_flow, keys, score):
    call = run_flow(SURVEY, keys).call
    assert call.survey_score == score
    [survey] = of_type(call, ev.SURVEY)
    assert survey.data == {"asked": True, "score": score}
    assert call.heard == ["nps", "thanks"]
    assert call.events[-1].data["survey"] == score
    assert call.path == ["s", "bye"]


def test_score_typed_during_the_question(run_flow):
    sim = run_flow(SURVEY, "10#", barge_in=True)
    assert sim.call.survey_score == 10
    assert sim.channel.played == [("nps", "pl"), ("thanks", "pl")]


def test_out_of_range_is_invalid_then_asked_again(run_flow):
    call = run_flow(SURVEY, "11# 5#").call
    [invalid] = of_type(call, ev.INVALID)
    assert invalid.data == {"digits": "11", "attempt": 1, "attempts": 2}
    assert call.survey_score == 5
    assert call.heard == ["nps", "invalid", "nps", "thanks"]


def test_survey_is_skipped_after_the_attempts(run_flow):
    call = run_flow(SURVEY, "11# 99#").call
    assert call.survey_score is None
    assert [e.data["digits"] for e in of_type(call, ev.INVALID)] == ["11", "99"]
    # the invalid prompt is not played after the last attempt: the survey just ends
    assert call.heard == ["nps", "invalid", "nps"]
    assert of_type(call, ev.SURVEY)[0].data == {"asked": True, "score": None}
    assert call.path == ["s", "bye"]
    assert call.events[-1].data["survey"] is None


def test_no_answer_is_a_time_out(run_flow):
    call = run_flow(SURVEY, "- -").call
    assert [e.data for e in of_type(call, ev.TIMEOUT)] == [
        {"digits": "", "attempt": 1, "attempts": 2},
        {"digits": "", "attempt": 2, "attempts": 2},
    ]
    assert call.heard == ["nps", "nps"]
    assert call.survey_score is None


def test_narrow_scale(run_flow):
    text = SURVEY.replace("scale: [0, 10]", "scale: [1, 5]")
    assert run_flow(text, "5").call.survey_score == 5
    call = run_flow(text, "0 6").call
    assert call.survey_score is None
    assert [e.data["digits"] for e in of_type(call, ev.INVALID)] == ["0", "6"]


SAMPLED = make_flow(
    """
    t:
      type: transfer
      department: sales
      after: s
    s:
      type: survey
      prompt: nps
      sample: {every: 3, shorter_than: 2m}
      next: bye
    bye:
      type: hangup
    """,
    start="t",
)

LONG = QueueScript("answered", wait=30.0, talk=300.0)
SHORT = QueueScript("answered", wait=10.0, talk=60.0)


def test_every_nth_call_is_asked(run_flow):
    sampler = SurveySampler()
    asked = []
    for _ in range(7):
        call = run_flow(SAMPLED, "9", queue=[LONG], sampler=sampler).call
        asked.append(of_type(call, ev.SURVEY)[0].data["asked"])
        assert call.outcome == ev.Outcome.ANSWERED
    assert asked == [False, False, True, False, False, True, False]


def test_call_not_asked_skips_the_survey_silently(run_flow):
    sim = run_flow(SAMPLED, "9", queue=[LONG], sampler=SurveySampler())
    call = sim.call
    assert call.heard == []
    assert of_type(call, ev.SURVEY)[0].data == {"asked": False}
    assert call.path == ["t", "s", "bye"]
    assert sim.channel.unused_keys == ["9"]
    assert call.survey_score is None


def test_short_calls_are_always_asked(run_flow):
    sampler = SurveySampler()
    for _ in range(4):
        call = run_flow(SAMPLED, "8", queue=[SHORT], sampler=sampler).call
        assert of_type(call, ev.SURVEY)[0].data == {"asked": True, "score": 8}
        assert call.survey_score == 8
        assert call.outcome == ev.Outcome.ANSWERED
        assert call.events[-1].data["survey"] == 8


def test_sampler_counts_each_survey_node_apart():
    from ivr.flow.nodes.survey import Sample, Survey

    def node(name, every=None, shorter=None):
        return Survey(name, 1, None, (0, 10), Sample(every, shorter), 5.0, 2, None, None, "x")

    sampler = SurveySampler()
    a, b = node("a", every=2), node("b", every=2)
    assert [sampler.should_ask("f", a, 999) for _ in range(4)] == [False, True, False, True]
    assert sampler.should_ask("f", b, 999) is False
    assert sampler.should_ask("g", a, 999) is False  # another flow's node of the same name
    assert SurveySampler(start=1).should_ask("f", a, 999) is True  # the second call
    short = node("c", shorter=120.0)
    assert sampler.should_ask("f", short, 119.9) is True
    assert sampler.should_ask("f", short, 120.0) is False
    everyone = Survey("d", 1, None, (0, 10), None, 5.0, 2, None, None, "x")
    assert sampler.should_ask("f", everyone, 999) is True

"""Survey nodes: scores on the keypad (0-10, with and without '#'), answers outside the
scale, skipping after the attempts, the score in the outcome, and sampling (every N-th
call reaching the survey, and every call shorter than a limit)."""

import asyncio
import time

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

    def ask(flow, survey, elapsed, of=sampler):
        return asyncio.run(of.should_ask(flow, survey, elapsed))

    a, b = node("a", every=2), node("b", every=2)
    assert [ask("f", a, 999) for _ in range(4)] == [False, True, False, True]
    assert ask("f", b, 999) is False
    assert ask("g", a, 999) is False  # another flow's node of the same name
    assert ask("f", a, 999, of=SurveySampler(start=1)) is True  # the second call
    short = node("c", shorter=120.0)
    assert ask("f", short, 119.9) is True
    assert ask("f", short, 120.0) is False
    everyone = Survey("d", 1, None, (0, 10), None, 5.0, 2, None, None, "x")
    assert ask("f", everyone, 999) is True


class FlakyCounter:
    """A counter that counts in memory, except while `down` is set: then it raises or hangs."""

    def __init__(self):
        self.counts = {}
        self.down = None  # None, "raise" or "hang"

    async def increment(self, flow, node):
        if self.down == "raise":
            raise ConnectionError("database away")
        if self.down == "hang":
            await asyncio.sleep(3600)
        key = (flow, node)
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]


def test_a_failing_counter_never_stops_the_count_and_is_logged_once(caplog):
    from ivr.flow.nodes.survey import Sample, Survey

    every3 = Survey("s", 1, None, (0, 10), Sample(3, None), 5.0, 2, None, None, "x")
    counter = FlakyCounter()
    sampler = SurveySampler(counter, timeout=0.2, retry=0.0)

    async def calls(n):
        return [await sampler.should_ask("f", every3, 999) for _ in range(n)]

    assert asyncio.run(calls(2)) == [False, False]  # counts 1, 2 from the counter
    counter.down = "raise"
    with caplog.at_level("WARNING", logger="ivr.engine.sampling"):
        assert asyncio.run(calls(2)) == [True, False]  # 3, 4 in memory, on from the counter's 2
        counter.down = "hang"
        began = time.monotonic()
        assert asyncio.run(calls(2)) == [False, True]  # 5, 6: each waited the time-out at most
        assert time.monotonic() - began < 2 * 0.2 + 1.0
        counter.down = None
        assert asyncio.run(calls(2)) == [True, False]  # the counter's own count again: 3, 4
    messages = [r.getMessage() for r in caplog.records]
    assert sum("survey counter failed" in m for m in messages) == 1
    assert sum("answers again after" in m for m in messages) == 1

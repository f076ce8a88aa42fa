"""The event contract (ivr/events.py): every event the example line emits is declared with
exactly its payload and reads as a sentence; the dict form is JSON-ready with secrets
masked wherever they are; an outcome is never a transfer status."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from helpers import check_exits
from ivr import events as ev
from ivr.engine import Engine
from ivr.flow.project import load_flows
from ivr.simulation.journeys import run_files
from ivr.simulation.simulate import parse_time, simulate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def line():
    return load_flows([REPO / "flows"], REPO / "config.yaml")


@pytest.fixture(scope="module")
def journeys(line):
    """The calls of the example line's journey tests (flows/*.test.yaml), simulated."""
    flows, config = line
    results, broken, _ = run_files(sorted((REPO / "flows").glob("*.test.yaml")), flows, config)
    assert broken == [] and results
    return [result.call for result in results]


def test_every_event_of_the_example_line_is_declared_with_exactly_its_payload(journeys):
    for call in journeys:
        for event in call.events:
            declared = ev.TYPES.get(event.type)
            assert declared is not None, event
            assert set(declared.required) <= set(event.data), event  # every key it must carry
            assert set(event.data) <= declared.payload, event  # and none undeclared
    emitted = {event.type for call in journeys for event in call.events}
    # an engine failure and an engine stopping mid-call are the events the journeys cannot show
    # (tests/engine/test_robustness.py and tests/engine/test_interrupted.py do)
    assert set(ev.TYPES) - emitted == {ev.ERROR, ev.INTERRUPTED}


def test_every_event_of_the_example_line_reads_as_a_sentence(journeys):
    for call in journeys:
        for event in call.events:
            told = ev.sentences(event.to_dict())
            assert told and all(s.text for s in told), event
            # a payload key the sentence expects but the event lacks would read "None"
            assert not any("None" in f"{s.text} {s.detail}" for s in told), (event, told)


def test_every_declared_type_reads_as_a_sentence_and_an_unknown_one_by_its_name():
    for name, declared in ev.TYPES.items():
        assert declared.name == name and not set(declared.required) & set(declared.optional)
        told = ev.sentences({"type": name, "node": "n", **{key: "1" for key in declared.required}})
        assert told and all(s.text for s in told), name
    assert ev.sentences({"type": "queue_music", "node": "sales"}) == (ev.Sentence("Queue music", "sales"),)


def test_an_answered_queue_tells_two_moments_the_agents_answer_first():
    told = ev.sentences({"type": ev.TRANSFER_RESULT, "department": "sales", "status": "answered", "wait": 35.0,
                         "agent": "PJSIP/104", "talk": 120.0})
    assert told == (ev.Sentence("Agent PJSIP/104 answered", "sales, after 0:35 in the queue", earlier=120.0,
                                part="agent"),
                    ev.Sentence("Talk ended", "talked 2:00 with PJSIP/104", part="talk"))
    assert str(told[0]) == "Agent PJSIP/104 answered · sales, after 0:35 in the queue"


def test_the_dict_form_is_json_ready_and_masks_secrets_wherever_they_are():
    at = dt.datetime(2026, 11, 24, 10, tzinfo=dt.timezone.utc)
    value = {"digits": ev.Secret("4111"), "tries": [ev.Secret("41"), 2], "at": at,
             "status": ev.TransferStatus.TIMED_OUT}
    event = ev.Event("c", 3, 1.23456, ev.VARIABLE, "main", "acct", {"name": "card", "value": value})
    shown = event.to_dict()
    assert shown == {"call": "c", "seq": 3, "t": 1.235, "type": "variable", "flow": "main", "node": "acct",
                     "name": "card", "value": {"digits": "****", "tries": ["**", 2], "at": "2026-11-24T10:00:00+00:00",
                                               "status": "timeout"}}
    assert type(shown["value"]["status"]) is str  # the stored text, not the enum
    assert json.loads(json.dumps(shown)) == shown == json.loads(event.to_json())
    assert "4111" not in event.to_json() and "4111" not in repr(shown)
    assert ev.event_dict("c", 3, 1.23456, ev.VARIABLE, "main", "acct", {"name": "card", "value": value}) == shown


def test_an_outcome_is_never_a_transfer_status(line):
    # the stored texts are what they were: the database and its filters depend on them
    assert [o.value for o in ev.Outcome] == ["answered", "voicemail", "callback", "self_service", "abandoned",
                                             "unanswered", "failed", "interrupted"]
    assert [s.value for s in ev.TransferStatus] == ["answered", "timeout", "abandoned"]
    assert not any(isinstance(o, ev.TransferStatus) for o in ev.Outcome)
    assert not any(isinstance(s, ev.Outcome) for s in ev.TransferStatus)
    assert ev.Outcome("abandoned") is ev.Outcome.ABANDONED
    assert ev.TransferStatus("abandoned") is ev.TransferStatus.ABANDONED
    with pytest.raises(ValueError):
        ev.TransferStatus("failed")
    # a caller who leaves the queue: the queue's status and the call's outcome, each of its kind
    flows, config = line
    call = simulate(Engine(flows, config), "main", keys="1 1", queue=["abandoned"],
                    at=parse_time("2026-11-24T10:00:00+01:00")).call
    [result] = [e for e in call.events if e.type == ev.TRANSFER_RESULT]
    assert type(result.data["status"]) is ev.TransferStatus and result.data["status"] is ev.TransferStatus.ABANDONED
    assert type(call.outcome) is ev.Outcome and call.outcome is ev.Outcome.ABANDONED


def test_every_way_the_engine_leaves_a_node_is_declared_by_its_flow_module(journeys):
    for call in journeys:
        check_exits(call)


def test_the_tables_that_style_or_leave_out_event_types_name_declared_types_only():
    """The web timeline styles each type by its kind and `ivr simulate` leaves some out: a
    type missing from the timeline's table would show as "other", a stale name would hide
    nothing."""
    from ivr.cli import _UNPRINTED
    from ivr.web.timeline import _KINDS

    assert set(_KINDS) == set(ev.TYPES), "ivr/web/timeline.py _KINDS and ivr/events.py TYPES differ"
    assert _UNPRINTED <= set(ev.TYPES)

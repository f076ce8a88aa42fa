"""goto into another flow (language and variables kept, later events name the new
flow, the goto event itself stays in the flow it left), hangup (goodbye, self-service
outcome) and play."""

import pytest

from helpers import make_flow, of_type
from ivr.channels.scripted import prompt_seconds
from ivr import events as ev

MAIN = make_flow(
    """
    main:
      type: menu
      prompt: menu
      options:
        "1": {next: go, set: {topic: delivery}}
        "2": {next: go, language: en, set: {topic: delivery}}
        "3": {next: go_deep, set: {topic: returns}}
      on_fail: go
    go:
      type: goto
      flow: faq
    go_deep:
      type: goto
      flow: faq
      node: answer
    """,
    start="main",
    flow="main",
)

FAQ = make_flow(
    """
    topic:
      type: route
      when:
        - {var: topic, matches: "^delivery$", next: answer}
      otherwise: bye
    answer:
      type: play
      prompt: hello
      next: bye
    bye:
      type: hangup
      prompt: bye
    """,
    start="topic",
    flow="faq",
)

POLISH_ONLY = make_flow(
    """
    bye:
      type: hangup
      prompt: bye
    """,
    start="bye",
    flow="faq",
    languages="[pl]",
    prompts={"bye": {"pl": "Do widzenia."}},
)


def test_goto_continues_at_the_other_flows_start_with_the_variables(run_flow):
    sim = run_flow(MAIN, "1", extra=[FAQ])
    call = sim.call
    assert call.path == ["main", "go", "topic", "answer", "bye"]
    assert call.vars == {"topic": "delivery"}
    assert call.flow.id == "faq"
    assert [(e.flow, e.node) for e in of_type(call, ev.NODE_ENTERED)] == [
        ("main", "main"), ("main", "go"), ("faq", "topic"), ("faq", "answer"), ("faq", "bye"),
    ]
    assert of_type(call, ev.NODE_ENTERED)[2].data == {"node_type": "route", "via": "goto"}
    assert all(e.flow == "faq" for e in call.events if e.seq > of_type(call, ev.GOTO)[0].seq)
    assert call.outcome == ev.Outcome.SELF_SERVICE


def test_goto_event_names_where_it_was_and_where_it_goes(run_flow):
    call = run_flow(MAIN, "1", extra=[FAQ]).call
    [goto] = of_type(call, ev.GOTO)
    faq = call.engine.flows["faq"]
    assert (goto.flow, goto.node) == ("main", "go")
    assert goto.data == {"to_flow": "faq", "to_node": "topic", "version": faq.version}
    shown = goto.to_dict()
    assert (shown["flow"], shown["node"]) == ("main", "go")  # data must not overwrite them
    assert shown["to_flow"] == "faq"


def test_goto_keeps_the_language(run_flow):
    sim = run_flow(MAIN, "2", extra=[FAQ])
    assert sim.call.language == "en"
    assert sim.channel.played == [("menu", "pl"), ("hello", "en"), ("bye", "en")]
    assert len(of_type(sim.call, ev.LANGUAGE)) == 1


def test_goto_to_a_flow_without_the_language_switches_to_its_first(run_flow):
    sim = run_flow(MAIN, "2", extra=[POLISH_ONLY])
    assert sim.call.language == "pl"
    assert sim.channel.language == "pl"
    assert sim.channel.played == [("menu", "pl"), ("bye", "pl")]
    assert [(e.flow, e.data["language"]) for e in of_type(sim.call, ev.LANGUAGE)] == [("main", "en"), ("faq", "pl")]


def test_goto_a_named_node(run_flow):
    call = run_flow(MAIN, "3", extra=[FAQ]).call
    assert call.path == ["main", "go_deep", "answer", "bye"]
    assert of_type(call, ev.GOTO)[0].data["to_node"] == "answer"
    assert call.vars == {"topic": "returns"}


def test_goto_and_back_between_the_repository_flows():
    from helpers import REPO
    from ivr.engine import Engine
    from ivr.flow.project import load_flows
    from ivr.simulation.simulate import simulate
    import datetime as dt

    flows, config = load_flows([REPO / "flows"], REPO / "config.yaml")
    engine = Engine(flows, config)
    # main menu -> faq (4), back to the main menu (0), sales (1)
    call = simulate(engine, "main", keys="1 4 0 1", at=dt.datetime.fromisoformat("2026-11-24T10:00:00+01:00"),
                    caller="+48221234567").call
    gotos = of_type(call, ev.GOTO)
    assert [(g.flow, g.data["to_flow"]) for g in gotos] == [("main", "faq"), ("faq", "main")]
    assert call.department == "sales"
    assert call.outcome == ev.Outcome.ANSWERED


def test_hangup_says_goodbye_and_ends_as_self_service(run_flow):
    text = make_flow(
        """
        hello:
          type: play
          prompt: hello
          next: bye
        bye:
          type: hangup
          prompt: bye
        """,
        start="hello",
    )
    sim = run_flow(text)
    call = sim.call
    assert call.outcome == ev.Outcome.SELF_SERVICE
    assert call.department is None
    assert call.heard == ["hello", "bye"]
    assert sim.channel.hung_up is True
    # a prompt takes its speaking time on the virtual clock
    assert call.elapsed() == pytest.approx(prompt_seconds("hello po polsku.") + prompt_seconds("bye po polsku."))
    assert call.events[-1].data["duration"] == round(call.elapsed(), 3)


def test_hangup_without_a_prompt(run_flow):
    call = run_flow(make_flow("bye:\n  type: hangup\n", start="bye")).call
    assert call.heard == []
    assert call.path == ["bye"]
    assert call.outcome == ev.Outcome.SELF_SERVICE
    assert call.elapsed() == 0.0

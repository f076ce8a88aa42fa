"""Helpers that tests in several folders share: a small installation's config.yaml,
inline flows compiled from YAML text, and the invariants every finished call keeps.

Imported by its own name (tests/ is on the test modules' path), never through a
conftest: with conftests in several folders, `conftest` names whichever was loaded last.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Optional

import yaml

from ivr import events as ev
from ivr.flow import spec
from ivr.flow.model import Flow, FlowSet
from ivr.flow.project import compile_text
from ivr.settings.config import Config, check_config

REPO = Path(__file__).resolve().parents[1]

# A small installation: every test flow may use these departments, the office
# schedule and the vip segment.
CONFIG_YAML = """\
fallback: operator
departments:
  sales:    {queue: sales, members: [PJSIP/101, PJSIP/102]}
  support:  {queue: support, members: [PJSIP/104]}
  operator: {queue: operator, members: [PJSIP/100]}
schedules:
  office:
    timezone: Europe/Warsaw
    weekly: {mon-fri: "08:00-18:00", sat: "09:00-13:00"}
    holidays: [2026-12-24, 2026-12-25]
segments:
  vip: {numbers: ["+48 22 555 01 01", "+48 601 200 300"]}
"""

# Prompts every test flow gets (each in Polish and English), so tests only write nodes.
PROMPTS = {
    name: {"pl": f"{name} po polsku.", "en": f"{name} in English."}
    for name in (
        "hello", "menu", "menu2", "invalid", "no_input", "enter", "short", "connecting",
        "offer", "booked", "leave", "nps", "thanks", "bye", "lang",
    )
}


def write_config(folder: Path, text: str = CONFIG_YAML) -> Config:
    """config.yaml in `folder`, checked; fails the test on any error in it."""
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    config, findings = check_config(path)
    assert config is not None, [str(d) for d in findings]
    return config


def make_flow(nodes: str, *, start: str, flow: str = "t", languages: str = "[pl, en]", defaults: str = "",
              prompts: Optional[dict] = None) -> str:
    """A flow file's text: the standard prompts plus the given `nodes:` block (YAML)."""
    head = {"flow": flow, "languages": yaml.safe_load(languages), "start": start}
    text = yaml.safe_dump(head, sort_keys=False, allow_unicode=True)
    if defaults:
        text += "defaults:\n" + textwrap.indent(textwrap.dedent(defaults).strip("\n"), "  ") + "\n"
    text += yaml.safe_dump({"prompts": prompts or PROMPTS}, sort_keys=False, allow_unicode=True)
    text += "nodes:\n" + textwrap.indent(textwrap.dedent(nodes).strip("\n"), "  ") + "\n"
    return text


def compile_flows(config: Config, *texts: str) -> FlowSet:
    """Compile flow texts that may `goto` each other."""
    ids = [yaml.safe_load(t)["flow"] for t in texts]
    flows: dict[str, Flow] = {}
    for i, text in enumerate(texts):
        others = [x for j, x in enumerate(ids) if j != i]
        flow = compile_text(text, f"{ids[i]}.yaml", config, others)
        flows[flow.id] = flow
    return FlowSet(flows)


def check_events(call) -> None:
    """The invariants of every call's event list."""
    events = call.events
    assert [e.seq for e in events] == list(range(len(events)))
    assert all(a.t <= b.t for a, b in zip(events, events[1:]))
    assert events[0].type == ev.CALL_STARTED
    assert events[-1].type == ev.OUTCOME
    assert [e.type for e in events].count(ev.OUTCOME) == 1
    for event in events:  # each of a declared type, with its payload as declared
        declared = ev.TYPES.get(event.type)
        assert declared is not None, event
        assert set(declared.required) <= set(event.data) <= declared.payload, event
    assert events[-1].data["outcome"] == call.outcome
    assert isinstance(call.outcome, ev.Outcome)
    check_exits(call)


def of_type(call, kind: str) -> list:
    """The events of one type, in order."""
    return [e for e in call.events if e.type == kind]


def types(call) -> list[str]:
    return [e.type for e in call.events]


def check_exits(call) -> None:
    """Every way the engine took out of a node is one its flow declares: the label a node's
    run-time module returns is the edge its flow module draws (coverage and the dashboard's
    menu tree count by these labels)."""
    entered = [e for e in call.events if e.type == ev.NODE_ENTERED]
    for before, after in zip(entered, entered[1:]):
        node = call.engine.flows[before.flow].nodes[before.node]
        via = after.data["via"]
        assert via in exit_labels(node) or (via == "goto" and node.type == "goto"), (
            f'the engine left {node.type} "{node.name}" by "{via}", which its flow module does not declare')


def exit_labels(node) -> set[str]:
    """The labels of every way out a node's type declares: its node fields' edges, its
    menu keys and its route rules."""
    labels: set[str] = set()
    for name, field in node.fields.items():
        value = getattr(node, name)
        if field.kind == spec.NODE:
            labels.add(field.edge or name)
        elif field.kind == spec.OPTIONS:
            labels.update(value)
        elif field.kind == spec.RULES:
            labels.update(rule.label for rule in value)
    return labels

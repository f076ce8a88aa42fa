"""Shared fixtures: a small installation (config), inline flows compiled from YAML text,
and simulated calls run on the scripted channel with a virtual clock.

`run_flow(text, keys=..., ...)` compiles a flow with `compile_text` and runs one call of
it with `ivr.simulation.simulate.simulate`; every call it returns has already been checked for
the invariants every call must keep (seq 0..n-1, `t` never decreasing, the first event
`call_started`, the last `outcome`, every event declared in `ivr.events` with its payload).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import pytest
import yaml

from call_checks import check_exits

from ivr.settings.config import Config, check_config
from ivr.engine import Engine
from ivr import events as ev
from ivr.engine.sampling import SurveySampler
from ivr.flow.model import Flow, FlowSet
from ivr.flow.project import compile_text
from ivr.simulation.simulate import SimulatedCall, simulate

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


@pytest.fixture(scope="session")
def config(tmp_path_factory) -> Config:
    return write_config(tmp_path_factory.mktemp("install"))


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


RunFlow = Callable[..., SimulatedCall]


@pytest.fixture
def run_flow(config) -> RunFlow:
    """run_flow(text, keys="1 2", *, extra=(other flow texts), sampler=None, config=None, **simulate kwargs)."""

    def run(text: str, keys: Any = None, *, extra: Iterable[str] = (), sampler: Optional[SurveySampler] = None,
            config_: Optional[Config] = None, **kwargs: Any) -> SimulatedCall:
        cfg = config_ or config
        flows = compile_flows(cfg, text, *extra)
        engine = Engine(flows, cfg, sampler=sampler)
        result = simulate(engine, yaml.safe_load(text)["flow"], keys=keys, **kwargs)
        check_events(result.call)
        return result

    return run


def of_type(call, kind: str) -> list:
    """The events of one type, in order."""
    return [e for e in call.events if e.type == kind]


def types(call) -> list[str]:
    return [e.type for e in call.events]

"""Journey cases that give the queues' live state (`queues:`) and expect an overflow's
reason (`overflow:`): a case's mistakes are reported at file:line:col with a did-you-mean."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ivr.engine.channel import QueueLoad
from ivr.errors import FlowError
from ivr.flow.project import load_flows
from ivr.simulation.journeys import load_cases, run_files

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example():
    return load_flows([ROOT / "flows"], ROOT / "config.yaml")


def _write(tmp_path: Path, case: str) -> Path:
    path = tmp_path / "peak.test.yaml"
    path.write_text("flow: main\ncases:\n" + textwrap.indent(textwrap.dedent(case), "  "), encoding="utf-8")
    return path


def test_queues_become_the_state_the_scripted_line_reports(tmp_path, example):
    flows, config = example
    path = _write(tmp_path, """\
        - name: peak
          at: 2026-11-24T10:00:00+01:00
          keys: "1 1"
          queues: {sales: {waiting: 6, longest_wait: 1m, free_agents: 1, logged_in: 3}, backup: {}}
          expect: {transfers: [backup], overflow: "6 callers waiting in sales (limit 5)"}
        """)
    [case] = load_cases(path, flows, config, "peak.test.yaml")
    assert case.call["queues"] == {"sales": QueueLoad(6, 60.0, 1, 3), "backup": QueueLoad()}
    results, broken, _ = run_files([path], flows, config)
    assert broken == [] and [r.problems for r in results] == [[]]


def test_a_wrong_overflow_reason_fails_the_case_saying_what_happened(tmp_path, example):
    flows, config = example
    path = _write(tmp_path, """\
        - name: peak
          at: 2026-11-24T10:00:00+01:00
          keys: "1 1"
          queues: {sales: {waiting: 6}}
          expect: {overflow: "7 callers waiting in sales (limit 5)"}
        """)
    [result], _broken, _ = run_files([path], flows, config)
    assert result.problems == ["overflow: expected 7 callers waiting in sales (limit 5), "
                               "got 6 callers waiting in sales (limit 5)"]


def test_mistakes_in_queues_name_where_and_what(tmp_path, example):
    flows, config = example
    path = _write(tmp_path, """\
        - name: peak
          at: 2026-11-24T10:00:00+01:00
          keys: "1 1"
          queues: {slaes: {waiting: 6}, sales: {waitng: 6, longest_wait: soon, free_agents: -1}}
          expect: {transfer: backup}
        """)
    with pytest.raises(FlowError) as raised:
        load_cases(path, flows, config, "peak.test.yaml")
    assert [str(d) for d in raised.value.diagnostics] == [
        'peak.test.yaml:6:14: queues names "slaes", which is no queue of config.yaml\'s departments (did you mean "sales"?)',
        'peak.test.yaml:6:43: "waitng" is no field of a queue\'s state (did you mean "waiting"?) '
        "(fields: waiting, longest_wait, free_agents, logged_in)",
        'peak.test.yaml:6:68: longest_wait must be a duration such as 90s or 2m, not "soon"',
        "peak.test.yaml:6:87: free_agents must be a whole number from 0, not -1",
    ]

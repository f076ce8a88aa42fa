"""The journey tests of the example flows pass and take every branch of every flow."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ivr.cli import cli
from ivr.flow.project import load_flows
from ivr.simulation.journeys import coverage, run_files, find_journey_files

ROOT = Path(__file__).resolve().parents[2]


def test_example_journeys_pass_and_cover_every_branch(monkeypatch):
    monkeypatch.chdir(ROOT)
    flows, config = load_flows(["flows"], ROOT / "config.yaml")
    results, broken, _seconds = run_files(find_journey_files(["flows"]), flows, config)
    assert broken == []
    failed = {r.case.id: r.problems for r in results if not r.passed}
    assert failed == {}
    assert len(results) >= 35
    for flow_id, (edges, taken) in coverage(results, flows).items():
        assert edges - taken == set(), f"branches of {flow_id} no journey takes"


def test_ivr_test_command_reports_like_pytest(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli, ["test", "flows", "--coverage"])
    assert result.exit_code == 0, result.output
    assert "passed in" in result.output and "failed" not in result.output
    assert "coverage main: 42/42 branches (100%)" in result.output
    assert "coverage faq: 12/12 branches (100%)" in result.output


def test_example_line_routes_sales_in_office_hours(monkeypatch):
    """The issue's acceptance line: `ivr simulate flows/main.yaml --keys "1 1" --json`."""
    import json

    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli, ["simulate", "flows/main.yaml", "--keys", "1 1", "--json", "--at", "2026-11-24T10:00:00+01:00"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines()]
    assert [e["seq"] for e in events] == list(range(len(events)))
    transfers = [e for e in events if e["type"] == "transfer"]
    assert [t["department"] for t in transfers] == ["sales"]
    assert events[-1]["type"] == "outcome"
    assert events[-1]["outcome"] == "answered" and events[-1]["department"] == "sales"

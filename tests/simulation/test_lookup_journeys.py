"""Lookup segments without a phone: a journey case says what the lookup answers
(`segments: {vip: true}`, false or fails) and asks no server; one that does not say is a
problem of the case. `ivr simulate` asks the configured server, as a live call does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from crm_server import CrmServer, closed_port
from ivr.cli import cli

ROOT = Path(__file__).resolve().parents[2]
AT = "2026-11-24T10:00:00+01:00"


def installation(folder: Path, url: str) -> Path:
    """The example installation with its vip segment asked of `url`."""
    raw = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    raw["segments"] = {"vip": {"lookup": {"url": url, "timeout": "300ms"}}}
    (folder / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    shutil.copytree(ROOT / "flows", folder / "flows", ignore=shutil.ignore_patterns("*.test.yaml"))
    return folder / "config.yaml"


def journeys(folder: Path, cases: list[dict]) -> Path:
    path = folder / "flows" / "premium.test.yaml"
    path.write_text(yaml.safe_dump({"flow": "main", "cases": cases}, sort_keys=False), encoding="utf-8")
    return path


def ivr(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


PREMIUM = {"heard": ["welcome", "premium_welcome"], "transfer": "premium"}
NORMAL = {"visits": ["welcome", "open_check", "vip_check", "language", "main_menu", "sales"], "transfer": "sales"}


def test_a_case_says_what_the_lookup_answers_and_no_server_is_asked(tmp_path):
    with CrmServer("json", members={"48225550101"}) as crm:
        config = installation(tmp_path, crm.url())
        journeys(tmp_path, [
            {"name": "member", "at": AT, "caller": "+48 600 100 200", "segments": {"vip": True}, "expect": PREMIUM},
            {"name": "not a member", "at": AT, "caller": "+48 22 555 01 01", "keys": "1 1", "segments": {"vip": False}, "expect": NORMAL},
            {"name": "lookup down", "at": AT, "caller": "+48 22 555 01 01", "keys": "1 1", "segments": {"vip": "fails"}, "expect": NORMAL},
        ])
        result = ivr(config, "test", str(tmp_path / "flows" / "premium.test.yaml"))
    assert result.exit_code == 0, result.output
    assert "3 passed" in result.output
    assert crm.requests == []


def test_a_case_that_meets_a_lookup_it_gives_no_answer_for_fails_saying_so(tmp_path):
    config = installation(tmp_path, "http://127.0.0.1:9/vip?number={number}")
    journeys(tmp_path, [{"name": "forgot", "at": AT, "caller": "+48 22 555 01 01", "keys": "1 1", "expect": NORMAL}])
    result = ivr(config, "test", str(tmp_path / "flows" / "premium.test.yaml"))
    assert result.exit_code == 1
    assert ("the call asked the lookup of segment vip but the case gives no `segments: {vip: true}` (or false, or fails); "
            "a journey test asks no server") in result.output


@pytest.mark.parametrize("segments, message", [
    ({"vipp": True}, 'segments names "vipp", which is no segment of config.yaml (did you mean "vip"?)'),
    ({"vip": "yes"}, 'what the lookup of segment "vip" answers is true, false or fails, not "yes"'),
    ({"vip": 1}, 'what the lookup of segment "vip" answers is true, false or fails, not 1'),
    (["vip"], "segments must be a mapping such as {gold: true}, not a list"),
])
def test_a_wrong_segments_answer_is_reported_where_it_is(tmp_path, segments, message):
    config = installation(tmp_path, "http://127.0.0.1:9/vip?number={number}")
    path = journeys(tmp_path, [{"name": "x", "at": AT, "segments": segments, "expect": PREMIUM}])
    result = ivr(config, "test", str(path))
    assert result.exit_code == 1
    assert "premium.test.yaml:6:" in result.output and message in result.output, result.output


def test_a_numbers_segment_takes_no_answer_from_a_case(tmp_path):
    path = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", path, ignore=shutil.ignore_patterns("*.test.yaml"))
    shutil.copytree(ROOT / "data", tmp_path / "data")
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    cases = journeys(tmp_path, [{"name": "x", "at": AT, "segments": {"vip": True}, "expect": PREMIUM}])
    result = ivr(tmp_path / "config.yaml", "test", str(cases))
    assert result.exit_code == 1
    assert 'segment "vip" is a list of numbers, not a lookup: give the case a caller: from it (or not)' in result.output


def _events(result) -> list[dict]:
    return [json.loads(line) for line in result.output.splitlines()]


def test_ivr_simulate_asks_the_configured_server(tmp_path):
    with CrmServer("json", members={"+48225550101"}) as crm:
        config = installation(tmp_path, crm.url())
        member = ivr(config, "simulate", str(tmp_path / "flows" / "main.yaml"), "--caller", "+48 22 555 01 01",
                     "--at", AT, "--json")
        other = ivr(config, "simulate", str(tmp_path / "flows" / "main.yaml"), "--caller", "+48 22 555 01 02",
                    "--keys", "1 1", "--at", AT, "--json")
    assert crm.numbers_asked() == ["+48225550101", "+48225550102"]
    [route] = [e for e in _events(member) if e["type"] == "route"]
    assert route["rule"] == "segment vip" and route["lookups"][0]["result"] == "member"
    assert [e["department"] for e in _events(member) if e["type"] == "transfer"] == ["premium"]
    [route] = [e for e in _events(other) if e["type"] == "route"]
    assert route["rule"] == "otherwise" and route["lookups"][0]["result"] == "not_member"


def test_ivr_simulate_with_the_server_down_goes_the_normal_path_and_says_why(tmp_path):
    config = installation(tmp_path, f"http://127.0.0.1:{closed_port()}/vip?number={{number}}")
    result = ivr(config, "simulate", str(tmp_path / "flows" / "main.yaml"), "--caller", "+48 22 555 01 01",
                 "--keys", "1 1", "--at", AT)
    assert result.exit_code == 0, result.output
    assert "Route decision: otherwise · vip_check; lookup vip: failed (cannot connect: Connection refused)" in result.output
    assert "outcome: answered (sales)" in result.output

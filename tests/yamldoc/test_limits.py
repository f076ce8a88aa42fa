"""Hostile flow files: a billion laughs of aliases, a huge file, deep nesting, an alias
loop, too many nodes, a check that takes too long. Each is refused quickly, with one
finding that names the file (and the place), and the flows beside it are checked as usual.
"""

from __future__ import annotations

import dataclasses
import resource
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import REPO
from ivr.cli import cli
from ivr.errors import FlowError
from ivr.flow.project import check_project, compile_text
from ivr.yamldoc import limits
from ivr.yamldoc.loader import LimitExceeded, load_file, load_text


@pytest.fixture
def installation(tmp_path, monkeypatch):
    """The example installation (config.yaml, data/, flows/ without journey tests)."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(REPO / "data", tmp_path / "data")
    shutil.copytree(REPO / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("*.test.yaml"))
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def ivr(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def laughs(levels: int = 9, fan: int = 10) -> str:
    """A flow whose nodes are mappings of aliases `levels` deep: fan**levels leaves."""
    lines = ["flow: laughs", "languages: [en]", "start: k0", "prompts:", "  p: {en: hi}", "defaults:",
             "  l0: &l0 {type: hangup, prompt: p}"]
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} {{" + ", ".join(f"k{j}: *l{level - 1}" for j in range(fan)) + "}")
    lines.append("nodes: {" + ", ".join(f"k{j}: *l{levels - 1}" for j in range(fan)) + "}")
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_is_refused_at_the_alias_that_crosses_the_limit(installation):
    hostile = installation / "flows" / "laughs.yaml"
    hostile.write_text(laughs(), encoding="utf-8")
    assert hostile.stat().st_size < 1100
    start = time.monotonic()
    result = ivr("validate", "flows/laughs.yaml")
    took = time.monotonic() - start
    assert result.exit_code == 1
    assert took < 3, f"ivr validate took {took:.1f} s"  # was 55 s and more
    line = next(line for line in result.output.splitlines() if line.startswith("flows/laughs.yaml:"))
    # where: the first alias past the limit (the tenth *l4 in the definition of l5)
    assert line.startswith("flows/laughs.yaml:12:"), line
    assert 'the alias "*l4" stands for 62,221 keys and values' in line and "billion laughs" in line


def test_an_alias_within_the_limit_still_works():
    flow = compile_text(
        "flow: shared\nlanguages: [en]\nstart: a\nprompts:\n  p: {en: hi}\n"
        "nodes:\n  a: &play {type: play, prompt: p, next: b}\n  b: {type: hangup, prompt: p}\n  c: *play\n")
    assert {"a", "b", "c"} <= set(flow.nodes)


def test_a_huge_file_is_refused_before_it_is_read(installation):
    hostile = installation / "flows" / "huge.yaml"
    node = "  n{}: {{type: hangup, prompt: p}}\n"
    with open(hostile, "w", encoding="utf-8") as out:
        out.write("flow: huge\nlanguages: [en]\nstart: n0\nprompts:\n  p: {en: hi}\nnodes:\n")
        chunk = "".join(node.format(i) for i in range(20_000))
        while out.tell() < 50 * 1000 * 1000:
            out.write(chunk)
        out.truncate(50 * 1000 * 1000)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    result = ivr("validate", "flows/huge.yaml")
    took = time.monotonic() - start
    assert result.exit_code == 1 and took < 2, (took, result.output)  # was over 100 s and 1.2 GB
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kb < 20_000, f"the peak memory grew by {grown_kb} kB"
    assert "flows/huge.yaml:1:1: the file is 50.0 MB, more than the 8.0 MB one file may be" in result.output


def test_a_folder_with_one_hostile_file_checks_the_others_in_normal_time(installation):
    flows = installation / "flows"
    start = time.monotonic()
    clean = ivr("validate", "flows")
    normal = time.monotonic() - start
    assert clean.exit_code == 0, clean.output
    (flows / "laughs.yaml").write_text(laughs(), encoding="utf-8")
    with open(flows / "huge.yaml", "wb") as out:  # 60 MB of nothing: its size alone refuses it
        out.truncate(60 * 1000 * 1000)
    start = time.monotonic()
    result = ivr("validate", "flows")
    took = time.monotonic() - start
    assert took < normal + 2, f"{took:.1f} s with the hostile files, {normal:.1f} s without"
    errors = [line for line in result.output.splitlines() if ": " in line and line.startswith("flows/")]
    assert {e.split(":")[0] for e in errors} == {"flows/laughs.yaml", "flows/huge.yaml"}, result.output
    assert "4 flow file(s) checked: 2 error(s)" in result.output
    # a goto into main from a flow checked alone still finds main: siblings are read as before
    single = ivr("validate", "flows/faq.yaml")
    assert single.exit_code == 0, single.output


def test_a_hostile_sibling_neither_slows_nor_stops_a_simulated_call(installation):
    (installation / "flows" / "laughs.yaml").write_text(laughs(), encoding="utf-8")
    start = time.monotonic()
    result = ivr("simulate", "flows/main.yaml", "--keys", "2 1", "--at", "2026-11-24T10:00:00+01:00")
    assert time.monotonic() - start < 5
    # siblings are read for their goto targets only: one that is refused is left out
    assert result.exit_code == 0, result.output
    assert "Key 1 pressed" in result.output


def test_journey_tests_refuse_a_hostile_flow_in_their_folder(installation):
    shutil.copy(REPO / "flows" / "faq.test.yaml", installation / "flows" / "faq.test.yaml")
    (installation / "flows" / "laughs.yaml").write_text(laughs(), encoding="utf-8")
    start = time.monotonic()
    result = ivr("test", "flows")
    assert time.monotonic() - start < 10
    assert result.exit_code == 1
    assert "flows/laughs.yaml:12:" in result.output and "billion laughs" in result.output


def test_nesting_deeper_than_the_limit_is_refused():
    deep = "flow: deep\nnodes:\n  a: " + "[" * 100 + "]" * 100 + "\n"
    with pytest.raises(LimitExceeded) as caught:
        load_text(deep, "deep.yaml")
    (finding,) = caught.value.diagnostics
    assert str(finding).startswith("deep.yaml:3:") and "nest more than 64 deep" in finding.message


def test_aliases_cannot_stack_nesting_past_the_limit():
    lines = ["a0: &a0 " + "[" * 40 + "]" * 40, "a1: &a1 " + "[" * 30 + "*a0" + "]" * 30]
    with pytest.raises(LimitExceeded) as caught:
        load_text("\n".join(lines) + "\n", "stack.yaml")
    assert 'with what the alias "*a0" stands for' in caught.value.diagnostics[0].message
    assert str(caught.value.diagnostics[0]).startswith("stack.yaml:2:")


def test_an_alias_inside_the_value_it_names_is_refused():
    with pytest.raises(LimitExceeded) as caught:
        load_text("nodes:\n  a: &loop {type: play, next: *loop}\n", "loop.yaml", strict=False)
    (finding,) = caught.value.diagnostics
    assert str(finding) == ('loop.yaml:2:31: the alias "*loop" stands inside the value it names ("&loop"), '
                            "so that value would repeat without end; write it out")


def test_a_file_of_many_plain_values_is_refused_by_their_count(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text("x: [" + "1," * 700_000 + "1]\n", encoding="utf-8")  # 1.4 MB, 700,001 values
    start = time.monotonic()
    with pytest.raises(LimitExceeded) as caught:
        load_file(path, "many.yaml")
    # 600,000 numbers, each resolved by PyYAML's constructor, are read before the limit stops
    # them: about 1.5 s alone, twice that on a busy machine; within the time limit either way
    assert time.monotonic() - start < limits.DEFAULT.max_seconds
    assert "more than 600,000 keys and values" in caught.value.diagnostics[0].message


def test_a_flow_with_more_nodes_than_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr("ivr.flow.checks.MAX_NODES", 50)
    nodes = "".join(f"  n{i}: {{type: play, prompt: p, next: n{i + 1}}}\n" for i in range(60))
    text = f"flow: many\nlanguages: [en]\nstart: n0\nprompts:\n  p: {{en: hi}}\nnodes:\n{nodes}  n60: {{type: hangup}}\n"
    with pytest.raises(FlowError) as caught:
        compile_text(text, "many.yaml")
    (finding,) = caught.value.diagnostics
    assert str(finding).startswith("many.yaml:6:1: the flow has 61 nodes, more than the 50 one flow may have")


def test_a_check_that_takes_too_long_is_stopped_and_named(installation, monkeypatch):
    monkeypatch.setattr(limits, "DEFAULT", dataclasses.replace(limits.DEFAULT, max_seconds=0.0))
    report = check_project([installation / "flows" / "main.yaml"], installation / "config.yaml")
    mine = [d for d in report.errors if d.location.file == "flows/main.yaml"]
    assert len(mine) == 1 and mine[0].message.startswith("checking the flow took longer than 0 s"), mine
    assert mine[0].location.line > 1  # at the node it had come to
    assert "main" not in report.flows


def test_the_benchmark_flow_fits_the_limits_with_room(tmp_path):
    """The compile benchmark's 10,000-node flow loads (its time target is the benchmark's)."""
    import sys

    import yaml

    sys.path.insert(0, str(REPO / "bench"))
    try:
        from compile_bench import generate_flow
    finally:
        sys.path.remove(str(REPO / "bench"))
    text = yaml.safe_dump(generate_flow(10_000), allow_unicode=True, sort_keys=False, width=200)
    assert len(text.encode()) * 2.5 < limits.DEFAULT.max_bytes
    (tmp_path / "bench.yaml").write_text(text, encoding="utf-8")
    report = check_project([tmp_path / "bench.yaml"], REPO / "config.yaml", siblings=False)
    assert not report.errors and len(report.flows["bench"].nodes) == 10_000
    from ivr.flow.checks import MAX_NODES

    assert MAX_NODES >= 2.5 * 10_000


def test_the_web_app_goes_on_without_the_menu_tree_and_says_which_file(installation, caplog):
    import logging

    from ivr.settings.config import load_config
    from ivr.web.context import WebContext

    (installation / "flows" / "laughs.yaml").write_text(laughs(), encoding="utf-8")
    context = WebContext(load_config(installation / "config.yaml"), None, None)  # type: ignore[arg-type]
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="ivr.web.context"):
        assert context.flows() is None
    assert time.monotonic() - start < 3
    assert any("laughs.yaml:12:" in r.getMessage() and "billion laughs" in r.getMessage() for r in caplog.records)


def test_reading_has_its_time_limit_too(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "DEFAULT", dataclasses.replace(limits.DEFAULT, max_seconds=0.0))
    path = tmp_path / "long.yaml"
    path.write_text("x: [" + "a," * 10_000 + "a]\n", encoding="utf-8")
    with pytest.raises(LimitExceeded) as caught:
        load_file(path, "long.yaml")
    (finding,) = caught.value.diagnostics
    assert str(finding).startswith("long.yaml:1:") and finding.message.startswith("reading the file took longer than 0 s")


def test_each_file_of_a_folder_has_its_own_time_to_be_checked(installation, monkeypatch):
    """The files of a folder are all read before any is checked: reading many must not use
    up the checking time of the first."""
    import ivr.yamldoc.loader as loader

    monkeypatch.setattr(limits, "DEFAULT", dataclasses.replace(limits.DEFAULT, max_seconds=0.5))

    slow_read = loader.load_text

    def then_wait(*args, **kwargs):
        doc = slow_read(*args, **kwargs)
        time.sleep(0.6)  # more than the limit passes between reading and checking
        return doc

    monkeypatch.setattr(loader, "load_text", then_wait)
    report = check_project([installation / "flows"], installation / "config.yaml")
    assert report.ok, report.errors

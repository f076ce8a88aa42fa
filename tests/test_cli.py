"""The `ivr` command, run in-process with click's CliRunner: validate, schema, graph,
simulate (scripted, JSON and interactive), test (journey files) and the exit codes
(0 clean, 1 findings or failed cases, 2 usage errors)."""

import json
import re

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from helpers import REPO
from ivr.cli import cli

LOCATED = re.compile(r"^\S+\.yaml:\d+:\d+: \S.*$")


@pytest.fixture(autouse=True)
def _repository(monkeypatch):
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    monkeypatch.chdir(REPO)


def ivr(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


# --- validate ------------------------------------------------------------------------------
def test_validate_the_example_flows():
    result = ivr("validate", "flows")
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.stderr


BROKEN = """\
flow: broken
languages: [en]
start: menu
prompts:
  menu: {en: Press 1.}
nodes:
  menu:
    type: menu
    prompt: menu
    options:
      "1": complants
    on_fail: menu
  complaints:
    type: hangup
"""


def test_validate_a_broken_flow(tmp_path):
    (tmp_path / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    result = ivr("validate", str(tmp_path / "broken.yaml"))
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, result.output
    assert all(LOCATED.match(line) for line in lines), lines
    [line] = [line for line in lines if "complants" in line]
    assert line.startswith(f"{tmp_path / 'broken.yaml'}:11:")
    assert "1 error(s)" in result.stderr


def test_validate_json(tmp_path):
    (tmp_path / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    result = ivr("validate", "--json", str(tmp_path / "broken.yaml"))
    assert result.exit_code == 1
    findings = [json.loads(line) for line in result.stdout.splitlines()]
    assert any("complants" in json.dumps(f) for f in findings)


# --- schema --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def schema():
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    return json.loads(result.stdout)


def test_schema_is_a_draft_2020_12_schema(schema):
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", ["main.yaml", "faq.yaml"])
def test_schema_accepts_the_example_flows(schema, name):
    flow = yaml.safe_load((REPO / "flows" / name).read_text(encoding="utf-8"))
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(flow)]
    assert errors == []


def test_schema_rejects_an_unknown_node_type(schema):
    flow = yaml.safe_load((REPO / "flows" / "faq.yaml").read_text(encoding="utf-8"))
    flow["nodes"]["goodbye"] = {"type": "teleport", "prompt": "goodbye"}
    assert not jsonschema.Draft202012Validator(schema).is_valid(flow)


def test_schema_rejects_an_unknown_field(schema):
    flow = yaml.safe_load((REPO / "flows" / "faq.yaml").read_text(encoding="utf-8"))
    flow["nodes"]["goodbye"]["promt"] = "goodbye"
    assert not jsonschema.Draft202012Validator(schema).is_valid(flow)


# --- graph ---------------------------------------------------------------------------------
def test_graph_svg(tmp_path):
    out = tmp_path / "x.svg"
    result = ivr("graph", "flows/main.yaml", "-o", str(out))
    assert result.exit_code == 0, result.output
    svg = out.read_text(encoding="utf-8")
    assert "<svg" in svg
    for name in ("welcome", "main_menu", "sales", "goodbye"):
        assert name in svg


def test_graph_dot_has_edge_labels(tmp_path):
    out = tmp_path / "x.dot"
    result = ivr("graph", "flows/main.yaml", "-o", str(out))
    assert result.exit_code == 0, result.output
    dot = out.read_text(encoding="utf-8")
    assert dot.startswith('digraph "main" {')
    assert '"main_menu" -> "sales" [label="1"];' in dot
    assert re.search(r'"main_menu" -> "\w+" \[label="2"\];', dot)
    assert '"__start" -> "welcome";' in dot


def test_graph_of_an_unknown_format_is_a_usage_error(tmp_path):
    result = ivr("graph", "flows/main.yaml", "-o", str(tmp_path / "x.txt"))
    assert result.exit_code == 2


# --- simulate ------------------------------------------------------------------------------
def events_of(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_simulate_json_to_sales():
    result = ivr("simulate", "flows/main.yaml", "--keys", "1 1", "--json", "--at", "2026-11-24T10:00:00+01:00")
    assert result.exit_code == 0, result.output
    events = events_of(result)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "call_started"
    last = events[-1]
    assert last["type"] == "outcome"
    assert last["outcome"] == "answered"
    assert last["department"] == "sales"
    assert any(e["type"] == "transfer" and e["department"] == "sales" for e in events)


def test_simulate_on_christmas_leaves_a_voicemail():
    result = ivr("simulate", "flows/main.yaml", "--json", "--at", "2026-12-25T10:00:00+01:00")
    assert result.exit_code == 0, result.output
    events = events_of(result)
    assert [e["state"] for e in events if e["type"] == "hours"] == ["holiday"]
    assert [e["mailbox"] for e in events if e["type"] == "voicemail"] == ["general"]
    assert events[-1]["outcome"] == "voicemail"


def test_simulate_scripted_text():
    result = ivr("simulate", "flows/main.yaml", "--keys", "1 1", "--at", "2026-11-24T10:00:00+01:00")
    assert result.exit_code == 0, result.output
    assert "outcome: answered (sales)" in result.stdout
    # each line reads as the QA page's timeline does
    assert "   10.9s  Menu main_menu · via 1\n" in result.stdout
    assert "   43.4s  Agent PJSIP/101 answered · sales, after 0:20 in the queue\n" in result.stdout


def test_simulate_text_tells_why_a_caller_overflowed():
    result = ivr("simulate", "flows/main.yaml", "--keys", "1 1", "--queue", "timeout", "--at",
                 "2026-11-24T10:00:00+01:00")
    assert result.exit_code == 0, result.output
    assert "Transfer to backup · queue backup, overflow: sales: max_wait 3m passed\n" in result.stdout
    assert "Transfer to sales" not in result.stdout  # a plain transfer shows by its queue's answer


def test_simulate_interactive():
    main = yaml.safe_load((REPO / "flows" / "main.yaml").read_text(encoding="utf-8"))
    result = ivr("simulate", "flows/main.yaml", "--at", "2026-11-24T10:00:00+01:00", input="1\n1\na\n")
    assert result.exit_code == 0, result.output
    assert main["prompts"]["main_menu"]["pl"] in result.output
    assert main["prompts"]["welcome"]["pl"] in result.output
    assert "outcome: answered (sales)" in result.output


def test_simulate_reports_unused_keys():
    result = ivr("simulate", "flows/main.yaml", "--keys", "1 1 7 7 7 7 7", "--at", "2026-11-24T10:00:00+01:00",
                 "--queue", "answered")
    assert result.exit_code == 0
    assert "keys left unused" in result.stderr


def test_simulate_bad_time_is_a_usage_error():
    result = ivr("simulate", "flows/main.yaml", "--keys", "1", "--at", "yesterday")
    assert result.exit_code == 2
    assert "yesterday" in result.stderr


# --- test ----------------------------------------------------------------------------------
SHOP = """\
flow: shop
languages: [en]
start: menu
prompts:
  menu: {en: Press 1 for sales.}
  bye: {en: Goodbye.}
nodes:
  menu:
    type: menu
    prompt: menu
    options: {"1": sales}
    attempts: 1
    on_fail: bye
  sales:
    type: transfer
    department: sales
  bye:
    type: hangup
    prompt: bye
"""

PASSING = """\
  - name: sales
    keys: "1"
    expect: {transfer: sales, outcome: answered, path: [menu, sales]}
"""

FAILING = """\
  - name: silent caller reaches sales
    keys: "-"
    expect: {transfer: sales, path: [menu, sales]}
"""


def project(tmp_path, cases: str):
    (tmp_path / "config.yaml").write_text("fallback: sales\ndepartments:\n  sales: {queue: sales}\n", encoding="utf-8")
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "shop.yaml").write_text(SHOP, encoding="utf-8")
    (flows / "shop.test.yaml").write_text("flow: shop\ncases:\n" + cases, encoding="utf-8")
    return flows


def test_journey_tests_pass(tmp_path):
    flows = project(tmp_path, PASSING)
    result = ivr("test", str(flows))
    assert result.exit_code == 0, result.output
    assert re.search(r"=+ 1 passed in \d+\.\d\ds =+", result.stdout)


def test_journey_test_failure(tmp_path):
    flows = project(tmp_path, PASSING + FAILING)
    result = ivr("test", str(flows))
    assert result.exit_code == 1
    out = result.stdout
    assert "FAILURES" in out
    assert 'case "silent caller reaches sales"' in out
    assert "transfer: expected sales, got nothing" in out
    assert "expected path: menu > sales" in out
    assert "actual path:   menu > bye" in out
    assert re.search(r"=+ 1 failed, 1 passed in \d+\.\d\ds =+", out)


def test_journey_test_verbose(tmp_path):
    flows = project(tmp_path, PASSING + FAILING)
    result = ivr("test", "-v", str(flows))
    assert "shop.test.yaml::sales PASSED" in result.stdout
    assert "shop.test.yaml::silent caller reaches sales FAILED" in result.stdout


def test_journey_test_with_a_mistake_in_the_test_file(tmp_path):
    flows = project(tmp_path, PASSING + "  - name: typo\n    keys: \"1\"\n    expect: {transfer: salse}\n")
    result = ivr("test", str(flows))
    assert result.exit_code == 1
    assert "salse" in result.stdout
    assert "1 error(s) in test files" in result.stdout


def test_no_journey_files_is_a_usage_error(tmp_path):
    result = ivr("test", str(tmp_path))
    assert result.exit_code == 2


# --- exit codes ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "missing.yaml"],
        ["graph", "missing.yaml", "-o", "x.svg"],
        ["validate", "missing.yaml"],
        ["test", "missing"],
        ["--config", "missing.yaml", "validate", "flows"],
        ["simulate"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(args):
    result = ivr(*args)
    assert result.exit_code == 2, result.output


def test_version():
    result = ivr("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("ivr, version ")


def test_simulate_interactive_end_of_input_hangs_up():
    # Ctrl-D (or Ctrl-C) at the keys prompt: the caller hung up, not an engine failure
    result = ivr("simulate", "flows/main.yaml", "--at", "2026-11-24T10:00:00+01:00", input="1\n")
    assert result.exit_code == 0, result.output
    assert "outcome: abandoned after" in result.output
    assert "Traceback" not in result.output
    assert "failed" not in result.output
    assert "queue operator" not in result.output


def test_simulate_at_a_date_alone_is_ten_oclock():
    result = ivr("simulate", "flows/main.yaml", "--keys", "1 1", "--json", "--at", "2026-11-24")
    assert result.exit_code == 0, result.output
    events = events_of(result)
    assert events[0]["at"] == "2026-11-24T10:00:00"
    assert [e["state"] for e in events if e["type"] == "hours"] == ["open"]


def test_simulate_a_broken_flow_exits_1_with_its_errors(tmp_path):
    (tmp_path / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    result = ivr("simulate", str(tmp_path / "broken.yaml"), "--keys", "1")
    assert result.exit_code == 1
    assert any(LOCATED.match(line) and "complants" in line for line in result.stderr.splitlines()), result.output


def test_journey_coverage(tmp_path):
    flows = project(tmp_path, PASSING)
    result = ivr("test", "--coverage", str(flows))
    assert result.exit_code == 0, result.output
    assert "coverage shop: 1/2 branches (50%)" in result.stdout
    assert "not taken: menu --fail-->" in result.stdout


def test_journey_tests_of_the_example_flows_pass():
    result = ivr("test", "flows")
    assert result.exit_code == 0, result.output
    assert re.search(r"=+ \d+ passed in \d+\.\d\ds =+", result.stdout)
    assert "failed" not in result.stdout


def test_validate_without_paths_checks_the_flows_beside_the_named_config(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(REPO / "flows", tmp_path / "flows")
    shutil.copytree(REPO / "data", tmp_path / "data")
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "flows" / "broken.yaml").write_text("id: broken\nnodes: [\n", encoding="utf-8")
    # run in the repository (see _repository), whose own flows are clean: not the ones to check
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.yaml"), "validate"])
    assert result.exit_code == 1 and "broken.yaml" in result.output


def test_the_command_starts_without_the_web_app_and_still_lists_and_runs_its_commands():
    # `ivr validate` or `ivr simulate` must not pay for Flask and the database layer at
    # start-up (it doubled their start); the commands that need them load them when run
    import subprocess
    import sys

    loaded = subprocess.run([sys.executable, "-c", "import sys, ivr.cli; "
                             "print(' '.join(m for m in ('flask', 'sqlalchemy', 'werkzeug', 'waitress', 'alembic') if m in sys.modules))"],
                            capture_output=True, text=True, cwd=REPO, check=True)
    assert loaded.stdout.strip() == ""
    listed = CliRunner().invoke(cli, ["--help"])
    assert listed.exit_code == 0
    for name in ("recordings", "users", "web", "validate", "simulate"):
        assert re.search(rf"^  {name} ", listed.output, re.M), listed.output
    for args in (["web", "--help"], ["users", "add", "--help"], ["recordings", "purge", "--help"]):
        shown = CliRunner().invoke(cli, args)
        assert shown.exit_code == 0 and "Usage: " in shown.output, (args, shown.output)
    unknown = CliRunner().invoke(cli, ["webb"])
    assert unknown.exit_code == 2 and "No such command 'webb'" in unknown.output


def test_the_simulated_call_of_the_readme_prints_what_the_readme_shows():
    """README.md's "A simulated call": its command, run as written, prints its lines in
    order (a line ending in "..." is shown cut short; a line of "..." leaves lines out)."""
    import shlex

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A simulated call", 1)[1]
    block = section.split("```console\n", 1)[1].split("```", 1)[0].splitlines()
    command, shown = block[0], [line for line in block[1:] if line.strip() != "..."]
    assert command.startswith("$ ivr simulate ")
    result = ivr(*shlex.split(command)[2:])
    assert result.exit_code == 0, result.output
    printed = result.stdout.splitlines()
    at = 0
    for line in shown:
        cut = line.endswith("...")
        found = next((i for i in range(at, len(printed))
                      if (printed[i].startswith(line[:-3]) if cut else printed[i] == line)), None)
        assert found is not None, f"README line not printed (in order): {line!r}"
        at = found + 1


def test_serve_takes_a_log_level_and_refuses_another():
    from click.testing import CliRunner

    from ivr.cli import cli

    result = CliRunner().invoke(cli, ["serve", "--log-level", "loud"])
    assert result.exit_code == 2 and "'loud' is not one of 'debug', 'info', 'warning', 'error'" in result.output
    assert "--log-level [debug|info|warning|error]" in CliRunner().invoke(cli, ["serve", "--help"]).output

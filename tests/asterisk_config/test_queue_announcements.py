"""Queue announcements in the generated queues.conf: each department's `announce` of
config.yaml becomes its queue's announce-* options, a flow's `announce_position: true`
turns its queue's position on (`ivr asterisk-config` reads the flows beside config.yaml),
and a queue that announces nothing stays silent. The same files are loaded into a real
Asterisk, and heard on real calls, by tests/asterisk/test_live_announcements.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.asterisk.dialplan import queues_conf, with_announcements
from ivr.cli import cli
from ivr.errors import AsteriskError
from ivr.settings.announce import Announcements
from ivr.settings.config import Config, load_config

CONFIG = """\
fallback: operator
departments:
  sales:    {queue: sales, members: [PJSIP/101], announce: on}
  support:  {queue: support, members: [PJSIP/104], announce: {position: true, position_limit: 5, wait: yes, every: 30s, round: 10s, reminder: 45s}}
  premium:  {queue: premium, members: [PJSIP/110], announce: off}
  operator: {queue: operator, members: [PJSIP/100]}
  nudge:    {queue: nudge, members: [PJSIP/120], announce: {reminder: 1m}}
"""

FLOW = """\
flow: main
languages: [en]
start: ask
prompts:
  menu: {en: Press 1 for the operator.}
nodes:
  ask:
    type: menu
    prompt: menu
    options: {"1": operator}
    on_fail: operator
  operator:
    type: transfer
    department: operator
    announce_position: true
"""


def load(tmp_path: Path, text: str = CONFIG) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def options(text: str, queue: str) -> dict[str, str]:
    """The options of [queue] (comments and members left out)."""
    body = text.split(f"\n[{queue}](", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return dict(line.split(" = ", 1) for line in body if " = " in line and not line.startswith(";"))


def test_announce_on_says_the_position_and_once_the_wait(tmp_path):
    sales = options(queues_conf(load(tmp_path)), "sales")
    assert {k: v for k, v in sales.items() if "announce" in k} == {
        "announce-position": "yes", "announce-holdtime": "once", "announce-frequency": "60",
        "min-announce-frequency": "15", "announce-round-seconds": "0"}


def test_every_setting_maps_onto_its_queue_option(tmp_path):
    support = options(queues_conf(load(tmp_path)), "support")
    assert support["announce-position"] == "limit" and support["announce-position-limit"] == "5"
    assert support["announce-holdtime"] == "yes" and support["announce-frequency"] == "30"
    assert support["min-announce-frequency"] == "15" and support["announce-round-seconds"] == "10"
    assert support["periodic-announce-frequency"] == "45"


def test_a_queue_without_announcements_keeps_the_silent_template(tmp_path):
    text = queues_conf(load(tmp_path))
    for queue in ("premium", "operator"):
        assert not any("announce" in k for k in options(text, queue)), queue
    assert "; announcements: none" in text.split("[premium](")[1].split("\n\n")[0]
    # a reminder alone: no position, no wait, but "all representatives are busy"
    nudge = options(text, "nudge")
    assert nudge == {"strategy": "ringall", "periodic-announce-frequency": "60"}


def test_a_flow_asking_for_the_position_turns_it_on_for_the_whole_queue(tmp_path):
    config = load(tmp_path, CONFIG + "  desk:     {queue: operator, members: [PJSIP/100]}\n")
    announced = with_announcements(config, ["operator"])
    # both departments of the queue: Asterisk announces per queue
    assert announced.departments["operator"].announce == Announcements(position=True)
    assert announced.departments["desk"].announce == Announcements(position=True)
    assert options(queues_conf(announced), "operator")["announce-position"] == "yes"
    # config.yaml's own settings are kept; the position is only added
    kept = with_announcements(config, ["nudge"]).departments["nudge"].announce
    assert kept == Announcements(position=True, reminder=60)
    assert with_announcements(config, []) is config
    assert with_announcements(config, ["sales"]).departments["sales"] is config.departments["sales"]


def test_departments_sharing_a_queue_must_agree_on_its_announcements(tmp_path):
    clash = CONFIG + "  desk:     {queue: operator, members: [PJSIP/100], announce: on}\n"
    with pytest.raises(AsteriskError, match="not its announcements"):
        queues_conf(load(tmp_path, clash))


def _installation(tmp_path: Path, flow: str = FLOW) -> Path:
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "main.yaml").write_text(flow, encoding="utf-8")
    return tmp_path / "config.yaml"


def test_asterisk_config_reads_the_flows_beside_config_yaml(tmp_path, monkeypatch):
    config = _installation(tmp_path)
    monkeypatch.setenv("IVR_AMI_SECRET", "s3cret")
    result = CliRunner().invoke(cli, ["--config", str(config), "asterisk-config", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "queues.conf").read_text()
    assert options(text, "operator")["announce-position"] == "yes"  # from the flow only
    assert "announce-position" not in options(text, "premium")


def test_asterisk_config_refuses_flows_with_errors(tmp_path, monkeypatch):
    config = _installation(tmp_path, FLOW.replace("department: operator", "department: operatr"))
    monkeypatch.setenv("IVR_AMI_SECRET", "s3cret")
    result = CliRunner().invoke(cli, ["--config", str(config), "asterisk-config", "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert 'main.yaml:14:17: ' in result.output and 'did you mean "operator"' in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_the_example_installation_announces_where_its_flows_ask(monkeypatch):
    repo = Path(__file__).resolve().parents[2]
    config = load_config(repo / "config.yaml")
    said = {name for name, d in config.departments.items() if d.announce and d.announce.position}
    assert said == {"sales", "complaints", "support", "operator", "backup"}
    assert config.departments["premium"].announce is not None and not config.departments["premium"].announce.speaks


def test_the_readme_example_is_a_valid_config(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    part = readme.split("### Queue announcements", 1)[1]
    example = part.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = load(tmp_path, "fallback: sales\n" + example)
    assert config.departments["sales"].announce == Announcements(True, None, "once", 60, 15, 0, None)
    assert config.departments["support"].announce == Announcements(True, None, "yes", 30, 15, 10, 45)
    assert not config.departments["premium"].announce.speaks
    text = queues_conf(config)
    assert options(text, "support")["announce-round-seconds"] == "10"


SILENT = """\
fallback: operator
departments:
  sales:    {queue: sales, members: [PJSIP/101]}
  operator: {queue: operator, members: [PJSIP/100]}
"""
SILENT_FLOW = FLOW.replace("    announce_position: true\n", "")
NO_ANNOUNCE = "warning: no department announces position or wait: add announce: on"


def test_asterisk_config_warns_once_when_no_department_announces(tmp_path, monkeypatch):
    config = _installation(tmp_path, SILENT_FLOW)
    config.write_text(SILENT, encoding="utf-8")
    monkeypatch.setenv("IVR_AMI_SECRET", "s3cret")
    result = CliRunner().invoke(cli, ["--config", str(config), "asterisk-config", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.output.count(NO_ANNOUNCE) == 1, result.output
    result = CliRunner().invoke(cli, ["--config", str(config), "validate"])
    assert result.exit_code == 0, result.output
    assert result.output.count(NO_ANNOUNCE) == 1, result.output


@pytest.mark.parametrize("config_text, flow", [(SILENT.replace("[PJSIP/101]}", "[PJSIP/101], announce: on}"), SILENT_FLOW),
                                               (SILENT.replace("[PJSIP/101]}", "[PJSIP/101], announce: off}"), SILENT_FLOW),
                                               (SILENT, FLOW)])
def test_no_warning_where_a_department_or_a_flow_says_what_to_announce(tmp_path, monkeypatch, config_text, flow):
    config = _installation(tmp_path, flow)
    config.write_text(config_text, encoding="utf-8")
    monkeypatch.setenv("IVR_AMI_SECRET", "s3cret")
    result = CliRunner().invoke(cli, ["--config", str(config), "asterisk-config", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert NO_ANNOUNCE not in result.output

"""`ivr validate` on transfer nodes whose callers would hear other than the node says:
Asterisk announces the position per queue, so a node asking for it (`announce_position:
true`) speaks for every caller of that queue (ivr.flow.announcements)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ivr.flow.announcements import announcing_departments
from ivr.flow.project import check_project, load_flows

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
fallback: sales
departments:
  sales:   {queue: sales, members: [PJSIP/101]}
  desk:    {queue: sales, members: [PJSIP/101]}
  support: {queue: support, members: [PJSIP/104], announce: on}
  premium: {queue: premium, members: [PJSIP/110], announce: off}
"""


def _flow(nodes: str) -> str:
    return textwrap.dedent("""\
        flow: main
        languages: [en]
        start: ask
        prompts:
          menu: {en: Press 1 or 2.}
        nodes:
          ask:
            type: menu
            prompt: menu
            options: {"1": first, "2": second}
            on_fail: first
        """) + textwrap.indent(textwrap.dedent(nodes), "  ")


def _validate(tmp_path: Path, nodes: str) -> list[str]:
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "main.yaml").write_text(_flow(nodes), encoding="utf-8")
    report = check_project([tmp_path / "main.yaml"], tmp_path / "config.yaml")
    return [str(d).replace(f"{tmp_path}/", "") for d in report.diagnostics]


def test_two_transfers_into_one_queue_that_disagree(tmp_path):
    found = _validate(tmp_path, """\
        first:  {type: transfer, department: sales, announce_position: true}
        second: {type: transfer, department: sales}
        """)
    assert found == [
        'main.yaml:13:3: warning: transfer "second" does not ask for announce_position, but transfer "first" '
        '(line 12) into the same queue "sales" asks for it: Asterisk announces per queue, so callers of both hear '
        'their position; give both the same announce_position'], found


def test_a_written_false_is_pointed_at_and_departments_sharing_a_queue_count(tmp_path):
    found = _validate(tmp_path, """\
        first:  {type: transfer, department: sales, announce_position: true}
        second: {type: transfer, department: desk, announce_position: false}
        """)
    assert len(found) == 1 and found[0].startswith("main.yaml:13:46: warning: transfer \"second\" says "
                                                   "announce_position: false, but transfer \"first\""), found


def test_nodes_that_agree_say_nothing(tmp_path):
    assert _validate(tmp_path, """\
        first:  {type: transfer, department: sales, announce_position: true}
        second: {type: transfer, department: desk, announce_position: true}
        """) == []
    assert _validate(tmp_path, """\
        first:  {type: transfer, department: sales}
        second: {type: transfer, department: support}
        """) == []


def test_config_yaml_that_decides_otherwise(tmp_path):
    found = _validate(tmp_path, """\
        first:  {type: transfer, department: premium, announce_position: true}
        second: {type: transfer, department: support, announce_position: false}
        """)
    assert found == [
        'main.yaml:12:49: warning: transfer "first" asks for announce_position, but config.yaml turns the '
        'announcements of department "premium" off: Asterisk announces per queue, so every caller of queue '
        '"premium" hears the position',
        'main.yaml:13:49: warning: transfer "second" says announce_position: false, but config.yaml announces the '
        'position in queue "support" (department "support"): its callers hear it all the same'], found


def test_the_departments_the_example_flows_announce_to():
    flows, _config = load_flows([REPO / "flows"], REPO / "config.yaml")
    assert announcing_departments(flows.flows.values()) == {"sales", "complaints", "support", "operator", "backup"}
    report = check_project([REPO / "flows"], REPO / "config.yaml")
    assert [str(d) for d in report.diagnostics if "announce" in d.message] == []

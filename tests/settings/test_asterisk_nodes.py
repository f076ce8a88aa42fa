"""asterisk.nodes in config.yaml: several Asterisk servers known to one engine, each by
name with its AMI and the FastAGI address its dialplan sends calls to. `ami:` alone stays
one node named `default`; a mistake is an error at config.yaml:line:col, with a
did-you-mean for a misspelt key, and a secret is only ever a ${NAME}."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.errors import ConfigError
from ivr.settings.asterisk import DEFAULT_NODE
from ivr.settings.config import load_config

REPO = Path(__file__).resolve().parents[2]

TWO_NODES = """\
asterisk:
  agi: {host: 127.0.0.1, port: 4573}
  nodes:
    pbx-a:
      ami: {host: 10.0.0.11, port: 5038, username: ivr, secret: "${IVR_AMI_SECRET_A}"}
      agi: {host: 10.0.0.20, port: 4600}
    pbx-b:
      ami: {host: 10.0.0.12, secret: "${IVR_AMI_SECRET_B}"}
"""
DEPARTMENTS = "departments:\n  sales: {queue: sales, members: [PJSIP/101]}\n"


def _config(tmp_path: Path, asterisk: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(asterisk + DEPARTMENTS, encoding="utf-8")
    return path


def test_two_nodes_by_name_with_their_ami_and_agi(tmp_path):
    asterisk = load_config(_config(tmp_path, TWO_NODES)).asterisk
    a, b = asterisk.all_nodes
    assert asterisk.multi_node and [n.name for n in asterisk.nodes] == ["pbx-a", "pbx-b"]
    assert (a.ami.host, a.ami.port, a.ami.secret_variable) == ("10.0.0.11", 5038, "IVR_AMI_SECRET_A")
    assert a.agi_address(asterisk.agi) == ("10.0.0.20", 4600)
    assert (b.ami.host, b.ami.port, b.ami.username, b.ami.secret_variable) == ("10.0.0.12", 5038, "ivr", "IVR_AMI_SECRET_B")
    assert b.agi_address(asterisk.agi) == ("127.0.0.1", 4573)  # the engine's own by default
    assert asterisk.ami == a.ami  # what code knowing one Asterisk uses: the first node's
    assert asterisk.node("pbx-b") is b and asterisk.node("pbx-c") is None


def test_ami_alone_is_one_node_and_the_example_installation_is_unchanged(tmp_path):
    asterisk = load_config(REPO / "config.yaml").asterisk
    [node] = asterisk.all_nodes
    assert node.name == DEFAULT_NODE and node.ami == asterisk.ami and not asterisk.multi_node
    assert node.agi_address(asterisk.agi) == (asterisk.agi.host, asterisk.agi.port)
    none = load_config(_config(tmp_path, "asterisk:\n  agi: {port: 4573}\n")).asterisk
    assert none.all_nodes == () and none.ami is None


@pytest.mark.parametrize("asterisk, message", [
    (TWO_NODES.replace("    pbx-b:", "    pbx b:"),
     'config.yaml:7:5: a node name must be letters, digits'),
    (TWO_NODES.replace("      agi: {host", "      agl: {host"),
     'config.yaml:6:7: "agl" is no field of asterisk.nodes.pbx-a (did you mean "agi"?)'),
    (TWO_NODES.replace("{host: 10.0.0.20, port: 4600}", "{host: 10.0.0.20, prot: 4600}"),
     'config.yaml:6:30: "prot" is no field of asterisk.nodes.pbx-a.agi (did you mean "port"?)'),
    (TWO_NODES.replace('secret: "${IVR_AMI_SECRET_B}"', "secret: hunter2-plain"),
     'config.yaml:8:38: AMI secret must name an environment variable, such as "${IVR_AMI_SECRET}"'),
    (TWO_NODES.replace("10.0.0.12", "10.0.0.11"),
     'config.yaml:8:12: node "pbx-b" has the AMI of node "pbx-a" (10.0.0.11:5038): one Asterisk is one node'),
    (TWO_NODES.replace("      ami: {host: 10.0.0.12", "      agi: {host: 10.0.0.12").replace(', secret: "${IVR_AMI_SECRET_B}"', ""),
     'config.yaml:7:5: node "pbx-b" needs its ami'),
    (TWO_NODES.replace("port: 5038, username", "port: 0, username"),
     "config.yaml:5:36: AMI port must be a number from 1 to 65535, not 0"),
    ("asterisk:\n  nodes: []\n", "config.yaml:2:10: asterisk nodes must be a mapping of node names"),
    ("asterisk:\n  ami: {port: 5038}\n  nodes: {a: {ami: {port: 5039}}}\n",
     "config.yaml:3:3: asterisk has both ami and nodes"),
    ("asterisk:\n  node: {a: {ami: {port: 5039}}}\n",
     'config.yaml:2:3: "node" is no field of asterisk (did you mean "nodes"?)'),
])
def test_a_wrong_node_is_an_error_where_it_is_written(tmp_path, asterisk, message):
    with pytest.raises(ConfigError) as raised:
        load_config(_config(tmp_path, asterisk))
    assert message in str(raised.value)
    assert "hunter2" not in str(raised.value)

"""`ivr asterisk-config` with several Asterisks (asterisk.nodes): one folder of files per
node; each node's dialplan sends calls to the node's FastAGI address and names the node in
an AGI argument; each manager.conf is the node's account; queues.conf is the same on all."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from ivr.asterisk.dialplan import extensions_conf, generate, generate_all
from ivr.cli import cli
from ivr.settings.config import load_config

ENV = {"IVR_AMI_SECRET_A": "secret-of-a-1", "IVR_AMI_SECRET_B": "secret-of-b-2"}

CONFIG = """\
asterisk:
  agi: {host: 127.0.0.1, port: 4599}
  nodes:
    pbx-a:
      ami: {host: 10.0.0.11, port: 5038, username: engine, secret: "${IVR_AMI_SECRET_A}"}
      agi: {host: 10.0.0.20, port: 4600}
    pbx-b:
      ami: {host: 10.0.0.12, port: 5040, secret: "${IVR_AMI_SECRET_B}"}
recordings: {dir: calls}
prompts: {dir: prompts, voices: {pl: pl}}
fallback: operator
departments:
  sales:    {queue: sales, members: [PJSIP/101], overflow: backup}
  operator: {queue: operator, members: [PJSIP/100]}
  backup:   {queue: backup, members: [PJSIP/190]}
"""


def _write(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_each_node_sends_calls_to_its_agi_address_and_names_itself(tmp_path):
    config = load_config(_write(tmp_path))
    files = generate_all(config, ENV)
    assert sorted(files) == [f"{node}/{name}" for node in ("pbx-a", "pbx-b")
                             for name in ("extensions.conf", "manager.conf", "queues.conf")]
    a, b = files["pbx-a/extensions.conf"], files["pbx-b/extensions.conf"]
    agi_a = [line.strip() for line in a.splitlines() if ",AGI(" in line]
    agi_b = [line.strip() for line in b.splitlines() if ",AGI(" in line]
    assert agi_a and all(line.endswith("AGI(agi://10.0.0.20:4600/main,node=pbx-a)") for line in agi_a)
    assert agi_b and all(line.endswith("AGI(agi://127.0.0.1:4599/main,node=pbx-b)") for line in agi_b)
    assert "agi://10.0.0.20:4600/main did not finish" in a  # the fail-safe names the address it tried
    # the queues are the same on every node: callers wait on the node their call landed on
    assert files["pbx-a/queues.conf"] == files["pbx-b/queues.conf"]
    man_a, man_b = files["pbx-a/manager.conf"], files["pbx-b/manager.conf"]
    assert "port = 5038" in man_a and "bindaddr = 10.0.0.11" in man_a and "[engine]" in man_a
    assert "secret = secret-of-a-1" in man_a and "secret-of-b-2" not in man_a
    assert "port = 5040" in man_b and "[ivr]" in man_b and "secret = secret-of-b-2" in man_b


def test_one_node_keeps_the_files_as_they_were(tmp_path):
    single = CONFIG.split("  nodes:")[0] + '  ami: {host: 127.0.0.1, port: 5039, secret: "${IVR_AMI_SECRET_A}"}\n' + \
        "recordings:" + CONFIG.split("recordings:")[1]
    config = load_config(_write(tmp_path, single))
    files = generate_all(config, ENV)
    assert sorted(files) == ["extensions.conf", "manager.conf", "queues.conf"]
    assert files == generate(config, ENV)
    assert "node=" not in extensions_conf(config)
    assert " same => n,AGI(agi://127.0.0.1:4599/main)" in files["extensions.conf"]


def test_the_command_writes_a_folder_per_node_and_says_what_to_set(tmp_path, monkeypatch):
    path = _write(tmp_path)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["--config", str(path), "asterisk-config", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    for node in ("pbx-a", "pbx-b"):
        assert f"{node}/manager.conf" in result.stderr
        mode = stat.S_IMODE((tmp_path / "out" / node / "manager.conf").stat().st_mode)
        assert mode == 0o600
    assert "systemname" in result.stderr
    assert "secret-of" not in result.output


def test_a_node_whose_secret_is_not_set_is_named(tmp_path, monkeypatch):
    path = _write(tmp_path)
    monkeypatch.setenv("IVR_AMI_SECRET_A", "secret-of-a-1")
    monkeypatch.delenv("IVR_AMI_SECRET_B", raising=False)
    result = CliRunner().invoke(cli, ["--config", str(path), "asterisk-config", "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "IVR_AMI_SECRET_B is not set (config.yaml asterisk.nodes.pbx-b.ami.secret is ${IVR_AMI_SECRET_B})" \
        in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written: every node's files are checked first

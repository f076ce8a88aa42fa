"""The files the multi-node test bed writes (ivr.testbed.cluster): each Asterisk node's own
folders, ports and systemname; Kamailio's dispatcher config and HAProxy's, each checked by
the real program's own config check (`kamailio -c`, `haproxy -c`); the SIPp scenario of a
call that goes through a proxy. The live tests are tests/asterisk/test_live_multinode.py."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from ivr.errors import AsteriskError
from ivr.settings.config import load_config
from ivr.testbed.cluster import Layout, check_nodes, node_side, nodes_section
from ivr.testbed.files import Node, base_files
from ivr.testbed.haproxy import Engine, haproxy_cfg
from ivr.testbed.kamailio import Destination, dispatcher_list, kamailio_cfg
from ivr.testbed import server
from ivr.testbed.server import REPO
from ivr.testbed.sipp import scenario_xml

NODE = Node("ast2", 5072, 5040, (22000, 22999))


def test_a_node_has_folders_ports_and_a_systemname_of_its_own():
    files = base_files(node=NODE)
    conf = files["asterisk.conf"]
    for folder in ("etc", "var/lib", "var/spool", "var/run", "var/log", "var/cache"):
        assert f"/{folder}/asterisk-ast2\n" in conf
    assert "astdatadir => /usr/share/asterisk\n" in conf  # the sounds are shared
    assert "\nsystemname = ast2\n" in conf  # every uniqueid starts with ast2-
    assert "bind = 127.0.0.1:5072\n" in files["pjsip.conf"]
    assert files["rtp.conf"].startswith("[general]\nrtpstart = 22000\nrtpend = 22999\n")
    # the single test bed is as it was
    single = base_files()
    assert "systemname" not in single["asterisk.conf"] and "astetcdir => /etc/asterisk\n" in single["asterisk.conf"]
    assert "bind = 127.0.0.1:5070\n" in single["pjsip.conf"]


def test_a_node_name_must_be_a_short_word():
    for bad in ("Ast 1", "ast-1", "", "a" * 17, "ast1;x"):
        with pytest.raises(AsteriskError, match="node name"):
            Node(bad, 5072, 5040, (22000, 22999))


def test_a_node_testbed_talks_to_its_own_asterisk(tmp_path):
    bed = server.Testbed(REPO / "config.yaml", root=tmp_path / "root", state=tmp_path / "state", node=NODE)
    assert bed._asterisk()[-2:] == ["-C", "/etc/asterisk-ast2/asterisk.conf"]
    assert (bed.sip_port, bed.ami_port) == (5072, 5040)
    assert bed.state == tmp_path / "state" / "nodes" / "ast2"
    assert bed._folder("var/log/asterisk") == tmp_path / "root/var/log/asterisk-ast2"
    single = server.Testbed(REPO / "config.yaml", root=tmp_path / "root", state=tmp_path / "state")
    assert bed.environ()["IVR_AMI_SECRET"] == single.environ()["IVR_AMI_SECRET"]  # one secret for all
    assert single._asterisk() == ["chroot", str(tmp_path / "root"), "asterisk"]


def test_each_node_sends_its_calls_to_haproxy_and_serves_ami_on_its_own_port():
    config = node_side(load_config(REPO / "config.yaml"), NODE, "127.0.0.1", 4590)
    assert (config.asterisk.agi.host, config.asterisk.agi.port) == ("127.0.0.1", 4590)
    assert config.asterisk.ami.port == 5040


def _named(tmp_path: Path, layout: Layout) -> Path:
    """config.yaml with the layout's nodes under asterisk.nodes, as the live tests write it."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["asterisk"]["nodes"] = nodes_section(layout, raw["asterisk"].pop("ami"))
    for segment in raw.get("segments", {}).values():  # read from the repository, not beside the copy
        if isinstance(segment, dict) and "numbers" in segment:
            segment["numbers"] = str(REPO / segment["numbers"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_with_asterisk_nodes_each_node_runs_its_own_generated_files(tmp_path):
    layout = Layout()
    config = load_config(_named(tmp_path, layout))
    assert [(n.name, n.ami.port, n.agi_host, n.agi_port) for n in config.asterisk.nodes] == [
        ("ast1", 5039, "127.0.0.1", 4590), ("ast2", 5040, "127.0.0.1", 4590)]
    check_nodes(config, layout)
    for node in layout.nodes:
        bed = server.Testbed(REPO / "config.yaml", root=tmp_path / "root", state=tmp_path / "state", node=node)
        bed.write_configs(config)
        bed.config = config
        assert bed.ami_port == node.ami_port  # what a test's AMI client of this node logs in to
        etc = tmp_path / "root" / "etc" / f"asterisk-{node.name}"
        extensions = (etc / "extensions.conf").read_text()
        assert f"AGI(agi://127.0.0.1:4590/main,node={node.name})" in extensions  # HAProxy, naming the node
        assert "node=" + ("ast2" if node.name == "ast1" else "ast1") not in extensions
        assert f"\nport = {node.ami_port}\n" in (etc / "manager.conf").read_text()
    with pytest.raises(AsteriskError, match="ami.port is 5040"):
        check_nodes(config, Layout(nodes=(layout.nodes[0], replace(layout.nodes[1], ami_port=5041))))
    with pytest.raises(AsteriskError, match="no node 'ast3'"):
        check_nodes(config, Layout(nodes=(layout.nodes[0], Node("ast3", 5073, 5041, (23000, 23999)))))
    stranger = server.Testbed(REPO / "config.yaml", root=tmp_path / "root", state=tmp_path / "state",
                              node=Node("ast3", 5073, 5041, (23000, 23999)))
    with pytest.raises(AsteriskError, match="ast3 is none of them"):
        stranger.write_configs(config)


def test_a_layout_refuses_two_parts_of_one_name():
    with pytest.raises(AsteriskError, match="names of their own"):
        Layout(nodes=(NODE, NODE))


def test_the_dispatcher_list_names_each_asterisk():
    text = dispatcher_list([Destination("ast1", "127.0.0.1", 5071), Destination("ast2", "127.0.0.1", 5072)])
    assert text.splitlines()[1:] == ["1 sip:127.0.0.1:5071 0 0 duid=ast1", "1 sip:127.0.0.1:5072 0 0 duid=ast2"]
    with pytest.raises(AsteriskError):
        dispatcher_list([Destination("ast 1\n2 sip:evil", "127.0.0.1", 5071)])


def test_kamailio_probes_spreads_fails_over_and_stays_in_the_dialog(tmp_path):
    cfg = kamailio_cfg(port=5080, dispatcher=tmp_path / "dispatcher.list", control=tmp_path / "ctl")
    assert 'modparam("dispatcher", "ds_ping_interval", 1)' in cfg
    assert 'modparam("dispatcher", "ds_probing_threshold", 1)' in cfg
    assert 'modparam("dispatcher", "ds_ping_reply_codes", "class=2")' in cfg  # a timed-out probe (408) is a failure
    assert 'ds_select_dst("1", "4")' in cfg  # round-robin
    assert "record_route();" in cfg and "loose_route()" in cfg
    failure = cfg.split("failure_route[NEXT_ASTERISK]")[1]
    assert 't_check_status("408|5[0-9][0-9]")' in failure and "ds_next_dst()" in failure
    kamailio = shutil.which("kamailio") or "/usr/sbin/kamailio"
    assert Path(kamailio).is_file(), "kamailio is missing: run `scripts/bootstrap.sh test`"
    (tmp_path / "dispatcher.list").write_text(dispatcher_list([Destination("ast1", "127.0.0.1", 5071)]))
    (tmp_path / "kamailio.cfg").write_text(cfg)
    check = subprocess.run([kamailio, "-c", "-f", str(tmp_path / "kamailio.cfg")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-2000:]


def test_haproxy_checks_readiness_retries_elsewhere_and_never_cuts_a_call(tmp_path):
    engines = [Engine("e1", "127.0.0.1", 4591, 9591), Engine("e2", "127.0.0.1", 4592, 9592)]
    cfg = haproxy_cfg(port=4590, engines=engines, admin=tmp_path / "admin.sock")
    assert "balance leastconn" in cfg and "http-check send meth GET uri /health/ready" in cfg
    assert "server e1 127.0.0.1:4591 check port 9591" in cfg and "server e2 127.0.0.1:4592 check port 9592" in cfg
    assert "option redispatch 1" in cfg and "retries 3" in cfg
    assert "on-marked-down" not in cfg  # no shutdown-sessions: a draining engine keeps its calls
    assert "timeout client 4h" in cfg and "timeout server 4h" in cfg  # a caller waits in a queue, silent
    with pytest.raises(AsteriskError):
        haproxy_cfg(port=4590, engines=[Engine("e1\n  server x", "127.0.0.1", 1, 2)], admin=tmp_path / "a")
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(haproxy).is_file(), "haproxy is missing: run `scripts/bootstrap.sh test`"
    (tmp_path / "haproxy.cfg").write_text(cfg)
    check = subprocess.run([haproxy, "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-2000:]


def test_a_call_through_a_proxy_sends_ack_and_bye_along_the_recorded_route():
    xml = scenario_xml([], caller_name="A", caller_id="4822", hold=3, proxied=True)
    assert '<recv response="200" rtd="true" rrs="true"/>' in xml
    assert "INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0" in xml  # the first request goes to the proxy
    assert "ACK [next_url] SIP/2.0\n[routes]\n" in xml and "BYE [next_url] SIP/2.0\n[routes]\n" in xml
    direct = scenario_xml([], caller_name="A", caller_id="4822", hold=3)
    assert "rrs" not in direct and "[routes]" not in direct

"""A real Asterisk 22 configured by `ivr asterisk-config`'s files, with no engine running:
the version, the generated dialplan, queues and manager user as Asterisk loaded them, the
AMI rights as Asterisk enforces them, and the issue's requirement: with `ivr serve`
stopped, a call (AMI Originate of a Local channel, and a SIP call by `ivr call`) goes to
the fallback department's queue."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from click.testing import CliRunner

from ivr.asterisk.dialplan import agi_url
from ivr.testbed.ami_session import AmiSession, originate_keys
from ivr.testbed.files import AGENT
from ivr.cli import cli
from ivr.errors import AmiLoginError
from .testbed_support import IVR, agi_port_nobody_uses

pytestmark = pytest.mark.asterisk


def test_asterisk_22_is_running(testbed):
    assert "Asterisk 22" in testbed.rx("core show version")
    result = CliRunner().invoke(cli, ["--config", str(testbed.config_path), "testbed", "status"])
    assert result.exit_code == 0 and "test bed running" in result.output


def test_the_generated_dialplan_is_loaded(testbed):
    ivr = testbed.rx("dialplan show ivr")
    for exten in ("'100'", "'_X.'", "'s'"):
        assert exten in ivr
    assert f"AGI({agi_url(testbed.config)})" in ivr
    assert "Goto(ivr-failsafe,s,1)" in ivr  # after AGI: a caller still on the line was let down
    assert "MixMonitor(${IVR_RECORDING})" in ivr
    fallback = testbed.config.fallback_department
    assert f"Queue({fallback.queue},,,,300)" in testbed.rx("dialplan show ivr-failsafe")
    # the site file the generated dialplan includes holds the test bed's own contexts
    assert "Playback(tt-monkeys)" in testbed.rx("dialplan show 200@agents")
    assert "Queue(sales)" in testbed.rx("dialplan show ivr-callback")


def test_every_department_has_its_queue(testbed):
    shown = testbed.rx("queue show")
    for department in testbed.config.departments.values():
        block = re.search(rf"^{department.queue} has .*?(?=^\S|\Z)", shown, re.M | re.S)
        assert block, f"queue {department.queue} is not loaded:\n{shown}"
        assert f"in '{department.strategy}' strategy" in block.group(0)
        assert AGENT in block.group(0)


def test_the_manager_user_logs_in_on_localhost_with_only_its_rights(testbed):
    assert f"127.0.0.1:{testbed.ami_port}" in testbed.rx("manager show settings")
    user = testbed.rx(f"manager show user {testbed.ami_username}")
    perms = dict(re.findall(r"^\s*(read|write) perm: (\S+)\s*$", user, re.M))
    assert set(perms["read"].split(",")) == {"call", "agent"}, user
    assert set(perms["write"].split(",")) == {"originate", "call", "reporting"}, user
    with AmiSession("127.0.0.1", testbed.ami_port) as ami:
        assert ami.banner.startswith("Asterisk Call Manager/")
        ami.login(testbed.ami_username, testbed.ami_secret)
        # what the engine uses is allowed
        assert ami.action("Ping")["Response"] == "Success"
        assert ami.action("QueueStatus")["Response"] == "Success"
        assert ami.action("CoreShowChannels")["Response"] == "Success"
        # outside its rights: CLI commands (command), reloads (system), config files (config)
        for action, headers in (("Command", {"Command": "core show version"}), ("Reload", {}),
                                ("GetConfig", {"Filename": "manager.conf"}),
                                ("ModuleLoad", {"Module": "app_queue.so", "LoadType": "reload"})):
            reply = ami.action(action, headers)
            assert (reply["Response"], reply.get("Message")) == ("Error", "Permission denied"), action
        # the mute the engine sends reaches the application (no such channel here), not a refusal
        mute = ami.action("MixMonitorMute", {"Channel": "PJSIP/nobody-0001", "Direction": "read", "State": "1"})
        assert mute.get("Message") != "Permission denied"


def test_a_wrong_secret_is_refused(testbed):
    with AmiSession("127.0.0.1", testbed.ami_port) as ami:
        with pytest.raises(AmiLoginError):
            ami.login(testbed.ami_username, testbed.ami_secret + "x")


def _recording(testbed, uniqueid: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(testbed.recordings_dir.glob(f"*/{uniqueid}.wav"))
        if found:
            return found[0]
        time.sleep(0.2)
    return None


def test_without_the_engine_an_originated_call_goes_to_the_fallback_queue(testbed, ami):
    fallback = testbed.config.fallback_department.queue
    with agi_port_nobody_uses(testbed):
        originate_keys(ami, "1", hold=4, caller_id='"Fail Safe" <48220000001>')
        joined = ami.wait_event("QueueCallerJoin", lambda e: e.get("CallerIDNum") == "48220000001", timeout=20)
        assert joined["Queue"] == fallback
        # an agent of the fallback queue takes the call: the caller never waits in silence
        connect = ami.wait_event("AgentConnect", lambda e: e.get("Uniqueid") == joined["Uniqueid"], timeout=20)
        assert connect["Queue"] == fallback and connect["Interface"] == AGENT
        response = ami.wait_event("OriginateResponse", timeout=20)  # class call, which the user reads
        assert response["Response"] == "Success"
    # MixMonitor wrote the call where the dialplan says, into the project's recordings/
    path = _recording(testbed, joined["Uniqueid"])
    assert path is not None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", path.parent.name)


def test_without_the_engine_a_sip_call_goes_to_the_fallback_queue(testbed, ami):
    fallback = testbed.config.fallback_department.queue
    with agi_port_nobody_uses(testbed):
        call = subprocess.Popen([str(IVR), "--config", str(testbed.config_path), "call", "1", "--wait", "1",
                                 "--hold", "3", "--caller-id", "48220000002", "--caller-name", 'SIP "Fail" Safe'],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            joined = ami.wait_event("QueueCallerJoin", lambda e: e.get("CallerIDNum") == "48220000002", timeout=20)
        finally:
            output, _ = call.communicate(timeout=60)
    assert joined["Queue"] == fallback
    assert joined["Channel"].startswith("PJSIP/sipp-")
    # chan_pjsip keeps the SIP quoted-string escapes in CALLERID(name) (SIP \"Fail\" Safe,
    # 17 characters), and AMI escapes backslashes and quotes once more in event headers
    assert joined["CallerIDName"] == r'SIP \\\"Fail\\\" Safe'
    assert call.returncode == 0, output
    assert "call ended after" in output

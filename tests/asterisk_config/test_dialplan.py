"""`ivr asterisk-config`: the generated extensions.conf, queues.conf and manager.conf, read
as text (fast; no Asterisk). The same files are loaded into a real Asterisk by
tests/asterisk/."""

from __future__ import annotations

import re
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.asterisk.event_filter import EVENTS
from ivr.asterisk.queue_board import EVENTS as BOARD_EVENTS
from ivr.asterisk.queue_tracker import EVENTS as TRACKER_EVENTS
from ivr.asterisk import dialplan
from ivr.asterisk.dialplan import (
    AMI_READ,
    AMI_WRITE,
    extensions_conf,
    fallback_chain,
    manager_conf,
    queues_conf,
    with_members,
    write_config,
)
from ivr.cli import cli
from ivr.settings.config import Config, Department, load_config
from ivr.errors import AsteriskError, ConfigError

ENV = {"IVR_AMI_SECRET": "s3cret-Value"}

CONFIG = """\
asterisk:
  agi: {host: 127.0.0.1, port: 4599}
  ami: {host: 127.0.0.1, port: 5039, username: engine, secret: "${IVR_AMI_SECRET}"}
recordings: {dir: calls}
prompts: {dir: prompts, voices: {pl: pl, en: en-gb}}
fallback: operator
departments:
  sales:    {queue: sales, members: [PJSIP/101, PJSIP/102], overflow: backup}
  operator: {queue: operator, members: [PJSIP/100], overflow: backup}
  premium:  {queue: premium, members: [PJSIP/110], strategy: leastrecent}
  backup:   {queue: backup, members: [PJSIP/190]}
"""


def load(tmp_path: Path, text: str = CONFIG) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.fixture
def config(tmp_path) -> Config:
    return load(tmp_path)


def section(text: str, name: str) -> list[str]:
    """The lines of [name] (up to the next section), comments left out."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^\[{re.escape(name)}\](\(.*\))?$", line))
    body = []
    for line in lines[start + 1:]:
        if line.startswith("[") or line.startswith("#"):
            break
        if line.strip() and not line.lstrip().startswith(";"):
            body.append(line.split(" ; ")[0].rstrip())
    return body


def sections(text: str) -> list[str]:
    return re.findall(r"^\[([^\]]+)\]", text, re.M)


# --- extensions.conf -------------------------------------------------------------------------
def test_contexts_and_incoming_extensions(config):
    text = extensions_conf(config)
    assert sections(text) == ["ivr", "ivr-failsafe", "ivr-callback"]
    ivr = section(text, "ivr")
    for exten in ("100", "_X.", "_+X.", "s"):  # _+X.: a number with its +, as many trunks send them
        assert f"exten => {exten},1,NoOp(IVR call ${{UNIQUEID}} to ${{EXTEN}})" in ivr
    assert text.rstrip().endswith("#tryinclude extensions_site.conf")


def test_each_incoming_call_answers_sets_language_records_and_runs_agi(config, tmp_path):
    ivr = section(extensions_conf(config), "ivr")
    first = ivr[:7]  # extension 100
    assert first[1:] == [
        " same => n,Answer()",
        " same => n,Set(CHANNEL(language)=pl)",  # the first language of prompts.voices
        f" same => n,Set(IVR_RECORDING={tmp_path}/calls/${{STRFTIME(${{EPOCH}},,%Y-%m-%d)}}/${{UNIQUEID}}.wav)",
        " same => n,MixMonitor(${IVR_RECORDING})",
        " same => n,AGI(agi://127.0.0.1:4599/main)",
        # the engine hangs up every call it finishes: a caller still here was let down
        " same => n,Goto(ivr-failsafe,s,1)",
    ]


def test_agi_address_and_language_come_from_config(tmp_path):
    text = CONFIG.replace("host: 127.0.0.1, port: 4599", "host: 10.0.0.7, port: 4573")
    text = text.replace("asterisk:\n", "asterisk:\n  language: en\n")
    out = extensions_conf(load(tmp_path, text))
    assert out.count("AGI(agi://10.0.0.7:4573/main)") == 4  # 100, _X., _+X. and s
    assert "Set(CHANNEL(language)=en)" in out and "language)=pl" not in out


def test_failsafe_goes_to_the_fallback_queue_then_its_overflow(config):
    failsafe = section(extensions_conf(config), "ivr-failsafe")
    queues = [line for line in failsafe if "Queue(" in line]
    assert queues == [" same => n,Queue(operator,,,,300)", " same => n,Queue(backup)"]
    assert failsafe[0] == 'exten => s,1,GotoIf($["${QUEUESTATUS}" = "CONTINUE"]?served)'
    assert failsafe[1].startswith(" same => n,Log(WARNING,IVR engine at agi://127.0.0.1:4599/main did not finish the call")
    assert "Playback(all-circuits-busy-now&please-try-call-later&goodbye)" in failsafe[-4]
    assert failsafe[-3] == " same => n,Hangup()"


def test_a_caller_an_agent_served_is_not_queued_again_when_the_engine_stops(config):
    """Queue's c option leaves QUEUESTATUS=CONTINUE when the agent hangs up and the flow goes
    on: an engine stopped then (its call interrupted) does not send that caller to a queue again."""
    failsafe = section(extensions_conf(config), "ivr-failsafe")
    served = failsafe.index(next(line for line in failsafe if "n(served)" in line))
    assert failsafe[served].startswith(" same => n(served),Log(NOTICE,")
    assert failsafe[served + 1:] == [" same => n,Hangup()"]
    assert not any("Queue(" in line for line in failsafe[served:])


def test_without_a_fallback_the_first_department_is_used(tmp_path):
    config = load(tmp_path, CONFIG.replace("fallback: operator\n", ""))
    assert [d.name for d in fallback_chain(config)] == ["sales", "backup"]


def test_overflow_loops_end(config):
    looped = replace(config, departments={**config.departments,
                                          "backup": replace(config.departments["backup"], overflow="operator")})
    assert [d.queue for d in fallback_chain(looped)] == ["operator", "backup"]


def test_no_departments_is_an_error(tmp_path):
    config = load(tmp_path, "fallback: null\n")
    with pytest.raises(AsteriskError, match="no departments"):
        extensions_conf(config)


def test_callback_context_has_one_extension_per_queue(config):
    callback = section(extensions_conf(config), "ivr-callback")
    assert [line.split(",")[0] for line in callback if line.startswith("exten")] == [
        "exten => sales", "exten => operator", "exten => premium", "exten => backup"]
    assert " same => n,Queue(premium)" in callback


def test_callback_context_follows_config(tmp_path):
    text = CONFIG.replace("asterisk:\n", "asterisk:\n  callback: {context: call-backs}\n")
    assert "[call-backs]" in extensions_conf(load(tmp_path, text))
    text = CONFIG.replace("asterisk:\n", "asterisk:\n  callback: {context: null}\n")
    assert sections(extensions_conf(load(tmp_path, text))) == ["ivr", "ivr-failsafe"]


# --- queues.conf -------------------------------------------------------------------------------
def test_one_queue_per_department_with_members_and_strategy(config):
    text = queues_conf(config)
    assert sections(text) == ["general", "ivr-queue-defaults", "sales", "operator", "premium", "backup"]
    assert section(text, "sales") == ["strategy = ringall", "member => PJSIP/101", "member => PJSIP/102"]
    assert section(text, "premium") == ["strategy = leastrecent", "member => PJSIP/110"]
    assert "[sales](ivr-queue-defaults)" in text and "[ivr-queue-defaults](!)" in text


def test_queue_template_holds_the_contact_centre_settings(config):
    settings = dict(line.split(" = ", 1) for line in section(queues_conf(config), "ivr-queue-defaults"))
    # silent unless a queue announces (tests/asterisk_config/test_queue_announcements.py)
    assert settings["announce-position"] == settings["announce-holdtime"] == "no"
    assert settings["announce-frequency"] == settings["periodic-announce-frequency"] == "0"
    assert settings["periodic-announce"] == "queue-periodic-announce"
    assert settings["joinempty"] == settings["leavewhenempty"] == "paused,unavailable,invalid"
    assert settings["ringinuse"] == "no" and settings["timeoutpriority"] == "app"
    for var in ("setinterfacevar", "setqueueentryvar", "setqueuevar"):  # what the engine reads
        assert settings[var] == "yes"
    assert int(settings["timeout"]) > 0 and int(settings["wrapuptime"]) >= 0


def test_departments_sharing_a_queue(tmp_path):
    text = CONFIG + "  sales2:   {queue: sales, members: [PJSIP/101, PJSIP/102]}\n"
    out = queues_conf(load(tmp_path, text))
    assert out.count("[sales](ivr-queue-defaults)") == 1
    assert "; department(s): sales, sales2" in out
    clash = CONFIG + "  sales2:   {queue: sales, members: [PJSIP/109]}\n"
    with pytest.raises(AsteriskError, match="share queue"):
        queues_conf(load(tmp_path, clash))


def test_members_can_be_replaced_for_the_test_bed(config):
    text = queues_conf(with_members(config, lambda d: ["Local/200@agents/n"]))
    assert section(text, "backup") == ["strategy = ringall", "member => Local/200@agents/n"]
    assert config.departments["backup"].members == ("PJSIP/190",)  # the original is untouched


# --- odd values: rejected or escaped ----------------------------------------------------------------
def with_department(config: Config, department: Department) -> Config:
    return replace(config, departments={**config.departments, department.name: department})


def test_department_name_with_odd_characters_is_escaped_in_comments(config):
    odd = Department("Obsługa; VIP\nexten => 666,1,System(rm -rf /)\r[evil]", "vip", ("PJSIP/120",))
    config = with_department(replace(config, fallback=odd.name), odd)
    for text in (extensions_conf(config), queues_conf(config)):
        assert "[evil]" not in sections(text)
        assert not any(line.startswith("exten => 666") for line in text.splitlines())
        assert "Obsługa; VIP?exten => 666,1,System(rm -rf /)?[evil]" in text  # on one comment line
    failsafe = section(extensions_conf(config), "ivr-failsafe")
    assert " same => n,Queue(vip,,,,300)" not in failsafe and " same => n,Queue(vip)" in failsafe


@pytest.mark.parametrize("queue", ["sales;x", "a b", "x\ny", "general", "GENERAL", "ivr-queue-defaults", "_X.", ""])
def test_bad_queue_names_are_rejected(config, queue):
    config = with_department(config, Department("odd", queue, ("PJSIP/1",)))
    with pytest.raises(AsteriskError):
        queues_conf(config)


@pytest.mark.parametrize("member", ["PJSIP/101,0,x", "PJSIP/1\nmember => PJSIP/666", "PJSIP/1;x", "no-slash",
                                    "PJSIP/ 1"])
def test_bad_members_are_rejected(config, member):
    config = with_department(config, Department("odd", "odd", (member,)))
    with pytest.raises(AsteriskError, match="no Asterisk interface"):
        queues_conf(config)


def test_recordings_folder_with_dialplan_syntax_is_rejected(tmp_path):
    with pytest.raises(AsteriskError, match="recordings.dir"):
        extensions_conf(load(tmp_path, CONFIG.replace("dir: calls", 'dir: "calls,${EVIL}"')))


@pytest.mark.parametrize("field, value", [("port", "99999"), ("host", '"1.2.3.4,x"'), ("username", "general"),
                                          ("username", '"a b"')])
def test_bad_asterisk_values_never_reach_a_file(tmp_path, field, value):
    # config.yaml is refused when it is read (its messages: tests/flows/test_config_errors.py)
    text = re.sub(rf"{field}: [^,}}]+", f"{field}: {value}", CONFIG, count=2 if field == "port" else 1)
    with pytest.raises(ConfigError, match="AGI|AMI"):
        load(tmp_path, text)


# --- manager.conf --------------------------------------------------------------------------------------
def test_manager_user_has_the_least_rights_and_is_bound_locally(config):
    text = manager_conf(config, environ=ENV)
    general = dict(line.split(" = ", 1) for line in section(text, "general"))
    assert general == {"enabled": "yes", "webenabled": "no", "port": "5039", "bindaddr": "127.0.0.1",
                       "displayconnects": "no", "allowmultiplelogin": "yes"}
    user = section(text, "engine")
    assert user[:6] == ["secret = s3cret-Value", "deny = 0.0.0.0/0.0.0.0", "permit = 127.0.0.1/255.255.255.255",
                        "read = call,agent", "write = originate,call,reporting", "writetimeout = 5000"]
    assert AMI_READ == ("call", "agent") and AMI_WRITE == ("originate", "call", "reporting")
    granted = set(user[3].split(" = ")[1].split(",")) | set(user[4].split(" = ")[1].split(","))
    assert not granted & {"system", "command", "config", "all", "dialplan", "user", "dtmf"}


def test_manager_user_is_sent_only_the_events_the_engine_reads(config):
    user = section(manager_conf(config, environ=ENV), "engine")
    filters = [line for line in user if line.startswith("eventfilter")]
    assert user[6:] == filters  # nothing else follows the rights
    # one include filter a name, in Asterisk 22's advanced form: no regular expression is run
    assert filters == [f"eventfilter(action(include),name({name})) =" for name in EVENTS]
    # every event the client acts on, and nothing the engine only drops
    assert set(EVENTS) == {*TRACKER_EVENTS, *BOARD_EVENTS, "OriginateResponse"}
    assert not set(EVENTS) & {"Newchannel", "Newstate", "Newexten", "VarSet", "DialBegin", "BridgeEnter",
                              "AgentCalled", "MixMonitorMute", "FullyBooted"}


def test_missing_secret_is_a_clear_error(config):
    with pytest.raises(AsteriskError, match="environment variable IVR_AMI_SECRET is not set"):
        manager_conf(config, environ={})


def test_secret_semicolon_is_escaped_and_line_breaks_refused(config):
    assert "secret = a\\;b" in manager_conf(config, environ={"IVR_AMI_SECRET": "a;b"})
    for bad in ("a\nread = all", " padded", ""):
        with pytest.raises(AsteriskError) as info:
            manager_conf(config, environ={"IVR_AMI_SECRET": bad})
        assert "read = all" not in str(info.value)


def test_write_config_writes_three_files_manager_private(config, tmp_path):
    out = tmp_path / "asterisk"
    written = write_config(config, out, ENV)
    assert sorted(p.name for p in written) == sorted(dialplan.FILES)
    assert stat.S_IMODE((out / "manager.conf").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "extensions.conf").stat().st_mode) == 0o644


def test_write_config_writes_nothing_when_the_secret_is_missing(config, tmp_path):
    with pytest.raises(AsteriskError):
        write_config(config, tmp_path / "out", {})
    assert not (tmp_path / "out").exists()


# --- the command -----------------------------------------------------------------------------------------
def test_cli_writes_the_files(tmp_path, monkeypatch):
    load(tmp_path)
    monkeypatch.setenv("IVR_AMI_SECRET", "from-env-123")
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.yaml"), "asterisk-config",
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "manager.conf" in result.stderr and "from-env-123" not in result.output
    assert "secret = from-env-123" in (tmp_path / "out" / "manager.conf").read_text()


def test_cli_missing_secret_exits_1_with_the_reason(tmp_path, monkeypatch):
    load(tmp_path)
    monkeypatch.delenv("IVR_AMI_SECRET", raising=False)
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.yaml"), "asterisk-config",
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "IVR_AMI_SECRET is not set" in result.stderr

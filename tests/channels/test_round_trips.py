"""Round trips of a live call: each AGI command is one, heard by the caller as a gap. The
key-2 call of an always-open line (welcome, menu, queue) takes seven; what the dialplan
already did is not done again, and several values are read by one GET FULL VARIABLE."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

import pytest

from fake_asterisk import Caller, environment, place_call
from ivr.channels.agi_wire import AgiError, full_data, split_values, values_expression
from ivr.channels.fastagi import FastAgiServer
from ivr.engine import Engine
from ivr.flow.project import load_flows
from test_fastagi import installation, lines, run_calls  # noqa: F401 - the fixture is used by name

LINE = """\
flow: line
description: An always-open line.
languages: [en]
start: welcome
prompts:
  welcome: {en: "Hello, thank you for calling."}
  menu: {en: "For sales press 1. For support press 2."}
nodes:
  welcome: {type: play, prompt: welcome, next: menu}
  menu:
    type: menu
    prompt: menu
    options: {"1": sales, "2": support}
    on_fail: support
  sales: {type: transfer, department: sales}
  support: {type: transfer, department: support}
"""
CONFIG = """\
database: sqlite:///ivr.db
fallback: support
departments:
  sales: {queue: sales, members: [PJSIP/101]}
  support: {queue: support, members: [PJSIP/104]}
"""


def _call(tmp_path: Path, caller: Caller, events: Optional[list] = None) -> list[str]:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "line.yaml").write_text(LINE)
    (tmp_path / "config.yaml").write_text(CONFIG)
    flows, config = load_flows([tmp_path / "flows"], tmp_path / "config.yaml")
    engine = Engine(flows, config)

    async def main():
        server = FastAgiServer(lambda: engine, prompts_dir=tmp_path / "prompts", recordings_dir=tmp_path / "rec", port=0,
                               on_event=events.append if events is not None else None)
        await server.start()
        try:
            return await place_call(server.port, caller, environment("1700000000.5", script="line"))
        finally:
            await server.close()

    return lines(asyncio.run(main()))


def test_the_key_2_call_takes_seven_round_trips(tmp_path):
    sent = _call(tmp_path, Caller(keys=["2"], language="en"))
    assert len(sent) == 7, sent
    first, *rest = sent
    # the end of the environment block, the channel's state, language, queue priority, the
    # day's folder and the recording's name: one command
    token = first[len('GET FULL VARIABLE "'):][:16]
    marker = "|" + token  # before each value: no value can hold it
    assert first == ('GET FULL VARIABLE "' + token + "".join(marker + "${" + name + "}" for name in (
        "CHANNEL(state)", "CHANNEL(language)", "QUEUE_PRIO", "STRFTIME(${EPOCH},,%Y-%m-%d)", "IVR_RECORDING")) + '"')
    prompts = tmp_path / "prompts" / "en" / "line"
    assert rest == [
        f'STREAM FILE "{prompts}/welcome" ""',
        f'STREAM FILE "{prompts}/menu" "12"',
        'WAIT FOR DIGIT "5000"',
        'EXEC "Queue" "support,c,,,"',
        'GET FULL VARIABLE "${QUEUESTATUS}|${QEHOLDTIME}|${ABANDONED}|${MEMBERINTERFACE}|${MEMBERNAME}'
        '${SET(QEHOLDTIME=)}${SET(ABANDONED=)}${SET(MEMBERINTERFACE=)}${SET(MEMBERNAME=)}"',
        "HANGUP",
    ]


def test_the_queue_results_are_cleared_by_the_command_that_reads_them(tmp_path):
    """app_queue sets the agent, the hold time and ABANDONED only when they apply: a second
    transfer of the same call must not read the first one's. The values are read first."""
    caller = Caller(keys=["2"], language="en", agent="Agent 7")
    events: list = []
    _call(tmp_path, caller, events)
    [result] = [e for e in events if e.type == "transfer_result"]
    assert result.data["agent"] == "Agent 7"  # read before it was cleared
    assert {name: caller.variables.get(name) for name in ("QEHOLDTIME", "ABANDONED", "MEMBERINTERFACE", "MEMBERNAME")} \
        == dict.fromkeys(("QEHOLDTIME", "ABANDONED", "MEMBERINTERFACE", "MEMBERNAME"), "")


def test_a_channel_the_dialplan_left_alone_is_answered_and_given_the_language(tmp_path):
    sent = _call(tmp_path, Caller(keys=["2"], state="Ring", language="pl"))
    assert sent[1:3] == ["ANSWER", 'SET VARIABLE "CHANNEL(language)" "en"']
    assert len(sent) == 9


def test_a_priority_the_dialplan_set_is_put_back_to_the_callers(tmp_path):
    sent = _call(tmp_path, Caller(keys=["2"], language="en", variables={"QUEUE_PRIO": "7"}))
    assert 'SET VARIABLE "QUEUE_PRIO" "0"' in sent  # the flow's priority (0) wins over the dialplan's


def test_a_premium_caller_queues_first_and_the_overflow_at_the_normal_priority(installation, tmp_path):
    # main.yaml: a number of data/vip.csv goes to premium_desk (priority 10), whose time-out
    # sends the caller to the backup group (sales_overflow, priority 0)
    vip = environment("1700000000.6", agi_callerid="48225550101")
    caller = Caller(keys=[], queue_status="TIMEOUT")
    _, [sent] = run_calls(installation, tmp_path, [(caller, vip)])
    cmds = [c for c in lines(sent) if "QUEUE_PRIO" in c or c.startswith('EXEC "Queue"')]
    assert cmds[:4] == ['SET VARIABLE "QUEUE_PRIO" "10"', 'EXEC "Queue" "premium,c,,,60"',
                        'SET VARIABLE "QUEUE_PRIO" "0"', 'EXEC "Queue" "backup,c,,,120"'], lines(sent)


def test_several_values_in_one_reply():
    names = ("QUEUESTATUS", "QEHOLDTIME", "MEMBERNAME")
    assert values_expression(names) == "${QUEUESTATUS}|${QEHOLDTIME}|${MEMBERNAME}"
    # the last value is free text: it may hold the separator and parentheses
    line = "200 result=1 (CONTINUE|12|Anna (team | B))"
    assert split_values(full_data(line), names) == {"QUEUESTATUS": "CONTINUE", "QEHOLDTIME": "12",
                                                   "MEMBERNAME": "Anna (team | B)"}
    assert split_values(full_data("200 result=1 (||)"), names) == dict.fromkeys(names, "")
    with pytest.raises(AgiError, match="expected 3 values"):
        split_values("CONTINUE", names)


def test_a_call_keeps_only_the_environment_values_the_engine_reads():
    from ivr.channels.agi_wire import parse_environment

    env = parse_environment(["agi_network_script: main?lang=en", "agi_channel: PJSIP/a-1", "agi_uniqueid: 1.2",
                             "agi_callerid: 48221234567", "agi_calleridname: Jan", "agi_callingpres: 0",
                             "agi_context: ivr", "agi_request: agi://127.0.0.1/main", "agi_arg_1: vip"])
    env.keep_only_used()
    assert (env.script, env.query, env.channel, env.uniqueid, env.caller, env.caller_name, env.args) == (
        "main", {"lang": "en"}, "PJSIP/a-1", "1.2", "48221234567", "Jan", ["vip"])
    assert "agi_context" not in env.values and "agi_request" not in env.values


def test_a_value_holding_the_separator_shifts_no_other_value(tmp_path):
    # a language set from a SIP header, say: the recording is still the one the dialplan named
    caller = Caller(keys=["2"], language="en|x", recording="/rec/2026-11-24/1700000000.5.wav")
    events: list = []
    sent = _call(tmp_path, caller, events)
    assert sent[1] == 'SET VARIABLE "CHANNEL(language)" "en"'  # "en|x" is not the flow's language
    assert events[0].data["recording"] == "/rec/2026-11-24/1700000000.5.wav"
    assert not [line for line in sent if "MixMonitor" in line]  # the dialplan's recording was found


def test_a_caller_gone_before_the_first_answer_gets_no_more_commands(installation, tmp_path):
    def rule(line):
        if line.startswith('GET FULL VARIABLE "') and "CHANNEL(state)" in line:
            return ["HANGUP", Caller().answer(line)[0]]  # Asterisk's notice, then the answer
        return None

    events, [sent] = run_calls(installation, tmp_path, [(Caller(special=[rule]), environment("1700000000.7"))])
    [call] = events.values()
    assert sent == []  # nothing after the first command
    assert call[0].data["caller_name"] == "Jan Kowalski" and call[-1].data["outcome"] == "abandoned"


def test_a_hangup_line_inside_a_caller_name_is_part_of_the_name(installation, tmp_path):
    name = "A\n\nHANGUP\nB"
    env = environment("1700000000.8", agi_calleridname=name)
    tail = {key: env.pop(key) for key in ("agi_context", "agi_extension", "agi_priority")}
    env = {**env, "agi_callingpres": "0", **tail}
    events, [sent] = run_calls(installation, tmp_path, [(Caller(keys=["1", "1"]), env)])
    [call] = events.values()
    assert call[0].data["caller_name"] == name and call[-1].data["outcome"] == "answered"

"""The FastAGI server against a fake Asterisk over loopback: every reply form, HANGUP at
any moment, dead channels, quoting of untrusted values, no read time-out while a Queue
runs, and a thousand calls at once in one process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from fake_asterisk import Caller, environment, place_call
from ivr.channels.agi_wire import (AgiDeadChannel, AgiInvalidCommand, AgiUsageError, command, parse_environment,
                                   parse_reply, quote, reply_of)
from wire_fakes import open_call
from ivr.channels.fastagi import FastAgiServer
from ivr.engine import Engine
from ivr.flow.project import load_flows

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installation():
    flows, config = load_flows([ROOT / "flows"], ROOT / "config.yaml")
    return flows, config


def run_calls(installation, tmp_path, calls, *, at=None, manager=None):
    """Start a server, place the calls [(Caller, env)], return (events per call id, commands per call)."""
    flows, config = installation
    events: dict[str, list] = {}

    def on_event(event):
        events.setdefault(event.call_id, []).append(event)

    from ivr.clock import VirtualClock

    class Clocked(Engine):
        async def run(self, *args, **kwargs):  # the office is open, whatever today is
            kwargs.setdefault("clock", VirtualClock(at) if at else None)
            return await super().run(*args, **kwargs)

    import datetime as dt

    at = at or dt.datetime.fromisoformat("2026-11-24T10:00:00+01:00")
    engine = Clocked(flows, config)

    async def main():
        server = FastAgiServer(lambda: engine, prompts_dir=tmp_path / "prompts", recordings_dir=tmp_path / "rec",
                               port=0, on_event=on_event, manager=manager)
        await server.start()
        try:
            sent = await asyncio.gather(*(place_call(server.port, c, e) for c, e in calls))
        finally:
            await server.close()
        # the server's first command makes sure the environment block has ended: left out here
        return [s[1:] if s and s[0].startswith(b'GET FULL VARIABLE "') else s for s in sent]

    return events, asyncio.run(main())


def lines(sent: list[bytes]) -> list[str]:
    return [s.decode().rstrip("\n") for s in sent]


# --- the wire --------------------------------------------------------------------------------
def test_reply_forms():
    r = parse_reply("200 result=0 endpos=3520")
    assert (r.number, r.data, r.fields) == (0, None, {"endpos": "3520"})
    assert parse_reply("200 result=49").number == 49
    assert parse_reply("200 result=0 (timeout)").data == "timeout"
    r = parse_reply("200 result=1 (Agent 101)")
    assert (r.number, r.data) == (1, "Agent 101")
    assert parse_reply("200 result=-1 endpos=0").number == -1
    with pytest.raises(AgiInvalidCommand):
        parse_reply("510 Invalid or unknown command")
    with pytest.raises(AgiDeadChannel):
        parse_reply("511 Command Not Permitted on a dead channel or intercept routine")


def test_multiline_520_is_read_whole_so_the_next_reply_stays_in_step():
    async def main():
        connection, transport = open_call()
        connection.data_received(b"520-Invalid command syntax.  Proper usage follows:\n Usage: STREAM FILE <filename>\n"
                                 b"520 End of proper usage.\n200 result=0 endpos=8000\n")
        with pytest.raises(AgiUsageError, match="Usage: STREAM FILE"):
            reply_of(await connection.reply())
        assert reply_of(await connection.reply()).fields == {"endpos": "8000"}

    asyncio.run(main())


def test_hangup_line_and_closed_socket_are_a_dead_channel():
    async def main():
        for data in (b"HANGUP\n", b""):
            connection, transport = open_call()
            connection.data_received(data)
            connection.connection_lost(None)
            with pytest.raises(AgiDeadChannel):
                reply_of(await connection.reply())

    asyncio.run(main())


def test_quote_keeps_every_value_one_argument_on_one_line():
    hostile = 'A "Quote" \\ Test\nHANGUP\r\n"; EXEC System rm'
    line = command("SET VARIABLE", "NAME", hostile)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert quote('a"b') == '"a\\"b"'
    assert quote("a\\b") == '"a\\\\b"'
    # Asterisk's own parsing (res_agi parse_args): quotes group, backslash escapes
    assert _asterisk_parse(line.decode().rstrip("\n")) == ["SET", "VARIABLE", "NAME", hostile.replace("\n", "").replace("\r", "")]


def _asterisk_parse(s: str) -> list[str]:
    """The argument splitting of Asterisk's res_agi parse_args, for the quoting test."""
    args, cur, quoted, escaped, started = [], "", False, False, False
    for ch in s:
        if ch == '"' and not escaped:
            quoted = not quoted
            started = True
            continue
        if ch in " \t" and not quoted and not escaped:
            if started:
                args.append(cur)
            cur, started = "", False
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        cur += ch
        escaped = False
        started = True
    if started:
        args.append(cur)
    return args


# --- whole calls -----------------------------------------------------------------------------
def test_sales_call_commands_and_record(installation, tmp_path):
    # a short call (the fake queue answers at once): the survey is asked, and the caller gives 9
    events, [sent] = run_calls(installation, tmp_path, [(Caller(keys=["1", "1", "9", "#"]), environment())])
    cmds = lines(sent)
    # the first command (left out here) read the recording the dialplan started, and that
    # the channel is answered and in Polish: no command repeats what the dialplan did
    prompts = tmp_path / "prompts"
    assert cmds[0] == f'STREAM FILE "{prompts}/pl/main/welcome" ""'
    assert f'STREAM FILE "{prompts}/pl/main/choose_language" "12"' in cmds
    assert f'STREAM FILE "{prompts}/en/main/choose_language" "12"' in cmds  # the language menu in both voices
    assert 'WAIT FOR DIGIT "4000"' in cmds
    assert not [c for c in cmds if "QUEUE_PRIO" in c]  # priority 0 on a channel without one: nothing to set
    assert 'EXEC "Queue" "sales,c,,,180"' in cmds
    # one round trip for everything Queue() left
    assert ('GET FULL VARIABLE "${QUEUESTATUS}|${QEHOLDTIME}|${ABANDONED}|${MEMBERINTERFACE}|${MEMBERNAME}'
            '${SET(QEHOLDTIME=)}${SET(ABANDONED=)}${SET(MEMBERINTERFACE=)}${SET(MEMBERNAME=)}"') in cmds
    assert cmds[-1] == "HANGUP"
    [call] = events.values()
    assert [e.seq for e in call] == list(range(len(call)))
    result = next(e for e in call if e.type == "transfer_result")
    assert (result.data["status"], result.data["agent"], result.data["wait"]) == ("answered", "Agent 101", 12.0)
    assert call[0].data["uniqueid"] == "1700000000.1" and call[0].data["source"] == "live"
    assert call[0].data["recording"] == "/var/spool/ivr/recordings/2026-11-24/1700000000.1.wav"
    assert call[-1].data["outcome"] == "answered" and call[-1].data["department"] == "sales"
    assert call[-1].data["survey"] == 9


def test_hangup_in_a_menu_is_abandoned_there_and_nothing_more_is_sent(installation, tmp_path):
    events, [sent] = run_calls(installation, tmp_path, [(Caller(keys=["1", "hangup"]), environment())])
    [call] = events.values()
    assert call[-1].data["outcome"] == "abandoned"
    assert call[-1].node == "main_menu"
    assert lines(sent)[-1] == 'WAIT FOR DIGIT "5000"'  # no command after the HANGUP line


def test_wrong_keys_then_operator_and_time_outs(installation, tmp_path):
    events, _ = run_calls(installation, tmp_path, [
        (Caller(keys=["1", "9", "9", "9"]), environment("1.1")),
        (Caller(keys=["1", "-", "-", "-"]), environment("1.2")),
    ])
    wrong, silent = events["1.1"], events["1.2"]
    assert [e.data["prompt"] for e in wrong if e.type == "prompt"].count("invalid") == 3
    assert [e.data["prompt"] for e in silent if e.type == "prompt"].count("no_input") == 3
    for call in (wrong, silent):
        assert call[-1].data["department"] == "operator"


def test_511_on_a_dead_channel_is_a_caller_hangup(installation, tmp_path):
    dead = Caller(keys=["1"], special=[lambda line: ["511 Command Not Permitted on a dead channel or intercept routine"]
                                        if line.startswith('STREAM FILE') and "main_menu" in line else None])
    events, _ = run_calls(installation, tmp_path, [(dead, environment())])
    [call] = events.values()
    assert call[-1].data["outcome"] == "abandoned" and call[-1].node == "main_menu"


def test_510_and_520_send_the_caller_to_the_fallback_queue(installation, tmp_path):
    bad = Caller(keys=["1"], special=[lambda line: ["510 Invalid or unknown command"] if "main_menu" in line else None])
    usage = Caller(keys=["1"], special=[lambda line: ["520-Invalid command syntax.  Proper usage follows:",
                                                      "Usage: STREAM FILE", "520 End of proper usage."]
                                        if "main_menu" in line else None])
    events, sent = run_calls(installation, tmp_path, [(bad, environment("2.1")), (usage, environment("2.2"))])
    for uid, commands in zip(("2.1", "2.2"), sent):
        call = events[uid]
        assert [e.type for e in call][-4:] == ["error", "transfer", "transfer_result", "outcome"]
        assert call[-1].data["outcome"] == "failed"
        assert 'EXEC "Queue" "operator,c,,,"' in lines(commands)


def test_a_missing_prompt_file_is_told_from_a_hangup(installation, tmp_path):
    missing = Caller(keys=["1"], missing_files=("/main_menu",))
    events, sent = run_calls(installation, tmp_path, [(missing, environment())])
    [call] = events.values()
    assert "CHANNEL STATUS" in lines(sent[0])
    error = next(e for e in call if e.type == "error")
    assert "cannot play prompt \"main_menu\"" in error.data["message"]
    assert call[-1].data["outcome"] == "failed" and call[-1].data["department"] == "operator"


def test_hostile_caller_name_reaches_the_record_intact_and_never_a_command(installation, tmp_path):
    env = environment(agi_calleridname='A \\"Quote\\" Test', agi_callerid='48221234567')
    block = dict(env)
    events, [sent] = run_calls(installation, tmp_path, [(Caller(keys=["1", "1"]), block)])
    [call] = events.values()
    assert call[0].data["caller_name"] == 'A "Quote" Test'
    for line in sent:
        assert line.count(b"\n") == 1
        assert b"Quote" not in line


def test_a_caller_name_with_a_line_break_does_not_shift_the_protocol(installation, tmp_path):
    # a line break inside a value arrives as a line of its own in the environment block
    env = environment()
    env["agi_calleridname"] = 'A "Quote"\nTest'
    events, [sent] = run_calls(installation, tmp_path, [(Caller(keys=["1", "1"]), env)])
    [call] = events.values()
    assert call[0].data["caller_name"] == 'A "Quote"\nTest'
    assert call[-1].data["outcome"] == "answered"
    assert all(b"Quote" not in line and line.count(b"\n") == 1 for line in sent)


def test_a_blank_line_in_the_caller_name_can_pass_for_no_reply_nor_environment(installation, tmp_path):
    # Asterisk writes the name as it is (seen on Asterisk 22): a blank line in it looks like
    # the end of the block, and what follows like replies and other agi_ values
    name = 'A "Quote"\n\n200 result=1 (/etc/passwd)\nagi_uniqueid: 1700000000.2\nagi_network_script: faq'
    env = environment("1700000000.9", agi_calleridname=name)
    tail = {key: env.pop(key) for key in ("agi_context", "agi_extension", "agi_priority")}
    env = {**env, "agi_callingpres": "0", **tail, "agi_threadid": "1"}  # Asterisk's order
    events, [sent] = run_calls(installation, tmp_path, [(Caller(keys=["1", "1"]), env)])
    [(uniqueid, call)] = events.items()
    assert uniqueid == "1700000000.9" and call[0].call_id == "1700000000.9"
    assert call[0].data["caller_name"] == name and call[0].flow == "main"
    assert call[0].data["recording"] == "/var/spool/ivr/recordings/2026-11-24/1700000000.1.wav"  # the real reply
    assert call[-1].data["outcome"] == "answered"
    assert all(line.count(b"\n") == 1 and b"passwd" not in line for line in sent)


def test_lines_of_a_caller_name_that_look_like_values_set_nothing():
    name = "x\nagi_channel: PJSIP/victim-00000002\nagi_callingpres: 0\nagi_arg_1: vip"
    block = ["agi_network_script: main", "agi_channel: PJSIP/caller-00000001", "agi_uniqueid: 1.1",
             *f"agi_calleridname: {name}".split("\n"), "agi_callingpres: 0", "agi_context: ivr", "agi_threadid: 7"]
    env = parse_environment(block)
    assert (env.channel, env.uniqueid, env.caller_name, env.args) == ("PJSIP/caller-00000001", "1.1", name, [])
    assert env.get("agi_context") == "ivr" and env.get("agi_threadid") == "7"
    # without agi_callingpres (not Asterisk's block), a name already set is still never set again
    env = parse_environment(["agi_uniqueid: 1.1", "agi_calleridname: x", "agi_uniqueid: 2.2"])
    assert env.uniqueid == "1.1" and env.caller_name == "x\nagi_uniqueid: 2.2"


def test_a_caller_who_hangs_up_on_the_agent_was_answered_by_them(installation, tmp_path):
    # the usual end of a call: the caller hangs up while talking; Queue answers -1, and the
    # agent is read after Asterisk's HANGUP line (GET VARIABLE works on a dead channel)
    events, [sent] = run_calls(installation, tmp_path, [(Caller(keys=["1", "1"], hangs_up_with_agent=True), environment())])
    [call] = events.values()
    result = next(e for e in call if e.type == "transfer_result")
    assert (result.data["status"], result.data["agent"], result.data["wait"]) == ("answered", "Agent 101", 12.0)
    assert call[-1].data["outcome"] == "answered" and call[-2].type == "caller_hangup"
    assert lines(sent)[-1].startswith('GET FULL VARIABLE "${QUEUESTATUS}|${QEHOLDTIME}|${ABANDONED}|'
                                      '${MEMBERINTERFACE}|${MEMBERNAME}${SET(')


def test_query_and_args_become_variables_and_language(installation, tmp_path):
    env = environment(script="main?lang=en&campaign=winter", agi_arg_1='x" HANGUP')
    events, [sent] = run_calls(installation, tmp_path, [(Caller(keys=["1"]), env)])
    [call] = events.values()
    assert call[0].data["language"] == "en"
    assert sent[0] == b'SET VARIABLE "CHANNEL(language)" "en"\n'  # the channel came in Polish
    assert all(b"HANGUP" not in line or line == b"HANGUP\n" for line in sent)


def test_no_read_timeout_while_the_queue_holds_the_line(installation, tmp_path):
    slow = Caller(keys=["1", "1"], queue_delay=2.5)
    started = time.monotonic()
    events, _ = run_calls(installation, tmp_path, [(slow, environment())])
    assert time.monotonic() - started >= 2.5
    [call] = events.values()
    assert call[-1].data["outcome"] == "answered"


def test_queue_timeout_goes_to_the_flow_overflow(installation, tmp_path):
    busy = Caller(keys=["1", "1"], queue_status="TIMEOUT")
    events, [sent] = run_calls(installation, tmp_path, [(busy, environment())])
    assert 'EXEC "Queue" "backup,c,,,120"' in lines(sent)  # sales_overflow


def test_unknown_flow_goes_to_the_fallback_queue_with_its_events(installation, tmp_path):
    events, [sent] = run_calls(installation, tmp_path, [(Caller(), environment(script="nosuchflow"))])
    cmds = lines(sent)
    assert cmds[0] == 'EXEC "Queue" "operator,c,,,"'  # answered and recorded by the dialplan
    assert cmds[-1] == "HANGUP"  # as every call the engine ends: the dialplan's fail-safe does not queue it again
    [call] = events.values()
    assert [e.type for e in call] == ["call_started", "error", "transfer", "transfer_result", "outcome"]
    assert {e.flow for e in call} == {"nosuchflow"}
    assert call[0].data["uniqueid"] == "1700000000.1" and call[0].data["source"] == "live"
    assert call[0].data["recording"] == "/var/spool/ivr/recordings/2026-11-24/1700000000.1.wav"
    assert call[1].data["error"] == "FlowNotLoaded" and "'nosuchflow'" in call[1].data["message"]
    assert call[2].data["fallback"] is True
    assert call[-1].data["outcome"] == "failed" and call[-1].data["department"] == "operator"


def test_a_thousand_calls_at_once_in_one_process(installation, tmp_path):
    calls = [(Caller(keys=["1", "0"]), environment(f"3.{i}")) for i in range(1000)]
    started = time.monotonic()
    events, sent = run_calls(installation, tmp_path, calls)
    elapsed = time.monotonic() - started
    assert len(events) == 1000
    assert all(call[-1].data["outcome"] == "answered" and call[-1].data["department"] == "operator" for call in events.values())
    assert elapsed < 60, elapsed


def test_sensitive_input_stops_the_recorder_over_agi_and_appends_after(installation, tmp_path):
    # no AMI: the account number is kept out of the recording by stopping the recorder
    events, [sent] = run_calls(installation, tmp_path, [(Caller(keys=["1", "3", "9", "0", "0", "1", "2", "3", "#"]), environment())])
    cmds = lines(sent)
    stop = cmds.index('EXEC "StopMixMonitor" ""')
    resume = cmds.index('EXEC "MixMonitor" "/var/spool/ivr/recordings/2026-11-24/1700000000.1.wav,a"')
    typed = [c for c in cmds[stop:resume] if c.startswith("WAIT FOR DIGIT")]
    assert len(typed) == 7  # every key of the account number came while the recorder was stopped
    [call] = events.values()
    assert next(e for e in call if e.type == "input").data["digits"] == "******"
    assert b"900123" not in b"".join(e.to_json().encode() for e in call)


def test_a_call_back_is_booked_through_the_manager_the_server_lends_the_line(installation, tmp_path):
    class Manager:
        def __init__(self):
            self.booked = []

        async def mute(self, channel, muted):
            pass

        async def book_callback(self, request):
            self.booked.append(request)

    manager = Manager()
    # sales and its overflow busy; 1 accepts the call-back, 1 again keeps the caller's own number
    busy = Caller(keys=["1", "1", "1", "1"], queue_status="TIMEOUT")
    events, _ = run_calls(installation, tmp_path, [(busy, environment())], manager=manager)
    assert [(r.department.name, r.number) for r in manager.booked] == [("sales", "48221234567")]
    [call] = events.values()
    assert call[-1].data["outcome"] == "callback"


def test_a_failing_ami_mute_falls_back_to_the_agi_way(installation, tmp_path):
    flows, config = installation

    class DownAmi:
        calls = 0

        async def mute(self, channel, muted):
            DownAmi.calls += 1
            raise ConnectionError("AMI is not connected")

    import datetime as dt
    from ivr.clock import VirtualClock

    class Clocked(Engine):
        async def run(self, *args, **kwargs):
            kwargs.setdefault("clock", VirtualClock(dt.datetime.fromisoformat("2026-11-24T10:00:00+01:00")))
            return await super().run(*args, **kwargs)

    engine = Clocked(flows, config)

    async def main():
        server = FastAgiServer(lambda: engine, prompts_dir=tmp_path, recordings_dir=tmp_path, port=0, manager=DownAmi())
        await server.start()
        try:
            return await place_call(server.port, Caller(keys=["1", "3", "1", "2", "3", "4", "5", "6", "#"]), environment())
        finally:
            await server.close()

    sent = asyncio.run(main())
    assert DownAmi.calls == 2
    assert 'EXEC "StopMixMonitor" ""' in lines(sent)


# --- a caller who hangs up to end a voicemail message -------------------------------------------------
CHRISTMAS = __import__("datetime").datetime.fromisoformat("2026-12-25T10:00:00+01:00")  # holiday: voicemail


def _hangs_up_in_the_message(endpos: int) -> Caller:
    # as Asterisk 22 does it: the HANGUP line, then RECORD FILE's own reply with what was kept
    return Caller(special=[lambda line: ["HANGUP", f"200 result=-1 (hangup) endpos={endpos}"]
                           if line.startswith("RECORD FILE") else None])


def test_a_caller_who_hangs_up_after_a_message_has_left_a_voicemail(installation, tmp_path):
    events, [sent] = run_calls(installation, tmp_path, [(_hangs_up_in_the_message(32000), environment())],
                               at=CHRISTMAS)
    [call] = events.values()
    assert [e.data["mailbox"] for e in call if e.type == "voicemail"] == ["general"]
    assert [e.data["duration"] for e in call if e.type == "voicemail"] == [4.0]
    assert [e.type for e in call][-2:] == ["caller_hangup", "outcome"]
    assert call[-1].data["outcome"] == "voicemail"
    assert lines(sent)[-1].startswith("RECORD FILE")  # nothing is sent to the dead channel after it


def test_a_caller_who_hangs_up_before_saying_anything_abandoned_the_call(installation, tmp_path):
    events, _ = run_calls(installation, tmp_path, [(_hangs_up_in_the_message(0), environment())], at=CHRISTMAS)
    [call] = events.values()
    assert not [e for e in call if e.type == "voicemail"]
    assert call[-1].data["outcome"] == "abandoned" and call[-1].node == "after_hours"


def test_at_a_peak_the_line_queues_the_caller_in_the_overflow_group_the_manager_says(installation, tmp_path):
    """The queue state comes from the manager the server lends the line, without a round
    trip; sales is past its limit, so the Queue() the line runs is backup's."""
    from ivr.engine.channel import QueueLoad

    class Manager:
        asked: list = []

        async def mute(self, channel, muted):
            pass

        async def book_callback(self, request):
            pass

        def queue_load(self, queue):
            Manager.asked.append(queue)
            return QueueLoad(waiting=6, longest_wait=40.0, free_agents=0, logged_in=2) if queue == "sales" else None

    events, [sent] = run_calls(installation, tmp_path, [(Caller(keys=["1", "1"]), environment())],
                               manager=Manager())
    queues = [c for c in lines(sent) if c.startswith('EXEC "Queue"')]
    assert queues == ['EXEC "Queue" "backup,c,,,120"']
    assert Manager.asked == ["sales"]
    [call] = events.values()
    [transfer] = [e for e in call if e.type == "transfer"]
    assert transfer.data["reason"] == "6 callers waiting in sales (limit 5)"


def test_without_a_manager_the_line_knows_no_queue_state(installation, tmp_path):
    _events, [sent] = run_calls(installation, tmp_path, [(Caller(keys=["1", "1"]), environment())])
    assert [c for c in lines(sent) if c.startswith('EXEC "Queue"')] == ['EXEC "Queue" "sales,c,,,180"']


def test_a_connection_that_never_ends_its_environment_is_closed_at_the_deadline(installation, tmp_path, monkeypatch, caplog):
    import logging

    import ivr.channels.fastagi as fastagi

    monkeypatch.setattr(fastagi, "ENVIRONMENT_TIMEOUT", 0.4)
    caplog.set_level(logging.WARNING, logger="ivr")
    flows, config = installation
    engine = Engine(flows, config)

    async def main():
        server = FastAgiServer(lambda: engine, prompts_dir=tmp_path / "prompts", recordings_dir=tmp_path / "rec", port=0)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"agi_network: yes\nagi_channel: PJSIP/slow\n")  # and then nothing
            await writer.drain()
            started = time.monotonic()
            closed = await asyncio.wait_for(reader.read(), 5)  # the server closes the line
            waited = time.monotonic() - started
            writer.close()
            sent = await place_call(server.port, Caller(keys=["hangup"]), environment("1700000000.40"))  # others go on
            return closed, waited, sent, len(server._opening)
        finally:
            await server.close()

    closed, waited, sent, opening = asyncio.run(main())
    assert closed == b"" and 0.3 < waited < 2.0 and opening == 0
    assert sent and sent[0].startswith(b'GET FULL VARIABLE "')
    [said] = [r.getMessage() for r in caplog.records if "closed a FastAGI connection" in r.getMessage()]
    assert "it sent no complete AGI environment within 0.4 s" in said

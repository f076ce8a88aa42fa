"""A live call whose dialplan started no recording (no IVR_RECORDING): the engine starts
it as the generated dialplan would, or says in the log that the call is not recorded, once
per call. Against the fake Asterisk over loopback; the real one is in
tests/asterisk/test_live_recording.py."""

from __future__ import annotations

import logging

from fake_asterisk import Caller, environment
from test_fastagi import installation, lines, run_calls  # noqa: F401 - the fixture is used by name

def _bare(date: str = "2026-11-24", mixmonitor: str = "200 result=0") -> Caller:
    """A call from a hand-written dialplan: not answered, no recording started."""
    def rule(line: str):
        if line.startswith('EXEC "MixMonitor"'):
            return [mixmonitor]
        return None

    return Caller(keys=["hangup"], special=[rule], state="Ring", recording=None, date=date)


def _said(caplog, uniqueid: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if uniqueid in r.getMessage() and "IVR_RECORDING" in r.getMessage()]


def test_the_engine_records_a_call_its_dialplan_did_not(installation, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="ivr")
    events, [sent] = run_calls(installation, tmp_path, [(_bare(), environment("1700000000.7"))])
    path = f"{tmp_path / 'rec'}/2026-11-24/1700000000.7.wav"
    # the day's folder came with the first command: starting the recording costs two
    assert lines(sent)[:3] == [f'EXEC "MixMonitor" "{path}"', f'SET VARIABLE "IVR_RECORDING" "{path}"', "ANSWER"]
    [call] = events.values()
    assert call[0].data["recording"] == path  # the call's record links it
    [said] = _said(caplog, "1700000000.7")
    assert f"the engine started MixMonitor on {path} itself" in said
    assert "MixMonitor(${IVR_RECORDING}) before AGI()" in said


def test_a_recording_that_cannot_start_is_warned_about_once_and_the_call_goes_on(installation, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="ivr")
    events, [sent] = run_calls(installation, tmp_path, [(_bare(mixmonitor="200 result=-2"), environment("1700000000.8"))])
    assert lines(sent)[1] == "ANSWER"  # no IVR_RECORDING set for a file that does not exist
    [call] = events.values()
    assert "recording" not in call[0].data and call[-1].data["outcome"] == "abandoned"
    [said] = _said(caplog, "1700000000.8")
    assert "is NOT recorded" in said and "200 result=-2" in said


def test_a_node_with_a_systemname_is_recorded_under_its_uniqueid(installation, tmp_path, caplog):
    # one of several Asterisks: asterisk.conf's systemname starts each uniqueid (docs/deployment.md)
    caplog.set_level(logging.INFO, logger="ivr")
    _, [sent] = run_calls(installation, tmp_path, [(_bare(), environment("ast2-1700000000.7"))])
    path = f"{tmp_path / 'rec'}/2026-11-24/ast2-1700000000.7.wav"
    assert lines(sent)[:2] == [f'EXEC "MixMonitor" "{path}"', f'SET VARIABLE "IVR_RECORDING" "{path}"']


def test_no_date_from_asterisk_records_nothing_and_says_why(installation, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="ivr")
    _, [sent] = run_calls(installation, tmp_path, [(_bare(date="x/../y"), environment("1700000000.9"))])
    assert not [line for line in lines(sent) if "MixMonitor" in line]
    [said] = _said(caplog, "1700000000.9")
    assert "is NOT recorded" in said and "no date" in said


def test_an_odd_uniqueid_never_becomes_a_file_name(installation, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="ivr")
    _, [sent] = run_calls(installation, tmp_path, [(_bare(), environment("../../etc/x"))])
    assert lines(sent)[:1] == ["ANSWER"]
    [said] = _said(caplog, "../../etc/x")
    assert "is NOT recorded" in said


def test_a_call_the_dialplan_records_costs_no_command_more(installation, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="ivr")
    _, [sent] = run_calls(installation, tmp_path, [(Caller(keys=["hangup"]), environment("1700000000.10"))])
    # answered, in Polish and recorded by the dialplan: the flow's first command is its first prompt
    assert lines(sent)[0].startswith('STREAM FILE "')
    assert not [line for line in lines(sent) if "MixMonitor" in line or line.startswith("GET ")]
    assert _said(caplog, "1700000000.10") == []


def _erring(reply_to: str, reply: list[str]) -> Caller:
    """A bare call (no IVR_RECORDING) where Asterisk answers `reply_to` with `reply`."""
    def rule(line: str):
        if line.startswith(reply_to):
            return reply
        return None

    return Caller(keys=["hangup"], special=[rule], state="Ring", recording=None)


def test_an_error_reply_while_starting_the_recording_is_not_recorded_and_the_call_goes_on(installation, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="ivr")
    usage = ["520-Invalid command syntax.  Proper usage follows:", "Usage: EXEC <Application> <Options>", "520 End of proper usage."]
    calls = [(_erring('EXEC "MixMonitor"', usage), environment("1700000000.11")),
             (_erring('SET VARIABLE "IVR_RECORDING"', ["299 what is this"]), environment("1700000000.12"))]
    events, sent = run_calls(installation, tmp_path, calls)
    assert len(events) == 2  # both calls ran and have their record
    for call in events.values():
        assert "recording" not in call[0].data and call[-1].data["outcome"] == "abandoned", call[-1].data
    for uniqueid in ("1700000000.11", "1700000000.12"):
        [said] = _said(caplog, uniqueid)  # once
        assert "is NOT recorded" in said and "Asterisk answered with an error" in said
    assert "ANSWER" in lines(sent[0]) and "ANSWER" in lines(sent[1])


def test_a_bug_while_starting_the_recording_is_logged_and_the_call_runs(installation, tmp_path, caplog, monkeypatch):
    import ivr.channels.fastagi as fastagi

    async def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(fastagi, "start_recording", broken)
    caplog.set_level(logging.INFO, logger="ivr")
    events, [sent] = run_calls(installation, tmp_path, [(_bare(), environment("1700000000.14"))])
    [call] = events.values()
    assert call[-1].data["outcome"] == "abandoned" and "ANSWER" in lines(sent)
    [logged] = [r for r in caplog.records if "starting its recording failed" in r.getMessage()]
    assert logged.exc_info is not None

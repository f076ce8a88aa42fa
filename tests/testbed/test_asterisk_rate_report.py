"""bench/asterisk_rate.py's reading of SIPp's files and its scenario, without a call."""

from __future__ import annotations

import importlib.util
import sys
import xml.etree.ElementTree as ET
from collections import Counter

import pytest

from ivr.errors import UsageError
from ivr.testbed.server import REPO
from ivr.testbed.sipp import sip_messages


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("asterisk_rate", REPO / "bench" / "asterisk_rate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


COLUMNS = ["ElapsedTime(C)", "TotalCallCreated", "CurrentCall", "SuccessfulCall(C)", "FailedCall(C)",
           "FailedMaxUDPRetrans(C)", "FailedTimeoutOnRecv(C)", "Retransmissions(C)", "ResponseTime1(C)",
           "CallLength(C)"]


def _stat(rows):
    return "\n".join(";".join(row) + ";" for row in [COLUMNS, *rows]) + "\n"


def test_the_last_row_of_sipps_statistics_is_the_run(bench, tmp_path):
    (tmp_path / "stat.csv").write_text(_stat([
        ["00:00:05", "75", "70", "0", "0", "0", "0", "0", "00:00:00:001000", "00:00:00:000000"],
        ["00:00:10", "150", "120", "80", "0", "0", "0", "0", "00:00:00:002000", "00:00:06:500000"],
        ["00:01:06", "900", "0", "897", "3", "1", "2", "14", "00:00:00:012500", "00:00:06:618000"],
    ]))
    (tmp_path / "errors.log").write_text(
        "The following events occurred:\n"
        "2026-12-04\t19:30:40.286385\t1796412640.286385: Call-Id: 1-23795@127.0.0.1, receive timeout on message "
        "ivr bench call:6, jumping to label 7"
        "2026-12-04\t19:30:41.286385\t1796412641.286385: Call-Id: 2-23795@127.0.0.1, Max UDP retransmission "
        "timeout for message 0"
        "2026-12-04\t19:30:42.286385\t1796412642.286385: Call-Id: 3-23795@127.0.0.1, Max UDP retransmission "
        "timeout for message 0")
    run = bench.Run(rate=15, duration=60, transport="u1", agents=260)
    bench.read_sipp_stats(tmp_path, run)
    assert (run.placed, run.sipp_ok, run.sipp_failed, run.retransmissions, run.max_up) == (900, 897, 3, 14, 120)
    assert run.seconds == 66 and run.setup_ms == 12.5 and run.call_seconds == pytest.approx(6.618)
    assert run.sipp_reasons == Counter({"FailedMaxUDPRetrans": 1, "FailedTimeoutOnRecv": 2,
                                        "error log: Max UDP retransmission timeout for message N": 2})


def test_a_run_without_statistics_says_so(bench, tmp_path):
    run = bench.Run(rate=15, duration=60, transport="u1", agents=260)
    bench.read_sipp_stats(tmp_path, run)
    assert run.placed == 0 and not run.clean
    assert "no statistics file (SIPp did not run)" in run.sipp_reasons


def test_a_call_counts_only_when_sipp_the_store_and_the_recording_all_have_it(bench):
    run = bench.Run(rate=5, duration=10, transport="u1", agents=100, placed=50, sipp_ok=50,
                    answered_unique=50, recorded_answered=50)
    assert run.clean and run.failed == 0
    assert bench.Run(rate=5, duration=10, transport="u1", agents=100, placed=50, sipp_ok=50,
                     answered_unique=49, recorded_answered=50).failed == 1
    assert bench.Run(rate=5, duration=10, transport="u1", agents=100, placed=50, sipp_ok=47,
                     answered_unique=50, recorded_answered=48).failed == 3


def test_the_scenario_presses_2_and_fails_a_call_the_engine_never_ends(bench, tmp_path):
    root = ET.fromstring(bench.scenario(tmp_path / "key2.pcap", key_at=3, hold=40).encode())
    steps = list(root)
    assert "sip:48[call_number]@" in steps[0].text  # a caller number per call
    wait_key, wait_bye = [s for s in steps if s.tag == "recv" and s.get("request") == "BYE"]
    [press] = [s for s in steps if s.tag == "nop"]
    assert steps.index(wait_key) < steps.index(press) < steps.index(wait_bye)
    assert wait_key.attrib == {"request": "BYE", "timeout": "3000", "ontimeout": "key", "next": "bye"}
    assert press.find("action/exec").attrib["play_pcap_audio"] == str(tmp_path / "key2.pcap")
    assert wait_bye.attrib == {"request": "BYE", "timeout": "40000"}  # no ontimeout: a failed call


def test_enough_agents_for_the_rate_and_never_more_than_the_pool(bench):
    assert bench.agents_for(30) >= 30 * (bench.AGENT_TALK + bench.WRAPUP)
    assert bench.agents_for(500) == bench.MAX_AGENTS
    assert bench.agent_pool(2) == ("Local/3000@agents/n", "Local/3001@agents/n")


def test_log_lines_count_together_with_their_numbers_masked(bench):
    assert bench._mask("taskprocessor 'stasis/m:manager:core-00000006' queue reached 500 scheduled tasks") == \
        "taskprocessor 'stasis/m:manager:core-#' queue reached N scheduled tasks"


def test_a_numbered_caller_is_sipps_call_number_keyword_and_nothing_else():
    assert "<sip:48[call_number]@[local_ip]:[local_port]>" in sip_messages(caller_name="b", caller_id="48[call_number]")["invite"]
    for bad in ("48[call_id]", "[call_number]48", "48\n[call_number]", "abc"):
        with pytest.raises(UsageError):
            sip_messages(caller_name="b", caller_id=bad)


def test_a_caller_with_audio_sends_it_from_the_answer_then_the_key(bench, tmp_path):
    root = ET.fromstring(bench.scenario(tmp_path / "key2.pcap", voice_pcap=tmp_path / "voice.pcap").encode())
    steps = list(root)
    plays = [s.find("action/exec").attrib["play_pcap_audio"] for s in steps if s.tag == "nop"]
    assert plays == [str(tmp_path / "voice.pcap"), str(tmp_path / "key2.pcap")]
    [ack] = [s for s in steps if s.tag == "send" and s.text.lstrip().startswith("ACK")]
    assert steps[steps.index(ack) + 1].tag == "nop"  # the audio starts with the call

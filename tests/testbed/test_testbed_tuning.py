"""The test bed's Asterisk settings that bound the call rate (ivr.testbed.files.Tuning):
the default is what the live tests read; the high-rate settings change only what they say."""

from __future__ import annotations

import pytest

from ivr.errors import AsteriskError
from ivr.testbed.files import OBSERVER, RTP_PORTS, Tuning, base_files, tuned_manager_conf


def test_the_default_logs_every_dialplan_step_for_the_live_tests():
    files = base_files()
    assert "verbose = 3" in files["asterisk.conf"]
    assert "messages.log => notice,warning,error,verbose" in files["logger.conf"]
    assert files["rtp.conf"] == f"[general]\nrtpstart = {RTP_PORTS[0]}\nrtpend = {RTP_PORTS[1]}\n"
    assert "[system]" not in files["pjsip.conf"]  # Asterisk's own threadpool defaults
    assert files == base_files(Tuning())


def test_high_rate_settings_quieten_the_log_and_widen_the_rtp_ports():
    files = base_files(Tuning.high_rate())
    assert "verbose = 0" in files["asterisk.conf"]
    assert "messages.log => notice,warning,error\n" in files["logger.conf"]
    low, high = Tuning.high_rate().rtp_ports
    assert (high - low + 1) // 2 >= 5000  # two ports (RTP, RTCP) per call
    assert "transmit_silence = yes" in files["asterisk.conf"]  # recordings keep their timeline
    assert files["extensions_site.conf"] == base_files()["extensions_site.conf"]


def test_pjsip_system_settings_are_written_only_when_asked():
    text = base_files(Tuning(threadpool_max=120, overload_trigger="none"))["pjsip.conf"]
    system = text.split("[transport-udp]")[0]
    assert system == "[system]\ntype = system\nthreadpool_max_size = 120\ntaskprocessor_overload_trigger = none\n\n"


def test_brief_agents_answer_and_hang_up_after_a_short_sound():
    site = base_files()["extensions_site.conf"]
    assert "exten => _3XXX,1,Answer()\n same => n,Playback(tt-weasels)\n same => n,Hangup()\n" in site
    assert "exten => _2XX,1,Answer()\n same => n,Playback(tt-monkeys)\n" in site  # the live tests' agents


def test_disabled_ami_events_go_into_the_generated_general_section():
    generated = "; header\n[general]\nenabled = yes\n\n[ivr]\nsecret = x\n"
    tuned = tuned_manager_conf(generated, Tuning.high_rate())
    assert tuned.startswith("; header\n[general]\ndisabledevents = Newexten,VarSet,")
    assert tuned.endswith("enabled = yes\n\n[ivr]\nsecret = x\n")
    assert tuned_manager_conf(generated, Tuning()) == generated
    with pytest.raises(AsteriskError):
        tuned_manager_conf("[ivr]\nsecret = x\n", Tuning.high_rate())


def test_the_observer_reads_every_event_and_the_engines_filter_can_be_taken_out():
    generated = ("[general]\nenabled = yes\n\n[ivr]\nsecret = x\nread = call,agent\n"
                 "eventfilter(action(include),name(Hangup)) =\n")
    with_observer = tuned_manager_conf(generated, Tuning(), observer_secret="s3cret")
    assert with_observer.startswith(generated)  # the engine's user as generated, its filter kept
    observer = with_observer[len(generated):]
    assert f"\n[{OBSERVER}]\nsecret = s3cret\n" in observer and "read = all\n" in observer
    assert "eventfilter" not in observer and "write = system," in observer  # a user that may use Filter
    unfiltered = tuned_manager_conf(generated, Tuning(ami_event_filter=False))
    assert unfiltered == "[general]\nenabled = yes\n\n[ivr]\nsecret = x\nread = call,agent\n"
    with pytest.raises(AsteriskError):
        tuned_manager_conf(generated, Tuning(), observer_secret="a;b")

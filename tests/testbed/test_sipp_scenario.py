"""`ivr call`'s pieces without a call: KEYS parsing, the SIPp scenario, the DTMF captures
moved forward in RTP time, and the AMI Originate key string (fast; no Asterisk)."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ivr.testbed.ami_session import keys_to_dtmf
from ivr.testbed.sipp import (KEY_GAP, MAX_KEYS, MESSAGE_SECONDS, Step, check_caller, message_pcap, parse_keys,
                              scenario_xml, shifted_pcap, shipped_pcap, sip_display_name, timed_steps)
from ivr.errors import AmiError, UsageError


def test_keys_become_waits_and_presses():
    assert parse_keys("1 1", wait=3) == [Step(3, "1"), Step(3, "1")]
    assert parse_keys("2 5s 12#", wait=2) == [Step(2, "2"), Step(7, "1"), Step(KEY_GAP, "2"), Step(KEY_GAP, "#")]
    assert parse_keys("1 4s", wait=1) == [Step(1, "1"), Step(4)]
    assert parse_keys("") == []


@pytest.mark.parametrize("keys", ["1 x", "1;2", "12a", "-"])
def test_bad_keys_are_usage_errors(keys):
    with pytest.raises(UsageError):
        parse_keys(keys)


def test_planned_moments_become_waits_in_whole_milliseconds():
    assert timed_steps([(7.7, "1"), (8.7, "1")]) == [Step(7.7, "1"), Step(1.0, "1")]
    # the waits add up to each moment: rounding never accumulates
    steps = timed_steps([(i * 0.3333, "1") for i in range(1, 31)])
    assert [round(sum(s.wait for s in steps[:i + 1]), 3) for i in range(30)] == [round(i * 0.3333, 3) for i in range(1, 31)]
    assert timed_steps([]) == []


@pytest.mark.parametrize("presses", [[(1.0, "x")], [(2.0, "1"), (1.0, "2")], [(float(i), "1") for i in range(MAX_KEYS + 1)]])
def test_bad_planned_presses_are_usage_errors(presses):
    with pytest.raises(UsageError):
        timed_steps(presses)


def test_the_caller_is_checked_before_any_call():
    check_caller("+48221234567", 'A "Quote" Test', "100")
    for args in (("12<sip:x>", "x", "100"), ("1", "a]b", "100"), ("1", "x", "100;evil")):
        with pytest.raises(UsageError):
            check_caller(*args)


def test_display_name_is_quoted_and_sipp_keywords_refused():
    assert sip_display_name('A "Quote" \\ Test') == '"A \\"Quote\\" \\\\ Test"'
    for bad in ("[call_id]", "a\r\nVia: x", "x]]>"):
        with pytest.raises(UsageError):
            sip_display_name(bad)


def test_scenario_offers_pcmu_and_telephone_event_and_plays_each_key(tmp_path):
    one, two = tmp_path / "k0.pcap", tmp_path / "k1.pcap"
    xml = scenario_xml([(3.0, one), (2.5, two)], caller_name="Jan", caller_id="+48221234567", hold=10)
    root = ET.fromstring(xml)  # well-formed
    invite = root.find("send").text
    assert "m=audio [media_port] RTP/AVP 0 101" in invite
    assert "a=rtpmap:101 telephone-event/8000" in invite
    assert 'From: "Jan" <sip:+48221234567@' in invite
    plays = [e.get("play_pcap_audio") for e in root.iter("exec")]
    assert plays == [str(one), str(two)]
    waits = [(r.get("timeout"), r.get("ontimeout"), r.get("next")) for r in root.iter("recv") if r.get("request") == "BYE"]
    assert waits == [("3000", "step0", "remote_bye"), ("2500", "step1", "remote_bye"),
                     ("10000", "hang_up", "remote_bye")]
    labels = {e.get("id") for e in root.iter("label")}
    assert {"step0", "step1", "hang_up", "remote_bye", "done"} <= labels


def test_caller_id_must_be_a_number():
    with pytest.raises(UsageError):
        scenario_xml([], caller_name="x", caller_id="123<sip:evil>", hold=1)


def _capture(path: Path, seqs: list[int], ts: int) -> None:
    """A little-endian pcap of RTP telephone-event packets (Ethernet/IPv4/UDP)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i, seq in enumerate(seqs):
        rtp = struct.pack("!BBHII", 0x80, 101, seq, ts, 0x1234) + bytes([1, 0x0A, 0, 0])
        packet = b"\0" * 14 + b"\x45" + b"\0" * 19 + struct.pack("!HHHH", 5000, 10000, 8 + len(rtp), 0xBEEF) + rtp
        out += struct.pack("<IIII", 100, i * 20000, len(packet), len(packet)) + packet
    path.write_bytes(bytes(out))


def _rtp(path: Path) -> list[tuple[int, int, int]]:
    data, offset, found = path.read_bytes(), 24, []
    while offset < len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        packet = offset + 16
        seq, ts = struct.unpack_from("!HI", data, packet + 44)
        found.append((seq, ts, struct.unpack_from("!H", data, packet + 40)[0]))
        offset = packet + length
    return found


def test_each_press_is_moved_forward_in_rtp_time(tmp_path):
    source = tmp_path / "dtmf.pcap"
    _capture(source, [7984, 7985, 7986, 7986], ts=13280)
    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    nxt = shifted_pcap(source, first, 1000, 160000)
    shifted_pcap(source, second, *nxt)
    a, b = _rtp(first), _rtp(second)
    assert a == [(1000, 160000, 0), (1001, 160000, 0), (1002, 160000, 0), (1002, 160000, 0)]
    assert b[0][0] == 1003 and b[0][1] == 168000  # a later sequence and a new event timestamp
    assert first.stat().st_size == source.stat().st_size


def test_originate_keys_string():
    assert keys_to_dtmf("1 1") == "1wwww1"
    assert keys_to_dtmf("2 123#") == "2wwww123#"
    # waits as `ivr call` writes them: before the first key, between keys, after the last
    assert keys_to_dtmf("3s 1 1.5s 1 1s") == "wwwwww1wwwwwww1ww"
    with pytest.raises(AmiError):
        keys_to_dtmf("1,2")


def test_the_plan_ends_with_a_wait_or_a_message():
    assert timed_steps([(1.0, "1")], until=11.5) == [Step(1.0, "1"), Step(10.5)]
    assert timed_steps([(1.0, "1")], until=0.5) == [Step(1.0, "1")]  # already past
    assert timed_steps([], message_at=20.25) == [Step(20.25, message=True)]


def test_the_message_is_pcmu_rtp_that_goes_on_from_the_keys(tmp_path):
    target = tmp_path / "message.pcap"
    assert message_pcap(shipped_pcap("0"), target, 1000, 160000) == (1200, 160000 + 200 * 160 + 8000)
    data = target.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    offset, packets = 24, []
    while offset < len(data):
        seconds, micros, length, _ = struct.unpack_from("<IIII", data, offset)
        packets.append((seconds + micros / 1e6, data[offset + 16:offset + 16 + length]))
        offset += 16 + length
    assert len(packets) == round(MESSAGE_SECONDS / 0.02)
    assert [round(t, 3) for t, _ in packets[:3]] == [0.0, 0.02, 0.04]
    for n, (_, packet) in enumerate(packets):
        ip_length, udp_length = struct.unpack_from("!H", packet, 16)[0], struct.unpack_from("!H", packet, 38)[0]
        assert (ip_length, udp_length, len(packet)) == (20 + 8 + 12 + 160, 8 + 12 + 160, 14 + 20 + 8 + 12 + 160)
        assert packet[43] & 0x7F == 0  # PCMU
        assert struct.unpack_from("!HI", packet, 44) == (1000 + n, 160000 + 160 * n)
    # tones, then quiet: mu-law 0xFF is silence
    assert sum(b != 0xFF for b in packets[0][1][54:]) > 100 and set(packets[35][1][54:]) == {0xFF}

"""`ivr call KEYS`: a real SIP call into the test bed with SIPp, pressing keys as RFC 4733
telephone events.

The scenario is written here: an INVITE offering PCMU and telephone-event/8000 (payload
101), the ACK, then for each step a wait and a key press, then a final wait for the far
end to hang up (`hold` seconds) before our own BYE. The key presses are the DTMF
captures that ship with sip-tester (/usr/share/sip-tester/dtmf_2833_<key>.pcap), played
with `play_pcap_audio`. Those captures come from one recording, so each has a fixed RTP
sequence number and timestamp: replayed as they are, a second press of the same key has
the timestamp of the first and Asterisk drops it as a repeat, and a lower key after a
higher one goes back in sequence. So each press is a copy of the shipped capture with its
sequence numbers and timestamp moved forward past the previous press.

A step may also play a message instead of a key: MESSAGE_SECONDS of tone bursts (a
voice's rhythm: sound, then a short pause), sent as PCMU RTP from a capture written here
(`message_pcap`), for a call that leaves a voicemail.

When each key is pressed is the caller of `place_call`'s choice, as steps:
- `timed_steps`: each key at a moment of the call (seconds after the answer), such as
  `ivr call` plans from the flow itself (ivr.simulation.key_plan), then a wait until the
  plan's end or a message at its moment;
- `parse_keys`: fixed timers. KEYS are tokens separated by spaces; a token of keys (0-9,
  *, #; A-D are not in the captures) is pressed one key after another, KEY_GAP apart,
  after a wait of `wait` seconds; a token such as `5s` or `2.5s` is an extra wait.
  "1 1" = wait, 1, wait, 1, then hold.
"""

from __future__ import annotations

import math
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ivr.errors import AsteriskError, UsageError

PCAP_DIR = Path("/usr/share/sip-tester")
PCAP_NAMES = {**{str(d): str(d) for d in range(10)}, "*": "star", "#": "pound"}
KEY_GAP = 0.3  # seconds between keys of one token
MAX_KEYS = 100  # a scenario holds one capture per key: keep it to what a caller types
DTMF_PAYLOAD = 101
MESSAGE_SECONDS = 4.0  # the message a caller leaves: tone bursts, as loud as speech
# from the start of a voicemail's recording as planned to the message: Asterisk's beep
# (0.44 s) comes first, and the live call runs a little behind its plan, while a SIPp
# call's own clock runs some 0.4 s ahead of it (measured on the test bed): 1.5 s left
# 0.7 s to spare, 2 s leaves 1.2 s for a busy machine
MESSAGE_AFTER_TONE = 2.0
_PACKET_SAMPLES = 160  # 20 ms of 8 kHz audio per RTP packet
_WAIT = re.compile(r"^(\d+(?:\.\d+)?)s$")
_KEYS = re.compile(r"^[0-9*#]+$")
_CALLER_ID = re.compile(r"^\+?[0-9]{1,20}$")
_NUMBERED_CALLER = re.compile(r"^\+?[0-9]{1,20}(\[call_number\])?$")
_EXTEN = re.compile(r"^[0-9A-Za-z*#+_-]{1,40}$")


@dataclass(frozen=True)
class Step:
    wait: float  # seconds before
    key: Optional[str] = None  # None: only the wait (or the message)
    message: bool = False  # play the message (MESSAGE_SECONDS long; the scenario goes on meanwhile)


def is_wait(token: str) -> bool:
    """True for a wait token of KEYS, such as `5s` or `2.5s`."""
    return _WAIT.match(token) is not None


def parse_keys(keys: str, wait: float = 3.0) -> list[Step]:
    """KEYS on fixed timers: each key with the wait before it; UsageError on a bad token."""
    steps: list[Step] = []
    extra = 0.0
    for token in keys.split():
        match = _WAIT.match(token)
        if match:
            extra += float(match.group(1))
            continue
        if not _KEYS.match(token):
            raise UsageError(f"KEYS token {token!r}: keys are 0-9, * and #; a wait is written 5s")
        for i, key in enumerate(token):
            steps.append(Step((wait + extra) if i == 0 else KEY_GAP, key))
        extra = 0.0
    if extra:
        steps.append(Step(extra))
    _check_count(steps)
    return steps


def timed_steps(presses: Sequence[tuple[float, str]], *, until: Optional[float] = None,
                message_at: Optional[float] = None) -> list[Step]:
    """Steps that press each key at its moment (seconds after the answer, in order), then
    wait `until` that moment (a plan's end), or play the message at `message_at`.

    The waits are differences of whole milliseconds, as SIPp counts them, so rounding
    never adds up along the call."""
    steps: list[Step] = []
    previous = 0
    for at, key in presses:
        if key not in PCAP_NAMES:
            raise UsageError(f"key {key!r}: keys are 0-9, * and #")
        moment = round(at * 1000)
        if moment < previous:
            raise UsageError("key presses must be in the order of the call")
        steps.append(Step((moment - previous) / 1000, key))
        previous = moment
    if message_at is not None:
        steps.append(Step(max(0, round(message_at * 1000) - previous) / 1000, message=True))
    elif until is not None and round(until * 1000) > previous:
        steps.append(Step((round(until * 1000) - previous) / 1000))
    _check_count(steps)
    return steps


def _check_count(steps: Sequence[Step]) -> None:
    if sum(step.key is not None for step in steps) > MAX_KEYS:
        raise UsageError(f"KEYS holds more than {MAX_KEYS} keys")


def check_caller(caller_id: str, caller_name: str, exten: str) -> None:
    """UsageError unless the caller's number, name and the extension fit into a SIP call."""
    if not _CALLER_ID.match(caller_id):
        raise UsageError(f"--caller-id must be digits with an optional leading +, not {caller_id!r}")
    sip_display_name(caller_name)
    if not _EXTEN.match(exten):
        raise UsageError(f"bad extension {exten!r}")


def sip_display_name(name: str) -> str:
    """A caller name as a SIP quoted string (quotes and backslashes escaped); characters
    SIPp would read as its own [keywords] or that break a header are refused."""
    if any(ch in name for ch in "[]\r\n\x00") or any(ord(ch) < 32 for ch in name):
        raise UsageError("--caller-name cannot hold [ ] or control characters")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- pcaps -----------------------------------------------------------------------------------
def shipped_pcap(key: str, pcap_dir: Path = PCAP_DIR) -> Path:
    path = pcap_dir / f"dtmf_2833_{PCAP_NAMES[key]}.pcap"
    if not path.is_file():
        raise AsteriskError(f"{path} is missing: install sip-tester (scripts/bootstrap.sh test)")
    return path


def shifted_pcap(source: Path, target: Path, seq: int, timestamp: int) -> tuple[int, int]:
    """Copy an RFC 4733 capture, its first packet moved to RTP sequence `seq` and event
    timestamp `timestamp`; returns the next free (seq, timestamp). UDP checksums are
    zeroed (legal in IPv4) since the payload changes."""
    data = bytearray(source.read_bytes())
    if data[:4] != b"\xd4\xc3\xb2\xa1":
        raise AsteriskError(f"{source}: not a little-endian pcap file")
    offset, first_seq, first_ts, last = 24, None, None, (seq, timestamp)
    while offset + 16 <= len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        packet = offset + 16
        rtp = packet + 42  # Ethernet 14 + IPv4 20 + UDP 8
        old_seq, old_ts = struct.unpack_from("!HI", data, rtp + 2)
        if first_seq is None:
            first_seq, first_ts = old_seq, old_ts
        new_seq = (seq + old_seq - first_seq) & 0xFFFF
        new_ts = (timestamp + old_ts - first_ts) & 0xFFFFFFFF
        struct.pack_into("!HI", data, rtp + 2, new_seq, new_ts)
        struct.pack_into("!H", data, packet + 40, 0)  # UDP checksum
        last = (new_seq, new_ts)
        offset = packet + length
    target.write_bytes(bytes(data))
    return (last[0] + 1) & 0xFFFF, (last[1] + 8000) & 0xFFFFFFFF  # the next press 1 s of clock later


def _ulaw(sample: int) -> int:
    """One 16-bit sample as G.711 mu-law (PCMU)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def message_pcap(template: Path, target: Path, seq: int, timestamp: int,
                 seconds: float = MESSAGE_SECONDS) -> tuple[int, int]:
    """Write the message as a PCMU RTP capture, packets 20 ms apart from RTP sequence `seq`
    and timestamp `timestamp`, its frame headers and SSRC those of `template` (a shipped
    capture, so the stream is the one the keys are sent on); returns the next free
    (seq, timestamp). The sound: 600 ms of a 440 Hz tone whose pitch glides up, then
    200 ms of quiet, over and over, about -10 dBFS."""
    data = template.read_bytes()
    if data[:4] != b"\xd4\xc3\xb2\xa1":
        raise AsteriskError(f"{template}: not a little-endian pcap file")
    headers = bytearray(data[24 + 16:24 + 16 + 42 + 12])  # Ethernet, IPv4, UDP, RTP of the first packet
    out = bytearray(data[:24])
    packets = round(seconds * 1000 / 20)
    for n in range(packets):
        payload = bytearray()
        for i in range(_PACKET_SAMPLES):
            t = (n * _PACKET_SAMPLES + i) / 8000
            phase = t % 0.8
            level = 10000 if phase < 0.6 else 0
            payload.append(_ulaw(int(level * math.sin(2 * math.pi * (440 + 200 * phase) * t))))
        packet = bytearray(headers) + payload
        struct.pack_into("!H", packet, 14 + 2, 20 + 8 + 12 + len(payload))  # IPv4 total length
        struct.pack_into("!H", packet, 14 + 10, 0)  # the header checksum, summed with itself as 0
        struct.pack_into("!H", packet, 14 + 10, _ip_checksum(bytes(packet[14:34])))
        struct.pack_into("!HH", packet, 34 + 4, 8 + 12 + len(payload), 0)  # UDP length; no checksum
        packet[42] = 0x80  # RTP version 2, no padding, extension or CSRC
        packet[43] = 0x80 if n == 0 else 0x00  # payload type 0 (PCMU), the marker on the first packet
        struct.pack_into("!HI", packet, 44, (seq + n) & 0xFFFF, (timestamp + n * _PACKET_SAMPLES) & 0xFFFFFFFF)
        micros = n * 20000
        out += struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(packet), len(packet)) + packet
    target.write_bytes(bytes(out))
    return (seq + packets) & 0xFFFF, (timestamp + packets * _PACKET_SAMPLES + 8000) & 0xFFFFFFFF


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# --- the scenario ------------------------------------------------------------------------------
_INVITE = """\
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: {name} <sip:{cid}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:{cid}@[local_ip]:[local_port]>
Max-Forwards: 70
Subject: ivr call
Content-Type: application/sdp
Content-Length: [len]

v=0
o=ivr 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=ivr call
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 {pt}
a=rtpmap:0 PCMU/8000
a=rtpmap:{pt} telephone-event/8000
a=fmtp:{pt} 0-15
a=ptime:20
a=sendrecv
"""

_ACK = """\
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: {name} <sip:{cid}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:{cid}@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
"""

_BYE = """\
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: {name} <sip:{cid}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:{cid}@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
"""

_OK = """\
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:{cid}@[local_ip]:[local_port]>
Content-Length: 0
"""


def sip_messages(*, caller_name: str, caller_id: str, proxied: bool = False) -> dict[str, str]:
    """The SIP messages of a call's scenario as CDATA blocks: `invite` (PCMU and
    telephone-event), `ack`, `bye` (ours) and `ok` (the answer to the far end's BYE).
    `caller_id` is digits, optionally followed by SIPp's `[call_number]` keyword, which
    gives each call of one SIPp run a number of its own.

    `proxied`: the call goes through a proxy that stays in the dialog (Record-Route, as
    the multi-node test bed's Kamailio): the ACK and BYE go to the Contact of the answer
    with the recorded route set (the 200's `rrs` in `scenario_xml`), as RFC 3261 says."""
    if not _NUMBERED_CALLER.match(caller_id):
        raise UsageError(f"a caller ID must be digits with an optional leading +, not {caller_id!r}")
    fields = {"name": sip_display_name(caller_name), "cid": caller_id, "pt": DTMF_PAYLOAD}

    def cdata(text: str, in_dialog: bool = False) -> str:
        if proxied and in_dialog:
            text = text.replace("sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n",
                                "[next_url] SIP/2.0\n[routes]\n", 1)
        return "<![CDATA[\n" + text.format(**fields) + "\n    ]]>"

    return {"invite": cdata(_INVITE), "ack": cdata(_ACK, True), "bye": cdata(_BYE, True), "ok": cdata(_OK)}


def scenario_xml(steps: list[tuple[float, Optional[Path]]], *, caller_name: str, caller_id: str,
                 hold: float, proxied: bool = False) -> str:
    """The SIPp scenario: INVITE, ACK, per step a wait (ended early by the far end's BYE)
    and a capture to play, then up to `hold` seconds for the far end's BYE, else our BYE."""
    if not _CALLER_ID.match(caller_id):
        raise UsageError(f"--caller-id must be digits with an optional leading +, not {caller_id!r}")
    message = sip_messages(caller_name=caller_name, caller_id=caller_id, proxied=proxied)
    out = ['<?xml version="1.0" encoding="UTF-8" ?>', '<scenario name="ivr call">',
           f'  <send retrans="500">{message["invite"]}</send>',
           '  <recv response="100" optional="true"/>',
           '  <recv response="180" optional="true"/>',
           '  <recv response="183" optional="true"/>',
           '  <recv response="200" rtd="true"' + (' rrs="true"' if proxied else '') + '/>',
           f'  <send>{message["ack"]}</send>']
    for i, (wait, pcap) in enumerate(steps):
        out.append(f'  <recv request="BYE" timeout="{round(wait * 1000)}" ontimeout="step{i}" next="remote_bye"/>')
        out.append(f'  <label id="step{i}"/>')
        if pcap is not None:
            out.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
    out += [f'  <recv request="BYE" timeout="{round(hold * 1000)}" ontimeout="hang_up" next="remote_bye"/>',
            '  <label id="hang_up"/>',
            f'  <send retrans="500">{message["bye"]}</send>',
            '  <recv response="200" crlf="true" next="done"/>',
            '  <label id="remote_bye"/>',
            f'  <send>{message["ok"]}</send>',
            '  <label id="done"/>',
            '  <pause milliseconds="100"/>',
            '</scenario>', '']
    return "\n".join(out)


# --- placing the call ----------------------------------------------------------------------------
@dataclass
class CallResult:
    ok: bool
    seconds: float
    output: str  # SIPp's error log and screen, for a failed call


def place_call(plan: Sequence[Step], *, host: str = "127.0.0.1", port: int = 5070, exten: str = "100",
               caller_name: str = "IVR test caller", caller_id: str = "48221234567",
               hold: float = 10.0, work_dir: Optional[Path] = None, timeout: Optional[float] = None,
               proxied: bool = False) -> CallResult:
    """Place one SIPp call into the test bed that presses the keys of `plan` (see
    `timed_steps` and `parse_keys`); it ends when the far end hangs up or `hold` seconds
    after the last step. `proxied`: host:port is a proxy that stays in the dialog
    (Kamailio of the multi-node test bed; see `sip_messages`)."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise AsteriskError("sipp is missing: install sip-tester (scripts/bootstrap.sh test)")
    check_caller(caller_id, caller_name, exten)
    _check_count(plan)
    with tempfile.TemporaryDirectory(prefix="ivr-call-", dir=work_dir) as tmp:
        folder = Path(tmp)
        steps: list[tuple[float, Optional[Path]]] = []
        seq, ts = 1000, 160000
        for n, step in enumerate(plan):
            pcap = None
            if step.key is not None:
                pcap = folder / f"key{n}.pcap"
                seq, ts = shifted_pcap(shipped_pcap(step.key), pcap, seq, ts)
            elif step.message:
                pcap = folder / f"message{n}.pcap"
                seq, ts = message_pcap(shipped_pcap("0"), pcap, seq, ts)
            steps.append((step.wait, pcap))
        scenario = folder / "call.xml"
        scenario.write_text(scenario_xml(steps, caller_name=caller_name, caller_id=caller_id, hold=hold,
                                         proxied=proxied), encoding="utf-8")
        total = sum(s.wait for s in plan) + hold + 15 + (MESSAGE_SECONDS if any(s.message for s in plan) else 0)
        cmd = [sipp, f"{host}:{port}", "-sf", str(scenario), "-s", exten, "-m", "1", "-l", "1",
               "-i", "127.0.0.1", "-p", str(_free_port(socket.SOCK_DGRAM)),
               "-mp", str(_free_port(socket.SOCK_DGRAM, even=True)),
               "-timeout", f"{int(timeout or total)}s", "-timeout_error", "-nostdin",
               "-trace_err", "-error_file", str(folder / "errors.log"),
               "-trace_screen", "-screen_file", str(folder / "screen.log")]
        started = time.monotonic()
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, timeout=(timeout or total) + 15, cwd=folder)
        seconds = time.monotonic() - started
        output = ""
        if done.returncode != 0:
            parts = [done.stderr.strip()]
            for name in ("errors.log", "screen.log"):
                path = folder / name
                if path.is_file():
                    parts.append(path.read_text(errors="replace")[-3000:])
            output = "\n".join(p for p in parts if p)
        return CallResult(done.returncode == 0, seconds, output)


def _free_port(kind: int, even: bool = False) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not even or port % 2 == 0 and port < 65530:
            return port
    raise AsteriskError("no free local port for SIPp")

"""The test bed's own Asterisk files: everything that is NOT the IVR's.

The IVR parts (extensions.conf, queues.conf, manager.conf) come from `ivr.asterisk.dialplan`
exactly as `ivr asterisk-config` writes them. This module adds what any Asterisk needs to
boot (asterisk.conf, modules.conf, logger.conf, music on hold, RTP ports), a PJSIP endpoint
for SIPp callers, and `extensions_site.conf` (included by the generated extensions.conf)
with the test-only contexts:

- [agents]   `Local/200@agents/n`, every queue's member in the test bed: answers and
             plays tt-monkeys, so recordings hold real audio. Any 2XX does the same, for
             tests that need several agents at once (`Local/201@agents/n`, ...).
             Any 3XXX is a brief agent: answers, plays tt-weasels (3 s), hangs up
             (bench/asterisk_rate.py: hundreds of agents, each call short).
- [caller]   the pressing half of an AMI Originate of `Local/100@ivr` (see
             `ivr.testbed.ami_session.originate_keys`): waits 2 s, sends ${KEYS}; with
             ${MESSAGE} set, waits ${MESSAGE_AFTER} seconds and plays that sound into the
             call (a voicemail message); waits ${HOLD} seconds (default 30), hangs up.
- [testbed-named] a caller whose name comes URI-encoded in ${NAME_URI}, so it can hold
             a line break (no AMI header can carry one); then [ivr].
- [testbed-bare] a hand-written dialplan: a bare `AGI(agi://127.0.0.1:${AGI_PORT}/main)`,
             no Answer, no recording (the engine records such calls itself).
- [testbed-callee] the customer of a call-back (`Local/<number>@testbed-callee`, the
             default of `ivr.asterisk.callback`): answers and waits a minute. A number
             that starts with 486 is busy (Busy(), as SIP's 486 Busy Here), one that
             starts with 408 rings without an answer (Ringing, then a long wait: the
             Originate's Timeout ends it, as an unanswered phone does).
Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ivr.errors import AsteriskError

SIP_PORT = 5070
RTP_PORTS = (20000, 20999)
AGENT = "Local/200@agents/n"
SIPP_ENDPOINT = "sipp"

# modules that are not needed, or that try to reach things this machine lacks (the shared
# notes' list, plus voicemail variants that clash with app_voicemail). Leaving out more
# modules makes others fail on missing symbols; missing-config messages are harmless.
NOLOAD = (
    "chan_sip.so", "res_hep.so", "res_hep_pjsip.so", "res_hep_rtcp.so",
    "cdr_pgsql.so", "cel_pgsql.so", "res_config_pgsql.so", "cdr_tds.so", "cel_tds.so",
    "res_snmp.so", "res_corosync.so", "res_xmpp.so", "chan_dahdi.so", "chan_mobile.so",
    "chan_console.so", "res_prometheus.so", "res_statsd.so",
    "app_voicemail_odbc.so", "app_voicemail_imap.so", "pbx_lua.so",
)
# stock files (kept in the root's /etc/asterisk.dist) that core parts read at boot
STOCK = ("indications.conf", "features.conf", "ccss.conf", "cdr.conf", "cel.conf", "acl.conf",
         "udptl.conf", "pjproject.conf")

ASTERISK_CONF = """\
[directories]
astcachedir => /var/cache/asterisk{suffix}
astetcdir => /etc/asterisk{suffix}
astmoddir => /usr/lib/x86_64-linux-gnu/asterisk/modules
astvarlibdir => /var/lib/asterisk{suffix}
astdbdir => /var/lib/asterisk{suffix}
astkeydir => /var/lib/asterisk{suffix}
astdatadir => /usr/share/asterisk
astagidir => /usr/share/asterisk/agi-bin
astspooldir => /var/spool/asterisk{suffix}
astrundir => /var/run/asterisk{suffix}
astlogdir => /var/log/asterisk{suffix}
astsbindir => /usr/sbin

[options]
verbose = {verbose}
nocolor = yes
; silence frames while a channel waits (Wait, WAIT FOR DIGIT, SendDTMF), as a phone's RTP
; would give: MixMonitor writes only the frames it sees, so without them the waits of a
; caller who sends no audio drop out of the recording and the timeline no longer matches it
transmit_silence = yes
{systemname}"""


@dataclass(frozen=True)
class Node:
    """One Asterisk of a multi-node test bed (ivr.testbed.cluster), beside the single one.

    Every node runs from the same sid root with folders of its own (`/etc/asterisk-<name>`,
    `/var/spool/asterisk-<name>`, ...: `asterisk -C /etc/asterisk-<name>/asterisk.conf`),
    its own SIP, AMI and RTP ports, and its name as Asterisk's `systemname`: Asterisk then
    starts every uniqueid with it (`ast1-1733390000.12`), so two nodes that start in the
    same second never make the same uniqueid, which is the calls table's key."""

    name: str
    sip_port: int
    ami_port: int
    rtp_ports: tuple[int, int]

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", self.name):
            raise AsteriskError(f"a test-bed node name is a short lower-case word such as ast1, not {self.name!r}")

    @property
    def suffix(self) -> str:
        return f"-{self.name}"

    @property
    def conf(self) -> str:
        """Its asterisk.conf, as the chroot sees it (`asterisk -C`)."""
        return f"/etc/asterisk{self.suffix}/asterisk.conf"


def asterisk_conf(verbose: int, node: Optional[Node] = None) -> str:
    """asterisk.conf: the stock folders (or a node's own, with its systemname)."""
    if node is None:
        return ASTERISK_CONF.format(suffix="", verbose=verbose, systemname="")
    return ASTERISK_CONF.format(suffix=node.suffix, verbose=verbose,
                                systemname=f"; every uniqueid starts with it: no clash with the other nodes'\n"
                                           f"systemname = {node.name}\n")


LOGGER_CONF = """\
[general]
[logfiles]
messages.log => {levels}
"""

MUSICONHOLD_CONF = """\
[default]
mode = files
directory = moh
"""

PJSIP_CONF = f"""\
{{system}}[transport-udp]
type = transport
protocol = udp
bind = 127.0.0.1:{{sip_port}}

; SIPp callers (`ivr call`): any port on 127.0.0.1, straight into the IVR
[{SIPP_ENDPOINT}]
type = endpoint
transport = transport-udp
context = ivr
disallow = all
allow = ulaw
dtmf_mode = rfc4733
direct_media = no
rtp_symmetric = yes
media_address = 127.0.0.1
bind_rtp_to_media_address = yes

[{SIPP_ENDPOINT}-identify]
type = identify
endpoint = {SIPP_ENDPOINT}
match = 127.0.0.1
"""

SITE_EXTENSIONS = """\
; Test bed only (ivr.testbed.files): fake agents, callers and call-back customers.
[agents]
exten => _2XX,1,Answer()
 same => n,Playback(tt-monkeys)
 same => n,Hangup()
exten => _3XXX,1,Answer()
 same => n,Playback(tt-weasels)
 same => n,Hangup()

[caller]
exten => s,1,Wait(2)
 same => n,ExecIf($["${KEYS}" != ""]?SendDTMF(${KEYS}))
 same => n,ExecIf($["${MESSAGE}" != ""]?Wait(${MESSAGE_AFTER}))
 same => n,ExecIf($["${MESSAGE}" != ""]?Playback(${MESSAGE}))
 same => n,Wait(${IF($["${HOLD}" = ""]?30:${HOLD})})
 same => n,Hangup()

; A caller whose name holds what no AMI header can carry (a line break): Originate
; Local/100@testbed-named with NAME_URI, the name URI-encoded (%0A for a line break); the
; IVR half decodes it into CALLERID(name), then runs [ivr] like any caller.
[testbed-named]
exten => _X.,1,Set(CALLERID(name)=${URIDECODE(${NAME_URI})})
 same => n,Goto(ivr,${EXTEN},1)

; A dialplan written by hand: the call goes to the engine with nothing else (AGI_PORT:
; the engine's FastAGI port, set by the Originate).
[testbed-bare]
exten => _X.,1,AGI(agi://127.0.0.1:${AGI_PORT}/main)
 same => n,Hangup()

[testbed-callee]
exten => _X.,1,Answer()
 same => n,Wait(60)
 same => n,Hangup()
exten => _486X.,1,Busy(10)
exten => _408X.,1,Ringing()
 same => n,Wait(120)
 same => n,Hangup()
exten => _+X.,1,Goto(${EXTEN:1},1)
"""


@dataclass(frozen=True)
class Tuning:
    """The test bed's Asterisk settings that bound the rate of calls it takes.

    The default is what the live tests need: every dialplan step logged (verbose 3 into
    messages.log: `test_live_announcements.py` reads what each channel played there), 500
    calls' worth of RTP ports. `high_rate()` is for benchmarks of many calls a second."""

    rtp_ports: tuple[int, int] = RTP_PORTS  # 2 ports (RTP + RTCP) per SIP call
    verbose: int = 3  # asterisk.conf; 3 logs every dialplan application a channel runs
    log_verbose: bool = True  # the verbose lines go to messages.log as well
    threadpool_max: Optional[int] = None  # pjsip.conf [system] threadpool_max_size (None: Asterisk's 50)
    overload_trigger: Optional[str] = None  # pjsip.conf [system] taskprocessor_overload_trigger
    # rtp.conf strictrtp: "yes" learns a caller's RTP source from packets that come in
    # sequence AND in time; "seqno" from the sequence alone. A SIPp caller sends no RTP but
    # its keys, so those few packets are the learning; when a busy machine delays SIPp and
    # they leave in a burst, "yes" drops them and the key is lost. A phone sends RTP from
    # the answer on, long before its first key, so this is the rig's matter, not the IVR's.
    strict_rtp: str = "yes"
    cdr: bool = True  # Asterisk's own call detail records (cdr_csv); the engine stores the calls itself
    ami_disabled_events: tuple[str, ...] = ()  # manager.conf disabledevents: made for no AMI client
    # the engine's user keeps the event filter `ivr asterisk-config` writes; False takes it
    # out, so a bench can compare the engine's CPU with and without it
    ami_event_filter: bool = True

    @classmethod
    def high_rate(cls) -> "Tuning":
        """Hundreds of calls up at once: no per-step logging, RTP ports for 5,000 calls, RTP
        sources learnt from the sequence alone, no CDRs, and none of the AMI events that no
        client of the test bed reads (every dialplan step and variable set would be one)."""
        return cls(rtp_ports=(20000, 29999), verbose=0, log_verbose=False, strict_rtp="seqno", cdr=False,
                   ami_disabled_events=QUIET_AMI_EVENTS)


# AMI events the engine never reads (it reads Queue*/Agent*, OriginateResponse and the
# CoreShowChannels list), each sent for every dialplan step, variable or channel state
QUIET_AMI_EVENTS = ("Newexten", "VarSet", "Newstate", "NewConnectedLine", "NewCallerid", "NewAccountCode",
                    "DeviceStateChange", "RTCPSent", "RTCPReceived")


def tuned_manager_conf(text: str, tuning: Tuning, observer_secret: Optional[str] = None) -> str:
    """The generated manager.conf with the tuning's globally disabled events, without the
    engine's event filter if the tuning says so, and with the test bed's observer user when
    `observer_secret` is given."""
    if not tuning.ami_event_filter:
        text = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("eventfilter"))
    if observer_secret is not None:
        text += observer_section(observer_secret)
    if not tuning.ami_disabled_events:
        return text
    line = "disabledevents = " + ",".join(tuning.ami_disabled_events)
    head, general, rest = text.partition("[general]\n")
    if not general:
        raise AsteriskError("the generated manager.conf has no [general] section to disable events in")
    return f"{head}{general}{line}\n{rest}"


# The test bed's own AMI user, beside the engine's: it reads every event, with no filter, so
# a test sees what Asterisk did (a MixMonitorMute, a Newchannel) whatever the engine's user is
# sent. Its write classes let an engine log in as it too, as on a site whose manager.conf
# gives the engine a broad user of its own making (system allows the Filter action).
OBSERVER = "testbed-observer"
OBSERVER_WRITE = ("system", "originate", "call", "reporting")


def observer_section(secret: str) -> str:
    if not secret or any(ch in secret for ch in "\r\n;"):
        raise AsteriskError("the test bed's AMI secret cannot be written to manager.conf (empty, a line break or ';')")
    return (f"\n[{OBSERVER}]\nsecret = {secret}\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.0/255.0.0.0\n"
            f"read = all\nwrite = {','.join(OBSERVER_WRITE)}\nwritetimeout = 5000\n")


def modules_conf() -> str:
    return "[modules]\nautoload = yes\n" + "".join(f"noload => {m}\n" for m in NOLOAD)


def rtp_conf(ports: tuple[int, int] = RTP_PORTS, strict: str = "yes") -> str:
    text = f"[general]\nrtpstart = {ports[0]}\nrtpend = {ports[1]}\n"
    return text if strict == "yes" else text + f"strictrtp = {strict}\n"


def pjsip_conf(tuning: Tuning, sip_port: int = SIP_PORT) -> str:
    system = ""
    settings = [("threadpool_max_size", tuning.threadpool_max),
                ("taskprocessor_overload_trigger", tuning.overload_trigger)]
    if any(value is not None for _, value in settings):
        system = "[system]\ntype = system\n" + "".join(
            f"{name} = {value}\n" for name, value in settings if value is not None) + "\n"
    return PJSIP_CONF.format(system=system, sip_port=sip_port)


def base_files(tuning: Tuning = Tuning(), node: Optional[Node] = None) -> dict[str, str]:
    """File name (in /etc/asterisk, or a node's folder) -> text, for everything but the
    generated IVR files; a node's own folders, ports and systemname when `node` is given."""
    levels = "notice,warning,error" + (",verbose" if tuning.log_verbose else "")
    return {
        "asterisk.conf": asterisk_conf(tuning.verbose, node),
        "modules.conf": modules_conf(),
        "logger.conf": LOGGER_CONF.format(levels=levels),
        "musiconhold.conf": MUSICONHOLD_CONF,
        "rtp.conf": rtp_conf(node.rtp_ports if node else tuning.rtp_ports, tuning.strict_rtp),
        "pjsip.conf": pjsip_conf(tuning, node.sip_port if node else SIP_PORT),
        "extensions_site.conf": SITE_EXTENSIONS,
        **({} if tuning.cdr else {"cdr.conf": "[general]\nenable = no\n"}),
    }

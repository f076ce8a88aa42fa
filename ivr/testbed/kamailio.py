"""Kamailio in front of the test bed's Asterisks: Debian's package, a config written here.

The SIP entry of the multi-node test bed (ivr.testbed.cluster). Kamailio listens on
127.0.0.1 on a port of its own and sends each new call (INVITE) to one Asterisk of its
dispatcher list, round-robin. It probes every Asterisk with OPTIONS every PING_INTERVAL
seconds and takes one that does not answer (a probe's transaction times out after
FR_TIMER ms) out of the list after one missed probe, and back in once it answers again.
An INVITE that an Asterisk does not answer, or answers with 408 or 5xx, is sent to the
next one (failure_route + ds_next_dst), so a call placed in the second before the probe
notices still lands. Record-Route keeps Kamailio on the path of the dialog: the caller's
ACK and BYE, and Asterisk's BYE, come through it. Kamailio never touches the media: RTP
goes between the caller and the Asterisk that answered.

The process runs in the foreground (`-DD -E`: no daemon, log to standard error) as a
child of whoever starts it, with its own folder for the config, the dispatcher list, the
control socket (`kamcmd`) and the log; `stop()` ends it.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ivr.errors import AsteriskError
from ivr.testbed.daemon import Daemon

# Debian installs the modules under the machine's multiarch folder (x86_64-linux-gnu, ...)
MODULES = next(iter(sorted(Path("/usr/lib").glob("*/kamailio/modules"))), Path("/usr/lib/kamailio/modules"))
PING_INTERVAL = 1  # seconds between two OPTIONS probes of each Asterisk
FR_TIMER = 1500  # ms without any answer to a request (a probe, an INVITE) before it times out
SET = 1  # the dispatcher set of the Asterisks


@dataclass(frozen=True)
class Destination:
    """One Asterisk of the dispatcher list."""

    name: str  # the node's name (its systemname)
    host: str
    port: int

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"


def dispatcher_list(destinations: Sequence[Destination]) -> str:
    """dispatcher.list: one line per Asterisk (set, URI, flags, priority, attributes)."""
    lines = ["# set destination flags priority attributes (written by ivr.testbed.kamailio)"]
    for destination in destinations:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", destination.name):
            raise AsteriskError(f"a dispatcher destination's name is letters, digits, '-' and '_', not {destination.name!r}")
        lines.append(f"{SET} {destination.uri} 0 0 duid={destination.name}")
    return "\n".join(lines) + "\n"


def kamailio_cfg(*, port: int, dispatcher: Path, control: Path, host: str = "127.0.0.1",
                 modules: Path = MODULES) -> str:
    """The whole kamailio.cfg: a stateful proxy of new calls onto the dispatcher's Asterisks."""
    return f"""#!KAMAILIO
# The IVR test bed's SIP entry (written by ivr.testbed.kamailio): calls spread round-robin
# over the Asterisks of {dispatcher.name}, each probed with OPTIONS.
debug = 2
log_stderror = yes
children = 2
listen = udp:{host}:{port}
disable_tcp = yes
auto_aliases = no
alias = "{host}:{port}"
mpath = "{modules}/"

loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "ctl.so"
loadmodule "dispatcher.so"

modparam("ctl", "binrpc", "unix:{control}")
# an Asterisk that sends not even 100 Trying within this is taken for gone (probes, INVITEs)
modparam("tm", "fr_timer", {FR_TIMER})
modparam("tm", "fr_inv_timer", 60000)
modparam("rr", "enable_full_lr", 1)
modparam("dispatcher", "list_file", "{dispatcher}")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "ds_ping_method", "OPTIONS")
modparam("dispatcher", "ds_ping_from", "sip:dispatcher@{host}:{port}")
modparam("dispatcher", "ds_ping_interval", {PING_INTERVAL})
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_ping_reply_codes", "class=2")

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{
        sl_send_reply("200", "Keepalive");
        exit;
    }}
    if (has_totag()) {{
        # in the dialog: follow the Record-Route (ACK, BYE, re-INVITE either way)
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK") && t_check_trans()) {{
            t_relay();
        }} else if (!is_method("ACK")) {{
            sl_send_reply("404", "Not here");
        }}
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    t_check_trans();
    if (!is_method("INVITE")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    remove_hf("Route");
    record_route();
    if (!ds_select_dst("{SET}", "4")) {{
        xlog("L_ERR", "call $ci: no Asterisk is up\\n");
        sl_send_reply("503", "No Asterisk available");
        exit;
    }}
    xlog("L_INFO", "call $ci to $du\\n");
    t_on_failure("NEXT_ASTERISK");
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

# an Asterisk that did not answer the INVITE (time-out), or answered 408 or 5xx: taken out
# of the list until a probe finds it again, and the call goes to the next one
failure_route[NEXT_ASTERISK] {{
    if (t_is_canceled()) {{
        exit;
    }}
    if (t_check_status("408|5[0-9][0-9]") || (t_branch_timeout() && !t_branch_replied())) {{
        ds_mark_dst("ip");
        if (ds_next_dst()) {{
            xlog("L_WARN", "call $ci: Asterisk did not take it ($T_reply_code); trying $du\\n");
            t_on_failure("NEXT_ASTERISK");
            t_relay();
            exit;
        }}
    }}
}}
"""


def sip_options(host: str, port: int, timeout: float = 1.0) -> Optional[str]:
    """Send one OPTIONS to host:port over UDP; the status line of the answer, or None."""
    tag, call_id = secrets.token_hex(4), secrets.token_hex(8)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        message = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
                   f"From: <sip:probe@127.0.0.1:{local}>;tag={tag}\r\n"
                   f"To: <sip:{host}:{port}>\r\n"
                   f"Call-ID: {call_id}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                   f"Content-Length: 0\r\n\r\n")
        sock.settimeout(timeout)
        try:
            sock.sendto(message.encode(), (host, port))
            data, _ = sock.recvfrom(65535)
        except OSError:
            return None
    return data.decode(errors="replace").split("\r\n", 1)[0]


class Kamailio(Daemon):
    """Debian's kamailio on the test bed's config, as a foreground child process."""

    name = "kamailio"
    what = "answer OPTIONS on"

    def __init__(self, folder: Path, destinations: Sequence[Destination], *, port: int, host: str = "127.0.0.1"):
        super().__init__(folder, port=port, host=host)
        self.destinations = list(destinations)

    @property
    def control(self) -> Path:
        return self.folder / "kamailio.ctl"

    def write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        listing = self.folder / "dispatcher.list"
        listing.write_text(dispatcher_list(self.destinations), encoding="utf-8")
        cfg = self.folder / "kamailio.cfg"
        cfg.write_text(kamailio_cfg(port=self.port, host=self.host, dispatcher=listing, control=self.control),
                       encoding="utf-8")
        return cfg

    def arguments(self, config: Path) -> list[str]:
        return ["-f", str(config), "-DD", "-E", "-m", "64", "-M", "8", "-P", str(self.folder / "kamailio.pid")]

    def before_start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.control.unlink()

    def ready(self) -> bool:
        return (sip_options(self.host, self.port, 0.5) or "").split(" ", 2)[1:2] == ["200"]

    def active(self) -> dict[str, bool]:
        """Each destination's name -> whether the dispatcher sends calls to it now
        (`kamcmd dispatcher.list`: the flags of an active destination start with A)."""
        done = subprocess.run(["kamcmd", "-s", f"unix:{self.control}", "dispatcher.list"],
                              capture_output=True, text=True, timeout=5)
        if done.returncode != 0:
            raise AsteriskError(f"kamcmd dispatcher.list failed: {(done.stderr or done.stdout).strip()}")
        state: dict[str, bool] = {}
        for block in done.stdout.split("DEST:")[1:]:
            uri = re.search(r"URI:\s*(\S+)", block)
            flags = re.search(r"FLAGS:\s*(\S+)", block)
            for destination in self.destinations:
                if uri and flags and uri.group(1) == destination.uri:
                    state[destination.name] = flags.group(1).startswith("A")
        return state

"""A small blocking AMI session for the test bed, scripts and end-to-end tests.

The live runtime uses `ivr.asterisk.ami.AmiClient` (asyncio, reconnects, watchdog); this
is the plain socket version for code that just wants to log in, send an action, and wait
for an event, e.g.:

    with AmiSession("127.0.0.1", 5038) as ami:
        ami.login("ivr", secret, events="agent")
        originate_keys(ami, "1 1")
        ami.wait_event("QueueCallerJoin", lambda e: e["Queue"] == "operator", timeout=20)

Every header value passes `ami_wire.header_value` (no line break can reach the wire).
"""

from __future__ import annotations

import itertools
import re
import socket
import time
from collections import deque
from typing import Any, Callable, Mapping, Optional

from ivr.asterisk.ami_wire import header_value
from ivr.errors import AmiError, AmiLoginError

Message = dict[str, str]
_KEYS = re.compile(r"^[0-9*#ABCD]+$")


class AmiSession:
    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.timeout = timeout
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise AmiError(f"cannot reach the AMI at {host}:{port}: {exc}") from None
        self._file = self._sock.makefile("rb")
        self.banner = self._file.readline().decode("utf-8", "replace").strip()
        self.events: deque[Message] = deque()
        self._ids = itertools.count(1)

    def __enter__(self) -> "AmiSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    # --- wire ------------------------------------------------------------------------------
    def _send(self, headers: Mapping[str, Any]) -> None:
        lines = []
        for name, value in headers.items():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                lines.append(f"{name}: {header_value(name, item)}\r\n")
        self._sock.sendall(("".join(lines) + "\r\n").encode("utf-8"))

    def _read(self, deadline: float) -> Message:
        message: Message = {}
        while True:
            self._sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                raw = self._file.readline()
            except (socket.timeout, TimeoutError):
                raise AmiError("no answer from the AMI in time") from None
            if not raw:
                raise AmiError("the AMI closed the connection")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if message:
                    return message
                continue
            name, _, value = line.partition(":")
            message.setdefault(name.strip(), value.strip())

    # --- actions -------------------------------------------------------------------------------
    def action(self, name: str, headers: Optional[Mapping[str, Any]] = None, *,
               timeout: Optional[float] = None) -> Message:
        """Send an action; its Response message (events that arrive meanwhile are kept)."""
        action_id = f"ivr-{next(self._ids)}"
        self._send({"Action": name, "ActionID": action_id, **(headers or {})})
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            message = self._read(deadline)
            if "Response" in message and message.get("ActionID") == action_id:
                return message
            if "Event" in message:
                self.events.append(message)

    def login(self, username: str, secret: str, events: str = "off") -> None:
        reply = self.action("Login", {"Username": username, "Secret": secret, "Events": events})
        if reply.get("Response") != "Success":
            raise AmiLoginError(f"AMI login of {username!r} refused: {reply.get('Message', '')}")

    def wait_event(self, name: str, match: Callable[[Message], bool] = lambda e: True,
                   timeout: Optional[float] = None) -> Message:
        """The first event `name` for which match() holds (kept ones first); AmiError on time-out."""
        for event in list(self.events):
            if event.get("Event") == name and match(event):
                self.events.remove(event)
                return event
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                message = self._read(deadline)
            except AmiError:
                raise AmiError(f"no {name} event within {timeout or self.timeout:g}s") from None
            if message.get("Event") == name and match(message):
                return message
            if "Event" in message:
                self.events.append(message)


def keys_to_dtmf(keys: str) -> str:
    """`ivr call` style keys ("1 1", "2 123456#") as SendDTMF digits: a space is a 2 s pause."""
    groups = keys.split()
    for group in groups:
        if not _KEYS.match(group):
            raise AmiError(f"keys may be 0-9, *, # and A-D, separated by spaces, not {group!r}")
    return "wwww".join(groups)


def originate_keys(ami: AmiSession, keys: str, *, exten: str = "100", context: str = "ivr",
                   hold: int = 30, caller_id: str = '"Test caller" <48221234567>') -> Message:
    """A call into `exten@context` whose caller presses `keys` (test bed's [caller] context):
    AMI Originate of Local/<exten>@<context>; the ;2 half runs the IVR, the ;1 half waits
    2 s, presses the keys, stays `hold` seconds and hangs up. Needs write class originate."""
    if not re.match(r"^[A-Za-z0-9_+*#-]+$", exten) or not re.match(r"^[A-Za-z0-9_-]+$", context):
        raise AmiError(f"bad extension or context: {exten!r}@{context!r}")
    reply = ami.action("Originate", {
        "Channel": f"Local/{exten}@{context}",
        "Context": "caller", "Exten": "s", "Priority": "1",
        "CallerID": caller_id,
        "Variable": [f"KEYS={keys_to_dtmf(keys)}", f"HOLD={int(hold)}"],
        "Async": "true",
    })
    if reply.get("Response") != "Success":
        raise AmiError(f"Originate refused: {reply.get('Message', '')}")
    return reply

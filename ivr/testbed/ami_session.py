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
_WAIT = re.compile(r"^(\d+(?:\.\d+)?)s$")
_MESSAGE_END = re.compile(rb"\r?\n\r?\n")


class AmiSession:
    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.timeout = timeout
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise AmiError(f"cannot reach the AMI at {host}:{port}: {exc}") from None
        # our own buffer, not makefile(): a socket file cannot be read again after a
        # time-out, and a session must survive a wait_event that found nothing
        self._buffer = bytearray()
        try:
            self.banner = self._readline(time.monotonic() + timeout).decode("utf-8", "replace").strip()
        except AmiError:
            self.close()
            raise
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

    def _fill(self, deadline: float) -> None:
        self._sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = self._sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise AmiError("no answer from the AMI in time") from None
        except OSError as exc:
            raise AmiError(f"the AMI connection failed: {exc}") from None
        if not chunk:
            raise AmiError("the AMI closed the connection")
        self._buffer += chunk

    def _readline(self, deadline: float) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            self._fill(deadline)
        line = bytes(self._buffer[:end + 1])
        del self._buffer[:end + 1]
        return line

    def _read(self, deadline: float) -> Message:
        """The next whole message; on time-out nothing is consumed, so the session goes on."""
        while True:
            while self._buffer[:1] in (b"\r", b"\n"):  # blank lines between messages
                del self._buffer[:1]
            end = _MESSAGE_END.search(self._buffer)
            if end is not None:
                block = bytes(self._buffer[:end.start()])
                del self._buffer[:end.end()]
                message: Message = {}
                for raw in block.split(b"\n"):
                    name, _, value = raw.decode("utf-8", "replace").rstrip("\r").partition(":")
                    message.setdefault(name.strip(), value.strip())
                return message
            self._fill(deadline)

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
    """`ivr call` style keys ("1 1", "2 123456#", "6s 1 1") as SendDTMF digits: a space is
    a 2 s pause, and a token such as `6s` or `2.5s` waits that much longer (SendDTMF's `w`
    is half a second), as `ivr call` does."""
    out: list[str] = []
    extra = 0.0
    for token in keys.split():
        wait = _WAIT.match(token)
        if wait:
            extra += float(wait.group(1))
            continue
        if not _KEYS.match(token):
            raise AmiError(f"keys may be 0-9, *, # and A-D, or a wait such as 5s, separated by spaces, not {token!r}")
        pause = extra + (2.0 if out else 0.0)
        out.append("w" * round(pause * 2) + token)
        extra = 0.0
    if extra:
        out.append("w" * round(extra * 2))
    return "".join(out)


def originate_keys(ami: AmiSession, keys: str, *, exten: str = "100", context: str = "ivr",
                   hold: int = 30, caller_id: str = '"Test caller" <48221234567>',
                   variables: Optional[Mapping[str, str]] = None) -> Message:
    """A call into `exten@context` whose caller presses `keys` (test bed's [caller] context):
    AMI Originate of Local/<exten>@<context>; the ;2 half runs the IVR, the ;1 half waits
    2 s, presses the keys, stays `hold` seconds and hangs up. `variables` are set on the
    call too (a Local channel hands them to its ;2 half). Needs write class originate."""
    if not re.match(r"^[A-Za-z0-9_+*#-]+$", exten) or not re.match(r"^[A-Za-z0-9_-]+$", context):
        raise AmiError(f"bad extension or context: {exten!r}@{context!r}")
    extra = dict(variables or {})
    for name in extra:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise AmiError(f"bad variable name {name!r}")
    reply = ami.action("Originate", {
        "Channel": f"Local/{exten}@{context}",
        "Context": "caller", "Exten": "s", "Priority": "1",
        "CallerID": caller_id,
        "Variable": [f"KEYS={keys_to_dtmf(keys)}", f"HOLD={int(hold)}", *(f"{k}={v}" for k, v in extra.items())],
        "Async": "true",
    })
    if reply.get("Response") != "Success":
        raise AmiError(f"Originate refused: {reply.get('Message', '')}")
    return reply

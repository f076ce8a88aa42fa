"""The AGI wire protocol: the environment block, replies, and argument quoting.

Facts (Asterisk's res_agi): a command is one line; arguments are split on blanks, a `"`
starts or ends a quoted argument unless escaped, and `\\` escapes the next character.
So every argument goes through `quote`, the one place that quotes: anything the caller
controls (a caller-ID name, digits) can never end a command or start another. Replies:

    200 result=<n> [(<data>)] [endpos=<n>]   success; result -1 often means hang-up
    510 Invalid or unknown command
    511 Command Not Permitted on a dead channel or intercept routine
    520-Invalid command syntax.  Proper usage follows:  (lines...)  520 End of proper usage.
    HANGUP                                   the caller hung up (FastAGI), at any moment

Reply codes map to exceptions here and nowhere else.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import parse_qsl, unquote

from ivr.errors import CallerHangup, ChannelError

_REPLY = re.compile(r"^(?P<code>\d{3})(?P<sep>[ -])(?P<rest>.*)$")
_RESULT = re.compile(r"^result=(?P<result>-?\d+|\S*)\s*(?:\((?P<data>.*?)\))?\s*(?P<tail>.*)$")
_FIELD = re.compile(r"(\w+)=(\S*)")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AgiError(ChannelError):
    """Asterisk refused a command: the engine sent something wrong (a bug, not the caller)."""


class AgiInvalidCommand(AgiError):
    """510: Asterisk does not know the command."""


class AgiUsageError(AgiError):
    """520: the command's arguments were wrong; carries Asterisk's usage text."""


class AgiDeadChannel(CallerHangup):
    """511, HANGUP, or the socket closed: the caller is gone."""


@dataclass(frozen=True)
class Reply:
    code: int
    result: str  # as sent: "-1", "0", "49", or text for GET VARIABLE
    data: Optional[str]  # the part in parentheses: "timeout", a variable's value
    fields: dict[str, str]  # endpos=... and the like
    line: str

    @property
    def number(self) -> int:
        try:
            return int(self.result)
        except ValueError:
            return 0


def quote(value: object) -> str:
    """One AGI argument, quoted so Asterisk reads it back exactly as one argument.

    A command ends at a line break, so CR, LF and NUL cannot be sent at all: they are
    dropped (they never belong in a file name, a queue name or a key list).
    """
    text = str(value).replace("\r", "").replace("\n", "").replace("\0", "")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command(verb: str, *args: object) -> bytes:
    """A command line: a fixed verb (ours, never input) and quoted arguments."""
    if not re.fullmatch(r"[A-Z]+(?: [A-Z]+)*", verb):
        raise ValueError(f"not an AGI verb: {verb!r}")
    return (" ".join([verb, *(quote(a) for a in args)]) + "\n").encode("utf-8")


def parse_reply(line: str) -> Reply:
    """A one-line 200 reply; other codes raise their exception."""
    match = _REPLY.match(line)
    if not match:
        raise AgiError(f"unexpected line from Asterisk: {line!r}")
    code = int(match.group("code"))
    rest = match.group("rest")
    if code == 510:
        raise AgiInvalidCommand(f"510 {rest}")
    if code == 511:
        raise AgiDeadChannel(f"511 {rest}")
    if code == 520:
        raise AgiUsageError(f"520 {rest}")
    if code != 200:
        raise AgiError(f"unexpected reply code {code}: {line!r}")
    result = _RESULT.match(rest)
    if not result:
        raise AgiError(f"a 200 reply without result=: {line!r}")
    return Reply(code, result.group("result"), result.group("data"), dict(_FIELD.findall(result.group("tail") or "")), line)


async def read_reply(reader: asyncio.StreamReader, timeout: Optional[float] = None) -> Reply:
    """The reply to the command just sent.

    No time-out by default: a Queue can hold the line for as long as the caller waits.
    A HANGUP line means the caller is gone; we stop at once instead of waiting for the
    reply behind it, so the reading never falls out of step with the commands.
    """
    line = await _read_line(reader, timeout)
    if line == "HANGUP":
        raise AgiDeadChannel("the caller hung up")
    if line.startswith("520-"):
        usage = [line[4:]]
        while True:
            more = await _read_line(reader, timeout)
            if more.startswith("520 "):
                break
            usage.append(more)
        raise AgiUsageError("520 " + " / ".join(u.strip() for u in usage if u.strip()))
    return parse_reply(line)


async def _read_line(reader: asyncio.StreamReader, timeout: Optional[float]) -> str:
    try:
        raw = await (asyncio.wait_for(reader.readline(), timeout) if timeout else reader.readline())
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        raise AgiDeadChannel(f"the connection closed: {exc}") from None
    if not raw:
        raise AgiDeadChannel("Asterisk closed the connection")
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def unescape(value: str) -> str:
    """Asterisk backslash-escapes some characters in environment values (quotes, say)."""
    out = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
        else:
            out.append(char)
    return "".join(out)


@dataclass
class AgiEnvironment:
    """The `agi_*` block Asterisk sends first, and what the engine needs of it."""

    values: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def script(self) -> str:
        """The flow named in agi://host:port/<script>?query (without the query)."""
        return unquote(self.get("agi_network_script").split("?", 1)[0]).strip("/")

    @property
    def query(self) -> dict[str, str]:
        parts = self.get("agi_network_script").split("?", 1)
        return dict(parse_qsl(parts[1])) if len(parts) == 2 else {}

    @property
    def args(self) -> list[str]:
        found = []
        n = 1
        while f"agi_arg_{n}" in self.values:
            found.append(self.values[f"agi_arg_{n}"])
            n += 1
        return found

    @property
    def caller(self) -> str:
        number = self.get("agi_callerid")
        return "" if number in ("unknown", "anonymous") else number

    @property
    def caller_name(self) -> str:
        name = self.get("agi_calleridname")
        return "" if name == "unknown" else name

    @property
    def uniqueid(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def channel(self) -> str:
        return self.get("agi_channel")

    @property
    def language(self) -> str:
        return self.get("agi_language")


async def read_environment(reader: asyncio.StreamReader, timeout: float = 10.0) -> AgiEnvironment:
    """Read the environment block up to its blank line.

    A line that is not `agi_name: value` continues the previous value (a caller-ID name
    with a line break in it); it never ends the block early or shifts the replies.
    """
    env = AgiEnvironment()
    last: Optional[str] = None
    while True:
        try:
            line = await _read_line(reader, timeout)
        except asyncio.TimeoutError:
            raise AgiError("Asterisk sent no AGI environment") from None
        if line == "":
            return env
        name, sep, value = line.partition(": ")
        if sep and name.startswith("agi_") and _NAME.match(name):
            env.values[name] = unescape(value)
            last = name
        elif last is not None:
            env.values[last] += "\n" + unescape(line)
        else:
            raise AgiError(f"not an AGI environment line: {line[:60]!r}")

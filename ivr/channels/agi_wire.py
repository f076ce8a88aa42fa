"""The AGI wire protocol: the environment block, replies, and argument quoting.

Facts (Asterisk's res_agi): a command is one line; arguments are split on blanks, a `"`
starts or ends a quoted argument unless escaped, and `\\` escapes the next character.
So every argument goes through `quote`, the one place that quotes: anything the caller
controls (a caller-ID name, digits) can never end a command or start another. Replies:

    200 result=<n> [(<data>)] [endpos=<n>]   success; result -1 often means hang-up
    510 Invalid or unknown command
    511 Command Not Permitted on a dead channel or intercept routine
    520-Invalid command syntax.  Proper usage follows:  (lines...)  520 End of proper usage.
    HANGUP                                   the caller hung up (FastAGI), at any moment;
                                             the reply to the command still follows it

The environment block before the first command is `agi_name: value` lines and a blank
line, each value written as it is: a caller-ID name with line breaks (seen on Asterisk 22)
spreads over several lines, even blank ones, so the call's first command (`first_command`)
makes sure of its end and `finish_environment` puts the block together.

This module only parses and quotes; the bytes are read by `ivr.channels.agi_connection`,
which bounds them.

Every command is a round trip through Asterisk that the caller hears as a gap, so values
are read together: GET FULL VARIABLE evaluates any expression (`${A}|${B}|...`, built by
`values_expression`) and is allowed on a dead channel, so one command reads what several
GET VARIABLEs would (`split_values`).

Reply codes map to exceptions here and nowhere else.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence
from urllib.parse import parse_qsl, unquote

from ivr.errors import CallerHangup, ChannelError

log = logging.getLogger(__name__)

_REPLY = re.compile(r"^(?P<code>\d{3})(?P<sep>[ -])(?P<rest>.*)$")
_RESULT = re.compile(r"^result=(?P<result>-?\d+|\S*)\s*(?:\((?P<data>.*?)\))?\s*(?P<tail>.*)$")
_FIELD = re.compile(r"(\w+)=(\S*)")
CALLER_NAME = "agi_calleridname"
AFTER_CALLER_NAME = "agi_callingpres"  # the line Asterisk always writes next (res_agi setup_env)
_USED = frozenset({"agi_network_script", "agi_callerid", "agi_calleridname", "agi_uniqueid", "agi_channel"})
_NAME_LINE, _AFTER_NAME_LINE = f"{CALLER_NAME}: ", f"{AFTER_CALLER_NAME}: "
SEPARATOR = "|"  # between the values of one GET FULL VARIABLE; the last value may hold it


class AgiError(ChannelError):
    """Asterisk refused a command: the engine sent something wrong (a bug, not the caller)."""


class AgiInvalidCommand(AgiError):
    """510: Asterisk does not know the command."""


class AgiUsageError(AgiError):
    """520: the command's arguments were wrong; carries Asterisk's usage text."""


class AgiDeadChannel(CallerHangup):
    """511, HANGUP, or the socket closed: the caller is gone."""


class AgiHangupNotice(AgiDeadChannel):
    """The `HANGUP` line of FastAGI: the caller is gone. Asterisk still answers the command
    just sent (on a dead channel: 511, or the result of GET VARIABLE and the like) after it."""


@dataclass(slots=True)  # not frozen: a frozen one costs a call of object.__setattr__ a field, on every reply
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
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and '"' not in text and "\\" not in text:  # a path, a name, digits: as they are
        return '"' + text + '"'
    text = text.replace("\r", "").replace("\n", "").replace("\0", "")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_VERB = re.compile(r"[A-Z]+(?: [A-Z]+)*")
_VERBS: set[str] = set()  # verbs checked already: a handful, sent thousands of times a second


def command(verb: str, *args: object) -> bytes:
    """A command line: a fixed verb (ours, never input) and quoted arguments."""
    if verb not in _VERBS:
        if not _VERB.fullmatch(verb):
            raise ValueError(f"not an AGI verb: {verb!r}")
        _VERBS.add(verb)
    return (" ".join([verb, *(quote(a) for a in args)]) + "\n").encode("utf-8")


def parse_reply(line: str) -> Reply:
    """A one-line 200 reply; other codes raise their exception."""
    if line.startswith("200 result=") and "(" not in line:  # the most common: "200 result=49", "... endpos=N"
        result, _, tail = line[11:].partition(" ")
        return Reply(200, result, None, dict(_FIELD.findall(tail)) if tail else {}, line)
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


def reply_of(unit: "str | list[str]") -> Reply:
    """The reply to the command just sent, from what the connection read for it: one line,
    the `HANGUP` notice, or the lines of a 520 usage block (a list).

    A HANGUP line means the caller is gone; the command's own reply still follows it, and
    the connection hands that over as the next unit, so the reading never falls out of step.
    """
    if unit.__class__ is str:
        if unit == "HANGUP":
            raise AgiHangupNotice("the caller hung up")
        return parse_reply(unit)
    usage = [unit[0][4:], *unit[1:-1]]
    raise AgiUsageError("520 " + " / ".join(u.strip() for u in usage if u.strip()))


@functools.lru_cache(maxsize=64)
def values_expression(names: tuple[str, ...]) -> str:
    """The GET FULL VARIABLE argument that reads every one of `names` (variables or
    functions such as `CHANNEL(state)`) at once. Put a name whose value is free text last."""
    return SEPARATOR.join("${" + name + "}" for name in names)


def full_data(line: str) -> str:
    """What a GET FULL VARIABLE reply holds: everything between its first `(` and last `)`
    (a value may hold parentheses, which the one-line reply does not escape)."""
    start, end = line.find("("), line.rfind(")")
    return line[start + 1:end] if 0 <= start < end else ""


def split_values(data: str, names: Sequence[str]) -> dict[str, str]:
    """The values of `values_expression(names)` as Asterisk evaluated it; unset ones are ""."""
    parts = data.split(SEPARATOR, len(names) - 1)
    if len(parts) != len(names):
        raise AgiError(f"expected {len(names)} values separated by {SEPARATOR!r}, got {data[:80]!r}")
    return dict(zip(names, parts))


def unescape(value: str) -> str:
    """Asterisk backslash-escapes some characters in environment values (quotes, say)."""
    if "\\" not in value:
        return value
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
    asked: dict[str, str] = field(default_factory=dict)  # what read_environment(ask=...) read, by name
    first_command: Optional[bytes] = None  # the command that made sure of the block's end
    hung_up: bool = False  # the caller was gone before the answer to that command

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    def keep_only_used(self) -> None:
        """Forget the values the engine never reads (agi_request, agi_context, ...): a call
        keeps its environment to its end, and thousands are up at once."""
        self.values = {k: v for k, v in self.values.items() if k in _USED or k.startswith("agi_arg_")}

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


def first_command(ask: Sequence[str]) -> tuple[bytes, str]:
    """The call's first command and the start of its answer (the echo), which ends the
    environment block for certain.

    Asterisk writes each value as it is, so a value with line breaks (a caller-ID name can
    hold any) spreads over several lines, and a blank line inside it looks like the end of
    the block. The command is GET FULL VARIABLE of a random token, which Asterisk answers
    only after it has sent the whole block; every line before that answer still belongs to
    the block. So nothing in a caller's name can ever be read as the reply to a command.
    The same command also reads the channel values named in `ask` (`token|${A}|${B}`), so
    what the call needs to know at its start costs no round trip of its own.
    """
    token = _token()
    # each value follows "|<token>", which no value can hold (a language or priority may come
    # from a SIP header through the dialplan, and hold a "|" of its own)
    marker = SEPARATOR + token
    line = command("GET FULL VARIABLE", token + "".join(marker + "${" + name + "}" for name in ask))
    return line, f"200 result=1 ({token}"


def is_echo(line: str, echo: str, asked: bool) -> bool:
    """Is `line` Asterisk's answer to the first command (and not a line of the block)?"""
    return line.startswith(echo) and line[len(echo):len(echo) + 1] == (SEPARATOR if asked else ")")


def finish_environment(lines: list[str], rest: list[str], answer: str, first: bytes, echo: str,
                       ask: Sequence[str]) -> AgiEnvironment:
    """The environment from the block up to its first blank line (`lines`), the lines read
    after it before the first command's `answer` (`rest`), and that answer."""
    # the caller hung up before the answer: Asterisk's HANGUP line comes after the whole block
    # (after its last blank line), never inside a value
    hung_up = bool(rest) and rest[-1] == "HANGUP" and (len(rest) == 1 or rest[-2] == "")
    if hung_up:
        rest.pop()
    if rest:  # the first blank line was inside a value; the last one ended the block
        lines += [""] + (rest[:-1] if rest[-1] == "" else rest)
        log.warning("the AGI environment held a blank line inside a value (%d more lines)", len(rest))
    env = parse_environment(lines)
    env.first_command = first
    env.hung_up = hung_up
    if ask:
        token = echo[len("200 result=1 ("):]
        values = full_data(answer)[len(token):].split(SEPARATOR + token)[1:]
        if len(values) == len(ask):
            env.asked = dict(zip(ask, values))
        else:  # a value with a line break cut the reply: nothing is known, the call goes on
            log.warning("the answer to the call's first command is cut (%d of %d values)", len(values), len(ask))
    return env


_RANDOM = bytearray()


def _token() -> str:
    """16 hex digits no caller can guess, taken from the OS's randomness a few KB at a time
    (one system call a call cost as much as the rest of reading its environment)."""
    if len(_RANDOM) < 8:
        _RANDOM.extend(os.urandom(4096))
    token = _RANDOM[-8:].hex()
    del _RANDOM[-8:]
    return token


_SHARED: dict[str, str] = {}
_SHARED_MAX = 1024  # distinct short texts kept: bounded, whatever the callers send
_SHARED_LEN = 24


def _shared(text: str) -> str:
    """One copy of the names and short values every call's environment repeats ("agi_type",
    "PJSIP", "unknown", "0"): some 1.5 KB a call, 7 MB for 5,000 calls at once."""
    if len(text) > _SHARED_LEN:
        return text
    kept = _SHARED.get(text)
    if kept is not None:
        return kept
    if len(_SHARED) < _SHARED_MAX:
        _SHARED[text] = text
    return text


def parse_environment(lines: list[str]) -> AgiEnvironment:
    """The `agi_name: value` lines of the block, in Asterisk's fixed order.

    A line that is not `agi_name: value` continues the value before it (a line break in
    a value), and a name already set is never set again. The caller-ID name is the one
    value a caller controls, and Asterisk always follows it with agi_callingpres: it runs
    up to the last agi_callingpres line, so lines in it that look like `agi_uniqueid: ...`
    or `agi_channel: ...` are part of the name and set nothing.
    """
    env = AgiEnvironment()
    name_at = after = None  # the first caller-name line, the last agi_callingpres line
    for i, line in enumerate(lines):
        if line.startswith("agi_calling") and line.startswith(_AFTER_NAME_LINE):
            after = i
        elif name_at is None and line.startswith(_NAME_LINE):
            name_at = i
    if name_at is not None and after is not None and after > name_at:
        env.values[CALLER_NAME] = unescape("\n".join(lines[name_at:after])[len(CALLER_NAME) + 2:])
        lines = lines[:name_at] + lines[after:]
    last: Optional[str] = None
    for line in lines:
        name, sep, value = line.partition(": ")
        if sep and name.startswith("agi_") and name.isascii() and name.isidentifier() and name not in env.values:
            env.values[_shared(name)] = _shared(unescape(value))
            last = name
        elif last is not None:
            env.values[last] += "\n" + unescape(line)
        else:
            raise AgiError(f"not an AGI environment line: {line[:60]!r}")
    return env

"""One FastAGI connection on asyncio's Protocol interface, with bounded input.

Asterisk's bytes arrive in `data_received`, which splits them into lines and hands each
complete reply to the one command waiting for it (a future per command; no StreamReader,
no drain per command: the transport's own buffer and pause/resume_writing do the flow
control). Every stream Asterisk sends is bounded here, and only here:

- the environment block (up to its blank line, then to the first command's answer):
  `MAX_ENVIRONMENT_BYTES`, `MAX_ENVIRONMENT_LINES`, and one deadline for all of it, which
  the server keeps (`ivr.channels.fastagi`, one sweep for every opening connection);
- every line: `MAX_LINE_BYTES`; every reply (a 520 usage block is several lines):
  `MAX_REPLY_BYTES`, `MAX_REPLY_LINES`, and `USAGE_SECONDS` for a usage block to end;
- lines no command asked for: `MAX_UNASKED` (Asterisk sends only HANGUP unasked).

A connection that breaks a limit is closed at once (its buffers go with it) and the owner
is told why, in a few words that the server counts into its one rate-limited log line. A
call whose reply broke a limit is a broken channel (`AgiLimitError`, a ChannelError); a
connection that closes is a caller gone (`AgiDeadChannel`), as before.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Optional, Protocol, Sequence, Union

from ivr.channels.agi_wire import (AgiDeadChannel, AgiEnvironment, AgiError, finish_environment, first_command,
                                   is_echo)

# What Asterisk 22 really sends (res_agi's setup_env): some 22 fixed `agi_*` lines of a few
# dozen bytes, the caller's number and name, the dialled number and the redirecting number
# (what a caller controls: from one SIP message, which PJSIP caps at 6,000 bytes in
# Asterisk's bundled pjproject, or set by the dialplan, whose expansion buffer is 8,192
# bytes), each at most doubled by Asterisk's backslash escaping, and agi_arg_1..127, which
# share the one AGI() argument string (8,192 bytes at most). That is under 80 kB even when
# every caller-controlled value is as long as it can be; 128 kB leaves room for our first
# command's answer (the token and a few short channel values) and is still small enough
# that thousands of opening connections cannot swamp the process.
MAX_ENVIRONMENT_BYTES = 128 * 1024
# 22 fixed lines and 127 arguments; the rest is line breaks inside values, which a real
# caller name has a few of, not thousands
MAX_ENVIRONMENT_LINES = 2048
# one line: the longest value Asterisk can put in one (8 kB doubled by escaping) eight
# times over; it was the stream reader's limit before, so no real reply ever came near it
MAX_LINE_BYTES = 64 * 1024
# a 520 usage block: res_agi's longest usage text is under 40 lines and 3 kB
MAX_REPLY_LINES = 256
MAX_REPLY_BYTES = 64 * 1024
USAGE_SECONDS = 10.0  # Asterisk writes a usage block at once: one that does not end is no Asterisk
MAX_UNASKED = 8  # replies nobody asked for, kept for the next command (Asterisk: HANGUP, then a reply)

Unit = Union[str, list]  # one reply line, or the lines of a 520 usage block


class AgiLimitError(AgiError):
    """Asterisk's side sent more than any Asterisk would: the connection is closed."""


class ConnectionOwner(Protocol):
    """What a connection tells the FastAGI server."""

    def connection_opened(self, connection: "AgiConnection") -> None:
        """A new connection: it may be refused at once (`connection.refuse`)."""

    def block_received(self, connection: "AgiConnection") -> None:
        """The block's blank line came: the first command is sent, its answer awaited."""

    def hold(self, connection: "AgiConnection", size: int) -> bool:
        """May the connection keep `size` bytes more of its unfinished block? (A budget for
        all opening connections together.)"""

    def environment_ready(self, connection: "AgiConnection", env: AgiEnvironment) -> None:
        """The environment block and the first command's answer are in: the call can start."""

    def connection_refused(self, connection: "AgiConnection", reason: str) -> None:
        """The connection was closed before or during its call, for `reason` (a few words)."""


class AgiConnection(asyncio.Protocol):
    """Asterisk's end of one call: the environment block, then one reply per command."""

    def __init__(self, owner: ConnectionOwner, ask: Sequence[str] = ()):
        self.owner = owner
        self.ask = tuple(ask)
        self.transport: Optional[asyncio.Transport] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.opening = True  # until the environment is complete
        self.in_block = True  # until the block's first blank line
        self.held = 0  # bytes of the unfinished block, counted against the owner's budget
        self.closed = False
        self._partial = bytearray()  # the start of a line whose end has not come
        self._block = bytearray()  # the environment block up to its blank line
        self._size = 0  # bytes of the environment so far (block, then lines to the answer)
        self._count = 0  # its lines
        self._lines: list[str] = []
        self._rest: list[str] = []
        self._first = b""
        self._echo = ""
        self._on_line = self._environment_line
        self._usage: Optional[list[str]] = None
        self._usage_size = 0
        self._usage_timer: Optional[asyncio.TimerHandle] = None
        self._waiter: Optional[asyncio.Future] = None
        self._unasked: deque[Unit] = deque()
        self._failure: Optional[Exception] = None
        self._writable: Optional[asyncio.Future] = None  # set while the transport's buffer is full

    # --- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()
        self.owner.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self._block is not None:  # the block, before its blank line: found in one search
            data = self._read_block(data)
            if not data:
                return
        partial = self._partial
        if partial:
            start = len(partial)
            partial += data
            if partial.find(b"\n", start) < 0:
                if len(partial) > MAX_LINE_BYTES:
                    self.refuse(f"sent a line over the {MAX_LINE_BYTES // 1024} kB limit")
                return
            data = bytes(partial)
            partial.clear()
        on_line = self._on_line
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            if end - start > MAX_LINE_BYTES:
                self.refuse(f"sent a line over the {MAX_LINE_BYTES // 1024} kB limit")
                return
            line = data[start:end].decode("utf-8", "replace")
            if line and line[-1] == "\r":
                line = line[:-1]
            start = end + 1
            on_line(line)
            if self.closed:
                return
            on_line = self._on_line
        if start < len(data):
            if len(data) - start > MAX_LINE_BYTES:
                self.refuse(f"sent a line over the {MAX_LINE_BYTES // 1024} kB limit")
                return
            partial += data[start:]

    def eof_received(self) -> Optional[bool]:
        return False  # close: a half-closed Asterisk has hung up

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.closed:
            self.closed = True
            if self.opening:
                self.owner.connection_refused(self, "closed before a complete AGI environment")
        self._free()
        failure = self._failure or AgiDeadChannel(f"the connection closed{f': {exc}' if exc else ''}")
        self._failure = failure
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(failure)
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # --- what a call uses --------------------------------------------------------------
    async def exchange(self, line: bytes) -> Unit:
        """Send one command line; the next reply (a line, or a usage block's lines)."""
        if self._failure is not None:
            self._raise()
        writable = self._writable
        if writable is not None and not writable.done():  # Asterisk reads no more: wait for it
            await writable
            if self._failure is not None:
                self._raise()
        self.transport.write(line)  # type: ignore[union-attr]
        if self._unasked:
            return self._unasked.popleft()
        # the reply() of below, written out: this is the path of every command
        waiter = self._waiter = self._loop.create_future()
        return await waiter

    async def reply(self) -> Unit:
        """The next reply, which may already be in (the one after a HANGUP line)."""
        if self._unasked:
            return self._unasked.popleft()
        if self._failure is not None:
            self._raise()
        waiter = self._waiter = self._loop.create_future()
        return await waiter

    @property
    def broken(self) -> bool:
        """Closed for a limit or by either side: nothing more can be sent."""
        return self._failure is not None

    def _raise(self) -> None:
        failure = self._failure
        raise type(failure)(*failure.args)  # type: ignore[misc]  # a fresh one: no traceback piles up

    def close(self) -> None:
        """The call is over: close the connection (Asterisk's AGI() returns)."""
        if not self.closed:
            self.closed = True
            self._failure = self._failure or AgiDeadChannel("the call is over")
            if self.transport is not None:
                self.transport.close()
        self._free()

    def refuse(self, reason: str) -> None:
        """Close at once for `reason` (a limit broken, a deadline passed); the owner counts it,
        and a call waiting for a reply gets AgiLimitError."""
        if self.closed:
            return
        self.closed = True
        self._failure = AgiLimitError(f"the connection was closed: Asterisk's side {reason}")
        if self.transport is not None:
            self.transport.abort()
        self._free()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(self._failure)
        self.owner.connection_refused(self, reason)

    # --- the environment ---------------------------------------------------------------
    def _read_block(self, data: bytes) -> bytes:
        """Take the block up to its first blank line; what follows it, to read as lines."""
        block = self._block
        if not self.owner.hold(self, len(data)):
            self.refuse("came while the connections without a complete block held all the memory they may")
            return b""
        self.held += len(data)
        start = max(len(block) - 1, 0)
        block += data
        end = block.find(b"\n\n", start)
        if end < 0:
            self._count += data.count(b"\n")
            if len(block) > MAX_ENVIRONMENT_BYTES:
                self.refuse(f"sent an AGI environment over the {MAX_ENVIRONMENT_BYTES // 1024} kB limit")
            elif self._count > MAX_ENVIRONMENT_LINES:
                self.refuse(f"sent an AGI environment over the {MAX_ENVIRONMENT_LINES:,} lines limit")
            return b""
        if end + 2 > MAX_ENVIRONMENT_BYTES:
            self.refuse(f"sent an AGI environment over the {MAX_ENVIRONMENT_BYTES // 1024} kB limit")
            return b""
        text = block[:end].decode("utf-8", "replace")
        after = bytes(block[end + 2:])
        self._block = None  # type: ignore[assignment]
        self.in_block = False
        self.owner.block_received(self)
        self._size = end + 2
        self._lines = [line[:-1] if line[-1:] == "\r" else line for line in text.split("\n")]
        self._count = len(self._lines) + 1
        if self._count > MAX_ENVIRONMENT_LINES:
            self.refuse(f"sent an AGI environment over the {MAX_ENVIRONMENT_LINES:,} lines limit")
            return b""
        if not self._lines[0].startswith("agi_"):  # a port scan, a web browser: no call to start
            self.refuse("sent no AGI environment")
            return b""
        self._first, self._echo = first_command(self.ask)
        self.transport.write(self._first)  # type: ignore[union-attr]
        return after

    def _environment_line(self, line: str) -> None:
        """A line after the first blank one: the block went on (a value held a blank line),
        or the answer to the first command, which ends it."""
        if is_echo(line, self._echo, bool(self.ask)):
            try:
                env = finish_environment(self._lines, self._rest, line, self._first, self._echo, self.ask)
            except AgiError:
                self.refuse("sent no AGI environment")
                return
            self._lines = self._rest = []
            self._on_line = self._reply_line
            self.opening = False
            self.owner.environment_ready(self, env)
            return
        if line.startswith("511 "):  # the channel died before the call started
            self.refuse("hung up before the call started")
            return
        self._size += len(line) + 1
        self._count += 1
        if self._size > MAX_ENVIRONMENT_BYTES:
            self.refuse(f"sent an AGI environment over the {MAX_ENVIRONMENT_BYTES // 1024} kB limit")
        elif self._count > MAX_ENVIRONMENT_LINES:
            self.refuse(f"sent an AGI environment over the {MAX_ENVIRONMENT_LINES:,} lines limit")
        else:
            self._rest.append(line)

    # --- replies -----------------------------------------------------------------------
    def _reply_line(self, line: str) -> None:
        usage = self._usage
        if usage is not None:  # inside a 520 usage block
            usage.append(line)
            self._usage_size += len(line) + 1
            if line.startswith("520 "):
                self._usage = None
                if self._usage_timer is not None:
                    self._usage_timer.cancel()
                    self._usage_timer = None
                self._deliver(usage)
            elif len(usage) > MAX_REPLY_LINES:
                self.refuse(f"sent a reply over the {MAX_REPLY_LINES} lines limit")
            elif self._usage_size > MAX_REPLY_BYTES:
                self.refuse(f"sent a reply over the {MAX_REPLY_BYTES // 1024} kB limit")
            return
        if line.startswith("520-"):
            self._usage = [line]
            self._usage_size = len(line) + 1
            self._usage_timer = self._loop.call_later(USAGE_SECONDS, self._usage_late)
            return
        self._deliver(line)

    def _usage_late(self) -> None:
        self._usage_timer = None
        if self._usage is not None:
            self.refuse(f"sent a reply that did not end within {USAGE_SECONDS:g} s")

    def _deliver(self, unit: Unit) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # a cancelled call's waiter: the reply is nobody's
                waiter.set_result(unit)
            return
        self._unasked.append(unit)
        if len(self._unasked) > MAX_UNASKED:
            self.refuse(f"sent over {MAX_UNASKED} replies no command asked for")

    def _free(self) -> None:
        self._partial = bytearray()
        self._block = None  # type: ignore[assignment]
        self._lines = self._rest = []
        self._usage = None
        self._unasked.clear()
        if self._usage_timer is not None:
            self._usage_timer.cancel()
            self._usage_timer = None

"""A fake Asterisk Manager Interface over loopback, speaking the real AMI wire format.

It greets with `Asterisk Call Manager/11.0.0`, reads `Name: value` blocks ended by a blank
line, answers `Response: Success`/`Error` with the action's ActionID, runs QueueStatus and
CoreShowChannels as event lists (`EventList: start` ... `...Complete`), and can push events,
fall silent (a frozen Asterisk), drop every connection, or refuse connections for a while.
Event filters as Asterisk 22 applies them: the user's (manager.conf `eventfilter`, names
only) and a session's own (`Filter` actions with `name(...)`, refused as Asterisk refuses
them to a user without the `system` class unless `filter_allowed`); an answer to an action
is never filtered.
It records every block it receives, raw, so tests can assert on exact headers and counts.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Optional

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def block(*pairs: tuple[str, object]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in pairs) + b"\r\n"


def parse_block(raw: str) -> list[tuple[str, str]]:
    pairs = []
    for line in raw.split("\r\n"):
        if not line:
            continue
        name, _, value = line.partition(":")
        pairs.append((name, value[1:] if value.startswith(" ") else value))
    return pairs


@dataclass
class Received:
    raw: str
    pairs: list[tuple[str, str]]
    connection: int

    def get(self, name: str) -> Optional[str]:
        for k, v in self.pairs:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def action(self) -> str:
        return self.get("Action") or ""


@dataclass
class FakeAmi:
    username: str = "ivr"
    secret: str = "s3cret-Pa55"
    # None: QueueStatus is refused ("Permission denied")
    queue_params: Optional[list[dict]] = field(default_factory=lambda: [{"Queue": "sales", "Max": "0",
                                                                          "Strategy": "ringall", "Calls": "1",
                                                                          "Holdtime": "12", "Completed": "3",
                                                                          "Abandoned": "1"}])
    queue_members: list[dict] = field(default_factory=lambda: [{"Queue": "sales", "Name": "Agent 101",
                                                                 "Location": "PJSIP/101", "Status": "1",
                                                                 "Paused": "0", "InCall": "0"}])
    queue_entries: list[dict] = field(default_factory=list)
    channels: list[dict] = field(default_factory=list)
    silent: bool = False  # read and record, answer nothing (a frozen Asterisk)
    silent_connections: set = field(default_factory=set)  # the same, for these connections (1, 2, ...)
    hold: set = field(default_factory=set)  # action names (lower case) left unanswered
    refuse_originate: Optional[str] = None  # the Message of an Error answer to Originate
    on_action: Optional[object] = None  # async callable(received, fake) run after each block is recorded
    filter_allowed: bool = False  # the user has the system class: Filter actions are taken
    refuse_filters: set = field(default_factory=set)  # event names whose Filter is refused all the same
    user_filter: Optional[set] = None  # manager.conf's include filters of the user: event names

    def __post_init__(self):
        self.received: list[Received] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.logged_in: set[asyncio.StreamWriter] = set()
        self.session_filters: dict[asyncio.StreamWriter, set] = {}  # the Filter actions taken, by session
        self.connections = 0
        self.connect_times: list[float] = []
        self.port = 0
        self.server: Optional[asyncio.AbstractServer] = None

    # --- control -------------------------------------------------------------------------
    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port or self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop_listening(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def close(self) -> None:
        await self.stop_listening()
        self.drop()

    def drop(self) -> None:
        """Close every client connection (Asterisk restarted, a network cut)."""
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()
        self.logged_in.clear()

    def push(self, event: str, **headers: object) -> None:
        """Send an event to every logged-in client."""
        data = block(("Event", event), ("Privilege", "agent,all"), *headers.items())
        for writer in list(self.logged_in):
            if self._passes(writer, event):
                writer.write(data)

    def _passes(self, writer: asyncio.StreamWriter, event: str) -> bool:
        """Include filters only: with any, an event passes when one of them names it."""
        included = set(self.user_filter or ()) | self.session_filters.get(writer, set())
        return not included or event in included

    def count(self, action: str) -> int:
        return sum(1 for r in self.received if r.action.lower() == action.lower())

    def actions(self, action: str) -> list[Received]:
        return [r for r in self.received if r.action.lower() == action.lower()]

    async def wait_for(self, predicate, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the fake AMI waited in vain")
            await asyncio.sleep(0.01)

    # --- the wire ------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.connect_times.append(time.monotonic())
        number = self.connections
        self.writers.append(writer)
        writer.write(BANNER)
        try:
            while True:
                try:
                    raw = (await reader.readuntil(b"\r\n\r\n")).decode()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                received = Received(raw, parse_block(raw), number)
                self.received.append(received)
                if self.on_action is not None:
                    await self.on_action(received, self)
                if (self.silent or number in self.silent_connections or received.action.lower() in self.hold
                        or writer.is_closing()):
                    continue
                self._answer(received, writer)
                await writer.drain()
        except ConnectionError:
            return
        finally:
            self.logged_in.discard(writer)
            self.session_filters.pop(writer, None)
            if writer in self.writers:
                self.writers.remove(writer)
            writer.close()

    def _answer(self, r: Received, writer: asyncio.StreamWriter) -> None:
        aid = ("ActionID", r.get("ActionID") or "")
        action = r.action.lower()
        if action == "login":
            if r.get("Username") == self.username and r.get("Secret") == self.secret:
                self.logged_in.add(writer)
                writer.write(block(("Response", "Success"), aid, ("Message", "Authentication accepted")))
                if self._passes(writer, "FullyBooted"):
                    writer.write(block(("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", "5"),
                                       ("LastReload", "5"), ("Status", "Fully Booted")))
            else:
                writer.write(block(("Response", "Error"), aid, ("Message", "Authentication failed")))
            return
        if writer not in self.logged_in:
            writer.write(block(("Response", "Error"), aid, ("Message", "Permission denied")))
            return
        if action == "ping":
            writer.write(block(("Response", "Success"), aid, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")))
        elif action == "queuestatus" and self.queue_params is None:
            writer.write(block(("Response", "Error"), aid, ("Message", "Permission denied")))
        elif action == "queuestatus":
            writer.write(block(("Response", "Success"), aid, ("EventList", "start"),
                               ("Message", "Queue status will follow")))
            items = 0
            for q in self.queue_params:
                writer.write(block(("Event", "QueueParams"), *q.items(), aid))
                items += 1
                for m in (m for m in self.queue_members if m["Queue"] == q["Queue"]):
                    writer.write(block(("Event", "QueueMember"), *m.items(), aid))
                    items += 1
                for e in (e for e in self.queue_entries if e["Queue"] == q["Queue"]):
                    writer.write(block(("Event", "QueueEntry"), *e.items(), aid))
                    items += 1
            writer.write(block(("Event", "QueueStatusComplete"), aid, ("EventList", "Complete"),
                               ("ListItems", items)))
        elif action == "coreshowchannels":
            writer.write(block(("Response", "Success"), aid, ("EventList", "start"),
                               ("Message", "Channels will follow")))
            for c in self.channels:
                writer.write(block(("Event", "CoreShowChannel"), aid, *c.items()))
            writer.write(block(("Event", "CoreShowChannelsComplete"), aid, ("EventList", "Complete"),
                               ("ListItems", len(self.channels))))
        elif action == "originate" and self.refuse_originate is not None:
            writer.write(block(("Response", "Error"), aid, ("Message", self.refuse_originate)))
        elif action == "originate":
            writer.write(block(("Response", "Success"), aid, ("Message", "Originate successfully queued")))
        elif action == "mixmonitormute":
            if (r.get("Channel") or "").startswith("PJSIP/"):
                writer.write(block(("Response", "Success"), aid))
            else:
                writer.write(block(("Response", "Error"), aid, ("Message", "No such channel")))
        elif action == "filter":
            name = re.fullmatch(r"action\(include\),name\((\w+)\)", r.get("MatchCriteria") or "")
            if not self.filter_allowed:
                writer.write(block(("Response", "Error"), aid, ("Message", "Permission denied")))
            elif name is None or name.group(1) in self.refuse_filters:
                writer.write(block(("Response", "Error"), aid, ("Message", "Filter Not Added")))
            else:
                self.session_filters.setdefault(writer, set()).add(name.group(1))
                writer.write(block(("Response", "Success"), aid, ("Message", "Success")))
        elif action == "logoff":
            writer.write(block(("Response", "Goodbye"), aid, ("Message", "Thanks for all the fish.")))
            writer.close()
        else:
            writer.write(block(("Response", "Error"), aid, ("Message", "Invalid/unknown command")))

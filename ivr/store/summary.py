"""The calls row of a call, built up from its events as they come.

One function of the event stream, so a live call, a simulated one and a re-import of
stored events give the same row. Keys come from the events, which hold sensitive input
already masked, so the row can never hold an account number.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Optional

from ivr import events as ev
from ivr.store.models import to_utc

_NOT_DIGIT = re.compile(r"\D+")
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_DIGITS = 32  # longer "numbers" are not numbers: search the first digits only


def clean_text(value: Any) -> Optional[str]:
    """Untrusted text as a database can hold it: NUL and lone surrogates become U+FFFD.

    Everything else is kept as received (it is data, bound as a parameter, never SQL).
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and "\x00" not in text:  # the usual case: nothing to look for, nothing to copy
        return text
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


def caller_digits(caller: Optional[str]) -> str:
    """The digits of a caller number as received ("+48 22 123-45" -> "482212345")."""
    return _NOT_DIGIT.sub("", caller or "")[:MAX_DIGITS]


def parse_at(value: Any) -> Optional[dt.datetime]:
    if isinstance(value, dt.datetime):
        return to_utc(value)
    if isinstance(value, str):
        try:
            return to_utc(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


COLUMNS = ("id", "uniqueid", "channel", "source", "flow", "flow_version", "caller", "caller_name", "caller_digits",
           "language", "started_at", "ended_at", "duration", "outcome", "department", "queue_wait", "agent", "talk",
           "abandoned", "survey_score", "last_flow", "last_node", "keys", "engine_id")
_SLOT = {name: f"c_{name}" for name in COLUMNS}


class Row:
    """A calls row being built: a slot per column, read and set like a dict (`row["agent"]`).
    A live server keeps one for each call in progress; as a dict of 23 keys each cost 1 KB."""

    __slots__ = tuple(_SLOT.values())

    def __getitem__(self, column: str) -> Any:
        return getattr(self, _SLOT[column])

    def __setitem__(self, column: str, value: Any) -> None:
        setattr(self, _SLOT[column], value)

    def to_dict(self) -> dict[str, Any]:
        return {column: getattr(self, slot) for column, slot in _SLOT.items()}


class CallSummary:
    """The calls row of one call, kept up to date event by event (`apply`)."""

    __slots__ = ("id", "row", "keys", "nodes", "new_nodes", "started", "ended")  # one for each call in progress

    def __init__(self, call_id: str, flow: str, started_at: dt.datetime, source: str):
        self.id = call_id
        row = self.row = Row()
        for column in COLUMNS:
            row[column] = None
        row["id"], row["source"], row["flow"], row["started_at"] = call_id, source, flow, started_at
        row["caller"] = row["caller_digits"] = row["keys"] = ""
        row["abandoned"] = False
        self.keys: list[str] = []
        self.nodes: dict[tuple[str, str], float] = {}
        self.new_nodes: list[dict[str, Any]] = []  # entered since `take_new_nodes`
        self.started = False  # call_started seen
        self.ended = False  # outcome seen

    def apply(self, event: dict[str, Any]) -> None:
        """Take one event (as `Event.to_dict()` gives it) into the row."""
        kind = event["type"]
        row = self.row
        if kind == ev.CALL_STARTED:
            self.started = True
            row["flow"] = event["flow"]
            row["flow_version"] = clean_text(event.get("version"))
            row["caller"] = clean_text(event.get("caller")) or ""
            row["caller_digits"] = caller_digits(row["caller"])
            row["caller_name"] = clean_text(event.get("caller_name"))
            row["channel"] = clean_text(event.get("channel"))
            row["uniqueid"] = clean_text(event.get("uniqueid"))
            row["language"] = event.get("language")
            if event.get("source") is not None:
                row["source"] = clean_text(event["source"])
            started = parse_at(event.get("at"))
            if started is not None:
                row["started_at"] = started
        elif kind == ev.NODE_ENTERED:
            row["last_flow"], row["last_node"] = event["flow"], event["node"]
            key = (event["flow"], event["node"])
            if event["node"] is not None and key not in self.nodes:
                self.nodes[key] = event["t"]
                self.new_nodes.append({"call_id": self.id, "flow": key[0], "node": key[1], "t": event["t"]})
        elif kind == ev.KEY:
            self._key(event.get("key"))
        elif kind == ev.INPUT:
            self._key(event.get("digits"))
        elif kind == ev.INVALID and "digits" in event:  # an input or survey answer out of range
            self._key(event.get("digits"))
        elif kind == ev.LANGUAGE:
            row["language"] = event.get("language")
        elif kind == ev.TRANSFER:
            row["department"] = event.get("department")
        elif kind == ev.TRANSFER_RESULT:
            row["department"] = event.get("department")
            row["queue_wait"] = (row["queue_wait"] or 0.0) + float(event.get("wait") or 0.0)
            if event.get("agent") and event.get("status") != ev.TransferStatus.ABANDONED:
                row["agent"] = clean_text(event["agent"])
            if event.get("talk"):
                row["talk"] = (row["talk"] or 0.0) + float(event["talk"])
            if event.get("status") == ev.TransferStatus.ABANDONED:
                row["abandoned"] = True
        elif kind == ev.SURVEY:
            if event.get("score") is not None:
                row["survey_score"] = int(event["score"])
                self._key(str(event["score"]))
        elif kind == ev.OUTCOME:
            self.ended = True
            row["outcome"] = event.get("outcome")
            if event.get("department") is not None:
                row["department"] = event["department"]
            if event.get("survey") is not None:
                row["survey_score"] = int(event["survey"])
            duration = event.get("duration")
            row["duration"] = float(duration) if duration is not None else event["t"]
            row["ended_at"] = row["started_at"] + dt.timedelta(seconds=row["duration"])

    def _key(self, key: Any) -> None:
        if key:
            self.keys.append(str(key))
            self.row["keys"] = " ".join(self.keys)

    def take_new_nodes(self) -> list[dict[str, Any]]:
        nodes, self.new_nodes = self.new_nodes, []
        return nodes

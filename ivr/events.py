"""The one event schema of a call, shared by the engine, the simulator, journey tests,
live calls, the store and the web app.

An event says what happened (`type`), when (`t`, seconds since the call started, so QA
can seek the recording to it), where (`flow`, `node`) and its details (`data`). An
event has one dict form (`Event.to_dict`, `event_dict`): JSON-ready, `Secret` values
masked; what the store writes, the CLI prints as JSON and the web app reads back.
Values marked sensitive are masked before they reach an event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Mapping, Optional

CALL_STARTED = "call_started"
NODE_ENTERED = "node_entered"
PROMPT = "prompt"
KEY = "key"
TIMEOUT = "timeout"
INVALID = "invalid"
REPEAT = "repeat"
LANGUAGE = "language"
VARIABLE = "variable"
INPUT = "input"
HOURS = "hours"
ROUTE = "route"
TRANSFER = "transfer"
TRANSFER_RESULT = "transfer_result"
CALLBACK = "callback"
VOICEMAIL = "voicemail"
SURVEY = "survey"
GOTO = "goto"
RECORDING = "recording"
CALLER_HANGUP = "caller_hangup"
ERROR = "error"
OUTCOME = "outcome"

TYPES = (
    CALL_STARTED, NODE_ENTERED, PROMPT, KEY, TIMEOUT, INVALID, REPEAT, LANGUAGE, VARIABLE, INPUT,
    HOURS, ROUTE, TRANSFER, TRANSFER_RESULT, CALLBACK, VOICEMAIL, SURVEY, GOTO, RECORDING,
    CALLER_HANGUP, ERROR, OUTCOME,
)


class Outcome(StrEnum):
    """How a call ended, as QA filters them (the calls row's `outcome`)."""

    ANSWERED = "answered"  # an agent took the call
    VOICEMAIL = "voicemail"  # the caller left a voicemail
    CALLBACK = "callback"  # the caller booked a call-back
    SELF_SERVICE = "self_service"  # the flow ended without an agent
    ABANDONED = "abandoned"  # the caller hung up first
    UNANSWERED = "unanswered"  # the queue timed out and the flow had nowhere to go
    FAILED = "failed"  # the engine failed; the caller went to the fallback queue


class TransferStatus(StrEnum):
    """How one wait in a queue ended (the `status` of a transfer_result event)."""

    ANSWERED = "answered"  # an agent answered
    TIMED_OUT = "timeout"  # the wait reached its limit
    ABANDONED = "abandoned"  # the caller left the queue


class Secret:
    """A value typed by the caller that must never be shown: digits of a card or account."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return mask(self._value)

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("secret", self._value))


def mask(digits: str) -> str:
    return "*" * len(digits)


# --- the dict form ---------------------------------------------------------------------------
_PLAIN = (str, int, float, bool, type(None))


def jsonable(value: Any) -> Any:
    """`value` made of JSON types: a Secret masked, an enum its value, a time ISO text,
    containers converted inside, anything else its text (a record never fails on a value)."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    for plain in (str, int, float):
        if isinstance(value, plain):
            return plain(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def event_dict(call_id: str, seq: int, t: float, type_: str, flow: str, node: Optional[str],
               data: Mapping[str, Any]) -> dict[str, Any]:
    """The dict form of an event: where and when, then its payload, JSON-ready and masked."""
    out: dict[str, Any] = {"call": call_id, "seq": seq, "t": round(t, 3), "type": type_, "flow": flow, "node": node}
    for key, value in data.items():
        out[key] = jsonable(value)
    return out


@dataclass(frozen=True, slots=True)
class Event:
    call_id: str
    seq: int
    t: float
    type: str
    flow: str
    node: Optional[str]
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return event_dict(self.call_id, self.seq, self.t, self.type, self.flow, self.node, self.data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

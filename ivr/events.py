"""The one event schema of a call, shared by the engine, the simulator, journey tests,
live calls, the store and the web app.

An event says what happened (`type`), when (`t`, seconds since the call started, so QA
can seek the recording to it), where (`flow`, `node`) and its details (`data`). Values
marked sensitive are masked before they reach an event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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


@dataclass(frozen=True, slots=True)
class Event:
    call_id: str
    seq: int
    t: float
    type: str
    flow: str
    node: str | None
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out = {"call": self.call_id, "seq": self.seq, "t": round(self.t, 3), "type": self.type, "flow": self.flow, "node": self.node}
        for key, value in self.data.items():
            out[key] = str(value) if isinstance(value, Secret) else value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=_masked)


def _masked(value: Any) -> Any:
    if isinstance(value, Secret):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")

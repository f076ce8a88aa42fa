"""The event schema of a call: the one contract between the engine that emits events and
the simulator, the CLI, the store and the web app that record and show them.

An event says what happened (`type`), when (`t`, seconds since the call started, so QA
can seek the recording to it), where (`flow`, `node`) and its details (`data`, its
payload). Each type is declared once below: its name (as stored), the payload keys it
always carries and those it may carry, and how it reads to a person (`sentences`). An
event has one dict form (`Event.to_dict`, `event_dict`): JSON-ready, `Secret` values
masked; what the store writes, the CLI prints as JSON and the web app reads back.
Values marked sensitive are masked before they reach an event.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Callable, Mapping, Optional


class Outcome(StrEnum):
    """How a call ended, as QA filters them (the calls row's `outcome`)."""

    ANSWERED = "answered"  # an agent took the call
    VOICEMAIL = "voicemail"  # the caller left a voicemail
    CALLBACK = "callback"  # the caller booked a call-back
    SELF_SERVICE = "self_service"  # the flow ended without an agent
    ABANDONED = "abandoned"  # the caller hung up first
    UNANSWERED = "unanswered"  # the queue timed out and the flow had nowhere to go
    FAILED = "failed"  # the engine failed; the caller went to the fallback queue
    # the engine stopped before the call ended (SIGTERM past the grace period, or a crash
    # repaired at the next start); a caller still on the line went to the fail-safe queue
    INTERRUPTED = "interrupted"


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


# --- how an event reads ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Sentence:
    """An event as a person reads it: what happened, and the circumstances."""

    text: str
    detail: str = ""
    # seconds before the event that this happened: the agent's answer is only told when
    # the talk ends, by the transfer_result event
    earlier: float = 0.0
    part: str = ""  # names one of the moments an event tells of ("agent", "talk"); "" for the event itself

    def __str__(self) -> str:
        return f"{self.text} · {self.detail}" if self.detail else self.text


def duration_text(seconds: Optional[float]) -> str:
    """`1:05` for 65 s; `1:02:03` past an hour; a dash for nothing."""
    if seconds is None:
        return "–"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _seconds(value: Any) -> Optional[float]:
    """A number of seconds as stored, or None for anything else (an older or broken writer's record)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _attempt(d: Mapping[str, Any]) -> str:
    attempt, attempts = d.get("attempt"), d.get("attempts")
    return f"attempt {attempt} of {attempts}" if attempt and attempts else ""


def _node(d: Mapping[str, Any]) -> str:
    return d.get("node") or ""


def _entered(d: Mapping[str, Any]) -> Sentence:
    node_type, via = str(d.get("node_type") or "node"), d.get("via")
    how = f"via {via}" if via not in (None, "", "start") else ""
    if node_type == "menu":
        return Sentence(f"Menu {_node(d)}", how)
    return Sentence(f"Entered {_node(d)}", f"{node_type}, {how}" if how else node_type)


def _invalid(d: Mapping[str, Any]) -> Sentence:
    shown = d["digits"] if "digits" in d else d.get("key", "")
    return Sentence(f"Invalid entry {shown}".rstrip(), _attempt(d))


def _input(d: Mapping[str, Any]) -> Sentence:
    detail = f"into {d.get('var')}" + (" (sensitive: masked)" if d.get("sensitive") else "")
    return Sentence(f"Input {d.get('digits') or ''}", detail)


def _transfer(d: Mapping[str, Any]) -> Sentence:
    notes = [f"queue {d.get('queue')}"]
    if d.get("overflow"):
        notes.append(f"overflow: {d['reason']}" if d.get("reason") else "overflow")
    if d.get("fallback"):
        notes.append("fallback after an engine failure")
    return Sentence(f"Transfer to {d.get('department')}", ", ".join(notes))


def _transfer_result(d: Mapping[str, Any]) -> tuple[Sentence, ...]:
    status, department = d.get("status"), d.get("department")
    wait, talk = _seconds(d.get("wait")), _seconds(d.get("talk"))
    if status == TransferStatus.ANSWERED:
        agent = d.get("agent") or "an agent"
        return (Sentence(f"Agent {agent} answered", f"{department}, after {duration_text(wait)} in the queue",
                         earlier=talk or 0.0, part="agent"),
                Sentence("Talk ended", f"talked {duration_text(talk)} with {agent}", part="talk"))
    if status == TransferStatus.TIMED_OUT:
        return (Sentence(f"No agent of {department} answered", f"waited {duration_text(wait)}"),)
    return (Sentence(f"Caller left the {department} queue", f"waited {duration_text(wait)}"),)


def _callback(d: Mapping[str, Any]) -> Sentence:
    if not d.get("offered"):
        return Sentence("Callback not offered", str(d.get("reason") or ""))
    if not d.get("accepted"):
        return Sentence("Callback declined", str(d.get("reason") or d.get("department") or ""))
    notes = [str(d.get("department") or "")]
    within = _seconds(d.get("within"))
    if within:
        # the promise as a caller heard it: 1 h, 30 min
        whole = int(within)
        span = f"{whole // 3600} h" if whole % 3600 == 0 else f"{whole // 60} min" if whole % 60 == 0 else duration_text(within)
        notes.append(f"due within {span}")
    if d.get("number_from"):
        notes.append("the caller's own number" if d.get("number_from") == "caller" else "a number the caller typed")
    return Sentence("Callback booked", ", ".join(n for n in notes if n))


def _survey(d: Mapping[str, Any]) -> Sentence:
    if not d.get("asked"):
        return Sentence("Survey not offered")
    score = d.get("score")
    return Sentence(f"Survey answer: {score}" if score is not None else "Survey: no answer")


def _recording(d: Mapping[str, Any]) -> Sentence:
    if d.get("state") == "paused":
        return Sentence("Recording paused", "the caller's keys are not recorded")
    return Sentence("Recording resumed")


def _outcome(d: Mapping[str, Any]) -> Sentence:
    department = d.get("department")
    return Sentence(f"Outcome: {d.get('outcome')}", f"department {department}" if department else "")


def _route(d: Mapping[str, Any]) -> Sentence:
    """The decision, and what each lookup segment's lookup answered (why one failed)."""
    told = []
    for answer in d.get("lookups") or ():
        if isinstance(answer, Mapping):
            said = {"member": "in the segment", "not_member": "not in the segment", "no_number": "no caller number",
                    "failed": f"failed ({answer.get('error') or 'no reason'})"}.get(str(answer.get("result")), str(answer.get("result")))
            cached = ", remembered" if answer.get("cached") else ""
            told.append(f"lookup {answer.get('segment')}: {said}, {answer.get('ms', 0)} ms{cached}")
    return Sentence(f"Route decision: {d.get('rule')}", "; ".join(p for p in (_node(d), *told) if p))


# --- the event types ------------------------------------------------------------------------
Describe = Callable[[Mapping[str, Any]], Sentence | tuple[Sentence, ...]]


@dataclass(frozen=True)
class EventType:
    """One type of event: its stored name, its payload keys, and how it reads."""

    name: str
    required: tuple[str, ...]  # payload keys every event of the type carries
    optional: tuple[str, ...]  # payload keys it may carry
    describe: Describe

    @property
    def payload(self) -> frozenset[str]:
        return frozenset(self.required + self.optional)


TYPES: dict[str, EventType] = {}


def _declare(name: str, describe: Describe, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> str:
    TYPES[name] = EventType(name, required, optional, describe)
    return name


CALL_STARTED = _declare(
    "call_started",
    lambda d: Sentence("Call started", f"flow {d.get('flow')}, language {d.get('language') or '–'}"),
    required=("caller", "language", "version", "at"),
    # the live line's details; `recording` names the call's recording file, which the store links
    # (`asterisk_node`: the Asterisk the call came from, with several: config.yaml asterisk.nodes)
    optional=("channel", "uniqueid", "caller_name", "source", "recording", "asterisk_node"))
NODE_ENTERED = _declare("node_entered", _entered, required=("node_type", "via"))
PROMPT = _declare(
    "prompt",
    lambda d: Sentence(f"Prompt {d.get('prompt') or ''}", f"[{d['language']}]" if d.get("language") else ""),
    required=("prompt", "language"))
KEY = _declare("key", lambda d: Sentence(f"Key {d.get('key', '')} pressed", _node(d)), required=("key",))
TIMEOUT = _declare("timeout", lambda d: Sentence("No key (time-out)", _attempt(d)),
                   required=("attempt", "attempts"), optional=("digits",))
# a menu's wrong key, or an input's or survey's digits out of range
INVALID = _declare("invalid", _invalid, required=("attempt", "attempts"), optional=("key", "digits"))
REPEAT = _declare("repeat", lambda d: Sentence("Asked to hear the menu again", _node(d)))
LANGUAGE = _declare("language", lambda d: Sentence(f"Language changed to {d.get('language')}"), required=("language",))
VARIABLE = _declare("variable", lambda d: Sentence(f"Set {d.get('name') or ''} = {d.get('value')}"),
                    required=("name", "value"))
INPUT = _declare("input", _input, required=("digits", "var", "sensitive"))
HOURS = _declare("hours", lambda d: Sentence(f"Opening hours {d.get('schedule')}: {d.get('state')}"),
                 required=("schedule", "state"))
ROUTE = _declare("route", _route, required=("rule",), optional=("lookups",))
TRANSFER = _declare("transfer", _transfer, required=("department", "queue", "priority"),
                    optional=("overflow", "fallback", "reason"))  # reason: why the caller overflowed, in words
TRANSFER_RESULT = _declare("transfer_result", _transfer_result,
                           required=("department", "status", "wait", "agent", "talk"))
# number_from: "caller" (the caller ID) or "typed"; within: seconds promised
CALLBACK = _declare("callback", _callback, required=("offered",),
                    optional=("accepted", "department", "reason", "number_from", "within"))
VOICEMAIL = _declare(
    "voicemail",
    lambda d: Sentence(f"Voicemail left in {d.get('mailbox')}", duration_text(_seconds(d.get("duration")))),
    required=("mailbox", "duration"))
SURVEY = _declare("survey", _survey, required=("asked",), optional=("score",))
GOTO = _declare("goto", lambda d: Sentence(f"Go to flow {d.get('to_flow')}", f"node {d.get('to_node')}"),
                required=("to_flow", "to_node", "version"))
RECORDING = _declare("recording", _recording, required=("state",))
CALLER_HANGUP = _declare("caller_hangup", lambda d: Sentence("Caller hung up"))
ERROR = _declare("error", lambda d: Sentence(f"Engine error: {d.get('error')}", str(d.get("message") or "")[:200]),
                 required=("error", "message"))
# the engine stopped with the call in progress: the event's node is where the call was;
# `reason` says how (a stop past the grace period, or a crash found at the next start)
INTERRUPTED = _declare(
    "interrupted",
    lambda d: Sentence("Call interrupted: the engine stopped",
                       "; ".join(p for p in (f"at {_node(d)}" if _node(d) else "", str(d.get("reason") or "")) if p)),
    required=("reason",), optional=("engine",))
OUTCOME = _declare("outcome", _outcome, required=("outcome", "department", "survey", "duration"))


def sentences(event: Mapping[str, Any]) -> tuple[Sentence, ...]:
    """How an event (its dict form) reads, moment by moment: one sentence for most types."""
    kind = str(event.get("type") or "")
    declared = TYPES.get(kind)
    if declared is None:  # a type this version does not know (an older or newer record)
        return (Sentence(kind.replace("_", " ").capitalize(), _node(event)),)
    told = declared.describe(event)
    return told if isinstance(told, tuple) else (told,)

"""The timeline of one call as a reviewer reads it, built from its CallEvent rows.

Each entry has its offset from the start of the call (`t`, seconds), which is also its
place in the recording: the recording starts with the call. A queue's result event comes
when the transfer is over, so the moment the agent answered is worked out from it
(`t - talk`) and shown as an entry of its own.

Digits the caller typed into a sensitive input are stored masked already; they are
masked here once more (by the event's flag, by the node's `sensitive` in the loaded flows,
and for variables saved from such an input), so a record written by an older or broken
writer still never shows them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

from ivr import events as ev
from ivr.events import mask
from ivr.web.filters import duration


@dataclass(frozen=True)
class Entry:
    t: float  # seconds from the start of the call (= of the recording)
    id: str  # stable element id: event-<seq>, or event-<seq>-<part> for a derived entry
    kind: str  # what the page styles and the browser tests look for
    title: str
    detail: str = ""
    quote: str = ""  # what a prompt said, in the language it was played in

    @property
    def offset(self) -> str:
        return offset(self.t)


def offset(t: Optional[float]) -> str:
    """mm:ss from the start of the call (minutes go past 59 rather than adding hours)."""
    if t is None or not math.isfinite(t) or t < 0:
        return "00:00"
    minutes, seconds = divmod(int(t), 60)
    return f"{minutes:02d}:{seconds:02d}"


def _flow(flows: Any, flow_id: str) -> Any:
    try:
        return flows[flow_id] if flows is not None and flow_id in flows else None
    except Exception:  # noqa: BLE001 - the timeline works without the flows
        return None


def _sensitive_node(flows: Any, flow_id: str, node: Optional[str]) -> bool:
    flow = _flow(flows, flow_id)
    found = flow.nodes.get(node) if flow is not None and node else None
    return bool(getattr(found, "sensitive", False))


def _masked(digits: Any) -> str:
    return mask(str(digits or ""))


def prompt_text(flows: Any, flow_id: str, name: str, language: Optional[str]) -> str:
    """What the prompt says in `language`, from the flows loaded now ("" without them)."""
    flow = _flow(flows, flow_id)
    prompt = flow.prompts.get(name) if flow is not None else None
    if prompt is None:
        return ""
    return prompt.text(language) if language else next(iter(prompt.texts.values()), "")


def build(events: Iterable[Any], flows: Any = None, language: Optional[str] = None) -> list[Entry]:
    """The entries of a call's events (CallEvent rows, in seq order), in time order."""
    entries: list[Entry] = []
    secret_vars: set[str] = set()
    for event in events:
        data: Mapping[str, Any] = event.data or {}
        sensitive = bool(data.get("sensitive")) or _sensitive_node(flows, event.flow, event.node)
        if event.type == ev.INPUT and sensitive and data.get("var"):
            secret_vars.add(str(data["var"]))
        entries.extend(_entries(event, data, sensitive, secret_vars, flows, language))
    # stable: equal offsets keep the order the call had
    return sorted(entries, key=lambda e: e.t)


def _entries(event: Any, data: Mapping[str, Any], sensitive: bool, secret_vars: set[str], flows: Any,
             language: Optional[str]) -> list[Entry]:
    t, kind, node = float(event.t or 0.0), event.type, event.node or ""
    eid = f"event-{event.seq}"

    def one(kind_: str, title: str, detail: str = "", quote: str = "") -> list[Entry]:
        return [Entry(t, eid, kind_, title, detail, quote)]

    if kind == ev.CALL_STARTED:
        return one("start", "Call started", f"flow {event.flow}, language {data.get('language') or '–'}")
    if kind == ev.NODE_ENTERED:
        node_type = str(data.get("node_type") or "node")
        via = data.get("via")
        how = f"via {via}" if via not in (None, "", "start") else ""
        if node_type == "menu":
            return one("menu", f"Menu {node}", how)
        return one("node", f"Entered {node}", f"{node_type}, {how}" if how else node_type)
    if kind == ev.PROMPT:
        name, lang = str(data.get("prompt") or ""), data.get("language") or language
        return one("prompt", f"Prompt {name}", f"[{lang}]" if lang else "",
                   prompt_text(flows, event.flow, name, lang))
    if kind == ev.KEY:
        return one("key", f"Key {data.get('key', '')} pressed", node)
    if kind == ev.INVALID:
        shown = _masked(data.get("digits")) if sensitive else data.get("digits", data.get("key", ""))
        return one("invalid", f"Invalid entry {shown}".rstrip(), _attempt(data))
    if kind == ev.TIMEOUT:
        return one("timeout", "No key (time-out)", _attempt(data))
    if kind == ev.REPEAT:
        return one("key", "Asked to hear the menu again", node)
    if kind == ev.INPUT:
        shown = _masked(data.get("digits")) if sensitive else str(data.get("digits") or "")
        detail = f"into {data.get('var')}" + (" (sensitive: masked)" if sensitive else "")
        return one("input", f"Input {shown}", detail)
    if kind == ev.LANGUAGE:
        return one("language", f"Language changed to {data.get('language')}")
    if kind == ev.VARIABLE:
        name = str(data.get("name") or "")
        value = _masked(data.get("value")) if name in secret_vars else data.get("value")
        return one("variable", f"Set {name} = {value}")
    if kind == ev.HOURS:
        return one("route", f"Opening hours {data.get('schedule')}: {data.get('state')}")
    if kind == ev.ROUTE:
        return one("route", f"Route decision: {data.get('rule')}", node)
    if kind == ev.TRANSFER:
        notes = [f"queue {data.get('queue')}"]
        if data.get("overflow"):
            notes.append("overflow")
        if data.get("fallback"):
            notes.append("fallback after an engine failure")
        return one("transfer", f"Transfer to {data.get('department')}", ", ".join(notes))
    if kind == ev.TRANSFER_RESULT:
        return _queue_result(t, eid, data)
    if kind == ev.CALLBACK:
        if not data.get("offered"):
            return one("callback", "Callback not offered", str(data.get("reason") or ""))
        return one("callback", "Callback booked" if data.get("accepted") else "Callback declined",
                   str(data.get("department") or ""))
    if kind == ev.VOICEMAIL:
        return one("voicemail", f"Voicemail left in {data.get('mailbox')}", duration(data.get("duration")))
    if kind == ev.SURVEY:
        if not data.get("asked"):
            return one("survey", "Survey not offered")
        score = data.get("score")
        return one("survey", f"Survey answer: {score}" if score is not None else "Survey: no answer")
    if kind == ev.GOTO:
        return one("node", f"Go to flow {data.get('to_flow')}", f"node {data.get('to_node')}")
    if kind == ev.RECORDING:
        paused = data.get("state") == "paused"
        return one("recording", "Recording paused" if paused else "Recording resumed",
                   "the caller's keys are not recorded" if paused else "")
    if kind == ev.CALLER_HANGUP:
        return one("hangup", "Caller hung up")
    if kind == ev.ERROR:
        return one("error", f"Engine error: {data.get('error')}", str(data.get("message") or "")[:200])
    if kind == ev.OUTCOME:
        department = data.get("department")
        return one("outcome", f"Outcome: {data.get('outcome')}", f"department {department}" if department else "")
    return one("other", kind.replace("_", " ").capitalize(), node)


def _attempt(data: Mapping[str, Any]) -> str:
    attempt, attempts = data.get("attempt"), data.get("attempts")
    return f"attempt {attempt} of {attempts}" if attempt and attempts else ""


def _number(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _queue_result(t: float, eid: str, data: Mapping[str, Any]) -> list[Entry]:
    status, department = data.get("status"), data.get("department")
    wait, talk = _number(data.get("wait")), _number(data.get("talk"))
    if status == "answered":
        answered_at = t - talk if talk is not None else t
        agent = data.get("agent") or "an agent"
        return [Entry(max(0.0, answered_at), f"{eid}-agent", "agent", f"Agent {agent} answered",
                      f"{department}, after {duration(wait)} in the queue"),
                Entry(t, f"{eid}-talk", "talk", "Talk ended", f"talked {duration(talk)} with {agent}")]
    if status == "timeout":
        return [Entry(t, eid, "queue", f"No agent of {department} answered", f"waited {duration(wait)}")]
    return [Entry(t, eid, "queue", f"Caller left the {department} queue", f"waited {duration(wait)}")]

"""The timeline of one call as a reviewer reads it, built from its CallEvent rows.

Each entry has its offset from the start of the call (`t`, seconds), which is also its
place in the recording: the recording starts with the call. A queue's result event comes
when the transfer is over, so the moment the agent answered is worked out from it
(`t - talk`) and shown as an entry of its own. The words of every entry are the event's
sentences (`ivr.events.sentences`), the same the CLI prints.

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
from ivr.flow.model import Flow, FlowSet


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


# the entry kinds by event type, as the page styles them
_KINDS = {
    ev.CALL_STARTED: "start", ev.NODE_ENTERED: "node", ev.PROMPT: "prompt", ev.KEY: "key", ev.INVALID: "invalid",
    ev.TIMEOUT: "timeout", ev.REPEAT: "key", ev.INPUT: "input", ev.LANGUAGE: "language", ev.VARIABLE: "variable",
    ev.HOURS: "route", ev.ROUTE: "route", ev.TRANSFER: "transfer", ev.TRANSFER_RESULT: "queue",
    ev.CALLBACK: "callback", ev.VOICEMAIL: "voicemail", ev.SURVEY: "survey", ev.GOTO: "node",
    ev.RECORDING: "recording", ev.CALLER_HANGUP: "hangup", ev.ERROR: "error", ev.OUTCOME: "outcome",
    ev.INTERRUPTED: "interrupted",
}


def offset(t: Optional[float]) -> str:
    """mm:ss from the start of the call (minutes go past 59 rather than adding hours)."""
    if t is None or not math.isfinite(t) or t < 0:
        return "00:00"
    minutes, seconds = divmod(int(t), 60)
    return f"{minutes:02d}:{seconds:02d}"


def _flow(flows: Optional[FlowSet], flow_id: str) -> Optional[Flow]:
    return flows[flow_id] if flows is not None and flow_id in flows else None


def _sensitive_node(flows: Optional[FlowSet], flow_id: str, node: Optional[str]) -> bool:
    flow = _flow(flows, flow_id)
    found = flow.nodes.get(node) if flow is not None and node else None
    return bool(getattr(found, "sensitive", False))


def _masked(digits: Any) -> str:
    return mask(str(digits or ""))


def prompt_text(flows: Optional[FlowSet], flow_id: str, name: str, language: Optional[str]) -> str:
    """What the prompt says in `language`, from the flows loaded now ("" without them)."""
    flow = _flow(flows, flow_id)
    prompt = flow.prompts.get(name) if flow is not None else None
    if prompt is None:
        return ""
    return prompt.text(language) if language else next(iter(prompt.texts.values()), "")


def build(events: Iterable[Any], flows: Optional[FlowSet] = None, language: Optional[str] = None) -> list[Entry]:
    """The entries of a call's events (CallEvent rows, in seq order), in time order."""
    entries: list[Entry] = []
    secret_vars: set[str] = set()
    for event in events:
        data: Mapping[str, Any] = event.data or {}
        sensitive = bool(data.get("sensitive")) or _sensitive_node(flows, event.flow, event.node)
        if event.type == ev.INPUT and sensitive and data.get("var"):
            secret_vars.add(str(data["var"]))
        entries.extend(_entries(event, _shown(event, data, sensitive, secret_vars, language), flows))
    # stable: equal offsets keep the order the call had
    return sorted(entries, key=lambda e: e.t)


def _shown(event: Any, data: Mapping[str, Any], sensitive: bool, secret_vars: set[str],
           language: Optional[str]) -> dict[str, Any]:
    """The event's dict form as the page may show it: masked once more, the call's language
    for a prompt stored without one."""
    shown = event.to_dict()
    if event.type in (ev.INPUT, ev.INVALID) and sensitive:
        shown["digits"] = _masked(data.get("digits"))
    if event.type == ev.INPUT:
        shown["sensitive"] = sensitive
    if event.type == ev.VARIABLE and str(data.get("name") or "") in secret_vars:
        shown["value"] = _masked(data.get("value"))
    if event.type == ev.PROMPT:
        shown["language"] = data.get("language") or language
    return shown


def _entries(event: Any, shown: Mapping[str, Any], flows: Optional[FlowSet]) -> list[Entry]:
    t, eid = float(event.t or 0.0), f"event-{event.seq}"
    quote = ""
    if event.type == ev.PROMPT:
        quote = prompt_text(flows, event.flow, str(shown.get("prompt") or ""), shown.get("language"))
    entries = []
    for sentence in ev.sentences(shown):
        at = max(0.0, t - sentence.earlier) if sentence.earlier else t
        entry_id = f"{eid}-{sentence.part}" if sentence.part else eid
        entries.append(Entry(at, entry_id, _kind(event.type, shown, sentence.part), sentence.text, sentence.detail,
                             quote))
    return entries


def _kind(event_type: str, shown: Mapping[str, Any], part: str) -> str:
    if part:  # a moment of its own: the agent's answer, the end of the talk
        return part
    if event_type == ev.NODE_ENTERED and shown.get("node_type") == "menu":
        return "menu"
    return _KINDS.get(event_type, "other")

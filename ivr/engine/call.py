"""The state of one call while the engine runs it, and the events it emits."""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, Optional

from ivr.clock import Clock
from ivr import events as ev
from ivr.engine.channel import Channel
from ivr.events import Event, Outcome, Secret
from ivr.flow.model import Flow, Prompt
from ivr.flow.nodes.base import Node

_ids = itertools.count(1)
log = logging.getLogger(__name__)


class Call:
    """One caller's way through the flows; `events` is its full history."""

    # slots: a live server holds thousands of calls at once (600 B a call less than a __dict__)
    __slots__ = ("engine", "channel", "flow", "asked_flow", "clock", "caller", "language", "vars", "id", "events",
                 "on_event", "_sink_failed", "node", "outcome", "department", "survey_score", "overflow_note", "steps",
                 "started_at", "_t0")

    def __init__(
        self,
        engine: Any,
        channel: Channel,
        flow: Optional[Flow],
        clock: Clock,
        *,
        asked_flow: str = "",
        caller: str = "",
        language: Optional[str] = None,
        variables: Optional[dict[str, Any]] = None,
        call_id: Optional[str] = None,
        on_event: Optional[Callable[[Event], None]] = None,
    ):
        self.engine = engine
        self.channel = channel
        self.flow = flow  # None: the flow the call asked for is not loaded
        self.asked_flow = asked_flow
        self.clock = clock
        self.caller = caller
        if flow is None:
            self.language = language
        else:
            self.language = language if language in flow.languages else flow.languages[0]
        self.vars: dict[str, Any] = dict(variables or {})
        self.id = call_id or f"call-{next(_ids)}"
        self.events: list[Event] = []
        self.on_event = on_event
        self._sink_failed = False
        self.node: Optional[Node] = None
        self.outcome: Optional[Outcome] = None
        self.department: Optional[str] = None
        self.survey_score: Optional[int] = None
        # (node, reason): the transfer node a caller is sent on to as an overflow, and why
        self.overflow_note: Optional[tuple[str, str]] = None
        self.steps = 0
        self.started_at = clock.now()
        self._t0 = clock.elapsed()

    def elapsed(self) -> float:
        """Seconds since the call started."""
        return self.clock.elapsed() - self._t0

    @property
    def flow_id(self) -> str:
        """The flow the call is in; for a call whose flow is not loaded, the one it asked for."""
        return self.flow.id if self.flow is not None else self.asked_flow

    def emit(self, kind: str, /, **data: Any) -> None:
        node = self.node.name if self.node is not None else None
        event = Event(self.id, len(self.events), self.clock.elapsed() - self._t0, kind, self.flow_id, node, data)
        self.events.append(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # noqa: BLE001 - a failing record (database, pipe) must not cut the caller off
                if not self._sink_failed:  # once per call: a broken sink would fail on every event
                    log.exception("on_event failed for event %s of call %s", event.seq, self.id)
                self._sink_failed = True

    async def play(self, prompt: Prompt, escape: str = "", language: Optional[str] = None) -> Optional[str]:
        language = language or self.language
        self.emit(ev.PROMPT, prompt=prompt.name, language=language)
        return await self.channel.play(prompt, language, escape)

    async def read(self, max_digits: int, timeout: float, terminator: Optional[str] = None, first: Optional[str] = None) -> str:
        return await self.channel.read_digits(max_digits, timeout, terminator, first or "")

    async def set_language(self, language: str) -> None:
        if language != self.language:
            self.language = language
            self.emit(ev.LANGUAGE, language=language)
            await self.channel.set_language(language)

    def set_var(self, name: str, value: Any) -> None:
        self.vars[name] = value
        self.emit(ev.VARIABLE, name=name, value=value)

    def var_text(self, name: str) -> Optional[str]:
        """A variable's real value, for matching only (never for display)."""
        value = self.vars.get(name)
        if isinstance(value, Secret):
            return value.reveal()
        return None if value is None else str(value)

    def safe_vars(self) -> dict[str, str]:
        """Variables as they may be shown: sensitive ones masked."""
        return {k: str(v) for k, v in self.vars.items()}

    @property
    def heard(self) -> list[str]:
        return [e.data["prompt"] for e in self.events if e.type == ev.PROMPT]

    @property
    def path(self) -> list[str]:
        return [e.node for e in self.events if e.type == ev.NODE_ENTERED]

"""The Engine: walks a call through the nodes of its flows on any Channel.

Whatever goes wrong inside (a bug, a channel error, a runaway loop, a call that asks for
a flow that is not loaded) ends with the caller in the fallback queue, never in silence;
a caller who hangs up is recorded as abandoned at the node where it happened. A call whose
task is cancelled (the runtime stopping) is recorded as interrupted where it was, and sends
no command more: the line closes and the dialplan's fail-safe takes over.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional

from ivr.clock import Clock, SystemClock
from ivr.settings.config import Config
from ivr import events as ev
from ivr.engine.call import Call
from ivr.engine.channel import Channel
from ivr.engine.lookups import NoLookups, SegmentLookups
from ivr.events import Event
from ivr.engine.nodes import HANDLERS
from ivr.engine.nodes.transfer import queue_call
from ivr.engine.sampling import SurveySampler
from ivr.errors import CallerHangup, EngineError, FlowNotLoaded
from ivr.flow.model import FlowSet

log = logging.getLogger(__name__)

# Far above any real call (a caller pressing keys for an hour enters a few hundred
# nodes); only a bug gets here, and the caller then goes to the fallback queue.
MAX_STEPS = 1000


class Engine:
    def __init__(self, flows: FlowSet, config: Optional[Config] = None, *, sampler: Optional[SurveySampler] = None,
                 lookups: Optional[SegmentLookups] = None):
        self.flows = flows
        self.config = config or Config()
        self.sampler = sampler or SurveySampler()
        self.lookups = lookups or NoLookups()  # who answers route rules on lookup segments

    async def run(
        self,
        channel: Channel,
        flow: str,
        *,
        caller: str = "",
        language: Optional[str] = None,
        variables: Optional[dict[str, Any]] = None,
        clock: Optional[Clock] = None,
        call_id: Optional[str] = None,
        on_event: Optional[Callable[[Event], None]] = None,
        details: Optional[dict[str, Any]] = None,
    ) -> Call:
        """Run one call from the start of `flow` to its end; return the finished Call.

        `details` (the live line's channel, caller name, ...) go into the call_started event.
        A `flow` that is not loaded (a live call's script path may name any) fails the call
        at its start: its events name that flow, and the caller goes to the fallback queue.
        """
        found = self.flows[flow] if flow in self.flows else None
        call = Call(self, channel, found, clock or SystemClock(), asked_flow=flow, caller=caller, language=language,
                    variables=variables, call_id=call_id, on_event=on_event)
        call.emit(ev.CALL_STARTED, caller=caller, language=call.language, version=found.version if found else None,
                  at=call.started_at.isoformat(), **(details or {}))
        hung_up = False
        ended = False  # the flow (or the fallback) is over: only the hang-up is left
        try:
            try:
                await channel.answer()
                if found is None:
                    # repr(): the name comes from the caller's side (the AGI script path, URL-decoded)
                    raise FlowNotLoaded(f"the call asks for flow {flow!r}, which is not loaded")
                await channel.set_language(call.language)
                await self._walk(call)
            except CallerHangup:
                hung_up = True
                call.emit(ev.CALLER_HANGUP)
                if call.outcome is None:
                    call.outcome = ev.Outcome.ABANDONED
            except Exception as exc:  # noqa: BLE001 - any failure must still reach a person
                hung_up = await self._fall_back(call, exc)
            ended = True
            if not hung_up:
                try:
                    await channel.hangup()
                except CallerHangup:
                    pass
                except Exception:  # noqa: BLE001 - the call is over either way
                    log.exception("hangup failed on call %s", call.id)
        except asyncio.CancelledError as stop:
            # the runtime ends the call (`ivr serve` stopping past its grace period). No command
            # more: the line closes, and Asterisk's dialplan takes a caller still on it to the
            # fail-safe queue. The record says where the call was.
            if not ended:
                reason = str(stop.args[0]) if stop.args and stop.args[0] else "the engine stopped"
                call.emit(ev.INTERRUPTED, reason=reason)
                call.outcome = ev.Outcome.INTERRUPTED
            self._end(call)
            raise
        self._end(call)
        return call

    @staticmethod
    def _end(call: Call) -> None:
        call.emit(ev.OUTCOME, outcome=call.outcome, department=call.department, survey=call.survey_score,
                  duration=round(call.elapsed(), 3))

    async def _walk(self, call: Call) -> None:
        step: Optional[tuple[str, str]] = ("start", call.flow.start)
        while step is not None:
            call.steps += 1
            if call.steps > MAX_STEPS:
                raise EngineError(f"call passed {MAX_STEPS} nodes without ending")
            via, name = step
            node = call.flow.nodes[name]
            call.node = node
            call.emit(ev.NODE_ENTERED, node_type=node.type, via=via)
            step = await HANDLERS[node.type](node, call)

    async def _fall_back(self, call: Call, exc: Exception) -> bool:
        """Send the caller to the fallback queue; True when the caller hung up meanwhile."""
        log.error("call %s failed at %s: %s", call.id, call.node.name if call.node else "start", exc,
                  exc_info=not isinstance(exc, EngineError))
        call.emit(ev.ERROR, error=type(exc).__name__, message=str(exc))
        if call.outcome == ev.Outcome.ANSWERED:
            # an agent already served this caller (the failure came after, in the survey
            # say): queueing again would only make them wait twice
            return False
        call.outcome = ev.Outcome.FAILED
        department = self.config.fallback_department
        if department is None:
            return False
        call.department = department.name
        try:
            result = await queue_call(call, department, None, True, 0, fallback=True)
        except CallerHangup:
            call.emit(ev.CALLER_HANGUP)
            return True
        except Exception:  # noqa: BLE001
            log.exception("fallback transfer failed on call %s", call.id)
            return False
        if result.status == ev.TransferStatus.ABANDONED:  # as in a transfer node: the caller left the queue
            call.emit(ev.CALLER_HANGUP)
            return True
        return False

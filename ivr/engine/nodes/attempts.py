"""The tries of a node that asks the caller: menu, input, survey and call-back offer, and
the one way such a node takes a single key (`answer_key`).

A try that brings no answer (a time-out) or a wrong one (a key with no option, a short
entry, a score off the scale) uses one attempt. It is told by a TIMEOUT or INVALID event
carrying the attempt's number and the node's number of attempts, and followed by the
node's prompt for it. Once none is left, the node takes its way out for failure.
"""

from __future__ import annotations

from typing import Any, Optional

from ivr import events as ev
from ivr.engine.call import Call
from ivr.flow.model import Prompt


class Attempts:
    def __init__(
        self,
        call: Call,
        allowed: int,
        *,
        timeout_prompt: Optional[Prompt] = None,
        invalid_prompt: Optional[Prompt] = None,
        prompt_after_last: bool = True,
    ):
        self.call = call
        self.allowed = allowed
        self.timeout_prompt = timeout_prompt
        self.invalid_prompt = invalid_prompt
        # a survey goes on quietly after its last try: a "please try again" there would lie
        self.prompt_after_last = prompt_after_last
        self.used = 0

    @property
    def left(self) -> bool:
        return self.used < self.allowed

    def use(self) -> None:
        """Count an attempt that has no event of its own (a menu's repeats past the free ones)."""
        self.used += 1

    async def timed_out(self, **data: Any) -> None:
        await self._failed(ev.TIMEOUT, self.timeout_prompt, data)

    async def invalid(self, **data: Any) -> None:
        await self._failed(ev.INVALID, self.invalid_prompt, data)

    async def _failed(self, kind: str, prompt: Optional[Prompt], data: dict[str, Any]) -> None:
        self.used += 1
        self.call.emit(kind, **data, attempt=self.used, attempts=self.allowed)
        if prompt is not None and (self.left or self.prompt_after_last):
            await self.call.play(prompt)


async def answer_key(call: Call, pressed: Optional[str], timeout: float) -> Optional[str]:
    """The key the caller pressed during the prompt, or else the one pressed within `timeout`
    after it, told by a KEY event; None when no key came."""
    key = pressed or await call.read(1, timeout)
    if key:
        call.emit(ev.KEY, key=key)
    return key or None

"""callback: offer to call back, keeping the caller's place; the caller keeps their own
number or types another; the booking goes to the channel, which stores it (live line).

The place in line is when the caller joined the department's queue on this call (the
first transfer to it; else the first transfer of the call; else now). Numbers are
untrusted: only digits reach the booking, `min_digits` to `max_digits` of them.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from ivr import events as ev
from ivr.engine.call import Call
from ivr.engine.channel import CallbackRequest
from ivr.engine.nodes.attempts import Attempts, answer_key
from ivr.flow.nodes.callback import Callback

DIGITS = "0123456789"
KEEP = "#"  # ends a typed number


def caller_digits(caller: str, node: Callback) -> Optional[str]:
    """The caller ID as a number to call back (digits, with its leading '+' if any), or
    None if it is withheld, internal or no number at all."""
    digits = "".join(c for c in caller or "" if c.isdigit())
    if not caller or any(c.isalpha() for c in caller) or not node.min_digits <= len(digits) <= max(node.max_digits, 15):
        return None
    return ("+" if caller.strip().startswith("+") else "") + digits


async def run(node: Callback, call: Call):
    own = caller_digits(call.caller, node)
    if own is None and node.type_prompt is None:
        # withheld or internal number, and no way to type one: nobody to call back
        call.emit(ev.CALLBACK, offered=False, reason="no caller number")
        return "declined", node.declined
    key = await answer_key(call, await call.play(node.prompt, node.accept_key), node.timeout)
    if key != node.accept_key:
        call.emit(ev.CALLBACK, offered=True, accepted=False)
        return "declined", node.declined
    number, source = await _number(node, call, own)
    if number is None:
        call.emit(ev.CALLBACK, offered=True, accepted=False, reason="no number to call")
        return "declined", node.declined
    booked = call.clock.now()
    await call.channel.request_callback(CallbackRequest(
        node.department, number, call_id=call.id, place_at=_place(call, node), booked_at=booked,
        due_by=booked + dt.timedelta(seconds=node.within), schedule=node.schedule.name if node.schedule else None,
        attempts=node.call_attempts, retry_pause=node.retry_pause, priority=node.priority))
    call.emit(ev.CALLBACK, offered=True, accepted=True, department=node.department.name, number_from=source,
              within=node.within)
    call.outcome = ev.Outcome.CALLBACK
    call.department = node.department.name
    if node.confirm_prompt is not None:
        await call.play(node.confirm_prompt)
    return "accepted", node.next


async def _number(node: Callback, call: Call, own: Optional[str]) -> tuple[Optional[str], str]:
    """The number to call and where it came from ("caller" or "typed"); None after the last try."""
    if own is not None:
        if node.number_prompt is None:
            return own, "caller"
        tries = Attempts(call, node.attempts, timeout_prompt=node.timeout_prompt, invalid_prompt=node.invalid_prompt)
        while True:
            if not tries.left:
                return None, ""
            key = await answer_key(call, await call.play(node.number_prompt, node.accept_key + node.other_key),
                                   node.timeout)
            if not key:
                await tries.timed_out()
                continue
            if key == node.accept_key:
                return own, "caller"
            if key == node.other_key:
                break
            await tries.invalid(key=key)
    assert node.type_prompt is not None  # a withheld number reaches here only with one (see run)
    tries = Attempts(call, node.attempts, timeout_prompt=node.timeout_prompt, invalid_prompt=node.invalid_prompt)
    while tries.left:
        first = await call.play(node.type_prompt, DIGITS)
        typed = await call.read(node.max_digits, node.timeout, KEEP, first)
        if not typed:
            await tries.timed_out()
            continue
        if not typed.isdigit() or len(typed) < node.min_digits:
            await tries.invalid(digits=typed)
            continue
        call.emit(ev.INPUT, digits=typed, var="callback_number", sensitive=False)
        return typed, "typed"
    return None, ""


def _place(call: Call, node: Callback) -> dt.datetime:
    transfers = [e for e in call.events if e.type == ev.TRANSFER]
    mine = [e for e in transfers if e.data.get("department") == node.department.name]
    joined = (mine or transfers or [None])[0]
    if joined is None:
        return call.clock.now()
    return call.started_at + dt.timedelta(seconds=joined.t)

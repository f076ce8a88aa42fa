"""input: several digits into a variable; sensitive digits pause the recording and are masked."""

from ivr import events as ev
from ivr.engine.call import Call
from ivr.events import Secret, mask
from ivr.flow.model import Input

DIGITS = "0123456789"


async def run(node: Input, call: Call):
    if node.sensitive:
        # paused before the prompt: a caller may type over it, and the tones give digits away
        await call.channel.pause_recording()
        call.emit(ev.RECORDING, state="paused")
    try:
        return await _collect(node, call)
    finally:
        if node.sensitive:
            await call.channel.resume_recording()
            call.emit(ev.RECORDING, state="resumed")


async def _collect(node: Input, call: Call):
    failures = 0
    while failures < node.attempts:
        first = await call.play(node.prompt, DIGITS)
        digits = await call.read(node.max_digits, node.timeout, node.terminator, first)
        shown = mask(digits) if node.sensitive else digits
        if not digits:
            failures += 1
            call.emit(ev.TIMEOUT, attempt=failures, attempts=node.attempts)
            if node.timeout_prompt is not None:
                await call.play(node.timeout_prompt)
            continue
        if len(digits) < node.min_digits or not digits.isdigit():
            failures += 1
            call.emit(ev.INVALID, digits=shown, attempt=failures, attempts=node.attempts)
            if node.invalid_prompt is not None:
                await call.play(node.invalid_prompt)
            continue
        call.emit(ev.INPUT, digits=shown, var=node.save_as, sensitive=node.sensitive)
        call.vars[node.save_as] = Secret(digits) if node.sensitive else digits
        return "next", node.next
    return "fail", node.on_fail

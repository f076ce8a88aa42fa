"""input: several digits into a variable; sensitive digits pause the recording and are masked."""

from ivr import events as ev
from ivr.engine.call import Call
from ivr.engine.nodes.attempts import Attempts
from ivr.events import Secret, mask
from ivr.flow.nodes.input import Input

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
    tries = Attempts(call, node.attempts, timeout_prompt=node.timeout_prompt, invalid_prompt=node.invalid_prompt)
    while tries.left:
        first = await call.play(node.prompt, DIGITS)
        digits = await call.read(node.max_digits, node.timeout, node.terminator, first)
        shown = mask(digits) if node.sensitive else digits
        if not digits:
            await tries.timed_out()
            continue
        if len(digits) < node.min_digits or not digits.isdigit():
            await tries.invalid(digits=shown)
            continue
        call.emit(ev.INPUT, digits=shown, var=node.save_as, sensitive=node.sensitive)
        call.vars[node.save_as] = Secret(digits) if node.sensitive else digits
        return "next", node.next
    return "fail", node.on_fail

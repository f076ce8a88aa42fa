"""callback: offer to call back, keeping the caller's place; needs a caller number."""

from ivr import events as ev
from ivr.engine.call import Call
from ivr.engine.channel import CallbackRequest
from ivr.flow.nodes.callback import Callback
from ivr.settings.segments import normalize_number


async def run(node: Callback, call: Call):
    if len(normalize_number(call.caller, 20)) < 5:
        # withheld or internal number: there is nobody to call back
        call.emit(ev.CALLBACK, offered=False, reason="no caller number")
        return "declined", node.declined
    key = await call.play(node.prompt, node.accept_key)
    if not key:
        key = await call.read(1, node.timeout)
    if key:
        call.emit(ev.KEY, key=key)
    if key != node.accept_key:
        call.emit(ev.CALLBACK, offered=True, accepted=False)
        return "declined", node.declined
    await call.channel.request_callback(CallbackRequest(node.department, call.caller))
    call.emit(ev.CALLBACK, offered=True, accepted=True, department=node.department.name)
    call.outcome = ev.Outcome.CALLBACK
    call.department = node.department.name
    if node.confirm_prompt is not None:
        await call.play(node.confirm_prompt)
    return "accepted", node.next

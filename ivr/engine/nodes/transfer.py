"""transfer: queue the caller for a department; the channel says how it ended.

When the wait times out and the node names no on_timeout, the department's overflow
group from config.yaml takes the call (once), so a peak never ends in a dropped caller.
"""

from ivr.engine import events as ev
from ivr.engine.call import Call
from ivr.engine.channel import ANSWERED, TIMED_OUT, TransferRequest
from ivr.errors import CallerHangup
from ivr.flow.model import Transfer


async def run(node: Transfer, call: Call):
    if node.prompt is not None:
        await call.play(node.prompt)
    department = node.department
    result = await _queue(node, call, department, node.max_wait)
    if result.status == TIMED_OUT and not node.on_timeout and department.overflow:
        overflow = call.engine.config.departments.get(department.overflow)
        if overflow is not None:
            department = overflow
            result = await _queue(node, call, department, node.max_wait, overflow=True)
    call.department = department.name
    if result.status == ANSWERED:
        call.outcome = ev.ANSWERED
        return ("after", node.after) if node.after else None
    if result.status == TIMED_OUT:
        if node.on_timeout:
            return "timeout", node.on_timeout
        call.outcome = ev.UNANSWERED
        return None
    raise CallerHangup(f"caller left the {department.name} queue")


async def _queue(node: Transfer, call: Call, department, max_wait, overflow: bool = False):
    data = {"department": department.name, "queue": department.queue, "priority": node.priority}
    if overflow:
        data["overflow"] = True
    call.emit(ev.TRANSFER, **data)
    request = TransferRequest(department, max_wait, node.announce_position, node.priority, call.caller)
    result = await call.channel.transfer(request)
    call.emit(ev.TRANSFER_RESULT, department=department.name, status=result.status, wait=result.wait,
              agent=result.agent, talk=result.talk)
    return result

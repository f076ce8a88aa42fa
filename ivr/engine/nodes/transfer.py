"""transfer: queue the caller for a department; the channel says how it ended.

When the wait times out and the node names no on_timeout, the department's overflow
group from config.yaml takes the call (once), so a peak never ends in a dropped caller.
"""

from typing import Optional

from ivr.settings.config import Department
from ivr import events as ev
from ivr.engine.call import Call
from ivr.engine.channel import TransferRequest, TransferResult
from ivr.errors import CallerHangup
from ivr.flow.nodes.transfer import Transfer


async def run(node: Transfer, call: Call):
    if node.prompt is not None:
        await call.play(node.prompt)
    department = node.department
    result = await queue_call(call, department, node.max_wait, node.announce_position, node.priority)
    if result.status == ev.TransferStatus.TIMED_OUT and not node.on_timeout and department.overflow:
        overflow = call.engine.config.departments.get(department.overflow)
        if overflow is not None:
            department = overflow
            result = await queue_call(call, department, node.max_wait, node.announce_position, node.priority,
                                      overflow=True)
    call.department = department.name
    if result.status == ev.TransferStatus.ANSWERED:
        call.outcome = ev.Outcome.ANSWERED
        return ("after", node.after) if node.after else None
    if result.status == ev.TransferStatus.TIMED_OUT:
        if node.on_timeout:
            return "timeout", node.on_timeout
        call.outcome = ev.Outcome.UNANSWERED
        return None
    raise CallerHangup(f"caller left the {department.name} queue")


async def queue_call(call: Call, department: Department, max_wait: Optional[float], announce: bool, priority: int,
                     **marks: bool) -> TransferResult:
    """Queue the caller for `department`, with the TRANSFER and TRANSFER_RESULT events
    (`marks` such as overflow=True or fallback=True go into the first)."""
    call.emit(ev.TRANSFER, department=department.name, queue=department.queue, priority=priority, **marks)
    result = await call.channel.transfer(TransferRequest(department, max_wait, announce, priority, call.caller))
    call.emit(ev.TRANSFER_RESULT, department=department.name, status=result.status, wait=result.wait,
              agent=result.agent, talk=result.talk)
    return result

"""transfer: queue the caller for a department; the channel says how it ended."""

from ivr.engine import events as ev
from ivr.engine.call import Call
from ivr.engine.channel import ANSWERED, TIMED_OUT, TransferRequest
from ivr.errors import CallerHangup
from ivr.flow.model import Transfer


async def run(node: Transfer, call: Call):
    if node.prompt is not None:
        await call.play(node.prompt)
    department = node.department
    call.emit(ev.TRANSFER, department=department.name, queue=department.queue, priority=node.priority)
    request = TransferRequest(department, node.max_wait, node.announce_position, node.priority, call.caller)
    result = await call.channel.transfer(request)
    call.emit(ev.TRANSFER_RESULT, department=department.name, status=result.status, wait=result.wait, agent=result.agent, talk=result.talk)
    if result.status == ANSWERED:
        call.outcome = ev.ANSWERED
        call.department = department.name
        return ("after", node.after) if node.after else None
    if result.status == TIMED_OUT:
        if node.on_timeout:
            return "timeout", node.on_timeout
        call.outcome = ev.UNANSWERED
        call.department = department.name
        return None
    call.department = department.name
    raise CallerHangup(f"caller left the {department.name} queue")

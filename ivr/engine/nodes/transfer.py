"""transfer: queue the caller for a department; the channel says how it ended.

Overflow, so a peak never ends in a dropped caller or an endless wait:
- Before the caller joins, the queue's live state (`Channel.queue_load`) is compared with
  the department's `overflow_when` limits from config.yaml. When one is reached, the caller
  goes to the department's `overflow` group at once: through the node's `on_timeout` when
  that is the transfer to the overflow group (so the caller gets exactly what a long wait
  would have given, only sooner), else queued there by this node. The overflow group's own
  limits are not checked for such a caller: a caller is never bounced twice.
- When the wait times out, `on_timeout` takes the caller; with none, the overflow group
  takes the call (once).
Each overflow's TRANSFER event carries `overflow=True` and the `reason`, in words.
A line that keeps no queue state, or whose state is not fresh, queues the caller as usual.
"""

from __future__ import annotations

import logging
from typing import Optional

from ivr.settings.config import Department
from ivr.settings.overflow import short_duration
from ivr import events as ev
from ivr.engine.call import Call
from ivr.engine.channel import QueueLoad, TransferRequest, TransferResult
from ivr.errors import CallerHangup
from ivr.flow.nodes.transfer import Transfer

log = logging.getLogger(__name__)
# queues whose state was stale at the last call that asked: the warning is once per stale
# spell (and a line when fresh again), not once per call while the manager connection is down
_stale_queues: set[tuple[str, str]] = set()  # (node, queue)

# a peak sends the caller down the on_timeout edge before any wait: the TRANSFER event of
# the node it leads to tells why (coverage and the menu tree count the edge as taken)
OVERFLOW_EDGE = "timeout"


async def run(node: Transfer, call: Call):
    if node.prompt is not None:
        await call.play(node.prompt)
    department = node.department
    marks: dict = {}
    note, call.overflow_note = call.overflow_note, None
    if note is not None and note[0] == node.name:
        marks = {"overflow": True, "reason": note[1]}  # sent here as an overflow: no second check
    else:
        reason = peak_reason(department, queue_load(call, department))
        overflow = call.engine.config.departments.get(department.overflow) if department.overflow else None
        if reason and overflow is not None:
            target = call.flow.nodes.get(node.on_timeout) if node.on_timeout else None
            if isinstance(target, Transfer) and target.department.name == overflow.name:
                call.overflow_note = (target.name, reason)
                return OVERFLOW_EDGE, target.name
            department, marks = overflow, {"overflow": True, "reason": reason}
    result = await queue_call(call, department, node.max_wait, node.announce_position, node.priority, **marks)
    if result.status == ev.TransferStatus.TIMED_OUT and not node.on_timeout and not marks and department.overflow:
        overflow = call.engine.config.departments.get(department.overflow)
        if overflow is not None:
            reason = timeout_reason(department, node.max_wait, result)
            department = overflow
            result = await queue_call(call, department, node.max_wait, node.announce_position, node.priority,
                                      overflow=True, reason=reason)
    call.department = department.name
    if result.status == ev.TransferStatus.ANSWERED:
        call.outcome = ev.Outcome.ANSWERED
        return ("after", node.after) if node.after else None
    if result.status == ev.TransferStatus.TIMED_OUT:
        if node.on_timeout:
            target = call.flow.nodes.get(node.on_timeout)
            if isinstance(target, Transfer):  # the next queue is an overflow: say why
                call.overflow_note = (target.name, timeout_reason(department, node.max_wait, result))
            return "timeout", node.on_timeout
        call.outcome = ev.Outcome.UNANSWERED
        return None
    raise CallerHangup(f"caller left the {department.name} queue")


def queue_load(call: Call, department: Department) -> Optional[QueueLoad]:
    """The department queue's live state, when the line has one it vouches for."""
    if department.overflow_when is None:
        return None
    try:
        load = call.channel.queue_load(department.queue)
    except Exception:  # noqa: BLE001 - no state is no reason to keep a caller from the queue
        log.exception("reading the state of queue %s failed; the caller queues as usual", department.queue)
        return None
    if load is None:
        return None
    # each Asterisk's queue has a spell of its own: one node down says nothing of another's
    key, where = (load.node, department.queue), f" on node {load.node}" if load.node else ""
    if not load.fresh:
        if key not in _stale_queues:
            _stale_queues.add(key)
            log.warning("the state of queue %s%s is not fresh (manager connection down?); overflow limits not applied "
                        "until it is", department.queue, where)
        return None
    if key in _stale_queues:
        _stale_queues.discard(key)
        log.warning("the state of queue %s%s is fresh again; overflow limits apply", department.queue, where)
    return load


def peak_reason(department: Department, load: Optional[QueueLoad]) -> Optional[str]:
    """Why a caller may not join `department`'s queue now (its limits, in words); None when
    the caller may, or when the queue's state is unknown."""
    if department.overflow_when is None or load is None:
        return None
    reasons = department.overflow_when.reasons(department.name, load.waiting, load.longest_wait, load.free_agents,
                                               load.logged_in)
    return "; ".join(reasons) or None


def timeout_reason(department: Department, max_wait: Optional[float], result: TransferResult) -> str:
    """Why a wait in `department`'s queue ended without an agent, in words."""
    ended = {
        "JOINEMPTY": f"{department.name}: no agent could take calls, so the caller could not join",
        "LEAVEEMPTY": f"{department.name}: the last agent left while the caller waited",
        "FULL": f"{department.name}: the queue was full",
        "JOINUNAVAIL": f"{department.name}: no agent could take calls, so the caller could not join",
        "LEAVEUNAVAIL": f"{department.name}: the last agent left while the caller waited",
    }
    if result.ended in ended:
        return ended[result.ended]
    if max_wait is not None:
        return f"{department.name}: max_wait {short_duration(max_wait)} passed"
    return f"{department.name}: no agent answered"


async def queue_call(call: Call, department: Department, max_wait: Optional[float], announce: bool, priority: int,
                     **marks: object) -> TransferResult:
    """Queue the caller for `department`, with the TRANSFER and TRANSFER_RESULT events
    (`marks` such as overflow=True with its reason, or fallback=True, go into the first)."""
    call.emit(ev.TRANSFER, department=department.name, queue=department.queue, priority=priority, **marks)
    result = await call.channel.transfer(TransferRequest(department, max_wait, announce, priority, call.caller))
    call.emit(ev.TRANSFER_RESULT, department=department.name, status=result.status, wait=result.wait,
              agent=result.agent, talk=result.talk)
    return result

"""hours: open, closed or holiday, by the schedule and the call's clock."""

from ivr import events as ev
from ivr.engine.call import Call
from ivr.flow.nodes.hours import Hours
from ivr.settings.hours import HOLIDAY, OPEN


async def run(node: Hours, call: Call):
    state = node.schedule.state(call.clock.now())
    call.emit(ev.HOURS, schedule=node.schedule.name, state=state)
    if state == OPEN:
        return state, node.open
    if state == HOLIDAY:
        return state, node.holiday
    return state, node.closed

"""goto: continue in another flow; the caller keeps language and variables."""

from ivr import events as ev
from ivr.engine.call import Call
from ivr.flow.nodes.goto import Goto


async def run(node: Goto, call: Call):
    target = call.engine.flows[node.flow]
    start = node.node or target.start
    # to_flow, not flow: the event itself belongs to the flow it leaves, and a data key
    # named like an event field would overwrite that field in to_dict() and the JSON
    call.emit(ev.GOTO, to_flow=target.id, to_node=start, version=target.version)
    call.flow = target
    if call.language not in target.languages:
        await call.set_language(target.languages[0])
    return "goto", start

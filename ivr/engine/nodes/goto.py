"""goto: continue in another flow; the caller keeps language and variables."""

from ivr.engine import events as ev
from ivr.engine.call import Call
from ivr.flow.model import Goto


async def run(node: Goto, call: Call):
    target = call.engine.flows[node.flow]
    call.emit(ev.GOTO, flow=target.id, version=target.version)
    call.flow = target
    if call.language not in target.languages:
        await call.set_language(target.languages[0])
    return "goto", node.node or target.start

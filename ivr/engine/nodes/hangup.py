"""hangup: a goodbye, then the end of the call."""

from ivr import events as ev
from ivr.engine.call import Call
from ivr.flow.nodes.hangup import Hangup


async def run(node: Hangup, call: Call):
    if node.prompt is not None:
        await call.play(node.prompt)
    if call.outcome is None:
        # a caller who queued and was never answered was not served by the IVR
        call.outcome = ev.Outcome.UNANSWERED if call.department is not None else ev.Outcome.SELF_SERVICE
    return None

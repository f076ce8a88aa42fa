"""voicemail: a message for a mailbox."""

from ivr import events as ev
from ivr.engine.call import Call
from ivr.flow.nodes.voicemail import Voicemail


async def run(node: Voicemail, call: Call):
    if node.prompt is not None:
        await call.play(node.prompt)
    result = await call.channel.record_voicemail(node.mailbox, node.max_length)
    call.emit(ev.VOICEMAIL, mailbox=node.mailbox, duration=result.duration)
    if call.outcome is None:
        call.outcome = ev.Outcome.VOICEMAIL
    return ("next", node.next) if node.next else None

"""play: a prompt, then on."""

from ivr.engine.call import Call
from ivr.flow.nodes.play import Play


async def run(node: Play, call: Call):
    await call.play(node.prompt)
    return "next", node.next

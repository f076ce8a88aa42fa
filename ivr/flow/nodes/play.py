"""play: a prompt, then on."""

from __future__ import annotations

from ivr.flow.model import Prompt
from ivr.flow.nodes.base import Node, field, node_type
from ivr.flow.spec import NODE, PROMPT


@node_type("play", doc="Play a prompt, then go on.", waits_for_caller=False, shape="box", colour="#e8f0fe")
class Play(Node):
    prompt: Prompt = field(PROMPT, required=True, doc="what callers hear")
    next: str = field(NODE, required=True, doc="where the call goes after the prompt", edge="next")

"""play: a prompt, then on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ivr.flow.model import Prompt
from ivr.flow.nodes.base import Node, field
from ivr.flow.spec import NODE, PROMPT


@dataclass(frozen=True, slots=True)
class Play(Node):
    type: ClassVar[str] = "play"
    doc: ClassVar[str] = "Play a prompt, then go on."
    waits_for_caller: ClassVar[bool] = False
    shape: ClassVar[str] = "box"
    colour: ClassVar[str] = "#e8f0fe"

    prompt: Prompt = field(PROMPT, required=True, doc="what callers hear")
    next: str = field(NODE, required=True, doc="where the call goes after the prompt", edge="next")

"""hangup: a goodbye, then the end of the call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from ivr.flow.model import Prompt
from ivr.flow.nodes.base import Node, field
from ivr.flow.spec import PROMPT


@dataclass(frozen=True, slots=True)
class Hangup(Node):
    type: ClassVar[str] = "hangup"
    doc: ClassVar[str] = "Say goodbye and end the call."
    waits_for_caller: ClassVar[bool] = False
    shape: ClassVar[str] = "doublecircle"
    colour: ClassVar[str] = "#f8d7d7"

    prompt: Optional[Prompt] = field(PROMPT, doc="played before hanging up")

"""voicemail: a message for a mailbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from ivr.flow.model import Prompt
from ivr.flow.nodes.base import Node, field
from ivr.flow.spec import DURATION, NODE, PROMPT, TEXT


@dataclass(frozen=True, slots=True)
class Voicemail(Node):
    type: ClassVar[str] = "voicemail"
    doc: ClassVar[str] = "Record a message for a mailbox."
    waits_for_caller: ClassVar[bool] = True
    shape: ClassVar[str] = "folder"
    colour: ClassVar[str] = "#f5e1f7"

    prompt: Optional[Prompt] = field(PROMPT, doc="played before the beep")
    mailbox: str = field(TEXT, required=True, doc="the mailbox that keeps the message")
    max_length: float = field(DURATION, default=120.0, doc="the longest message")
    next: Optional[str] = field(NODE, doc="where the call goes after the message (default: hang up)", edge="next")

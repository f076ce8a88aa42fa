"""voicemail: a message for a mailbox."""

from __future__ import annotations

from typing import Optional

from ivr.flow.model import Prompt
from ivr.flow.nodes.base import Node, field, node_type
from ivr.flow.spec import DURATION, NODE, PROMPT, TEXT


@node_type("voicemail", doc="Record a message for a mailbox.", waits_for_caller=True, shape="folder", colour="#f5e1f7")
class Voicemail(Node):
    prompt: Optional[Prompt] = field(PROMPT, doc="played before the beep")
    mailbox: str = field(TEXT, required=True, doc="the mailbox that keeps the message")
    max_length: float = field(DURATION, default=120.0, doc="the longest message")
    next: Optional[str] = field(NODE, doc="where the call goes after the message (default: hang up)", edge="next")

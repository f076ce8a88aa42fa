"""hangup: a goodbye, then the end of the call."""

from __future__ import annotations

from typing import Optional

from ivr.flow.model import Prompt
from ivr.flow.nodes.base import Node, field, node_type
from ivr.flow.spec import PROMPT


@node_type("hangup", doc="Say goodbye and end the call.", waits_for_caller=False, shape="doublecircle", colour="#f8d7d7")
class Hangup(Node):
    prompt: Optional[Prompt] = field(PROMPT, doc="played before hanging up")

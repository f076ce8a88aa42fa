"""callback: offer a call-back that keeps the caller's place; declining goes to next unless named."""

from __future__ import annotations

from typing import Optional

from ivr.flow.model import Prompt
from ivr.flow.nodes.base import Node, field, node_type, timeout_field
from ivr.flow.spec import DEPARTMENT, KEY, NODE, PROMPT
from ivr.settings.config import Department


@node_type("callback", doc="Offer a call-back that keeps the caller's place in line.", waits_for_caller=True, shape="component", colour="#dcf5dc")
class Callback(Node):
    prompt: Prompt = field(PROMPT, required=True, doc="the offer, naming the key that accepts it")
    department: Department = field(DEPARTMENT, required=True, doc="the department that calls back")
    accept_key: str = field(KEY, default="1", doc="the key that accepts the offer")
    timeout: float = timeout_field()
    confirm_prompt: Optional[Prompt] = field(PROMPT, doc="played once the call-back is booked")
    next: str = field(NODE, required=True, doc="where callers go after accepting", edge="accepted")
    declined: str = field(NODE, doc="where callers go when they do not accept (default: next)", edge="declined", default_from="next")

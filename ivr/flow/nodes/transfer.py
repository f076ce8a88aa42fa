"""transfer: queue the caller for a department; a max_wait needs somewhere to go after it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional

from ivr.flow.model import Prompt
from ivr.flow.nodes.base import Node, ReportError, field, node_type
from ivr.flow.spec import BOOL, DEPARTMENT, DURATION, INT, NODE, PROMPT
from ivr.settings.config import Department

if TYPE_CHECKING:
    from ivr.flow.checks import NodeDraft


@node_type("transfer", doc="Queue the caller for a department's agents.", waits_for_caller=True, shape="box3d", colour="#dcf5dc")
class Transfer(Node):
    department: Department = field(DEPARTMENT, required=True, doc="a department of config.yaml (its Asterisk queue)")
    prompt: Optional[Prompt] = field(PROMPT, doc="played before queueing")
    announce_position: bool = field(BOOL, default=False, doc="tell callers their place in the queue")
    max_wait: Optional[float] = field(DURATION, doc="longest wait in the queue before on_timeout")
    priority: int = field(INT, default=0, low=0, high=100, doc="higher is answered first (premium callers)")
    on_timeout: Optional[str] = field(NODE, doc="where callers go after max_wait: overflow, call-back offer or voicemail (at a peak past the department's overflow_when, at once if it is the transfer to the overflow group)", edge="timeout")
    after: Optional[str] = field(NODE, doc="where callers go when the agent hangs up (a survey)", edge="after")

    @classmethod
    def check(cls, draft: NodeDraft, written: Mapping[str, Any], what: str, error: ReportError) -> None:
        if draft.fields.get("max_wait") and not draft.fields.get("on_timeout"):
            error(draft.path + ("max_wait",), f"{what} has max_wait but no on_timeout: say where callers go after the wait (overflow, call-back offer or voicemail)")

"""input: several digits into a variable; the terminator must not be a digit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional

from ivr.flow.model import Prompt
from ivr.flow.nodes.base import Node, ReportError, attempts_field, field, node_type, timeout_field
from ivr.flow.spec import BOOL, INT, KEY, NAME, NODE, PROMPT

if TYPE_CHECKING:
    from ivr.flow.checks import NodeDraft


@node_type("input", doc="Read several digits (an account number, say) into a variable.", waits_for_caller=True, shape="parallelogram", colour="#fff4d6")
class Input(Node):
    prompt: Prompt = field(PROMPT, required=True, doc="what callers hear before typing")
    min_digits: int = field(INT, default=1, low=1, high=32, doc="fewer digits is a wrong entry")
    max_digits: int = field(INT, default=20, low=1, high=32, doc="input ends after this many digits")
    terminator: Optional[str] = field(KEY, default="#", doc="the key that ends the input early")
    timeout: float = timeout_field()
    attempts: int = attempts_field()
    invalid_prompt: Optional[Prompt] = field(PROMPT, doc="played after a too short entry")
    timeout_prompt: Optional[Prompt] = field(PROMPT, doc="played when nothing was typed")
    sensitive: bool = field(BOOL, default=False, doc="pause the recording and mask the digits in every log and page")
    save_as: str = field(NAME, required=True, doc="the variable that keeps the digits")
    next: str = field(NODE, required=True, doc="where the call goes after a good entry", edge="next")
    on_fail: str = field(NODE, required=True, doc="where callers go after the last attempt", edge="fail")

    @classmethod
    def check(cls, draft: NodeDraft, written: Mapping[str, Any], what: str, error: ReportError) -> None:
        f = draft.fields
        low, high = f.get("min_digits"), f.get("max_digits")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            error(draft.path + ("min_digits",), f"min_digits ({low}) of {what} is more than max_digits ({high})")
        if f.get("terminator") and f["terminator"] not in "*#":
            digit = f["terminator"]
            error(draft.path + ("terminator",), f'"terminator" of {what} is a digit ("{digit}"): a {digit} typed as part of the number would end the input; use "#" or "*"')

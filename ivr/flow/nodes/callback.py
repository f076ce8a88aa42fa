"""callback: offer a call-back that keeps the caller's place; the caller keeps their number
or types another; declining goes to next unless named.

The call-back itself is made after the call by `ivr serve` (ivr.live.callbacks): when the
caller's turn comes in the department's queue, or by the promise (`within`), in the
opening hours of `schedule`, tried `call_attempts` times `retry_pause` apart. The prompts
must promise no more than these fields say (the example line: `within: 1h`, "we will
call you back within the hour").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional

from ivr.flow.model import Prompt
from ivr.flow.nodes.base import Node, ReportError, attempts_field, field, node_type, timeout_field
from ivr.flow.spec import DEPARTMENT, DURATION, INT, KEY, NODE, PROMPT, SCHEDULE
from ivr.settings.config import Department
from ivr.settings.hours import Schedule

if TYPE_CHECKING:
    from ivr.flow.checks import NodeDraft

MAX_WITHIN = 7 * 24 * 3600.0  # a promise further off than a week is no call-back
MIN_RETRY_PAUSE = 10.0  # a phone that was busy a second ago is busy now


@node_type("callback", doc="Offer a call-back that keeps the caller's place in line.", waits_for_caller=True, shape="component", colour="#dcf5dc")
class Callback(Node):
    prompt: Prompt = field(PROMPT, required=True, doc="the offer, naming the key that accepts it")
    department: Department = field(DEPARTMENT, required=True, doc="the department that calls back")
    accept_key: str = field(KEY, default="1", doc="the key that accepts the offer")
    timeout: float = timeout_field()
    number_prompt: Optional[Prompt] = field(PROMPT, doc="asks whether to call back the number the call came from: accept_key keeps it, other_key gives another (without it, that number is kept)")
    other_key: str = field(KEY, default="2", doc="the key that gives another number at number_prompt")
    type_prompt: Optional[Prompt] = field(PROMPT, doc="asks for the number to call, then #: after other_key, and of callers whose number is withheld (without it, a withheld number is not offered a call-back)")
    min_digits: int = field(INT, default=6, low=3, high=20, doc="a typed number shorter than this is a wrong entry")
    max_digits: int = field(INT, default=15, low=3, high=20, doc="a typed number ends after this many digits (E.164: 15)")
    attempts: int = attempts_field()
    invalid_prompt: Optional[Prompt] = field(PROMPT, doc="played after a typed number that is too short")
    timeout_prompt: Optional[Prompt] = field(PROMPT, doc="played when no number was typed")
    within: float = field(DURATION, default=3600.0, doc="the promise: the call-back is dialled at the latest this long after booking (in opening hours), earlier when the caller's turn comes")
    schedule: Optional[Schedule] = field(SCHEDULE, doc="call back only in this schedule's opening hours (default: at any time)")
    call_attempts: int = field(INT, default=3, low=1, high=10, doc="how often the customer's phone is dialled before the call-back fails")
    retry_pause: float = field(DURATION, default=300.0, doc="the pause after a call-back that was not answered, before the next try")
    priority: int = field(INT, default=1, low=0, high=100, doc="the customer's queue priority once they answer: ahead of callers who joined after their place")
    confirm_prompt: Optional[Prompt] = field(PROMPT, doc="played once the call-back is booked; it must promise no more than `within`")
    next: str = field(NODE, required=True, doc="where callers go after accepting", edge="accepted")
    declined: str = field(NODE, doc="where callers go when they do not accept (default: next)", edge="declined", default_from="next")

    @classmethod
    def check(cls, draft: NodeDraft, written: Mapping[str, Any], what: str, error: ReportError) -> None:
        f = draft.fields
        if f.get("number_prompt") and not f.get("type_prompt"):
            error(draft.path + ("number_prompt",), f"{what} has number_prompt but no type_prompt: say how callers who press other_key give their number")
        if f.get("other_key") and f.get("other_key") == f.get("accept_key") and "number_prompt" in written:
            error(draft.path + ("other_key",), f'other_key of {what} is accept_key ("{f["accept_key"]}") too: one key cannot both keep the number and give another')
        low, high = f.get("min_digits"), f.get("max_digits")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            error(draft.path + ("min_digits",), f"min_digits ({low}) of {what} is more than max_digits ({high})")
        within = f.get("within")
        if isinstance(within, (int, float)) and "within" in written and not 60 <= within <= MAX_WITHIN:
            error(draft.path + ("within",), f'"within" of {what} is the promised time of the call-back: from 1m to 168h, not {written["within"]}')
        pause = f.get("retry_pause")
        if isinstance(pause, (int, float)) and "retry_pause" in written and pause < MIN_RETRY_PAUSE:
            error(draft.path + ("retry_pause",), f'"retry_pause" of {what} must be at least {MIN_RETRY_PAUSE:g}s: a phone that was busy a moment ago still is, not {written["retry_pause"]}')

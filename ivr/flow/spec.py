"""The flow format as data: every node type, its fields, their kinds and defaults.

One table drives the checks (ivr.flow.checks) and the JSON Schema (`ivr schema`), so the
two can never disagree. The field docs double as the reason in "needs" errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Kinds of field values.
NODE, PROMPT, DURATION, KEY, INT, BOOL, TEXT, NAME = "node", "prompt", "duration", "key", "int", "bool", "text", "name"
DEPARTMENT, SCHEDULE, FLOW, LANGUAGE = "department", "schedule", "flow", "language"
OPTIONS, RULES, SCALE, SAMPLE = "options", "rules", "scale", "sample"


@dataclass(frozen=True)
class Field:
    kind: str
    required: bool = False
    default: Any = None
    doc: str = ""
    low: int | None = None
    high: int | None = None
    # the label of the edge this field draws in graphs and coverage (node fields only)
    edge: str | None = None


@dataclass(frozen=True)
class NodeType:
    doc: str
    fields: dict[str, Field]
    waits_for_caller: bool  # a node that waits for a key, an agent or a message breaks a loop


COMMON = {
    "type": Field(TEXT, True, doc="the node type"),
    "description": Field(TEXT, doc="a note for admins; callers never hear it"),
}

_attempts = Field(INT, default=3, low=1, high=9, doc="tries before on_fail; no key or a wrong key uses one")
_timeout = Field(DURATION, default=5.0, doc="how long to wait for the first key after the prompt")

NODE_TYPES: dict[str, NodeType] = {
    "play": NodeType(
        "Play a prompt, then go on.",
        {
            "prompt": Field(PROMPT, True, doc="what callers hear"),
            "next": Field(NODE, True, doc="where the call goes after the prompt", edge="next"),
        },
        waits_for_caller=False,
    ),
    "menu": NodeType(
        "Play a prompt and branch on one key; a key pressed during the prompt counts.",
        {
            "prompt": Field(PROMPT, True, doc="the menu callers hear"),
            "options": Field(OPTIONS, True, doc="key -> node, or key -> {next, language, set}"),
            "all_languages": Field(BOOL, default=False, doc="play the prompt in every language of the flow in turn (a language menu)"),
            "repeat_key": Field(KEY, doc="replays the prompt without using an attempt"),
            "timeout": _timeout,
            "attempts": _attempts,
            "invalid_prompt": Field(PROMPT, doc="played after a key with no option"),
            "timeout_prompt": Field(PROMPT, doc="played when no key came in time"),
            "on_fail": Field(NODE, True, doc="where callers go after the last attempt", edge="fail"),
        },
        waits_for_caller=True,
    ),
    "input": NodeType(
        "Read several digits (an account number, say) into a variable.",
        {
            "prompt": Field(PROMPT, True, doc="what callers hear before typing"),
            "min_digits": Field(INT, default=1, low=1, high=32, doc="fewer digits is a wrong entry"),
            "max_digits": Field(INT, default=20, low=1, high=32, doc="input ends after this many digits"),
            "terminator": Field(KEY, default="#", doc="the key that ends the input early"),
            "timeout": _timeout,
            "attempts": _attempts,
            "invalid_prompt": Field(PROMPT, doc="played after a too short entry"),
            "timeout_prompt": Field(PROMPT, doc="played when nothing was typed"),
            "sensitive": Field(BOOL, default=False, doc="pause the recording and mask the digits in every log and page"),
            "save_as": Field(NAME, True, doc="the variable that keeps the digits"),
            "next": Field(NODE, True, doc="where the call goes after a good entry", edge="next"),
            "on_fail": Field(NODE, True, doc="where callers go after the last attempt", edge="fail"),
        },
        waits_for_caller=True,
    ),
    "hours": NodeType(
        "Branch on a schedule of config.yaml: open, closed, or a holiday.",
        {
            "schedule": Field(SCHEDULE, True, doc="a schedule of config.yaml"),
            "open": Field(NODE, True, doc="where calls go in opening hours", edge="open"),
            "closed": Field(NODE, True, doc="where calls go outside opening hours", edge="closed"),
            "holiday": Field(NODE, doc="where calls go on holidays (default: closed)", edge="holiday"),
        },
        waits_for_caller=False,
    ),
    "route": NodeType(
        "Branch on what is known about the call: caller segment, a variable, the language.",
        {
            "when": Field(RULES, True, doc="rules tried in order; the first that matches wins"),
            "otherwise": Field(NODE, True, doc="where calls go when no rule matches", edge="otherwise"),
        },
        waits_for_caller=False,
    ),
    "transfer": NodeType(
        "Queue the caller for a department's agents.",
        {
            "department": Field(DEPARTMENT, True, doc="a department of config.yaml (its Asterisk queue)"),
            "prompt": Field(PROMPT, doc="played before queueing"),
            "announce_position": Field(BOOL, default=False, doc="tell callers their place in the queue"),
            "max_wait": Field(DURATION, doc="longest wait in the queue before on_timeout"),
            "priority": Field(INT, default=0, low=0, high=100, doc="higher is answered first (premium callers)"),
            "on_timeout": Field(NODE, doc="where callers go after max_wait: overflow, call-back offer or voicemail", edge="timeout"),
            "after": Field(NODE, doc="where callers go when the agent hangs up (a survey)", edge="after"),
        },
        waits_for_caller=True,
    ),
    "callback": NodeType(
        "Offer a call-back that keeps the caller's place in line.",
        {
            "prompt": Field(PROMPT, True, doc="the offer, naming the key that accepts it"),
            "department": Field(DEPARTMENT, True, doc="the department that calls back"),
            "accept_key": Field(KEY, default="1", doc="the key that accepts the offer"),
            "timeout": _timeout,
            "confirm_prompt": Field(PROMPT, doc="played once the call-back is booked"),
            "next": Field(NODE, True, doc="where callers go after accepting", edge="accepted"),
            "declined": Field(NODE, doc="where callers go when they do not accept (default: next)", edge="declined"),
        },
        waits_for_caller=True,
    ),
    "voicemail": NodeType(
        "Record a message for a mailbox.",
        {
            "prompt": Field(PROMPT, doc="played before the beep"),
            "mailbox": Field(TEXT, True, doc="the mailbox that keeps the message"),
            "max_length": Field(DURATION, default=120.0, doc="the longest message"),
            "next": Field(NODE, doc="where the call goes after the message (default: hang up)", edge="next"),
        },
        waits_for_caller=True,
    ),
    "survey": NodeType(
        "Ask a post-call score on the keypad (NPS 0-10 by default).",
        {
            "prompt": Field(PROMPT, True, doc="the question"),
            "scale": Field(SCALE, default=(0, 10), doc="lowest and highest score, such as [0, 10]"),
            "sample": Field(SAMPLE, doc="ask only some calls: {every: 10, shorter_than: 2m}"),
            "timeout": _timeout,
            "attempts": Field(INT, default=2, low=1, high=9, doc="tries before the survey is skipped"),
            "invalid_prompt": Field(PROMPT, doc="played after an answer outside the scale"),
            "thanks_prompt": Field(PROMPT, doc="played after an answer"),
            "next": Field(NODE, True, doc="where the call goes after the survey", edge="next"),
        },
        waits_for_caller=True,
    ),
    "goto": NodeType(
        "Continue in another flow (another file).",
        {
            "flow": Field(FLOW, True, doc="the id of the other flow"),
            "node": Field(NAME, doc="a node of that flow (default: its start)"),
        },
        waits_for_caller=False,
    ),
    "hangup": NodeType(
        "Say goodbye and end the call.",
        {"prompt": Field(PROMPT, doc="played before hanging up")},
        waits_for_caller=False,
    ),
}

TOP_FIELDS: dict[str, Field] = {
    "flow": Field(NAME, True, doc="the id other flows use in goto"),
    "description": Field(TEXT, doc="what the flow is for"),
    "languages": Field(LANGUAGE, True, doc="the languages callers can hear; the first is the default"),
    "start": Field(NODE, True, doc="the first node of a call"),
    "defaults": Field(TEXT, doc="defaults for menus, inputs and surveys: timeout, attempts, invalid_prompt, timeout_prompt"),
    "prompts": Field(TEXT, True, doc="what callers hear, per language"),
    "nodes": Field(TEXT, True, doc="the nodes of the flow, by name"),
}

DEFAULTABLE = ("timeout", "attempts", "invalid_prompt", "timeout_prompt")
OPTION_FIELDS = ("next", "language", "set")
RULE_CONDITIONS = ("segment", "var", "caller", "language")

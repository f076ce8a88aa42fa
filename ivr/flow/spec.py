"""The vocabulary of the flow format: field kinds, how a field is described, and the
fields of a file itself.

The node types describe their fields with it (ivr.flow.nodes); the checks
(ivr.flow.checks), the JSON Schema (`ivr schema`) and the format reference are all read
from those descriptions, so they can never disagree. The field docs double as the reason
in "needs" errors.
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
    # a field left out takes the value of this other field of its node (a node field's
    # edge is then drawn only where the two differ)
    default_from: str | None = None


# fields every node may have, whatever its type
COMMON = {
    "type": Field(TEXT, True, doc="the node type"),
    "description": Field(TEXT, doc="a note for admins; callers never hear it"),
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

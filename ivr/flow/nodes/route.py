"""route: rules on what is known about the call, tried in order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ivr.flow.nodes.base import Node, field, node_type
from ivr.flow.spec import NODE, RULES
from ivr.settings.segments import Segment


@dataclass(frozen=True, slots=True)
class RouteRule:
    """One `when` entry of a route node; the first that matches wins."""

    next: str
    segment: Optional[Segment] = None
    var: Optional[str] = None
    matches: Optional[re.Pattern] = None
    caller: Optional[re.Pattern] = None
    language: Optional[str] = None

    @property
    def label(self) -> str:
        if self.segment is not None:
            return f"segment {self.segment.name}"
        if self.var is not None:
            return f"{self.var} ~ {self.matches.pattern if self.matches else ''}"
        if self.caller is not None:
            return f"caller ~ {self.caller.pattern}"
        return f"language {self.language}"


@node_type("route", doc="Branch on what is known about the call: caller segment, a variable, the language.", waits_for_caller=False, shape="octagon", colour="#eeeeee")
class Route(Node):
    when: tuple[RouteRule, ...] = field(RULES, required=True, doc="rules tried in order; the first that matches wins")
    otherwise: str = field(NODE, required=True, doc="where calls go when no rule matches", edge="otherwise")

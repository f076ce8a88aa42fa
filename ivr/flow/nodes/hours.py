"""hours: open, closed or holiday by a schedule of config.yaml; holidays go to closed unless named."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ivr.flow.nodes.base import Node, field
from ivr.flow.spec import NODE, SCHEDULE
from ivr.settings.hours import Schedule


@dataclass(frozen=True, slots=True)
class Hours(Node):
    type: ClassVar[str] = "hours"
    doc: ClassVar[str] = "Branch on a schedule of config.yaml: open, closed, or a holiday."
    waits_for_caller: ClassVar[bool] = False
    shape: ClassVar[str] = "hexagon"
    colour: ClassVar[str] = "#eeeeee"

    schedule: Schedule = field(SCHEDULE, required=True, doc="a schedule of config.yaml")
    open: str = field(NODE, required=True, doc="where calls go in opening hours", edge="open")
    closed: str = field(NODE, required=True, doc="where calls go outside opening hours", edge="closed")
    holiday: str = field(NODE, doc="where calls go on holidays (default: closed)", edge="holiday", default_from="closed")

"""hours: open, closed or holiday by a schedule of config.yaml; holidays go to closed unless named."""

from __future__ import annotations

from ivr.flow.nodes.base import Node, field, node_type
from ivr.flow.spec import NODE, SCHEDULE
from ivr.settings.hours import Schedule


@node_type("hours", doc="Branch on a schedule of config.yaml: open, closed, or a holiday.", waits_for_caller=False, shape="hexagon", colour="#eeeeee")
class Hours(Node):
    schedule: Schedule = field(SCHEDULE, required=True, doc="a schedule of config.yaml")
    open: str = field(NODE, required=True, doc="where calls go in opening hours", edge="open")
    closed: str = field(NODE, required=True, doc="where calls go outside opening hours", edge="closed")
    holiday: str = field(NODE, doc="where calls go on holidays (default: closed)", edge="holiday", default_from="closed")

"""goto: continue in another flow (another file); drawn with where it leads."""

from __future__ import annotations

from typing import Optional

from ivr.flow.nodes.base import Node, field, node_type
from ivr.flow.spec import FLOW, NAME


@node_type("goto", doc="Continue in another flow (another file).", waits_for_caller=False, shape="cds", colour="#ffffff")
class Goto(Node):
    flow: str = field(FLOW, required=True, doc="the id of the other flow")
    node: Optional[str] = field(NAME, doc="a node of that flow (default: its start)")

    def graph_label(self) -> str:
        return f"{self.name}\n-> {self.flow}" + (f":{self.node}" if self.node else "")

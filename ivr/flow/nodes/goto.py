"""goto: continue in another flow (another file); drawn with where it leads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from ivr.flow.nodes.base import Node, field
from ivr.flow.spec import FLOW, NAME


@dataclass(frozen=True, slots=True)
class Goto(Node):
    type: ClassVar[str] = "goto"
    doc: ClassVar[str] = "Continue in another flow (another file)."
    waits_for_caller: ClassVar[bool] = False
    shape: ClassVar[str] = "cds"
    colour: ClassVar[str] = "#ffffff"

    flow: str = field(FLOW, required=True, doc="the id of the other flow")
    node: Optional[str] = field(NAME, doc="a node of that flow (default: its start)")

    def graph_label(self) -> str:
        return f"{self.name}\n-> {self.flow}" + (f":{self.node}" if self.node else "")

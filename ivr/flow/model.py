"""The compiled Flow: an immutable graph of nodes, shared by every call that runs it.

A call keeps a reference to the Flow it started on; a reload builds new Flows and never
changes these objects, so calls in progress are not disturbed. The nodes are instances of
the node types of ivr.flow.nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Mapping

if TYPE_CHECKING:
    from ivr.flow.nodes.base import Node

ANY_LANGUAGE = "*"


@dataclass(frozen=True, slots=True)
class Prompt:
    """What callers hear: text to speak per language, or a recorded file."""

    name: str
    texts: Mapping[str, str]
    files: Mapping[str, str]  # language, or "*" for every language -> path
    line: int = 0  # where the prompt is defined in its flow file
    flow: str = ""  # the id of the flow that defines it

    def text(self, language: str) -> str:
        return self.texts.get(language) or next(iter(self.texts.values()), "") or f"[{self.name}]"

    def file(self, language: str) -> str | None:
        return self.files.get(language) or self.files.get(ANY_LANGUAGE)


@dataclass(frozen=True)
class Flow:
    id: str
    description: str
    languages: tuple[str, ...]
    start: str
    nodes: Mapping[str, Node]
    prompts: Mapping[str, Prompt]
    file: str
    version: str  # hash of the compiled content: which menu a caller heard

    def edges(self) -> Iterator[tuple[str, str, str]]:
        """(from, label, to) of every edge inside the flow."""
        for node in self.nodes.values():
            for label, target in node.exits():
                yield node.name, label, target


@dataclass(frozen=True)
class FlowSet:
    """Every flow of an installation, by id; goto nodes are resolved against it."""

    flows: Mapping[str, Flow]

    def __getitem__(self, flow_id: str) -> Flow:
        return self.flows[flow_id]

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self.flows

"""The compiled Flow: an immutable graph of nodes, shared by every call that runs it.

A call keeps a reference to the Flow it started on; a reload builds new Flows and never
changes these objects, so calls in progress are not disturbed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Iterator, Mapping, Optional

from ivr.settings.config import Department
from ivr.settings.hours import Schedule
from ivr.settings.segments import Segment

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


@dataclass(frozen=True, slots=True)
class MenuOption:
    key: str
    next: str
    language: Optional[str]
    set: Mapping[str, str]


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


@dataclass(frozen=True, slots=True)
class Sample:
    every: Optional[int]
    shorter_than: Optional[float]


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    line: int  # where the node starts in its file, for events and errors
    type: ClassVar[str] = ""

    def exits(self) -> Iterator[tuple[str, str]]:
        """(label, node name) of every way out of this node within its flow."""
        return iter(())


@dataclass(frozen=True, slots=True)
class Play(Node):
    prompt: Prompt
    next: str
    type: ClassVar[str] = "play"

    def exits(self):
        yield "next", self.next


@dataclass(frozen=True, slots=True)
class Menu(Node):
    prompt: Prompt
    options: Mapping[str, MenuOption]
    all_languages: bool
    repeat_key: Optional[str]
    timeout: float
    attempts: int
    invalid_prompt: Optional[Prompt]
    timeout_prompt: Optional[Prompt]
    on_fail: str
    type: ClassVar[str] = "menu"

    def exits(self):
        for key, option in self.options.items():
            yield key, option.next
        yield "fail", self.on_fail


@dataclass(frozen=True, slots=True)
class Input(Node):
    prompt: Prompt
    min_digits: int
    max_digits: int
    terminator: Optional[str]
    timeout: float
    attempts: int
    invalid_prompt: Optional[Prompt]
    timeout_prompt: Optional[Prompt]
    sensitive: bool
    save_as: str
    next: str
    on_fail: str
    type: ClassVar[str] = "input"

    def exits(self):
        yield "next", self.next
        yield "fail", self.on_fail


@dataclass(frozen=True, slots=True)
class Hours(Node):
    schedule: Schedule
    open: str
    closed: str
    holiday: str  # the closed node unless the file names another
    type: ClassVar[str] = "hours"

    def exits(self):
        yield "open", self.open
        yield "closed", self.closed
        if self.holiday != self.closed:
            yield "holiday", self.holiday


@dataclass(frozen=True, slots=True)
class Route(Node):
    when: tuple[RouteRule, ...]
    otherwise: str
    type: ClassVar[str] = "route"

    def exits(self):
        for rule in self.when:
            yield rule.label, rule.next
        yield "otherwise", self.otherwise


@dataclass(frozen=True, slots=True)
class Transfer(Node):
    department: Department
    prompt: Optional[Prompt]
    announce_position: bool
    max_wait: Optional[float]
    priority: int
    on_timeout: Optional[str]
    after: Optional[str]
    type: ClassVar[str] = "transfer"

    def exits(self):
        if self.on_timeout:
            yield "timeout", self.on_timeout
        if self.after:
            yield "after", self.after


@dataclass(frozen=True, slots=True)
class Callback(Node):
    prompt: Prompt
    department: Department
    accept_key: str
    timeout: float
    confirm_prompt: Optional[Prompt]
    next: str
    declined: str
    type: ClassVar[str] = "callback"

    def exits(self):
        yield "accepted", self.next
        if self.declined != self.next:
            yield "declined", self.declined


@dataclass(frozen=True, slots=True)
class Voicemail(Node):
    prompt: Optional[Prompt]
    mailbox: str
    max_length: float
    next: Optional[str]
    type: ClassVar[str] = "voicemail"

    def exits(self):
        if self.next:
            yield "next", self.next


@dataclass(frozen=True, slots=True)
class Survey(Node):
    prompt: Prompt
    scale: tuple[int, int]
    sample: Optional[Sample]
    timeout: float
    attempts: int
    invalid_prompt: Optional[Prompt]
    thanks_prompt: Optional[Prompt]
    next: str
    type: ClassVar[str] = "survey"

    def exits(self):
        yield "next", self.next


@dataclass(frozen=True, slots=True)
class Goto(Node):
    flow: str
    node: Optional[str]
    type: ClassVar[str] = "goto"


@dataclass(frozen=True, slots=True)
class Hangup(Node):
    prompt: Optional[Prompt]
    type: ClassVar[str] = "hangup"


NODE_CLASSES: dict[str, type[Node]] = {
    cls.type: cls for cls in (Play, Menu, Input, Hours, Route, Transfer, Callback, Voicemail, Survey, Goto, Hangup)
}


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

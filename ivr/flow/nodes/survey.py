"""survey: a score on the keypad, asked of a sample of calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ivr.flow.model import Prompt
from ivr.flow.nodes.base import Node, field, node_type, timeout_field
from ivr.flow.spec import INT, NODE, PROMPT, SAMPLE, SCALE


@dataclass(frozen=True, slots=True)
class Sample:
    every: Optional[int]
    shorter_than: Optional[float]


@node_type("survey", doc="Ask a post-call score on the keypad (NPS 0-10 by default).", waits_for_caller=True, shape="note", colour="#f5e1f7")
class Survey(Node):
    prompt: Prompt = field(PROMPT, required=True, doc="the question")
    scale: tuple[int, int] = field(SCALE, default=(0, 10), doc="lowest and highest score, such as [0, 10]")
    sample: Optional[Sample] = field(SAMPLE, doc="ask only some calls: {every: 10, shorter_than: 2m}")
    timeout: float = timeout_field()
    attempts: int = field(INT, default=2, low=1, high=9, doc="tries before the survey is skipped")
    invalid_prompt: Optional[Prompt] = field(PROMPT, doc="played after an answer outside the scale")
    thanks_prompt: Optional[Prompt] = field(PROMPT, doc="played after an answer")
    next: str = field(NODE, required=True, doc="where the call goes after the survey", edge="next")

"""menu: one key chooses a branch; the repeat key must not be an option's key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

from ivr.flow.model import Prompt
from ivr.flow.nodes.base import Node, ReportError, attempts_field, field, node_type, timeout_field
from ivr.flow.spec import BOOL, KEY, NODE, OPTIONS, PROMPT
from ivr.yamldoc.values import parse_key

if TYPE_CHECKING:
    from ivr.flow.checks import NodeDraft


@dataclass(frozen=True, slots=True)
class MenuOption:
    key: str
    next: str
    language: Optional[str]
    set: Mapping[str, str]


@node_type("menu", doc="Play a prompt and branch on one key; a key pressed during the prompt counts.", waits_for_caller=True, shape="diamond", colour="#fff4d6")
class Menu(Node):
    prompt: Prompt = field(PROMPT, required=True, doc="the menu callers hear")
    options: Mapping[str, MenuOption] = field(OPTIONS, required=True, doc="key -> node, or key -> {next, language, set}")
    all_languages: bool = field(BOOL, default=False, doc="play the prompt in every language of the flow in turn (a language menu)")
    repeat_key: Optional[str] = field(KEY, doc="replays the prompt without using an attempt")
    timeout: float = timeout_field()
    attempts: int = attempts_field()
    invalid_prompt: Optional[Prompt] = field(PROMPT, doc="played after a key with no option")
    timeout_prompt: Optional[Prompt] = field(PROMPT, doc="played when no key came in time")
    on_fail: str = field(NODE, required=True, doc="where callers go after the last attempt", edge="fail")

    @classmethod
    def check(cls, draft: NodeDraft, written: Mapping[str, Any], what: str, error: ReportError) -> None:
        options = written.get("options")
        repeat = draft.fields.get("repeat_key")
        if not isinstance(options, dict) or repeat is None:
            return
        # checked on the options as written, so other broken options do not hide it
        for raw_key, option in options.items():
            if parse_key(raw_key) == repeat:
                target = option.get("next") if isinstance(option, dict) else option
                reach = f'never go to "{target}"' if isinstance(target, str) else "can never choose it"
                error(
                    draft.path + ("options", raw_key),
                    f'option "{repeat}" of {what} uses the repeat_key "{repeat}": callers pressing it hear the menu again, '
                    f"so they {reach}; give one of the two another key",
                    at_key=True,
                )
                break

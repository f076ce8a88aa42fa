"""Turns a checked flow into an immutable `Flow` and names its version by a hash."""

from __future__ import annotations

import hashlib
import json
from types import MappingProxyType
from typing import Any

from ivr.flow.checks import CheckedFlow
from ivr.flow.model import NODE_CLASSES, Flow, MenuOption, Prompt

_PROMPT_FIELDS = ("prompt", "invalid_prompt", "timeout_prompt", "thanks_prompt", "confirm_prompt")


def compile_flow(checked: CheckedFlow) -> Flow:
    prompts = {
        name: Prompt(name, MappingProxyType(dict(texts)), MappingProxyType(dict(files)), checked.doc.key_at(("prompts", name)).line, checked.id)
        for name, (texts, files) in checked.prompts.items()
    }
    nodes = {}
    for name, draft in checked.nodes.items():
        fields = dict(draft.fields)
        for key in _PROMPT_FIELDS:
            if key in fields:
                fields[key] = prompts[fields[key]] if fields[key] is not None else None
        if "options" in fields:
            fields["options"] = MappingProxyType(
                {k: MenuOption(k, o["next"], o["language"], MappingProxyType(o["set"])) for k, o in fields["options"].items()}
            )
        if "when" in fields:
            fields["when"] = tuple(rule for rule, _path in fields["when"])
        nodes[name] = NODE_CLASSES[draft.type](name=name, line=draft.line, **fields)
    return Flow(
        id=checked.id,
        description=checked.description,
        languages=checked.languages,
        start=checked.start,
        nodes=MappingProxyType(nodes),
        prompts=MappingProxyType(prompts),
        file=checked.doc.file,
        version=flow_version(checked.doc.data),
    )


def flow_version(data: Any) -> str:
    """A short hash of the flow's content: the same menu gives the same version.

    Mappings keep the order they were written in, so the text of the data is stable for
    a file; comments and layout do not change it.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]

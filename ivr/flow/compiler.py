"""Turns a checked flow into an immutable `Flow` and names its version by a hash."""

from __future__ import annotations

import hashlib
import json
from types import MappingProxyType
from typing import Any

from ivr.flow.checks import CheckedFlow
from ivr.flow.model import Flow, Prompt
from ivr.flow.nodes import NODE_TYPES
from ivr.flow.nodes.menu import MenuOption
from ivr.flow.spec import OPTIONS, PROMPT, RULES


def compile_flow(checked: CheckedFlow) -> Flow:
    prompts = {
        name: Prompt(name, MappingProxyType(dict(texts)), MappingProxyType(dict(files)), checked.doc.key_at(("prompts", name)).line, checked.id)
        for name, (texts, files) in checked.prompts.items()
    }
    nodes = {}
    for name, draft in checked.nodes.items():
        node_type = NODE_TYPES[draft.type]
        fields = dict(draft.fields)
        for key, spec in node_type.fields.items():
            if key not in fields:
                continue
            if spec.kind == PROMPT:
                fields[key] = prompts[fields[key]] if fields[key] is not None else None
            elif spec.kind == OPTIONS:
                fields[key] = MappingProxyType(
                    {k: MenuOption(k, o["next"], o["language"], MappingProxyType(o["set"])) for k, o in fields[key].items()}
                )
            elif spec.kind == RULES:
                fields[key] = tuple(rule for rule, _path in fields[key])
        nodes[name] = node_type(name=name, line=draft.line, **fields)
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

"""The run-time behaviour of each node type: `ivr/engine/nodes/<type>.py` exports
`run(node, call)`, which returns the next step.

A step is (edge label, node name) within the call's current flow, or None when the call
ends there. The handlers are found by the names of the flow format's node types
(ivr.flow.nodes.NODE_TYPES), so a new type is its flow module, its module here, and its
line in that registry; tests/test_node_types.py checks that the two packages agree.
`attempts` holds the tries that menu, input and survey share.
"""

from __future__ import annotations

import importlib
from typing import Awaitable, Callable, Optional

from ivr.flow.nodes import NODE_TYPES

Step = Optional[tuple[str, str]]
Handler = Callable[..., Awaitable[Step]]


def _handler(node_type: str) -> Handler:
    try:
        module = importlib.import_module(f"{__name__}.{node_type}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{node_type}":
            raise
        raise ImportError(f'node type "{node_type}" has no run-time module ivr/engine/nodes/{node_type}.py') from None
    return module.run


HANDLERS: dict[str, Handler] = {name: _handler(name) for name in NODE_TYPES}

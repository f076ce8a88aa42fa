"""One module per node type; each exports `run(node, call)` returning the next step.

A step is (edge label, node name) within the call's current flow, or None when the call
ends there. HANDLERS has one entry per type of ivr.flow.nodes (tests/test_node_types.py
holds the two in step); `attempts` is the tries that menu, input and survey share.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Optional

from ivr.engine.nodes import (
    callback,
    goto,
    hangup,
    hours,
    input as input_,
    menu,
    play,
    route,
    survey,
    transfer,
    voicemail,
)

Step = Optional[tuple[str, str]]
HANDLERS: dict[str, Callable[..., Awaitable[Step]]] = {
    "play": play.run,
    "menu": menu.run,
    "input": input_.run,
    "hours": hours.run,
    "route": route.run,
    "transfer": transfer.run,
    "callback": callback.run,
    "voicemail": voicemail.run,
    "survey": survey.run,
    "goto": goto.run,
    "hangup": hangup.run,
}

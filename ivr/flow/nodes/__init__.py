"""The node types of the flow format, one module each (see ivr.flow.nodes.base).

The order here is the order of the format reference, the JSON Schema and the lists of
types in messages. A new type is a module here, a run-time module in ivr.engine.nodes,
and its line in each of the two registries.
"""

from __future__ import annotations

from ivr.flow.nodes.base import Node
from ivr.flow.nodes.callback import Callback
from ivr.flow.nodes.goto import Goto
from ivr.flow.nodes.hangup import Hangup
from ivr.flow.nodes.hours import Hours
from ivr.flow.nodes.input import Input
from ivr.flow.nodes.menu import Menu
from ivr.flow.nodes.play import Play
from ivr.flow.nodes.route import Route
from ivr.flow.nodes.survey import Survey
from ivr.flow.nodes.transfer import Transfer
from ivr.flow.nodes.voicemail import Voicemail

NODE_TYPES: dict[str, type[Node]] = {
    cls.type: cls for cls in (Play, Menu, Input, Hours, Route, Transfer, Callback, Voicemail, Survey, Goto, Hangup)
}

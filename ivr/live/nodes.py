"""The Asterisk a live call came from, and that node's manager services.

With several Asterisks (config.yaml `asterisk.nodes`, docs/nodes.md) each node's generated
dialplan names itself in the AGI argument `node=<name>`. That argument arrives over the
network like the rest of the environment block, so it is checked against the configured
names: a missing or unknown name means the first node, said in the log (once per distinct
value, so a misconfigured dialplan cannot flood it). Each node has its own AMI client, queue
board and call-back scheduler (an `AmiPart` each, `ivr.live.serve`): a call's overflow
decision, its queue-position figures and its call-back booking use its own node's.
"""

from __future__ import annotations

import logging
from typing import Mapping, Optional

from ivr.channels.agi import ManagerServices

log = logging.getLogger(__name__)

MAX_REPORTED = 20  # distinct unknown names logged; past that, one would only be noise


class NodeRouter:
    """Node name -> that node's ManagerServices; the first node stands in for a call that
    names none, or names one not configured."""

    def __init__(self, managers: Mapping[str, ManagerServices], *, named: bool = True):
        if not managers:
            raise ValueError("a node router needs at least one node")
        self.managers = dict(managers)
        self.first = next(iter(self.managers))
        # False: one node from `ami:`; its dialplan names no node, and that is no news
        self.named = named
        self._reported: set[str] = set()

    def route(self, name: Optional[str], call: str) -> tuple[str, ManagerServices]:
        """The node of a call that said `name` (None: said nothing), and its services."""
        if name is not None and name in self.managers:
            return name, self.managers[name]
        if self.named or name is not None:
            self._report(name, call)
        return self.first, self.managers[self.first]

    def _report(self, name: Optional[str], call: str) -> None:
        key = "" if name is None else name[:64]
        if key in self._reported or len(self._reported) >= MAX_REPORTED:
            return
        self._reported.add(key)
        said = "names no node" if name is None else f"names node {name[:64]!r}, which config.yaml does not list"
        log.warning("call %s %s: taken for node %s, the first (%s); its dialplan should pass node=<name> "
                    "as `ivr asterisk-config` writes it (further calls like it are not logged)",
                    call, said, self.first, ", ".join(self.managers))

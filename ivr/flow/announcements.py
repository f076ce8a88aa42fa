"""Queue announcements as the flows ask for them: transfer nodes' `announce_position`.

Asterisk announces the caller's position per queue (queues.conf), not per call: no
`Queue()` option or channel variable of Asterisk 22 turns it on or off for one caller
(the variables app_queue reads from the caller's channel are QUEUE_PRIO and the
QUEUE_*_PENALTY ones). So a transfer node asking for it turns it on for its department's
whole queue (`ivr asterisk-config`), and two transfer nodes into one queue that disagree
are worth a warning: the callers of both hear the same thing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ivr.settings.config import Config, Department
from ivr.yamldoc.diagnostics import Findings

if TYPE_CHECKING:
    from ivr.flow.checks import NodeDraft
    from ivr.flow.model import Flow

FIELD = "announce_position"


def announcing_departments(flows: Iterable[Flow]) -> set[str]:
    """The departments some transfer node of `flows` asks to announce the position to."""
    return {node.department.name for flow in flows for node in flow.nodes.values()
            if getattr(node, "type", None) == "transfer" and getattr(node, FIELD, False)}


def check_announcements(nodes: Mapping[str, NodeDraft], written: Mapping[Any, Any], config: Config,
                        findings: Findings) -> None:
    """Warnings for transfer nodes of one flow whose callers hear other than the node says:
    another transfer node into the same queue asks otherwise, or config.yaml decides."""
    by_queue: dict[str, list[NodeDraft]] = {}
    for draft in nodes.values():
        department = draft.fields.get("department")
        if draft.type == "transfer" and isinstance(department, Department):
            by_queue.setdefault(department.queue, []).append(draft)
    for queue, drafts in by_queue.items():
        asking = [d for d in drafts if d.fields.get(FIELD)]
        for draft in drafts:
            raw = written.get(draft.name)
            said = isinstance(raw, dict) and FIELD in raw
            department: Department = draft.fields["department"]
            configured = department.announce.position if department.announce else None
            where = draft.path + (FIELD,) if said else draft.path
            if draft.fields.get(FIELD):
                if configured is False:
                    findings.warning(where, f'transfer "{draft.name}" asks for {FIELD}, but config.yaml turns the '
                                            f'announcements of department "{department.name}" off: Asterisk announces '
                                            f'per queue, so every caller of queue "{queue}" hears the position',
                                     at_key=True)
                continue
            if asking:
                other = asking[0]
                findings.warning(where, f'transfer "{draft.name}" {"says " + FIELD + ": false" if said else "does not ask for " + FIELD}, '
                                        f'but transfer "{other.name}" (line {other.line}) into the same queue "{queue}" '
                                        f"asks for it: Asterisk announces per queue, so callers of both hear their "
                                        f"position; give both the same {FIELD}", at_key=True)
            elif said and configured:
                findings.warning(where, f'transfer "{draft.name}" says {FIELD}: false, but config.yaml announces the '
                                        f'position in queue "{queue}" (department "{department.name}"): its callers '
                                        f"hear it all the same", at_key=True)

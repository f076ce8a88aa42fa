"""Checks of a finished call that several test folders share (tests/ is on their path,
so this module is imported by its own name, not through a conftest)."""

from __future__ import annotations

from ivr import events as ev
from ivr.flow import spec


def check_exits(call) -> None:
    """Every way the engine took out of a node is one its flow declares: the label a node's
    run-time module returns is the edge its flow module draws (coverage and the dashboard's
    menu tree count by these labels)."""
    entered = [e for e in call.events if e.type == ev.NODE_ENTERED]
    for before, after in zip(entered, entered[1:]):
        node = call.engine.flows[before.flow].nodes[before.node]
        via = after.data["via"]
        assert via in exit_labels(node) or (via == "goto" and node.type == "goto"), (
            f'the engine left {node.type} "{node.name}" by "{via}", which its flow module does not declare')


def exit_labels(node) -> set[str]:
    """The labels of every way out a node's type declares: its node fields' edges, its
    menu keys and its route rules."""
    labels: set[str] = set()
    for name, field in node.fields.items():
        value = getattr(node, name)
        if field.kind == spec.NODE:
            labels.add(field.edge or name)
        elif field.kind == spec.OPTIONS:
            labels.update(value)
        elif field.kind == spec.RULES:
            labels.update(rule.label for rule in value)
    return labels

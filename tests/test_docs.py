"""The format reference (docs/flows.md) is the one the node types write, and names every
node type and field."""

from pathlib import Path

from ivr.flow.docs import with_node_reference
from ivr.flow.nodes import NODE_TYPES

PAGE = Path(__file__).resolve().parents[1] / "docs" / "flows.md"
DOC = PAGE.read_text(encoding="utf-8")


def test_the_node_reference_is_the_one_the_node_types_write():
    assert DOC == with_node_reference(DOC), (
        "the node reference of docs/flows.md differs from what the node types (ivr/flow/nodes) write; "
        "regenerate it with: .venv/bin/python -m ivr.flow.docs docs/flows.md"
    )


def test_every_node_type_and_field_is_documented():
    missing = []
    for name, node_type in NODE_TYPES.items():
        if f"### `{name}`" not in DOC:
            missing.append(name)
        section = DOC.split(f"### `{name}`", 1)[-1].split("### ", 1)[0]
        missing.extend(f"{name}.{field}" for field in node_type.fields if f"| `{field}` |" not in section)
    assert missing == []

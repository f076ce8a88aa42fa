"""The format reference (docs/flows.md) names every node type and field."""

from pathlib import Path

from ivr.flow.nodes import NODE_TYPES

DOC = (Path(__file__).resolve().parents[1] / "docs" / "flows.md").read_text(encoding="utf-8")


def test_every_node_type_and_field_is_documented():
    missing = []
    for name, node_type in NODE_TYPES.items():
        if f"### `{name}`" not in DOC:
            missing.append(name)
        section = DOC.split(f"### `{name}`", 1)[-1].split("### ", 1)[0]
        missing.extend(f"{name}.{field}" for field in node_type.format_fields() if f"| `{field}` |" not in section)
    assert missing == []

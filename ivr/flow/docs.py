"""The node reference of docs/flows.md, written from the node types.

The page keeps the generated part between two marker lines; the rest of it is prose.
`python -m ivr.flow.docs docs/flows.md` rewrites that part after a node type changed, and
a test fails while the page and the node types disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ivr.flow.nodes import NODE_TYPES

BEGIN = "<!-- node reference: generated from ivr/flow/nodes by `python -m ivr.flow.docs docs/flows.md` -->"
END = "<!-- end of the node reference -->"


def node_reference() -> str:
    """Markdown: per node type, a heading, what it does and the table of its fields."""
    sections = []
    for name, node_type in NODE_TYPES.items():
        rows = [
            f"| `{key}` | {'required' if field.required else ''} | {_shown(field.default)} | {field.doc} |"
            for key, field in node_type.fields.items()
        ]
        sections.append("\n".join([f"### `{name}`", node_type.doc, "", "| field | | default | meaning |", "| --- | --- | --- | --- |", *rows]))
    return "\n\n".join(sections) + "\n"


def with_node_reference(page: str) -> str:
    """`page` with the part between the markers written anew."""
    head, found, rest = page.partition(BEGIN + "\n")
    _old, found_end, tail = rest.partition("\n" + END)
    if not found or not found_end:
        raise ValueError(f"the page has no node reference between {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n{node_reference()}\n{END}{tail}"


def _shown(default: Any) -> str:
    if default is None:
        return ""
    if isinstance(default, tuple):
        return "[" + ", ".join(str(v) for v in default) + "]"
    return str(default)


if __name__ == "__main__":
    page = Path(sys.argv[1])
    page.write_text(with_node_reference(page.read_text(encoding="utf-8")), encoding="utf-8")

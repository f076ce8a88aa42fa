"""Drawings of a flow: Graphviz DOT text, and SVG/PNG through Graphviz's `dot`.

Each node is drawn in its type's shape and colour (ivr.flow.nodes), edges carry the key or
condition that takes them. Counts per edge (how many callers took a branch) can be laid over
the same drawing.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Mapping, Optional

from ivr.errors import IvrError
from ivr.flow.model import Flow


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(flow: Flow, counts: Optional[Mapping[tuple[str, str], int]] = None) -> str:
    """DOT source of the flow; `counts` maps (node, edge label) to callers who took it."""
    lines = [
        f"digraph {_quote(flow.id)} {{",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=11, style=filled];',
        '  edge [fontname="Helvetica", fontsize=10];',
        f'  label={_quote(f"{flow.id} (version {flow.version})")}; labelloc=t;',
        '  "__start" [shape=point, width=0.15];',
        f'  "__start" -> {_quote(flow.start)};',
    ]
    for node in flow.nodes.values():
        lines.append(f"  {_quote(node.name)} [shape={node.shape}, fillcolor={_quote(node.colour)}, label={_quote(node.graph_label())}];")
    for source, label, target in flow.edges():
        text = label if label not in ("next",) else ""
        if counts is not None:
            count = counts.get((source, label), 0)
            text = f"{text} ({count})" if text else f"({count})"
        lines.append(f"  {_quote(source)} -> {_quote(target)} [label={_quote(text)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_source: str, fmt: str = "svg") -> bytes:
    """Run Graphviz; a clear error when it is missing."""
    dot = shutil.which("dot")
    if dot is None:
        raise IvrError("Graphviz is not installed (the `dot` command); install it with: apt-get install graphviz")
    done = subprocess.run([dot, f"-T{fmt}"], input=dot_source.encode(), capture_output=True, timeout=60)
    if done.returncode != 0:
        raise IvrError(f"Graphviz failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout

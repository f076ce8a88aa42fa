"""The menu tree of the dashboard: a flow drawn by Graphviz with what callers did in it.

The drawing follows `ivr graph` (ivr.flow.graph: the same shapes, colours and `dot`), with
counts laid over it: node labels carry entered / hung up / time-outs / invalid keys, edge
labels "key · N callers", edge pen width grows with the share of the flow's callers, and
each node links to the calls list filtered by it.

Names, keys and route patterns are written by admins, so they reach `dot` only as escaped
quoted strings, and Graphviz's SVG is rebuilt from an allow-list before it is embedded in
the page: known elements and presentation attributes only, links only to the calls list,
no scripts, event handlers, styles or external references. Without Graphviz or without
loadable flows the page shows `tree()` instead, the same counts as an indented list.
"""

from __future__ import annotations

import logging
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from ivr.errors import IvrError
from ivr.flow.graph import render
from ivr.flow.model import Flow, FlowSet
from ivr.web.menu_usage import NodeCounts, Usage

log = logging.getLogger(__name__)
Link = Callable[[str, str], str]  # (flow, node) -> the calls list filtered by that node
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def _q(text: str) -> str:
    """A DOT quoted string: backslashes (Graphviz's \\N, \\G escapes) and quotes escaped."""
    text = _CONTROL.sub(" ", str(text))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _xml(url: str) -> str:
    """A URL XML-escaped: Graphviz 2.43 writes URLs into the SVG as given, so a raw & would break it
    (later versions escape them, but keep entities already escaped)."""
    return url.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def callers(n: int) -> str:
    return f"{n:,} caller" if n == 1 else f"{n:,} callers"


def node_summary(counts: NodeCounts) -> str:
    parts = [f"entered {counts.entered:,}"]
    if counts.hangups:
        parts.append(f"hung up {counts.hangups:,}")
    if counts.timeouts:
        parts.append(f"time-outs {counts.timeouts:,}")
    if counts.invalid:
        parts.append(f"invalid {counts.invalid:,}")
    return " · ".join(parts)


def edge_label(label: str, n: int) -> str:
    return callers(n) if label == "next" else f"{label} · {callers(n)}"


def to_dot(flow: Flow, usage: Usage, link: Link) -> str:
    """DOT source of `flow` with `usage` laid over it."""
    widest = max([usage.node(flow.id, name).entered for name in flow.nodes] + [1])

    def pen(n: int) -> str:
        if not n:
            return 'style=dashed, color="#9aa3ae", fontcolor="#5f6b7a"'
        return f'penwidth={1 + 5 * n / widest:.2f}, color="#2458c6"'

    lines = [
        f"digraph {_q(flow.id)} {{",
        "  rankdir=TB; nodesep=0.25; ranksep=0.4;  // top down, unlike `ivr graph`: a page scrolls down, not across",
        '  node [fontname="Helvetica", fontsize=11, style=filled];',
        '  edge [fontname="Helvetica", fontsize=10];',
        f"  label={_q(f'{flow.id} (version {flow.version})')}; labelloc=t;",
        '  "start point" [shape=point, width=0.15];  // a space: no node of a flow can be called so',
    ]
    started = sum(n for (src_flow, _, via, flow_id, node), n in usage.edges.items()
                  if src_flow is None and via == "start" and flow_id == flow.id and node == flow.start)
    lines.append(f"  \"start point\" -> {_q(flow.start)} [label={_q(callers(started))}, {pen(started)}];")
    for node in flow.nodes.values():
        head = node.graph_label()
        summary = node_summary(usage.node(flow.id, node.name))
        warn = ', color="#b3261e", penwidth=2' if usage.node(flow.id, node.name).hangups else ""
        lines.append(f"  {_q(node.name)} [shape={node.shape}, fillcolor={_q(node.colour)}, label={_q(head + chr(10) + summary)}, "
                     f"URL={_q(_xml(link(flow.id, node.name)))}, tooltip={_q(f'{node.name}: {summary}')}{warn}];")
    drawn: set[tuple[str, str, str]] = set()
    for source, label, target in flow.edges():
        n = usage.edge(flow.id, source, label, target)
        drawn.add((source, label, target))
        lines.append(f"  {_q(source)} -> {_q(target)} [label={_q(edge_label(label, n))}, {pen(n)}];")
    stubs = 0
    for (src_flow, source, via, to_flow, target), n in sorted(usage.edges.items(), key=lambda item: -item[1]):
        if src_flow is None or (src_flow != flow.id and to_flow != flow.id):
            continue
        if src_flow == to_flow == flow.id:  # a way the current version has not: an older menu, or a goto to itself
            if (source, via, target) in drawn or source not in flow.nodes or target not in flow.nodes:
                continue
            lines.append(f"  {_q(source)} -> {_q(target)} [label={_q(edge_label(via, n) + ' (not in this version)')}, "
                         'style=dotted, color="#a86400"];')
            continue
        stubs += 1
        stub = _q(f"stub {stubs}")
        if to_flow == flow.id:  # came in from another flow
            lines.append(f"  {stub} [shape=plaintext, style=\"\", label={_q(f'from {src_flow}:{source}')}];")
            lines.append(f"  {stub} -> {_q(target)} [label={_q(edge_label(via, n))}, {pen(n)}];")
        elif source in flow.nodes:  # went on to another flow
            lines.append(f"  {stub} [shape=plaintext, style=\"\", label={_q(f'to {to_flow}:{target}')}];")
            lines.append(f"  {_q(source)} -> {stub} [label={_q(edge_label(via, n))}, {pen(n)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(flow: Flow, usage: Usage, link: Link, allowed_href: str) -> str:
    """The flow's menu tree as sanitized inline SVG; IvrError when Graphviz cannot draw it."""
    try:
        raw = render(to_dot(flow, usage, link), "svg")
    except subprocess.TimeoutExpired as exc:
        raise IvrError("Graphviz took too long to draw the menu tree") from exc
    except OSError as exc:
        raise IvrError(f"Graphviz could not be run: {exc}") from exc
    return sanitize_svg(raw, allowed_href, label=f"Menu tree of flow {flow.id} with the callers of each branch")


# --- the SVG, rebuilt from an allow-list -------------------------------------------------------
_SVG = "{http://www.w3.org/2000/svg}"
_XLINK = "{http://www.w3.org/1999/xlink}"
_TAGS = {"svg", "g", "title", "desc", "path", "polygon", "polyline", "ellipse", "circle", "rect", "line", "text",
         "tspan", "a"}
_ATTRIBUTES = {"width", "height", "viewBox", "preserveAspectRatio", "transform", "fill", "fill-opacity", "stroke",
               "stroke-width", "stroke-dasharray", "stroke-opacity", "stroke-linecap", "stroke-linejoin", "points",
               "d", "cx", "cy", "r", "rx", "ry", "x", "y", "x1", "y1", "x2", "y2", "text-anchor", "font-family",
               "font-size", "font-weight", "font-style", "class"}
_URL_VALUE = re.compile(r"url\s*\(", re.I)  # paint servers: references to elsewhere


def sanitize_svg(raw: bytes | str, allowed_href: str, label: str) -> str:
    """Graphviz's SVG kept to shapes, text and links to `allowed_href`...; anything else is dropped."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    if "<!ENTITY" in text:
        raise IvrError("the drawing of the menu tree declares entities; refused")
    try:
        source = ET.fromstring(text)
    except ET.ParseError as exc:
        raise IvrError(f"the drawing of the menu tree is not valid SVG: {exc}") from exc
    if _local(source.tag) != "svg":
        raise IvrError("the drawing of the menu tree is not SVG")
    clean = _copy(source, allowed_href)
    assert clean is not None
    clean.set("role", "group")
    clean.set("aria-label", label)
    clean.set("class", "menu-tree")
    return ET.tostring(clean, encoding="unicode", method="xml")


def _local(tag: object) -> str:
    if not isinstance(tag, str):  # comments, processing instructions
        return ""
    return tag[len(_SVG):] if tag.startswith(_SVG) else ("" if tag.startswith("{") else tag)


def _copy(element: ET.Element, allowed_href: str) -> Optional[ET.Element]:
    tag = _local(element.tag)
    if tag not in _TAGS:
        return None
    out = ET.Element(tag)
    for name, value in element.attrib.items():
        if name == "class":  # Graphviz's node/edge/graph: prefixed, so the site's classes never apply
            out.set(name, " ".join(f"mt-{word}" for word in value.split() if re.fullmatch(r"[\w-]+", word)))
        elif name in _ATTRIBUTES and not _URL_VALUE.search(value):
            out.set(name, value)
    if tag == "a":
        href = element.get(_XLINK + "href") or element.get("href") or ""
        if href.startswith(allowed_href) and not href.startswith("//"):
            out.set("href", href)
        else:
            out.tag = "g"  # a link elsewhere: keep what it drew, not the link
        tip = element.get(_XLINK + "title")
        if tip:
            title = ET.SubElement(out, "title")
            title.text = tip
    out.text = element.text
    for child in element:
        copied = _copy(child, allowed_href)
        if copied is not None:
            copied.tail = child.tail
            out.append(copied)
    return out


# --- without Graphviz: the same counts as an indented list -----------------------------------
@dataclass
class TreeItem:
    flow: str
    node: str
    via: Optional[str]  # the key or exit that led here (None at a root)
    callers: int  # callers who took that way
    counts: NodeCounts
    href: str
    repeated: bool = False  # shown above already; not expanded again
    children: list["TreeItem"] = field(default_factory=list)


MAX_ITEMS = 400


def tree(flows: Optional[FlowSet], usage: Usage, link: Link) -> list[TreeItem]:
    """The menu tree as nested items: from the flows when they load, else from the edges callers took."""
    def ways_out(flow_id: str, node: str) -> Iterable[tuple[str, str, str, int]]:
        taken = {(to_flow, via, target): n for (src_flow, source, via, to_flow, target), n in usage.edges.items()
                 if src_flow == flow_id and source == node}
        flow = flows.flows.get(flow_id) if flows is not None else None
        if flow is not None and node in flow.nodes:
            for label, target in flow.nodes[node].exits():
                yield flow_id, label, target, taken.pop((flow_id, label, target), 0)
        yield from sorted(((f, via, t, n) for (f, via, t), n in taken.items()), key=lambda way: -way[3])

    shown: set[tuple[str, str]] = set()
    budget = [MAX_ITEMS]

    def item(flow_id: str, node: str, via: Optional[str], n: int) -> TreeItem:
        budget[0] -= 1
        entry = TreeItem(flow_id, node, via, n, usage.node(flow_id, node), link(flow_id, node))
        if (flow_id, node) in shown or budget[0] <= 0:
            entry.repeated = True
            return entry
        shown.add((flow_id, node))
        entry.children = [item(f, target, label, count) for f, label, target, count in ways_out(flow_id, node)]
        return entry

    starts: dict[tuple[str, str], int] = {}
    for (src_flow, _, via, to_flow, target), n in usage.edges.items():
        if src_flow is None and via == "start":
            starts[(to_flow, target)] = starts.get((to_flow, target), 0) + n
    if flows is not None:
        for flow in flows.flows.values():
            starts.setdefault((flow.id, flow.start), 0)
    roots = sorted(starts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [item(flow_id, node, None, n) for (flow_id, node), n in roots if (flow_id, node) not in shown]

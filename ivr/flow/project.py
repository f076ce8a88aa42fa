"""Loading every flow of an installation at once: cross-file checks and the FlowSet.

A goto can only be checked with all flows known, and a loop can run through several
files, so files are read first, checked against each other, then compiled together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ivr.config import Config, check_config, find_config
from ivr.errors import ConfigError, FlowError, UsageError
from ivr.flow import spec
from ivr.flow.checks import CheckedFlow, Context, check_flow
from ivr.flow.compiler import compile_flow
from ivr.flow.diagnostics import Diagnostic, Findings, sort_best_first
from ivr.flow.loader import Document, LoadError, load_file, load_text
from ivr.flow.model import Flow, FlowSet

TEST_SUFFIX = ".test.yaml"


@dataclass
class Report:
    """The outcome of checking files: every finding, and the flows that compiled."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    flows: dict[str, Flow] = field(default_factory=dict)
    config: Config = field(default_factory=Config)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def flow_set(self) -> FlowSet:
        if not self.ok:
            raise FlowError(self.errors)
        return FlowSet(dict(self.flows))


def flow_files(paths: Iterable[str | Path]) -> list[Path]:
    """The flow files named, directories expanded (journey test files left out)."""
    result: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            result.extend(p for p in sorted(path.rglob("*.yaml")) if not p.name.endswith(TEST_SUFFIX) and p.name != "config.yaml")
        elif path.is_file():
            result.append(path)
        else:
            raise UsageError(f"{raw}: no such file or directory")
    return result


def check_project(paths: Iterable[str | Path], config_path: Path | None = None, *, siblings: bool = True) -> Report:
    """Check the given flow files (with the rest of their folders for goto) and config.yaml.

    Findings are reported for the named files only; sibling flows are loaded so that a
    goto into them can be checked.
    """
    files = flow_files(paths)
    if not files:
        raise UsageError("no flow files found")
    report = Report()
    config_path = config_path or find_config(files[0].parent)
    if config_path is not None:
        config, found = check_config(Path(config_path), _display(Path(config_path)))
        report.diagnostics.extend(found)
        if config is None:
            report.config = Config(path=str(config_path))
        else:
            report.config = config
    named = {p.resolve() for p in files}
    extra: list[Path] = []
    if siblings:
        for folder in {p.resolve().parent for p in files}:
            extra.extend(p for p in sorted(folder.glob("*.yaml")) if p.resolve() not in named and not p.name.endswith(TEST_SUFFIX) and p.name != "config.yaml")
    docs: list[tuple[Document, bool]] = []
    for path in [*files, *extra]:
        reported = path.resolve() in named
        try:
            docs.append((load_file(path, _display(path)), reported))
        except LoadError as exc:
            if reported:
                report.diagnostics.extend(exc.diagnostics)
    compile_documents(docs, report)
    return report


def compile_documents(docs: list[tuple[Document, bool]], report: Report) -> None:
    """Check documents against each other and compile those without errors into `report`."""
    ids: dict[str, Document] = {}
    for doc, reported in docs:
        flow_id = doc.data.get("flow") if isinstance(doc.data, dict) else None
        if isinstance(flow_id, str):
            if flow_id in ids and reported:
                other = ids[flow_id]
                report.diagnostics.append(
                    Diagnostic(doc.at(("flow",)), f'flow id "{flow_id}" is also the id of {other.file}; ids must be unique', rank=0)
                )
            ids.setdefault(flow_id, doc)
    ctx = Context(report.config, _display(Path(report.config.path)) if report.config.path else "config.yaml", set(ids))
    checked: list[CheckedFlow] = []
    for doc, reported in docs:
        flow, found = check_flow(doc, ctx)
        if reported:
            report.diagnostics.extend(found)
        if flow is not None:
            checked.append(flow)
    loops = _endless_loops(checked)
    report.diagnostics.extend(loops)
    looped = {d.location.file for d in loops}
    for flow in checked:
        if flow.doc.file not in looped:
            report.flows[flow.id] = compile_flow(flow)
    report.diagnostics[:] = sort_best_first(report.diagnostics)


def compile_text(text: str, file: str = "<flow>", config: Config | None = None, others: Iterable[str] = ()) -> Flow:
    """Compile one flow from text (tests and tools); raise FlowError with every finding."""
    report = Report(config=config or Config())
    try:
        doc = load_text(text, file)
    except LoadError as exc:
        raise FlowError(exc.diagnostics) from None
    ids = set(others)
    ctx = Context(report.config, "config.yaml", ids | {doc.data.get("flow")} if others and isinstance(doc.data, dict) else None)
    flow, found = check_flow(doc, ctx)
    if flow is not None:
        found = [*found, *_endless_loops([flow])]
    found = sort_best_first(found)
    if flow is None or any(d.is_error for d in found):
        raise FlowError([d for d in found if d.is_error] or found)
    return compile_flow(flow)


def load_flows(paths: Iterable[str | Path], config_path: Path | None = None) -> tuple[FlowSet, Config]:
    """Every flow under `paths`, compiled; raise FlowError/ConfigError on any error."""
    report = check_project(paths, config_path)
    config_errors = [d for d in report.errors if report.config.path and d.location.file == _display(Path(report.config.path))]
    if config_errors:
        raise ConfigError(config_errors)
    return report.flow_set(), report.config


def _endless_loops(flows: list[CheckedFlow]) -> list[Diagnostic]:
    """Loops of nodes none of which waits for the caller: a live line would spin forever."""
    by_id = {f.id: f for f in flows}
    graph: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for flow in flows:
        for name, draft in flow.nodes.items():
            if spec.NODE_TYPES[draft.type].waits_for_caller:
                continue
            targets = [(flow.id, t) for _label, t, _p in draft.exits()]
            if draft.type == "goto":
                other = by_id.get(draft.fields.get("flow"))
                if other is not None:
                    targets.append((other.id, draft.fields.get("node") or other.start))
            graph[(flow.id, name)] = [t for t in targets if t in _passive(by_id, t)]
    found = []
    for component in _cycles(graph):
        first = min(component, key=lambda n: (by_id[n[0]].doc.file, by_id[n[0]].nodes[n[1]].line))
        order = _walk(first, component, graph)
        names = " -> ".join(n if f == first[0] else f"{f}:{n}" for f, n in order)
        draft = by_id[first[0]].nodes[first[1]]
        found.append(
            Diagnostic(
                by_id[first[0]].doc.key_at(draft.path),
                f"nodes {names} -> {order[0][1]} form a loop callers can never leave: none of them waits for a key; "
                "put a menu on the loop or end it",
                rank=2,
            )
        )
    return found


def _passive(by_id: dict[str, CheckedFlow], target: tuple[str, str]) -> set:
    flow = by_id.get(target[0])
    draft = flow.nodes.get(target[1]) if flow else None
    if draft is None or spec.NODE_TYPES[draft.type].waits_for_caller:
        return set()
    return {target}


def _cycles(graph: dict) -> list[set]:
    """Strongly connected components that hold a cycle (Tarjan, without recursion)."""
    index: dict = {}
    low: dict = {}
    stack: list = []
    on_stack: set = set()
    result = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            edges = graph.get(node, [])
            if i < len(edges):
                work.append((node, i + 1))
                nxt = edges[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, []):
                    result.append(component)
    return result


def _walk(first, component: set, graph: dict) -> list:
    order = [first]
    current = first
    while True:
        nxt = next((t for t in graph[current] if t in component), None)
        if nxt is None or nxt in order:
            return order
        order.append(nxt)
        current = nxt


def _display(path: Path) -> str:
    """A path as users typed it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

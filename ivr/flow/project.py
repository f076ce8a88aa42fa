"""Loading every flow of an installation at once: cross-file checks and the FlowSet.

A goto can only be checked with all flows known, and a loop can run through several
files, so files are read first, checked against each other, then compiled together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ivr.settings.config import Config, check_config, find_config
from ivr.errors import ConfigError, FlowError, UsageError
from ivr.flow.checks import CheckedFlow, Context, check_flow
from ivr.flow.compiler import compile_flow
from ivr.flow.lines import line_findings
from ivr.yamldoc.diagnostics import WARNING, Diagnostic, Location, did_you_mean, sort_best_first
from ivr.yamldoc.loader import Document, LimitExceeded, LoadError, gc_paused, load_file, load_text
from ivr.flow.model import Flow, FlowSet
from ivr.flow.nodes import NODE_TYPES
from ivr.yamldoc.values import is_name

TEST_SUFFIX = ".test.yaml"
FLOW_FILE = "a flow: a mapping with flow, languages, start, prompts and nodes"


@dataclass
class Report:
    """The outcome of checking files: every finding, and the flows that compiled."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    flows: dict[str, Flow] = field(default_factory=dict)
    config: Config = field(default_factory=Config)
    files: list[str] = field(default_factory=list)  # the flow files checked, as displayed
    named: set[Path] = field(default_factory=set)  # the files asked for, resolved (siblings are not)
    # problems of the recorded prompt files, in diagnostics too (ivr.installation adds them)
    recorded: list[Diagnostic] = field(default_factory=list)
    flow_ids: set[str] = field(default_factory=set)  # of every flow file read, compiled or not

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def named_flows(self) -> list[Flow]:
        """The compiled flows of the files asked for (not of their siblings)."""
        return [f for f in self.flows.values() if Path(f.file).resolve() in self.named or f.file in self.files]

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
    report = Report(files=[display_path(p) for p in files])
    config_path = config_path or find_config(files[0].parent)
    if config_path is not None:
        # partial: flows are checked against what config.yaml defines despite its errors,
        # so one mistake there is not reported again at every reference in the flows
        config, found = check_config(Path(config_path), display_path(Path(config_path)), partial=True)
        report.diagnostics.extend(found)
        report.config = config if config is not None else Config(path=str(config_path))
    named = {p.resolve() for p in files}
    extra: list[Path] = []
    if siblings:
        for folder in {p.resolve().parent for p in files}:
            extra.extend(p for p in sorted(folder.glob("*.yaml")) if p.resolve() not in named and not p.name.endswith(TEST_SUFFIX) and p.name != "config.yaml")
    docs: list[tuple[Document, bool]] = []
    for path in [*files, *extra]:
        reported = path.resolve() in named
        try:
            docs.append((load_file(path, display_path(path), strict=False, expected=FLOW_FILE), reported))
        except LoadError as exc:
            if reported:
                report.diagnostics.extend(exc.diagnostics)
    # a batch of checks builds many objects and no garbage cycles; see loader.gc_paused
    with gc_paused():
        compile_documents(docs, report)
    report.named = named
    if siblings and config_path is not None and _installation_flows(Path(config_path)) in {p.resolve().parent for p in files}:
        # config.yaml's numbers name flows: checked when every flow of the installation is known
        report.diagnostics.extend(line_findings(report.config, report.flow_ids))
    return report


def _installation_flows(config_path: Path) -> Path:
    """The installation's flows folder: flows/ beside config.yaml."""
    return (config_path.resolve().parent / "flows").resolve()


def compile_documents(docs: list[tuple[Document, bool]], report: Report) -> None:
    """Check documents against each other and compile those without errors into `report`.

    Findings are kept for the documents marked as reported; the others (sibling flows)
    are there so that goto targets, variables and loops across files can be checked.
    """
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
    ctx = Context(report.config, display_path(Path(report.config.path)) if report.config.path else "config.yaml", set(ids))
    report.flow_ids = set(ids)
    checked: list[CheckedFlow] = []
    broken: set[str] = set()
    refused: set[str] = set()
    for doc, reported in docs:
        # partial: a flow with errors still takes part in the loop check, so a loop is
        # reported in the same run as the file's other errors
        try:
            flow, found = check_flow(doc, ctx, partial=True)
        except LimitExceeded as exc:  # too big or too slow to check: refused whole
            flow, found = None, exc.diagnostics
            refused.add(doc.file)
        if reported:
            report.diagnostics.extend(found)
        if any(d.is_error for d in found):
            broken.add(doc.file)
        if flow is not None:
            checked.append(flow)
    reported_files = {doc.file for doc, reported in docs if reported}
    cross = _cross_flow_findings([(doc, reported) for doc, reported in docs if doc.file not in refused], ids)
    loops = _endless_loops(checked, ids, reported_files)
    broken.update(d.location.file for d in [*cross, *loops] if d.is_error)
    report.diagnostics.extend(d for d in [*cross, *loops] if d.location.file in reported_files)
    for flow in checked:
        if flow.doc.file not in broken and flow.complete:
            report.flows[flow.id] = compile_flow(flow)
    report.diagnostics[:] = sort_best_first(report.diagnostics)


def _raw_nodes(doc: Document) -> Iterable[tuple[str, dict]]:
    """(name, fields) of each node of a document as written, whatever else is wrong."""
    nodes = doc.data.get("nodes") if isinstance(doc.data, dict) else None
    if isinstance(nodes, dict):
        for name, node in nodes.items():
            if isinstance(name, str) and isinstance(node, dict):
                yield name, node


def _variables_set(doc: Document) -> set[str]:
    """Variables a flow assigns: inputs' save_as, and the `set` of menu options."""
    names: set[str] = set()
    for _name, node in _raw_nodes(doc):
        if is_name(node.get("save_as")):
            names.add(node["save_as"])
        options = node.get("options")
        if isinstance(options, dict):
            for option in options.values():
                if isinstance(option, dict) and isinstance(option.get("set"), dict):
                    names.update(k for k in option["set"] if is_name(k))
    return names


def _cross_flow_findings(docs: list[tuple[Document, bool]], ids: dict[str, Document]) -> list[Diagnostic]:
    """What only all flows together tell: goto nodes in other flows, variables never set."""
    assigned: set[str] = set()
    for doc, _reported in docs:
        assigned |= _variables_set(doc)
    found: list[Diagnostic] = []
    for doc, _reported in docs:
        for name, node in _raw_nodes(doc):
            path = ("nodes", name)
            target_flow, target = node.get("flow"), node.get("node")
            if node.get("type") == "goto" and isinstance(target_flow, str) and target_flow in ids and is_name(target):
                nodes = ids[target_flow].data.get("nodes") if isinstance(ids[target_flow].data, dict) else None
                if isinstance(nodes, dict) and target not in nodes:
                    names = [str(n) for n in nodes]
                    found.append(Diagnostic(
                        doc.at(path + ("node",)),
                        f'"node" of goto "{name}" goes to "{target}", which is no node of flow "{target_flow}"{did_you_mean(target, names)}',
                    ))
            rules = node.get("when")
            if node.get("type") == "route" and isinstance(rules, list):
                for i, rule in enumerate(rules):
                    var = rule.get("var") if isinstance(rule, dict) else None
                    if is_name(var) and var not in assigned:
                        found.append(Diagnostic(
                            doc.at(path + ("when", i, "var")),
                            f'rule {i + 1} of route "{name}" tests variable "{var}", which no input save_as or menu option set assigns{did_you_mean(var, assigned)}',
                            WARNING,
                            rank=3,
                        ))
    return found


def compile_text(text: str, file: str = "<flow>", config: Config | None = None, others: Iterable[str] = ()) -> Flow:
    """Compile one flow from text (tests and tools); raise FlowError with every finding."""
    report = Report(config=config or Config())
    try:
        doc = load_text(text, file, expected=FLOW_FILE)
    except LoadError as exc:
        raise FlowError(exc.diagnostics) from None
    ids = set(others)
    ctx = Context(report.config, "config.yaml", ids | {doc.data.get("flow")} if others and isinstance(doc.data, dict) else None)
    try:
        flow, found = check_flow(doc, ctx)
    except LimitExceeded as exc:
        raise FlowError(exc.diagnostics) from None
    if flow is not None:
        found = [*found, *_endless_loops([flow], {flow.id: doc}, {doc.file})]
    found = sort_best_first(found)
    if flow is None or any(d.is_error for d in found):
        errors = [d for d in found if d.is_error]
        if not errors:  # it names a part of config.yaml that has errors of its own
            errors = [Diagnostic(Location(file, 1, 1), "the flow needs parts of config.yaml that have errors; fix config.yaml first")]
        raise FlowError(errors)
    return compile_flow(flow)


def load_flows(paths: Iterable[str | Path], config_path: Path | None = None) -> tuple[FlowSet, Config]:
    """Every flow under `paths`, compiled; raise FlowError/ConfigError on any error.
    (ivr.installation.load_installation also checks the recorded prompt files.)"""
    return compiled(check_project(paths, config_path))


def compiled(report: Report) -> tuple[FlowSet, Config]:
    """The flows and config of a report; ConfigError for config.yaml's errors, else
    FlowError for any other."""
    config_errors = [d for d in report.errors if report.config.path and d.location.file == display_path(Path(report.config.path))]
    if config_errors:
        raise ConfigError(config_errors)
    return report.flow_set(), report.config


def _endless_loops(flows: list[CheckedFlow], ids: dict[str, Document], reported: set[str]) -> list[Diagnostic]:
    """Loops of nodes none of which waits for the caller: a live line would spin forever.

    Nodes are keyed by (file, name), so flows without a usable id still take part; a
    loop is reported at its first node in a reported file.
    """
    by_file = {f.doc.file: f for f in flows}
    graph: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for flow in flows:
        for name, draft in flow.nodes.items():
            if NODE_TYPES[draft.type].waits_for_caller:
                continue
            targets = [(flow.doc.file, t) for _label, t, _p in draft.exits()]
            if draft.type == "goto":
                target_doc = ids.get(draft.fields.get("flow"))  # type: ignore[arg-type]
                other = by_file.get(target_doc.file) if target_doc is not None else None
                if other is not None:
                    targets.append((other.doc.file, draft.fields.get("node") or other.start))
            graph[(flow.doc.file, name)] = [t for t in targets if _passive(by_file, t)]
    found = []
    for component in _cycles(graph):
        first = min(component, key=lambda n: (n[0] not in reported, n[0], by_file[n[0]].nodes[n[1]].line))
        order = _walk(first, component, graph)
        names = " -> ".join(n if f == first[0] else f"{by_file[f].id}:{n}" for f, n in order)
        draft = by_file[first[0]].nodes[first[1]]
        kinds = " and ".join(sorted({by_file[f].nodes[n].type for f, n in order}))
        if len(order) == 1:
            what = f"node {names} leads back to itself, a loop callers can never leave: a {kinds} node does not wait for a key"
        else:
            what = f"nodes {names} -> {order[0][1]} form a loop callers can never leave: none of these {kinds} nodes waits for a key"
        found.append(Diagnostic(by_file[first[0]].doc.key_at(draft.path), f"{what}; put a menu on the loop or let it end", rank=2))
    return found


def _passive(by_file: dict[str, CheckedFlow], target: tuple[str, str]) -> bool:
    flow = by_file.get(target[0])
    draft = flow.nodes.get(target[1]) if flow else None
    return draft is not None and not NODE_TYPES[draft.type].waits_for_caller


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


def display_path(path: Path) -> str:
    """A path as users typed it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

"""Checks of one flow file against the format, config.yaml and the other flows.

Every finding of a file is collected (never only the first) with its location and a fix
where one is likely. What passes is handed to the compiler as a `CheckedFlow`: values
already parsed (durations in seconds, keys as text, departments as objects).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Collection, Iterator

from ivr.settings.config import Config
from ivr.flow import spec
from ivr.flow.announcements import check_announcements
from ivr.yamldoc.diagnostics import Findings, did_you_mean
from ivr.yamldoc.limits import deadline
from ivr.yamldoc.loader import Document, LimitExceeded, check_time, describe
from ivr.flow.model import ANY_LANGUAGE
from ivr.flow.nodes import NODE_TYPES
from ivr.flow.check_composite import INVALID, CompositeValues
from ivr.yamldoc.values import parse_duration, parse_key, is_name

# nodes in one flow, beside the limits of every YAML file (ivr.yamldoc.limits): 2.5 times
# the compile benchmark's 10,000-node flow, which checks in about a second; a real line has
# tens to hundreds
MAX_NODES = 25_000
# how names are written, for messages: every node, prompt, variable and flow name
NAME_RULE = "a letter or '_' first, then letters, digits, '_' or '-'"
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")
# languages written by name, for a hint: these are the codes
_LANGUAGE_NAMES = {
    "english": "en", "polish": "pl", "polski": "pl", "german": "de", "deutsch": "de", "french": "fr",
    "spanish": "es", "italian": "it", "ukrainian": "uk", "russian": "ru", "czech": "cs", "dutch": "nl",
    "portuguese": "pt", "swedish": "sv", "norwegian": "no", "danish": "da", "finnish": "fi",
}


@dataclass
class Context:
    """What a flow is checked against."""

    config: Config
    config_name: str = "config.yaml"
    flow_ids: Collection[str] | None = None  # None: goto targets are not checked


@dataclass
class NodeDraft:
    name: str
    type: str
    path: tuple
    line: int
    fields: dict[str, Any] = field(default_factory=dict)

    def exits(self) -> Iterator[tuple[str, str, tuple]]:
        """(label, target node, path of the reference) of every edge in the flow."""
        node_type = NODE_TYPES[self.type]
        for name, value in self.fields.items():
            fspec = node_type.fields.get(name)
            if fspec is None or value is None:  # None: a required field the file lacks or misspelt
                continue
            if fspec.kind == spec.NODE and isinstance(value, str):
                yield fspec.edge or name, value, self.path + (name,)
            elif fspec.kind == spec.OPTIONS:
                for key, option in value.items():
                    yield key, option["next"], option["path"]
            elif fspec.kind == spec.RULES:
                for rule, path in value:
                    yield rule.label, rule.next, path


@dataclass
class CheckedFlow:
    doc: Document
    id: str
    description: str
    languages: tuple[str, ...]
    start: str
    prompts: dict[str, tuple[dict, dict]]  # name -> (texts, files)
    nodes: dict[str, NodeDraft]
    # False when the flow names a department, schedule or segment that config.yaml
    # declares but could not read: config.yaml's own findings say why, and the flow
    # cannot be compiled without it
    complete: bool = True


def check_flow(doc: Document, ctx: Context, *, partial: bool = False) -> tuple[CheckedFlow | None, list]:
    """All findings about one flow document, and the checked flow when it has no error.

    With `partial`, the flow is returned despite errors (when the file is a mapping at
    all): its nodes keep only the fields that passed, which is enough to look for loops.
    """
    doc.deadline = deadline(doc.limits)  # checking has its own time (limits.max_seconds)
    checker = _FlowChecker(doc, ctx)
    checker.findings.items.extend(doc.problems)
    flow = checker.run()
    if flow is not None and checker.config_broken:
        flow.complete = False
    if (checker.findings.has_errors or checker.config_broken) and not partial:
        flow = None
    return flow, checker.findings.items


class _FlowChecker(CompositeValues):
    def __init__(self, doc: Document, ctx: Context):
        self.doc = doc
        self.ctx = ctx
        self.findings = Findings(doc)
        self.flow_id = "?"
        self.languages: tuple[str, ...] = ()
        # dicts, not lists: ordered for messages, and a lookup stays O(1) in a 10,000-node flow
        self.node_names: dict[str, None] = {}
        self.prompt_names: dict[str, None] = {}
        self.used_prompts: set[str] = set()
        self.defaults: dict[str, Any] = {}
        # node -> nodes it leads to, counting a misspelt reference as the node it likely
        # means, so a typo is reported once and not again as unreachable nodes
        self.edges: dict[str, set[str]] = {}
        self.config_broken = False  # a reference to a part of config.yaml with errors
        self.raw_languages: set[str] = set()  # as written, valid or not

    def error(self, path, message, **kw):
        self.findings.error(path, message, **kw)

    # --- the file -----------------------------------------------------------------------
    def run(self) -> CheckedFlow | None:
        data = self.doc.data
        if not isinstance(data, dict):
            if data is None:
                self.error((), "the file holds only an empty value (null); a flow file must be a mapping with flow, languages, start, prompts and nodes", rank=0)
            else:
                self.error((), f"a flow file must be a mapping with flow, languages, start, prompts and nodes, not {describe(data)}", rank=0)
            return None
        misspelt: set[str] = set()
        for key in data:
            if key not in spec.TOP_FIELDS:
                hint = did_you_mean(key, spec.TOP_FIELDS)
                meant = self._intended(key, list(spec.TOP_FIELDS))
                if meant is not None:
                    misspelt.add(meant)
                if not hint and key in NODE_TYPES["menu"].fields:
                    hint = " (node fields belong under nodes: <name>:)"
                self.error((key,), f'"{key}" is no field of a flow{hint}', at_key=True, rank=0)
        for key, fspec in spec.TOP_FIELDS.items():
            if fspec.required and key not in data and key not in misspelt:  # a typo is reported once
                self.error((), f'the flow needs "{key}": {fspec.doc}', rank=0)
        self.flow_id = self._flow_id(data.get("flow"))
        self.languages = self._languages(data.get("languages"))
        description = data.get("description", "")
        if not isinstance(description, str):
            self.error(("description",), f"description must be text, not {describe(description)}")
        prompts = self._prompts(data.get("prompts"))
        nodes_data = data.get("nodes")
        nodes_ok = True
        if nodes_data is not None and not isinstance(nodes_data, dict):
            hint = " (write each node as `name:` with its fields indented below, without a leading \"-\")" if isinstance(nodes_data, list) else ""
            self.error(("nodes",), f"nodes must be a mapping of node names to nodes, not {describe(nodes_data)}{hint}", rank=0)
            nodes_data, nodes_ok = {}, False
        nodes_data = nodes_data or {}
        if len(nodes_data) > MAX_NODES:
            # refused whole: checking it would take long, and a flow this big is a generator's mistake
            raise LimitExceeded.at(self.doc.key_at(("nodes",)), (
                f"the flow has {len(nodes_data):,} nodes, more than the {MAX_NODES:,} one flow may have "
                "(the 10,000-node benchmark flow checks in about a second); split it into several flows joined by goto nodes"))
        if "nodes" in data and not nodes_data and nodes_ok:
            self.error(("nodes",), "the flow has no nodes", rank=0)
        self.node_names = dict.fromkeys(str(n) for n in nodes_data)
        self.defaults = self._defaults(data.get("defaults"))
        nodes: dict[str, NodeDraft] = {}
        for name, value in nodes_data.items():
            # the limits bound the file's size, but a check's cost is not always linear (a
            # did-you-mean looks at every node name): the clock stops what they do not
            check_time(self.doc, ("nodes", name), "checking the flow")
            draft = self._node(name, value)
            if draft is not None:
                nodes[draft.name] = draft
        starts: set[str] = set()
        for path, dropped in self.doc.dropped:
            # the value a duplicate key hid still shows what the author meant
            if path[0] == "nodes" and len(path) >= 2:
                self._loose_references(str(path[1]), dropped)
            elif path == ("start",) and dropped in self.node_names:
                starts.add(dropped)
        start = data.get("start")
        if "start" in data and nodes_ok:  # without nodes, every start would be reported
            start = self._node_ref(start, ("start",), "start of the flow")
        if nodes_ok:  # with the nodes unreadable, no prompt is known to be played
            for name in self.prompt_names:
                if name not in self.used_prompts:
                    self.findings.warning(("prompts", name), f'prompt "{name}" is never played', at_key=True)
        check_announcements(nodes, nodes_data, self.ctx.config, self.findings)
        flow = CheckedFlow(self.doc, self.flow_id, description if isinstance(description, str) else "", self.languages, start if isinstance(start, str) else "", prompts, nodes)
        intended = start if isinstance(start, str) else self._intended(data.get("start"), self.node_names)
        if intended in nodes:
            self._unreachable(flow, intended, starts)
        return flow

    @staticmethod
    def _intended(value: Any, names: dict[str, None]) -> str | None:
        """The name a reference means: itself, or the close match a typo suggests."""
        if not isinstance(value, str):
            return None
        if value in names:
            return value
        hint = did_you_mean(value, names)
        return hint.split('"')[1] if hint else None

    def _flow_id(self, value: Any) -> str:
        if value is None:
            return "?"
        if not is_name(value):
            self.error(("flow",), f"the flow id must be a name ({NAME_RULE}), not {describe(value)}", rank=0)
            return str(value)
        return value

    def _languages(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.error(("languages",), f"languages must be a list of language codes such as [pl, en], not {describe(value)}", rank=0)
            return ()
        result = []
        self.raw_languages = {lang for lang in value if isinstance(lang, str)}
        for i, lang in enumerate(value):
            if not isinstance(lang, str) or not _LANGUAGE.match(lang):
                code = _LANGUAGE_NAMES.get(lang.lower()) if isinstance(lang, str) else None
                if code is None and isinstance(lang, str) and _LANGUAGE.match(lang.lower()):
                    code = lang.lower()
                hint = f' (did you mean "{code}"?)' if code else ""
                self.error(("languages", i), f"{describe(lang)} is not a language code such as pl or en{hint}")
            elif lang in result:
                self.error(("languages", i), f'language "{lang}" is listed twice')
            else:
                result.append(lang)
        return tuple(result)

    def _speaks(self, language: Any) -> bool:
        """Whether the flow speaks `language`; with its languages unreadable, any counts
        (the languages field has its own finding, which would else repeat everywhere)."""
        if not isinstance(language, str):
            return False
        return language in self.languages or language in self.raw_languages or not self.languages

    def _defaults(self, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(("defaults",), f"defaults must be a mapping, not {describe(value)}")
            return {}
        result = {}
        menu_fields = NODE_TYPES["menu"].fields
        for key, val in value.items():
            if key not in spec.DEFAULTABLE:
                self.error(("defaults", key), f'"{key}" cannot have a default{did_you_mean(key, spec.DEFAULTABLE)}; defaults take {", ".join(spec.DEFAULTABLE)}', at_key=True)
                continue
            parsed = self._value(menu_fields[key], val, ("defaults", key), f'default "{key}"')
            if parsed is not INVALID:
                result[key] = parsed
        return result

    # --- prompts ------------------------------------------------------------------------
    def _prompts(self, value: Any) -> dict[str, tuple[dict, dict]]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(("prompts",), f"prompts must be a mapping of prompt names to texts, not {describe(value)}", rank=0)
            return {}
        self.prompt_names = dict.fromkeys(str(n) for n in value)
        result = {}
        for name, item in value.items():
            parsed = self._prompt(str(name), item, ("prompts", name))
            if parsed is not None:
                result[str(name)] = parsed
        return result

    def _prompt(self, name: str, item: Any, path: tuple) -> tuple[dict, dict] | None:
        texts: dict[str, str] = {}
        files: dict[str, str] = {}
        if not is_name(name):
            self.error(path, f"prompt name {describe(name)} is not a name: use {NAME_RULE}", at_key=True)
        if isinstance(item, str):
            if len(self.languages) > 1:
                self.error(path, f'prompt "{name}" has one text, but the flow speaks {", ".join(self.languages)}; give one per language ({self.languages[0]}: ..., {self.languages[1]}: ...)')
                return None
            texts = {lang: item for lang in self.languages}
            return texts, files
        if not isinstance(item, dict) or not item:
            self.error(path, f'prompt "{name}" must be a mapping of languages to texts, or {{file: ...}}, not {describe(item)}')
            return None
        for key, val in item.items():
            where = path + (key,)
            if key == "file":
                if not isinstance(val, str) or not val:
                    self.error(where, f"file must be the path of a recording, not {describe(val)}")
                else:
                    files[ANY_LANGUAGE] = val
            elif self._speaks(key):
                if isinstance(val, str) and val.strip():
                    texts[key] = val
                elif isinstance(val, dict) and set(val) <= {"text", "file"} and val:
                    if isinstance(val.get("text"), str):
                        texts[key] = val["text"]
                    if isinstance(val.get("file"), str):
                        files[key] = val["file"]
                else:
                    self.error(where, f'the {key} text of prompt "{name}" must be text or {{file: ..., text: ...}}, not {describe(val)}')
            else:
                hint = did_you_mean(key, [*self.languages, "file"])
                self.error(where, f'prompt "{name}" has "{key}", which is not a language of this flow ({", ".join(self.languages) or "none listed"}){hint}', at_key=True)
        if ANY_LANGUAGE not in files:
            for lang in self.languages:
                if lang not in texts and lang not in files:
                    self.error(path, f'prompt "{name}" has no {lang} text; the flow speaks {", ".join(self.languages)}', at_key=True)
        return texts, files

    # --- nodes --------------------------------------------------------------------------
    def _node(self, name: Any, value: Any) -> NodeDraft | None:
        path = ("nodes", name)
        if not is_name(name):
            self.error(path, f"node name {describe(name)} is not a name: use {NAME_RULE}", at_key=True)
            return None
        if not isinstance(value, dict):
            hint = f" (did you mean `{name}: {{type: {value}}}`?)" if isinstance(value, str) and value in NODE_TYPES else ""
            self.error(path, f'node "{name}" must be a mapping with a type and its fields, not {describe(value)}{hint}', rank=0)
            self._loose_references(name, value)
            return None
        node_type = value.get("type")
        if node_type is None:
            self.error(path, f'node "{name}" has no type; use one of {", ".join(NODE_TYPES)}', at_key=True, rank=0)
            self._loose_references(name, value)
            return None
        if not isinstance(node_type, str):
            self.error(path + ("type",), f'the type of node "{name}" must be one of {", ".join(NODE_TYPES)}, not {describe(node_type)}', rank=0)
            self._loose_references(name, value)
            return None
        if node_type not in NODE_TYPES:
            hint = did_you_mean(node_type, NODE_TYPES) or f' (types: {", ".join(NODE_TYPES)})'
            self.error(path + ("type",), f'node "{name}" has unknown type {describe(node_type)}{hint}', rank=0)
            self._loose_references(name, value)
            return None
        nspec = NODE_TYPES[node_type]
        line = self.doc.key_at(path).line
        draft = NodeDraft(name, node_type, path, line)
        what = f'{node_type} "{name}"'
        misspelt: set[str] = set()
        for key, val in value.items():
            if key in spec.COMMON:
                continue
            fspec = nspec.fields.get(key)
            if fspec is None:
                # a field of other node types is likely meant as such, not as a typo
                owners = [t for t, s in NODE_TYPES.items() if key in s.fields]
                meant_name = None if owners else self._intended(key, list(nspec.fields))
                if owners:
                    hint = f" (it belongs to {', '.join(owners[:3])} nodes; {node_type} fields: {', '.join(nspec.fields)})"
                elif meant_name is not None:
                    hint = f' (did you mean "{meant_name}"?)'
                    meant = nspec.fields[meant_name]
                    misspelt.add(meant_name)
                    # `nxt: x` still leads to x and `promt: p` still plays p
                    self._loose_references(name, val, nodes=meant.kind in (spec.NODE, spec.OPTIONS, spec.RULES), prompts=meant.kind == spec.PROMPT)
                else:
                    hint = f" ({node_type} fields: {', '.join(nspec.fields)})"
                self.error(path + (key,), f'"{key}" is no field of {node_type} nodes{hint}', at_key=True)
                continue
            parsed = self._value(fspec, val, path + (key,), f'"{key}" of {what}')
            if parsed is not INVALID:
                draft.fields[key] = parsed
        for key, fspec in nspec.fields.items():
            if key in value:
                continue
            if key in self.defaults:
                draft.fields[key] = self.defaults[key]
            elif fspec.required and key not in misspelt:  # a typo of it is reported already
                self.error(path, f'{what} needs "{key}": {fspec.doc}', at_key=True)
            else:
                draft.fields[key] = fspec.default
        nspec.check(draft, value, what, self.error)
        for key, fspec in nspec.fields.items():
            source = draft.fields.get(fspec.default_from) if fspec.default_from else None
            if draft.fields.get(key) is None and isinstance(source, str):
                draft.fields[key] = source
        return draft

    def _loose_references(self, name: str, value: Any, *, nodes: bool = True, prompts: bool = True) -> None:
        """Count every name inside a node that could not be checked as used.

        A node with an unknown type (or a misspelt field) still shows where the author
        meant calls to go and what they meant callers to hear; without this, one typo
        would also be reported as unreachable nodes and prompts never played.
        """
        if isinstance(value, dict):
            for item in value.values():
                self._loose_references(name, item, nodes=nodes, prompts=prompts)
        elif isinstance(value, list):
            for item in value:
                self._loose_references(name, item, nodes=nodes, prompts=prompts)
        elif isinstance(value, str):
            if nodes and value in self.node_names:
                self.edges.setdefault(name, set()).add(value)
            if prompts and value in self.prompt_names:
                self.used_prompts.add(value)

    # --- field values -------------------------------------------------------------------
    def _value(self, fspec: spec.Field, value: Any, path: tuple, what: str) -> Any:
        kind = fspec.kind
        if kind == spec.NODE:
            return self._node_ref(value, path, what)
        if kind == spec.PROMPT:
            return self._prompt_ref(value, path, what)
        if kind == spec.DURATION:
            seconds = parse_duration(value)
            if seconds is None:
                self.error(path, f"{what} must be a duration such as 5s, 3m or 1h, not {describe(value)}")
                return INVALID
            return seconds
        if kind == spec.KEY:
            key = parse_key(value)
            if key is None:
                self.error(path, f"{what} must be one keypad key (0-9, * or #), not {describe(value)}")
                return INVALID
            return key
        if kind == spec.INT:
            if isinstance(value, bool) or not isinstance(value, int) or not fspec.low <= value <= fspec.high:
                self.error(path, f"{what} must be a whole number from {fspec.low} to {fspec.high}, not {describe(value)}")
                return INVALID
            return value
        if kind == spec.BOOL:
            if not isinstance(value, bool):
                self.error(path, f"{what} must be true or false, not {describe(value)}")
                return INVALID
            return value
        if kind == spec.NAME:
            if not is_name(value):
                self.error(path, f"{what} must be a name ({NAME_RULE}), not {describe(value)}")
                return INVALID
            return value
        if kind == spec.TEXT:
            if not isinstance(value, str) or not value.strip():
                self.error(path, f"{what} must be text, not {describe(value)}")
                return INVALID
            return value
        if kind in (spec.DEPARTMENT, spec.SCHEDULE):
            return self._config_ref(kind, value, path, what)
        if kind == spec.FLOW:
            return self._flow_ref(value, path, what)
        if kind == spec.OPTIONS:
            return self._options(value, path, what)
        if kind == spec.RULES:
            return self._rules(value, path, what)
        if kind == spec.SCALE:
            return self._scale(value, path, what)
        if kind == spec.SAMPLE:
            return self._sample(value, path, what)
        raise AssertionError(f"unknown field kind {kind}")  # pragma: no cover - spec is fixed

    def _node_ref(self, value: Any, path: tuple, what: str) -> Any:
        if not isinstance(value, str):
            self.error(path, f"{what} must name a node, not {describe(value)}")
            return INVALID
        intended = self._intended(value, self.node_names)
        if path[0] == "nodes" and intended is not None:
            self.edges.setdefault(path[1], set()).add(intended)
        if value not in self.node_names:
            hint = did_you_mean(value, self.node_names)
            self.error(path, f'{what} goes to "{value}", which is no node of flow "{self.flow_id}"{hint}')
            return INVALID
        return value

    def _prompt_ref(self, value: Any, path: tuple, what: str) -> Any:
        if not isinstance(value, str):
            self.error(path, f"{what} must name a prompt, not {describe(value)}")
            return INVALID
        self.used_prompts.add(value)
        intended = self._intended(value, self.prompt_names)
        if intended is not None:
            self.used_prompts.add(intended)
        if value not in self.prompt_names:
            hint = did_you_mean(value, self.prompt_names)
            self.error(path, f'{what} plays "{value}", which is no prompt of flow "{self.flow_id}"{hint}')
            return INVALID
        return value

    def _declared_broken(self, section: str, value: Any) -> bool:
        """True for a name config.yaml declares but could not read (its errors say why)."""
        declared = self.ctx.config.raw.get(section) if isinstance(self.ctx.config.raw, dict) else None
        if isinstance(value, str) and isinstance(declared, dict) and value in declared:
            self.config_broken = True
            return True
        return False

    def _config_ref(self, kind: str, value: Any, path: tuple, what: str) -> Any:
        table = self.ctx.config.departments if kind == spec.DEPARTMENT else self.ctx.config.schedules
        if not isinstance(value, str) or value not in table:
            if self._declared_broken(f"{kind}s", value):
                return INVALID
            if self.ctx.config.path is None:
                self.error(path, f"{what} names {kind} {describe(value)}, but no config.yaml was found to define it")
            else:
                known = f"{kind}s: {', '.join(table) or 'none'}"
                self.error(path, f"{what} names {kind} {describe(value)}, which is not in {self.ctx.config_name}{did_you_mean(value, table)} ({known})")
            return INVALID
        return table[value]

    def _flow_ref(self, value: Any, path: tuple, what: str) -> Any:
        if not is_name(value):
            self.error(path, f"{what} must be a flow id, not {describe(value)}")
            return INVALID
        known = self.ctx.flow_ids
        if known is not None and value not in known:
            self.error(path, f'{what} goes to flow "{value}", which no flow file defines{did_you_mean(value, known)} (flows: {", ".join(sorted(known))})')
            return INVALID
        return value

    # --- graph --------------------------------------------------------------------------
    def _unreachable(self, flow: CheckedFlow, start: str, also: set[str]) -> None:
        seen = {start, *also}
        todo = list(seen)
        while todo:
            for target in self.edges.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        for name, draft in flow.nodes.items():
            if name not in seen:
                self.findings.warning(draft.path, f'node "{name}" is never reached from start "{start}"', at_key=True)


__all__ = ["Context", "CheckedFlow", "NodeDraft", "check_flow"]

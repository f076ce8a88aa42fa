"""YAML documents with line marks.

PyYAML's compose step (safe, libyaml when present) gives nodes with marks; we turn them
into plain Python data and remember where every key and value stood, by path. PyYAML
keeps the last of two equal keys without a word; we report the second one instead.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from ivr.flow.diagnostics import ERROR, Diagnostic, Location

try:  # libyaml is several times faster; the pure-Python parser gives the same marks
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader

PathKey = tuple[Union[str, int], ...]
_STR_TAG = "tag:yaml.org,2002:str"
_constructor = yaml.constructor.SafeConstructor()


@dataclass
class Document:
    """One YAML file: its data, and where each part of it stood."""

    file: str
    data: Any
    value_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    # the text of each scalar as written, for values YAML 1.1 reads surprisingly
    raw: dict[PathKey, str] = field(default_factory=dict)

    def at(self, path: PathKey) -> Location:
        """Where the value at `path` starts (falls back to its nearest parent)."""
        return self._find(self.value_marks, path)

    def key_at(self, path: PathKey) -> Location:
        """Where the key naming `path` starts (the value's place for list items)."""
        if path in self.key_marks:
            line, col = self.key_marks[path]
            return Location(self.file, line, col)
        return self.at(path)

    def _find(self, marks: dict[PathKey, tuple[int, int]], path: PathKey) -> Location:
        while path not in marks and path:
            path = path[:-1]
        line, col = marks.get(path, (1, 1))
        return Location(self.file, line, col)


class LoadError(Exception):
    """Raised with the diagnostics when a file cannot be read as YAML at all."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("; ".join(str(d) for d in diagnostics))


def load_file(path: Union[str, Path], display: str | None = None) -> Document:
    path = Path(path)
    name = display or str(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise LoadError([Diagnostic(Location(name, 1, 1), f"cannot read file: {exc.strerror}", rank=0)])
    return load_text(text, name)


def load_text(text: Union[str, bytes], file: str = "<string>") -> Document:
    """Parse one YAML document; every finding (syntax, duplicate keys) raises LoadError."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LoadError([Diagnostic(Location(file, 1, 1), f"not UTF-8 text (byte {exc.start})", rank=0)])
    if text.startswith("\ufeff"):
        text = text[1:]
    root = _compose(text, file)
    if root is None:
        raise LoadError([Diagnostic(Location(file, 1, 1), "the file is empty; expected a mapping of fields", rank=0)])
    doc = Document(file, None)
    problems: list[Diagnostic] = []
    doc.data = _convert(root, (), doc, problems)
    if problems:
        raise LoadError(problems)
    return doc


def _compose(text: str, file: str) -> yaml.Node | None:
    # Composing allocates many small objects; the cyclic collector adds nothing here but
    # time (it more than tripled the load of a 10,000-node flow), so it rests meanwhile.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise LoadError([Diagnostic(Location(file, line, col), _yaml_message(exc, text, mark), rank=0)])
    except yaml.YAMLError as exc:
        message = str(exc).splitlines()[0]
        if "expected a single document" in str(exc):
            message = "the file holds more than one YAML document ('---'); put one flow in each file"
        raise LoadError([Diagnostic(Location(file, 1, 1), f"not valid YAML: {message}", rank=0)])
    finally:
        if was_enabled:
            gc.enable()


def _yaml_message(exc: yaml.MarkedYAMLError, text: str, mark: Any) -> str:
    problem = exc.problem or exc.context or "syntax error"
    message = f"not valid YAML: {problem}"
    if mark is not None:
        lines = text.splitlines()
        line = lines[mark.line] if mark.line < len(lines) else ""
        char = line[mark.column : mark.column + 1]
        if "alias" in problem or char in ("*", "&") or "*" in line.strip()[:2]:
            message += ' (a key or value starting with "*" must be quoted: "*")'
        elif "\t" in line[: mark.column + 1]:
            message += " (indent with spaces, not tabs)"
    if "another document" in problem or "single document" in problem:
        message = "the file holds more than one YAML document ('---'); put one flow in each file"
    return message


def _convert(node: yaml.Node, path: PathKey, doc: Document, problems: list[Diagnostic]) -> Any:
    doc.value_marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _STR_TAG:
            return node.value
        doc.raw[path] = node.value
        try:
            return _constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            problems.append(Diagnostic(doc.at(path), f"not valid YAML: {exc.problem}", rank=0))
            return node.value
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), doc, problems) for i, item in enumerate(node.value)]
    result: dict[Any, Any] = {}
    first_seen: dict[Any, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            problems.append(Diagnostic(_loc(doc, key_node), "a key must be a plain word or number, not a list or mapping", rank=0))
            continue
        if key_node.tag == "tag:yaml.org,2002:merge":
            problems.append(Diagnostic(_loc(doc, key_node), 'merge keys ("<<") are not supported in flow files; write the fields out', rank=0))
            continue
        key = key_node.value if key_node.tag == _STR_TAG else _scalar(key_node)
        if isinstance(key, bool) or key is None:
            # `yes:`/`no:`/`on:`/`null:` read as booleans in YAML 1.1; keep the written word
            key = key_node.value
        if key in first_seen:
            problems.append(
                Diagnostic(
                    _loc(doc, key_node),
                    f'duplicate key "{key}" (first given on line {first_seen[key]}); YAML would silently keep only this one',
                    rank=0,
                )
            )
            continue
        first_seen[key] = key_node.start_mark.line + 1
        child = path + (key,)
        doc.key_marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        if key_node.tag != _STR_TAG:
            doc.raw.setdefault(child + ("<key>",), key_node.value)
        result[key] = _convert(value_node, child, doc, problems)
    return result


def _scalar(node: yaml.ScalarNode) -> Any:
    try:
        return _constructor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError:
        return node.value


def _loc(doc: Document, node: yaml.Node) -> Location:
    return Location(doc.file, node.start_mark.line + 1, node.start_mark.column + 1)


def describe(value: Any) -> str:
    """How a value reads in an error message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a yes/no value)"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


__all__ = ["Document", "LoadError", "load_file", "load_text", "describe", "ERROR", "PathKey"]

"""YAML documents with line marks.

PyYAML's compose step (safe, libyaml when present) gives nodes with marks; we turn them
into plain Python data and remember where every key and value stood, by path. PyYAML
keeps the last of two equal keys without a word; we report the second one instead.

A syntax error stops the reading of a file. Findings about a well-formed file (a
duplicate key, say) raise LoadError too, unless the caller asks for `strict=False`: then
they travel on the Document (`problems`) so the checks can still report everything else
in the same run.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Union

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
    # errors met while reading a well-formed file (duplicate keys), with strict=False
    problems: list[Diagnostic] = field(default_factory=list)
    # the values of repeated keys, which `data` leaves out (it keeps the first), by path
    dropped: list[tuple[PathKey, Any]] = field(default_factory=list)

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


def load_file(path: Union[str, Path], display: str | None = None, *, strict: bool = True, expected: str = "a mapping of fields") -> Document:
    """Read one YAML file; `display` is the name used in findings (see `load_text`)."""
    path = Path(path)
    name = display or str(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise LoadError([Diagnostic(Location(name, 1, 1), f"cannot read file: {exc.strerror}", rank=0)])
    return load_text(text, name, strict=strict, expected=expected)


def load_text(text: Union[str, bytes], file: str = "<string>", *, strict: bool = True, expected: str = "a mapping of fields") -> Document:
    """Parse one YAML document; a syntax error (or an empty file) raises LoadError.

    `expected` says what the file should hold, for the message about an empty file.

    Other findings (duplicate keys, merge keys) raise LoadError too when `strict`; else
    they are kept in `Document.problems` and the data holds the first of equal keys.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LoadError([Diagnostic(Location(file, 1, 1), f"not UTF-8 text (byte {exc.start})", rank=0)])
    if text.startswith("\ufeff"):
        text = text[1:]
    root = _compose(text, file)
    if root is None:
        raise LoadError([Diagnostic(Location(file, 1, 1), f"the file is empty (or holds only comments); expected {expected}", rank=0)])
    doc = Document(file, None)
    problems: list[Diagnostic] = []
    with _gc_paused():  # converting allocates as much as composing (see _compose)
        doc.data = _convert(root, (), doc, problems)
    if problems and strict:
        raise LoadError(problems)
    doc.problems = problems
    return doc


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic collector off meanwhile, as it was before afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _compose(text: str, file: str) -> yaml.Node | None:
    # Composing allocates many small objects; the cyclic collector adds nothing here but
    # time (it more than tripled the load of a 10,000-node flow), so it rests meanwhile.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark, message = _yaml_message(exc, text)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise LoadError([Diagnostic(Location(file, line, col), message, rank=0)])
    except yaml.YAMLError as exc:
        message = str(exc).splitlines()[0]
        if "expected a single document" in str(exc):
            message = "the file holds more than one YAML document ('---'); put one flow in each file"
        raise LoadError([Diagnostic(Location(file, 1, 1), f"not valid YAML: {message}", rank=0)])
    finally:
        if was_enabled:
            gc.enable()


_OPENERS = {"a flow sequence": ("[", "]"), "a flow mapping": ("{", "}")}


def _yaml_message(exc: yaml.MarkedYAMLError, text: str) -> tuple[Any, str]:
    """Where a syntax error is, and what it means for someone who edits flows."""
    problem = exc.problem or exc.context or "syntax error"
    context = exc.context or ""
    mark = exc.problem_mark or exc.context_mark
    start = exc.context_mark
    if "another document" in problem or "single document" in problem:
        return mark, "the file holds more than one YAML document ('---'); put one flow in each file"
    lines = text.splitlines()
    line = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
    if "alias" in context or "anchor" in context or "alias" in problem:
        # `*` (and `&`) start YAML aliases (anchors): a bare star key or value is one
        where = start if start is not None and ("alias" in context or "anchor" in context) else mark
        char = "&" if "anchor" in context else "*"
        return where, f'not valid YAML: a {char} that starts a key or value is read as a YAML {"anchor" if char == "&" else "alias"}; put it in quotes: "{char}"'
    if mark is not None and "\t" in line[: mark.column + 1]:
        return mark, "not valid YAML: a tab indents this line; indent with spaces only"
    message = f"not valid YAML: {problem}"
    for what, (opener, closer) in _OPENERS.items():
        if what in context and start is not None:
            return mark, f'{message} (the "{opener}" on line {start.line + 1}, column {start.column + 1} is never closed with "{closer}")'
    if "quoted scalar" in context and start is not None:
        return mark, f"{message} (the quote on line {start.line + 1}, column {start.column + 1} is never closed)"
    if "mapping values are not allowed" in problem:
        return mark, f'{message} (a ": " inside a value needs quotes, or this line is indented wrongly)'
    if "expected key" in problem or "expected <block end>" in problem:
        return mark, f"{message} (check the indentation of this line against the lines above)"
    return mark, message


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
        except (ValueError, OverflowError):
            # a timestamp that is no real date (2026-13-01): kept as written, so the
            # check of the field says what is wrong with it there
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
                    f'duplicate key "{key}" {_where(path)} (first on line {first_seen[key]}); '
                    "YAML would silently keep only the last one, so remove or rename one of them",
                    rank=0,
                )
            )
            doc.dropped.append((path + (key,), _convert(value_node, path + (key,), Document(doc.file, None), problems)))
            continue
        first_seen[key] = key_node.start_mark.line + 1
        child = path + (key,)
        doc.key_marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        if key_node.tag != _STR_TAG:
            doc.raw.setdefault(child + ("<key>",), key_node.value)
        result[key] = _convert(value_node, child, doc, problems)
    return result


def _where(path: PathKey) -> str:
    """`in nodes.welcome` or `at the top level`, for messages about a mapping."""
    if not path:
        return "at the top level"
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return f"in {text}"


def _scalar(node: yaml.ScalarNode) -> Any:
    try:
        return _constructor.construct_object(node, deep=True)
    except (yaml.constructor.ConstructorError, ValueError, OverflowError):
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

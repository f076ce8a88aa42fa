"""YAML documents with line marks.

PyYAML's parser (safe, libyaml when present) gives events with marks; we build plain
Python data from them in one pass and remember where every key and value stood, by path.
(PyYAML's own compose step would build a node tree first and resolve every scalar in
Python; skipping it makes a 10,000-node flow load several times faster.) PyYAML keeps the
last of two equal keys without a word; we report the second one instead.

A file past one of the limits of `ivr.yamldoc.limits` (size, values with aliases
expanded, nesting, time) is refused with a LimitExceeded finding as soon as the limit is
crossed: an alias adds what it stands for to the count when it is met, so a "billion
laughs" of aliases of aliases stops at the alias that crosses the limit, before anything
walks the shared values it would repeat.

A syntax error stops the reading of a file. Findings about a well-formed file (a
duplicate key, say) raise LoadError too, unless the caller asks for `strict=False`: then
they travel on the Document (`problems`) so the checks can still report everything else
in the same run.
"""

from __future__ import annotations

import gc
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Union

import yaml

from ivr.yamldoc import limits as _limits
from ivr.yamldoc.diagnostics import ERROR, Diagnostic, Location
from ivr.yamldoc.limits import Limits, size_text

try:  # libyaml is several times faster; the pure-Python parser gives the same marks
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader

PathKey = tuple[Union[str, int], ...]
_COLUMN = (1 << 32) - 1
_STR_TAG = "tag:yaml.org,2002:str"
_constructor = yaml.constructor.SafeConstructor()


@dataclass
class Document:
    """One YAML file: its data, and where each part of it stood."""

    file: str
    data: Any
    # where each value and key starts, by path, packed as line * 2**32 + column (0-based):
    # a plain int is not tracked by the cyclic GC, which a mark object per value would be
    value_marks: dict[PathKey, int] = field(default_factory=dict)
    key_marks: dict[PathKey, int] = field(default_factory=dict)
    # the text of each scalar as written, for values YAML 1.1 reads surprisingly
    raw: dict[PathKey, str] = field(default_factory=dict)
    # errors met while reading a well-formed file (duplicate keys), with strict=False
    problems: list[Diagnostic] = field(default_factory=list)
    # the values of repeated keys, which `data` leaves out (it keeps the first), by path
    dropped: list[tuple[PathKey, Any]] = field(default_factory=list)
    # when (time.monotonic) the step under way (reading, then checking) must end (limits.max_seconds)
    deadline: float = math.inf
    limits: Limits = field(default_factory=Limits)

    def at(self, path: PathKey) -> Location:
        """Where the value at `path` starts (falls back to its nearest parent)."""
        return self._find(self.value_marks, path)

    def key_at(self, path: PathKey) -> Location:
        """Where the key naming `path` starts (the value's place for list items)."""
        mark = self.key_marks.get(path)
        if mark is not None:
            return Location(self.file, (mark >> 32) + 1, (mark & _COLUMN) + 1)
        return self.at(path)

    def _find(self, marks: dict[PathKey, int], path: PathKey) -> Location:
        while path not in marks and path:
            path = path[:-1]
        mark = marks.get(path)
        if mark is None:
            return Location(self.file, 1, 1)
        return Location(self.file, (mark >> 32) + 1, (mark & _COLUMN) + 1)


class LoadError(Exception):
    """Raised with the diagnostics when a file cannot be read as YAML at all."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("; ".join(str(d) for d in diagnostics))


class LimitExceeded(LoadError):
    """A file past one of the limits of `ivr.yamldoc.limits`: refused, nothing more checked."""

    @classmethod
    def at(cls, where: Location, message: str) -> "LimitExceeded":
        return cls([Diagnostic(where, message, rank=0)])


def check_time(doc: Document, where: Union[Location, PathKey], doing: str) -> None:
    """Raise LimitExceeded when the file's time (limits.max_seconds) is up; `where` is a
    place or the path of a key in the document, `doing` what was under way."""
    if time.monotonic() > doc.deadline:
        place = where if isinstance(where, Location) else doc.key_at(where)
        raise LimitExceeded.at(place, f"{doing} took longer than {doc.limits.max_seconds:g} s, "
                                      "the most one file may take to read or to check; stopped here")


def load_file(path: Union[str, Path], display: str | None = None, *, strict: bool = True, expected: str = "a mapping of fields",
              limits: Limits | None = None) -> Document:
    """Read one YAML file; `display` is the name used in findings (see `load_text`).

    A file larger than `limits.max_bytes` is refused before it is read (and a file that
    grows while it is read is read no further than that)."""
    path = Path(path)
    name = display or str(path)
    limits = limits or _limits.DEFAULT
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            text = handle.read(limits.max_bytes + 1) if size <= limits.max_bytes else b""
            size = max(size, len(text))
    except OSError as exc:
        raise LoadError([Diagnostic(Location(name, 1, 1), f"cannot read file: {exc.strerror}", rank=0)])
    if size > limits.max_bytes:
        raise _too_large(name, size, limits)
    return load_text(text, name, strict=strict, expected=expected, limits=limits)


def _too_large(file: str, size: int, limits: Limits) -> LimitExceeded:
    return LimitExceeded.at(Location(file, 1, 1), f"the file is {size_text(size)}, more than the {size_text(limits.max_bytes)} "
                                                  "one file may be (the 10,000-node benchmark flow is 2.9 MB); "
                                                  "split a flow into several files joined by goto nodes")


def load_text(text: Union[str, bytes], file: str = "<string>", *, strict: bool = True, expected: str = "a mapping of fields",
              limits: Limits | None = None) -> Document:
    """Parse one YAML document; a syntax error (or an empty file) raises LoadError.

    `expected` says what the file should hold, for the message about an empty file.

    Other findings (duplicate keys, merge keys) raise LoadError too when `strict`; else
    they are kept in `Document.problems` and the data holds the first of equal keys.

    A text past a limit (`limits`, by default `ivr.yamldoc.limits.DEFAULT`) raises
    LimitExceeded, whatever `strict` says: nothing of it is kept.
    """
    limits = limits or _limits.DEFAULT
    started = _limits.deadline(limits)
    if len(text) > limits.max_bytes:  # characters of a str: a lower bound of its bytes
        raise _too_large(file, len(text), limits)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LoadError([Diagnostic(Location(file, 1, 1), f"not UTF-8 text (byte {exc.start})", rank=0)])
    if text.startswith("\ufeff"):
        text = text[1:]
    doc = Document(file, None, deadline=started, limits=limits)
    # Building allocates many small objects; the cyclic collector adds nothing here but
    # time (it more than tripled the load of a 10,000-node flow), so it rests meanwhile.
    with gc_paused():
        found = _Builder(doc).build(text)
    if found is _NOTHING:
        raise LoadError([Diagnostic(Location(file, 1, 1), f"the file is empty (or holds only comments); expected {expected}", rank=0)])
    doc.data = found
    if doc.problems and strict:
        raise LoadError(doc.problems)
    return doc


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic collector off meanwhile, as it was before afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_NOTHING = object()  # no document in the file
_IMPLICIT = yaml.resolver.Resolver.yaml_implicit_resolvers
_WILDCARD = _IMPLICIT.get(None, [])
if _WILDCARD:  # pragma: no cover - no PyYAML release registers one; the fast path relies on it
    raise ImportError("a YAML resolver for any first character is registered; the loader's fast path would misread scalars")
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _tag(event: yaml.ScalarEvent, memo: dict[str, str]) -> str:
    """The tag of a scalar, as PyYAML's resolver gives it (YAML 1.1 rules)."""
    if event.tag is not None:
        return _STR_TAG if event.tag == "!" else event.tag
    if not event.implicit[0]:
        return _STR_TAG  # quoted
    return _plain_tag(event.value, memo)


def _plain_tag(value: str, memo: dict[str, str]) -> str:
    """The tag of an unquoted, untagged scalar. The resolvers are keyed by a value's first
    character, and a plain word starting with any other character is text without trying
    them; the words that start like a number, a null or a boolean (`next`, `type`,
    `timeout`, node names) come back again and again in a flow, so each is resolved once
    per file (`memo`)."""
    tag = memo.get(value)
    if tag is None:
        tag = _STR_TAG
        for candidate, regexp in _IMPLICIT.get(value[0] if value else "", ()):
            if regexp.match(value):
                tag = candidate
                break
        memo[value] = tag
    return tag


class _Frame:
    """A mapping or list being built, and (for mappings) the key waiting for its value."""

    __slots__ = ("container", "path", "is_map", "key", "key_ok", "first_seen", "marks", "keep",
                 "anchor", "start", "depth", "deepest")

    def __init__(self, container, path, is_map, marks, keep, depth=0):
        self.container = container
        self.path = path
        self.is_map = is_map
        self.key = None  # None: the next scalar is a key
        self.key_ok = False
        self.first_seen: dict[Any, int] = {}
        self.marks = marks  # where this subtree's marks go (a throwaway for dropped values)
        self.keep = keep  # False inside a key that is a list or mapping: built, then discarded
        # for the limits: the anchor this collection defines, the count of values when it
        # began, its nesting depth, and the deepest nesting inside it (aliases expanded)
        self.anchor: str | None = None
        self.start = 0
        self.depth = depth
        self.deepest = depth


class _Builder:
    """Plain data with marks, from parser events, without recursion."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.anchors: dict[str, Any] = {}
        self.tags: dict[str, str] = {}  # plain scalar -> its tag (see _plain_tag)
        # per anchor whose value is complete: how many values it stands for, and how many
        # levels of lists and mappings it holds (0 for a scalar); an anchor still being
        # read has no entry, so an alias to it (a loop) is told apart
        self.sizes: dict[str, int] = {}
        self.heights: dict[str, int] = {}

    def build(self, text: str) -> Any:
        doc = self.doc
        root: Any = _NOTHING
        stack: list[_Frame] = []
        documents = 0
        marks, key_marks, raw, tags = doc.value_marks, doc.key_marks, doc.raw, self.tags
        limits = doc.limits
        max_values, max_depth = limits.max_values, limits.max_depth
        total = 0  # values met so far, each alias counted as what it stands for
        # the next count at which to look at the clock and the count limit (one comparison
        # per value on the common path)
        clock = min(_CLOCK_EVERY, max_values + 1)
        parser = _Loader(text)
        try:
            while True:
                # the parser's own get_event, without PyYAML's generator around it
                event = parser.get_event()
                cls = type(event)
                if cls is yaml.StreamEndEvent:
                    break
                if cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
                    done = stack.pop()
                    if done.anchor is not None:
                        self.sizes[done.anchor] = total - done.start + 1
                        self.heights[done.anchor] = done.deepest - done.depth + 1
                    if stack:
                        if done.deepest > stack[-1].deepest:
                            stack[-1].deepest = done.deepest
                        if stack[-1].is_map and stack[-1].key is _KEY_PENDING:
                            stack[-1].key = _BAD_KEY  # a list or mapping was the key: its value is dropped
                    continue
                if cls is yaml.DocumentStartEvent:
                    documents += 1
                    if documents > 1:
                        mark = event.start_mark
                        raise LoadError([Diagnostic(Location(doc.file, mark.line + 1, mark.column + 1),
                                                    "the file holds more than one YAML document ('---'); put one flow in each file", rank=0)])
                    continue
                if cls not in _VALUE_EVENTS:
                    continue
                mark = event.start_mark
                total += 1
                if total >= clock:
                    if total > max_values:
                        raise self._too_many(mark, max_values)
                    clock = min(total + _CLOCK_EVERY, max_values + 1)
                    check_time(doc, Location(doc.file, mark.line + 1, mark.column + 1), "reading the file")
                here = (mark.line << 32) | mark.column
                parent = stack[-1] if stack else None
                if parent is not None and parent.is_map and parent.key is None:
                    # a key; the common case (a plain word, quoted text) inline, for speed
                    if (cls is _SCALAR and event.tag is None and parent.keep
                            and (not event.implicit[0] or (event.value and (event.value[0] not in _IMPLICIT
                                                                            or _plain_tag(event.value, tags) == _STR_TAG)))):
                        key = event.value
                        parent.key = key
                        if key in parent.first_seen:
                            self._duplicate(key, parent, mark)
                        else:
                            parent.first_seen[key] = mark.line + 1
                            parent.key_ok = True
                            if parent.marks is marks:
                                key_marks[parent.path + (key,)] = here
                    else:
                        self._key(event, cls, parent, mark, stack)
                    continue
                # a value: where it goes, and where its marks go
                if parent is None:
                    path, target_marks, keep = (), marks, True
                elif parent.is_map:
                    keep = parent.keep and parent.key is not _BAD_KEY
                    path = parent.path + (parent.key,)
                    target_marks = {} if parent.key_ok is None else parent.marks
                else:
                    keep = parent.keep
                    path = parent.path + (len(parent.container),)
                    target_marks = parent.marks
                target_marks[path] = here
                if cls is _SCALAR:
                    if event.tag is None and (not event.implicit[0] or (event.value and event.value[0] not in _IMPLICIT)):
                        value = event.value  # text: quoted, or a word no resolver claims
                    else:
                        tag = _tag(event, tags)
                        if tag == _STR_TAG:
                            value = event.value
                        else:
                            if target_marks is marks:
                                raw[path] = event.value
                            value = self._construct(tag, event)
                elif cls is yaml.AliasEvent:
                    if event.anchor not in self.anchors:
                        self._problem(mark, f'not valid YAML: "*{event.anchor}" names no anchor; a "*" that starts a value must be quoted: "*"')
                        value = None
                    else:
                        value = self.anchors[event.anchor]
                        total = self._expand(event.anchor, mark, total, stack)
                else:
                    if len(stack) >= max_depth:
                        raise self._too_deep(mark, max_depth, None)
                    is_map = cls is yaml.MappingStartEvent
                    value = {} if is_map else []
                    frame = _Frame(value, path, is_map, target_marks, keep, len(stack) + 1)
                    stack.append(frame)
                    if event.anchor is not None:
                        frame.anchor, frame.start = event.anchor, total
                if event.anchor is not None and cls is not yaml.AliasEvent:
                    self.anchors[event.anchor] = value
                    if cls is _SCALAR:
                        self.sizes[event.anchor], self.heights[event.anchor] = 1, 0
                    else:  # open until its end event: an alias to it meanwhile is a loop
                        self.sizes.pop(event.anchor, None)
                        self.heights.pop(event.anchor, None)
                # attach
                if parent is None:
                    root = value
                elif parent.is_map:
                    if keep and parent.key_ok is True:
                        parent.container[parent.key] = value
                    elif keep and parent.key_ok is None:
                        doc.dropped.append((path, value))
                    parent.key = None
                else:
                    parent.container.append(value)
        except yaml.MarkedYAMLError as exc:
            mark, message = _yaml_message(exc, text)
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            raise LoadError([Diagnostic(Location(doc.file, line, col), message, rank=0)]) from None
        except yaml.YAMLError as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise LoadError([Diagnostic(Location(doc.file, 1, 1), f"not valid YAML: {message}", rank=0)]) from None
        finally:
            parser.dispose()
        return root

    def _expand(self, anchor: str, mark, total: int, stack: list[_Frame]) -> int:
        """Count an alias as the values it stands for; refuse a loop, or an alias that
        takes the file past the limits. Returns the new count."""
        size = self.sizes.get(anchor)
        if size is None:
            raise LimitExceeded.at(self._location(mark), f'the alias "*{anchor}" stands inside the value it names ("&{anchor}"), '
                                                         "so that value would repeat without end; write it out")
        limits = self.doc.limits
        total += size - 1  # the alias itself was counted as one
        if total > limits.max_values:
            raise LimitExceeded.at(self._location(mark), (
                f'the alias "*{anchor}" stands for {size:,} keys and values, which takes the file past {limits.max_values:,}, '
                "the most one file may hold; aliases of aliases multiply (a \"billion laughs\"): write the values out"))
        reach = len(stack) + self.heights[anchor]
        if reach > limits.max_depth:
            raise self._too_deep(mark, limits.max_depth, anchor)
        if stack and reach > stack[-1].deepest:
            stack[-1].deepest = reach
        return total

    def _location(self, mark) -> Location:
        return Location(self.doc.file, mark.line + 1, mark.column + 1)

    def _too_many(self, mark, limit: int) -> LimitExceeded:
        return LimitExceeded.at(self._location(mark), f"the file holds more than {limit:,} keys and values, the most one file may hold "
                                                      "(the 10,000-node benchmark flow has 197,000); "
                                                      "split a flow into several files joined by goto nodes")

    def _too_deep(self, mark, limit: int, anchor: str | None) -> LimitExceeded:
        via = f' (with what the alias "*{anchor}" stands for)' if anchor else ""
        return LimitExceeded.at(self._location(mark), f"lists and mappings nest more than {limit} deep here{via}, "
                                                      f"the most one file may nest them (a flow needs 6)")

    def _key(self, event, cls, parent: _Frame, mark, stack: list[_Frame]) -> None:
        """A key that is not a plain word: a number, a yes/no word, a list, a merge key."""
        if cls is not _SCALAR:
            if parent.keep:
                self._problem(mark, "a key must be a plain word or number, not a list or mapping")
            if cls is yaml.AliasEvent:
                parent.key = _BAD_KEY
            else:  # build the key's structure, then throw it away (see the end events)
                if len(stack) >= self.doc.limits.max_depth:
                    raise self._too_deep(mark, self.doc.limits.max_depth, None)
                stack.append(_Frame({} if cls is yaml.MappingStartEvent else [], parent.path, cls is yaml.MappingStartEvent, {}, False,
                                    len(stack) + 1))
                parent.key = _KEY_PENDING
            return
        tag = _tag(event, self.tags)
        if tag == _MERGE_TAG:
            if parent.keep:
                self._problem(mark, 'merge keys ("<<") are not supported in flow files; write the fields out')
            parent.key = _BAD_KEY
            return
        key = event.value if tag == _STR_TAG else self._construct(tag, event)
        if isinstance(key, bool) or key is None:
            # `yes:`/`no:`/`on:`/`null:` read as booleans in YAML 1.1; keep the written word
            key = event.value
        try:
            hash(key)
        except TypeError:
            key = event.value
        parent.key = key
        if not parent.keep:
            parent.key_ok = False
            return
        if key in parent.first_seen:
            self._duplicate(key, parent, mark)
            return
        parent.first_seen[key] = mark.line + 1
        parent.key_ok = True
        child = parent.path + (key,)
        if parent.marks is self.doc.value_marks:
            self.doc.key_marks[child] = (mark.line << 32) | mark.column
            if tag != _STR_TAG:
                self.doc.raw.setdefault(child + ("<key>",), event.value)

    def _duplicate(self, key: Any, parent: _Frame, mark) -> None:
        self.doc.problems.append(Diagnostic(
            Location(self.doc.file, mark.line + 1, mark.column + 1),
            f'duplicate key "{key}" {_where(parent.path)} (first on line {parent.first_seen[key]}); '
            "YAML would silently keep only the last one, so remove or rename one of them",
            rank=0,
        ))
        parent.key_ok = None  # the value is kept aside (Document.dropped)

    def _construct(self, tag: str, event: yaml.ScalarEvent) -> Any:
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return _constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self._problem(event.start_mark, f"not valid YAML: {exc.problem}")
            return event.value
        except (ValueError, OverflowError):
            # a timestamp that is no real date (2026-13-01): kept as written, so the
            # check of the field says what is wrong with it there
            return event.value

    def _problem(self, mark, message: str) -> None:
        self.doc.problems.append(Diagnostic(Location(self.doc.file, mark.line + 1, mark.column + 1), message, rank=0))


_CLOCK_EVERY = 4096  # values read between two looks at the clock (a look costs about 50 ns)
_KEY_PENDING = object()  # a list or mapping used as a key is being read
_BAD_KEY = object()  # the key was refused: its value is read and dropped
_SCALAR = yaml.ScalarEvent
_VALUE_EVENTS = (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.AliasEvent)


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


def _where(path: PathKey) -> str:
    """`in nodes.welcome` or `at the top level`, for messages about a mapping."""
    if not path:
        return "at the top level"
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return f"in {text}"


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


__all__ = ["Document", "LoadError", "LimitExceeded", "check_time", "load_file", "load_text", "describe", "ERROR", "PathKey"]

"""What a node type is made of; each type is one module of this package.

A node type is a class made by `node_type()`: a frozen dataclass, the node as the engine
runs it, with its name as flow files write it, the line that documents it, whether it
waits for the caller, and its shape in drawings. Its attributes are the fields flow files
write, each declared with `field()`: kind, default, doc and the label of the edge it
draws. `check` adds the type's own rules to the check every field gets. The checks, the
compiler, the JSON Schema, the drawings and the format reference read all of it from the
registry (ivr.flow.nodes).
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping, Optional, Protocol, TypeVar, dataclass_transform

from ivr.flow.spec import DURATION, INT, NODE, OPTIONS, RULES, Field

if TYPE_CHECKING:
    from ivr.flow.checks import NodeDraft

_FORMAT = "ivr.flow.format"  # where a dataclass field keeps its format description


def field(
    kind: str,
    *,
    required: bool = False,
    default: Any = None,
    doc: str = "",
    low: Optional[int] = None,
    high: Optional[int] = None,
    edge: Optional[str] = None,
    default_from: Optional[str] = None,
) -> Any:
    """A dataclass field of a node type that flow files write, with its format description
    (see `ivr.flow.spec.Field`). `default` is what the checks fill in when a file leaves
    the field out; the dataclass itself has none, as the compiler gives every value."""
    return dataclasses.field(metadata={_FORMAT: Field(kind, required, default, doc, low, high, edge, default_from)})


# Fields several node types share.
def timeout_field() -> Any:
    return field(DURATION, default=5.0, doc="how long to wait for the first key after the prompt")


def attempts_field() -> Any:
    return field(INT, default=3, low=1, high=9, doc="tries before on_fail; no key or a wrong key uses one")


class ReportError(Protocol):
    """How a check reports an error: at `path` of the flow file."""

    def __call__(self, path: tuple, message: str, *, at_key: bool = False) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    name: str
    line: int  # where the node starts in its file, for events and errors
    # set by node_type()
    type: ClassVar[str]
    doc: ClassVar[str]
    waits_for_caller: ClassVar[bool]
    shape: ClassVar[str]
    colour: ClassVar[str]
    fields: ClassVar[Mapping[str, Field]]  # as flow files write them, in the order of the reference

    @classmethod
    def check(cls, draft: NodeDraft, written: Mapping[str, Any], what: str, error: ReportError) -> None:
        """Rules of this type beyond each field's own check, run once every field is read.

        `written` is the node as the file has it: a rule read from it is not hidden by
        another field's error.
        """

    def exits(self) -> Iterator[tuple[str, str]]:
        """(label, node name) of every way out of this node within its flow."""
        for name, spec in self.fields.items():
            value = getattr(self, name)
            if spec.kind == NODE:
                # a field that defaults to another one leads elsewhere only when set apart
                if value and not (spec.default_from and value == getattr(self, spec.default_from)):
                    yield spec.edge or name, value
            elif spec.kind == OPTIONS:
                for key, option in value.items():
                    yield key, option.next
            elif spec.kind == RULES:
                for rule in value:
                    yield rule.label, rule.next

    def graph_label(self) -> str:
        """The node's text in drawings."""
        return f"{self.name}\n({self.type})"


N = TypeVar("N", bound=Node)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def node_type(name: str, *, doc: str, waits_for_caller: bool, shape: str, colour: str) -> Callable[[type[N]], type[N]]:
    """Make the decorated class a node type: `name` as flow files write it, `doc` what it
    does (for the format reference and the JSON Schema), whether it waits for a key, an
    agent or a message (a loop of nodes that do not never ends), and its Graphviz shape
    and fill colour in drawings."""

    def make(cls: type[N]) -> type[N]:
        made = dataclasses.dataclass(frozen=True, slots=True)(cls)
        made.type, made.doc, made.waits_for_caller, made.shape, made.colour = name, doc, waits_for_caller, shape, colour
        made.fields = MappingProxyType({f.name: f.metadata[_FORMAT] for f in dataclasses.fields(made) if _FORMAT in f.metadata})
        return made

    return make

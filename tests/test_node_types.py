"""Every node type is complete and every table of node types agrees with the registry.

A node type is one module of ivr/flow/nodes and its run-time module in ivr/engine/nodes;
the JSON Schema, the format reference and the drawings are derived from the first. Each
test names the types and the table that disagree.
"""

from __future__ import annotations

import dataclasses
import pkgutil
import re

import ivr.engine.nodes
import ivr.flow.nodes
from ivr.engine.nodes import HANDLERS
from ivr.flow.docs import node_reference
from ivr.flow.jsonschema import flow_schema
from ivr.flow.nodes import NODE_TYPES
from ivr.flow.nodes.base import Node
from ivr.flow.spec import NODE

# modules of the two packages that are not a node type
FLOW_HELPERS = {"base"}
ENGINE_HELPERS = {"attempts"}
CLASS_VARIABLES = ("type", "doc", "waits_for_caller", "shape", "colour", "fields")
SHAPE = re.compile(r"^[a-z0-9_]+$")
COLOUR = re.compile(r"^#[0-9a-f]{6}$")


def _modules(package) -> set[str]:
    return {m.name for m in pkgutil.iter_modules(package.__path__)}


def test_every_module_of_ivr_flow_nodes_is_a_registered_node_type():
    modules = _modules(ivr.flow.nodes) - FLOW_HELPERS
    assert sorted(modules - set(NODE_TYPES)) == [], "modules of ivr/flow/nodes missing from NODE_TYPES (ivr/flow/nodes/__init__.py)"
    misplaced = {name: cls.__module__ for name, cls in NODE_TYPES.items() if cls.__module__ != f"ivr.flow.nodes.{name}"}
    assert misplaced == {}, "node types not defined in ivr/flow/nodes/<type>.py"


def test_every_node_type_has_an_engine_handler_and_no_handler_lacks_a_type():
    assert sorted(set(NODE_TYPES) - set(HANDLERS)) == [], "node types without a run-time module in ivr/engine/nodes"
    assert sorted(set(HANDLERS) - set(NODE_TYPES)) == [], "engine HANDLERS for no node type of ivr.flow.nodes.NODE_TYPES"
    misplaced = {name: run.__module__ for name, run in HANDLERS.items() if run.__module__ != f"ivr.engine.nodes.{name}"}
    assert misplaced == {}, "handlers not in ivr/engine/nodes/<type>.py"
    modules = _modules(ivr.engine.nodes) - ENGINE_HELPERS
    assert sorted(modules - set(HANDLERS)) == [], "modules of ivr/engine/nodes that are no node type of ivr.flow.nodes.NODE_TYPES"


def test_every_node_type_is_a_complete_compiled_class():
    problems = []
    for name, cls in NODE_TYPES.items():
        if not (isinstance(cls, type) and issubclass(cls, Node) and all(v in vars(cls) for v in CLASS_VARIABLES)):
            problems.append(f"{name}: not a class made by ivr.flow.nodes.base.node_type()")
            continue
        if cls.type != name:
            problems.append(f"{name}: registered under another name than its type {cls.type!r}")
        if not SHAPE.match(cls.shape) or not COLOUR.match(cls.colour):
            problems.append(f"{name}: shape {cls.shape!r} and colour {cls.colour!r} are not a Graphviz shape and #rrggbb")
        undescribed = [f.name for f in dataclasses.fields(cls) if f.name not in ("name", "line") and f.name not in cls.fields]
        if undescribed:
            problems.append(f"{name}: attributes without a format description (declare them with field()): {undescribed}")
        for key, field in cls.fields.items():
            if (field.kind == NODE) != (field.edge is not None):
                problems.append(f"{name}.{key}: a node field needs an edge label, and only a node field has one")
            if field.default_from is not None and field.default_from not in cls.fields:
                problems.append(f"{name}.{key}: defaults to {field.default_from!r}, which is no field of {name}")
    assert problems == []


def test_the_json_schema_has_a_variant_for_every_node_type():
    nodes = flow_schema()["properties"]["nodes"]["additionalProperties"]
    assert [v["title"] for v in nodes["allOf"]] == list(NODE_TYPES), "JSON Schema variants differ from NODE_TYPES"
    assert nodes["properties"]["type"]["enum"] == list(NODE_TYPES), "the JSON Schema's list of types differs from NODE_TYPES"


def test_the_format_reference_has_a_section_for_every_node_type():
    headings = re.findall(r"^### `([a-z_]+)`$", node_reference(), re.M)
    assert headings == list(NODE_TYPES), "node types missing from the format reference (ivr.flow.docs)"


def test_a_node_type_without_its_run_time_module_is_named_in_the_error():
    import pytest

    from ivr.engine.nodes import _handler

    with pytest.raises(ImportError, match=r'node type "pause" has no run-time module ivr/engine/nodes/pause.py'):
        _handler("pause")

"""The JSON Schema of the flow format, built from the node types, as the checks are.

Editors with yaml-language-server use it to complete and check flow files as admins
type. References to nodes, prompts and config entries cannot be expressed in a schema;
`ivr validate` checks those.
"""

from __future__ import annotations

from typing import Any

from ivr.flow import spec
from ivr.flow.nodes import NODE_TYPES

_DURATION = {"oneOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?h)?\s*(\d+(\.\d+)?m)?\s*(\d+(\.\d+)?s)?\s*(\d+ms)?\s*$"}]}
_KEY = {"oneOf": [{"type": "string", "enum": list("0123456789*#")}, {"type": "integer", "minimum": 0, "maximum": 9}]}
_NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_-]*$"}


def _field_schema(field: spec.Field) -> dict[str, Any]:
    kind = field.kind
    if kind in (spec.NODE, spec.PROMPT, spec.DEPARTMENT, spec.SCHEDULE, spec.FLOW, spec.NAME):
        schema: dict[str, Any] = dict(_NAME)
    elif kind == spec.DURATION:
        schema = dict(_DURATION)
    elif kind == spec.KEY:
        schema = dict(_KEY)
    elif kind == spec.INT:
        schema = {"type": "integer", "minimum": field.low, "maximum": field.high}
    elif kind == spec.BOOL:
        schema = {"type": "boolean"}
    elif kind == spec.TEXT:
        schema = {"type": "string"}
    elif kind == spec.OPTIONS:
        option = {
            "oneOf": [
                _NAME,
                {
                    "type": "object",
                    "required": ["next"],
                    "additionalProperties": False,
                    "properties": {"next": _NAME, "language": {"type": "string"}, "set": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}},
                },
            ]
        }
        schema = {"type": "object", "minProperties": 1, "propertyNames": {"pattern": r"^[0-9*#]$"}, "additionalProperties": option}
    elif kind == spec.RULES:
        rule = {
            "type": "object",
            "required": ["next"],
            "additionalProperties": False,
            "properties": {"segment": _NAME, "var": _NAME, "matches": {"type": "string"}, "caller": {"type": "string"}, "language": {"type": "string"}, "next": _NAME},
            "oneOf": [{"required": [c]} for c in spec.RULE_CONDITIONS],
        }
        schema = {"type": "array", "minItems": 1, "items": rule}
    elif kind == spec.SCALE:
        schema = {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 0, "maximum": 99}}
    elif kind == spec.SAMPLE:
        schema = {"type": "object", "additionalProperties": False, "minProperties": 1,
                  "properties": {"every": {"type": "integer", "minimum": 1}, "shorter_than": _DURATION}}
    else:  # pragma: no cover - the spec is fixed
        raise AssertionError(kind)
    if field.doc:
        schema["description"] = field.doc
    return schema


def flow_schema() -> dict[str, Any]:
    node_variants = []
    for name, node_type in NODE_TYPES.items():
        properties = {"type": {"const": name}, "description": {"type": "string"}}
        properties.update({key: _field_schema(f) for key, f in node_type.fields.items()})
        node_variants.append({
            "title": name,
            "description": node_type.doc,
            "type": "object",
            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
            "then": {
                "required": ["type", *[k for k, f in node_type.fields.items() if f.required]],
                "properties": properties,
                "additionalProperties": False,
            },
        })
    prompt_text = {"oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": False, "properties": {"text": {"type": "string"}, "file": {"type": "string"}}}]}
    menu_fields = NODE_TYPES["menu"].fields
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://ivr-engine.example/schema/flow.json",
        "title": "IVR flow",
        "description": "A menu tree of the IVR engine: prompts per language and a graph of nodes.",
        "type": "object",
        "required": [k for k, f in spec.TOP_FIELDS.items() if f.required],
        "additionalProperties": False,
        "properties": {
            "flow": {**_NAME, "description": spec.TOP_FIELDS["flow"].doc},
            "description": {"type": "string"},
            "languages": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "pattern": r"^[a-z]{2,3}(-[A-Z]{2})?$"}},
            "start": {**_NAME, "description": spec.TOP_FIELDS["start"].doc},
            "defaults": {"type": "object", "additionalProperties": False, "properties": {k: _field_schema(menu_fields[k]) for k in spec.DEFAULTABLE}},
            "prompts": {
                "type": "object",
                "propertyNames": _NAME,
                "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "object", "minProperties": 1, "additionalProperties": prompt_text}]},
            },
            "nodes": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": _NAME,
                "additionalProperties": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"enum": list(NODE_TYPES)}},
                    "allOf": node_variants,
                },
            },
        },
    }

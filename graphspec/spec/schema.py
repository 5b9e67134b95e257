"""The JSON Schema of the format, for editors (the YAML language server) and other tools.

It is pydantic's schema of `Spec`, with the Keras catalog folded in: a layer's `type` lists every
known class, and each class's constructor arguments are offered as properties, so an editor
completes `units:` after `type: Dense`.
"""

from __future__ import annotations

import json
from typing import Any

from graphspec.spec import catalog, compact
from graphspec.spec.model import Spec

SCHEMA_ID = "https://graphspec.dev/schemas/graphspec.schema.json"
# A value computed by an expression is a string until params are substituted, so wherever the
# format takes a number or a boolean the schema also takes a `${...}` string.
EXPRESSION = {
    "type": "string",
    "pattern": r"\$\{[^}]*\}",
    "description": "A param or an expression: ${width}, ${width * 4} (docs/format.md).",
}
_COMPUTED_TYPES = ("integer", "number", "boolean")
_KEPT_OUTSIDE = ("default", "description", "title")


def json_schema() -> dict:
    """The format's JSON Schema as a dict."""
    schema = Spec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    layer = schema["$defs"]["LayerSpec"]
    names = catalog.layer_names()
    layer["properties"]["type"] = {
        "anyOf": [{"enum": names}, {"type": "null"}],
        "default": None,
        "description": layer["properties"]["type"].get("description", ""),
    }
    # An op node's `op` is one of the catalog's keras.ops functions (docs/format.md lists them).
    layer["properties"]["op"] = {
        "anyOf": [{"enum": op_names()}, {"type": "null"}],
        "default": None,
        "description": layer["properties"]["op"].get("description", ""),
    }
    layer["allOf"] = [_layer_arguments(name) for name in names]
    # Chains (chains.py) are made explicit before validation: in the file a layer may leave out
    # `in` (it reads the layer before), a layer may be a list of layers, and a block its `out`.
    layer["required"] = [key for key in layer.get("required", []) if key != "in"] or None
    if layer["required"] is None:
        del layer["required"]
    schema["properties"]["layers"]["additionalProperties"] = {
        "anyOf": [
            {"$ref": "#/$defs/LayerSpec"},
            {"type": "array", "items": {"$ref": "#/$defs/LayerSpec"}, "minItems": 1},
        ]
    }
    # In `in`, a negative number counts back through the layers written before (chains.py).
    reference = {"anyOf": [{"type": "string"}, {"type": "integer", "maximum": -1}]}
    references = {"anyOf": [reference, {"type": "array", "items": reference}]}
    layer["properties"]["in"] = {
        "anyOf": [*references["anyOf"], {"type": "object", "additionalProperties": references}],
        "description": layer["properties"]["in"].get("description", ""),
    }
    chain = {"type": "array", "items": {"$ref": "#/$defs/LayerSpec"}, "minItems": 1}
    block = schema["$defs"]["BlockSpec"]
    block["required"] = [key for key in block.get("required", []) if key != "out"]
    block["properties"]["layers"] = {"anyOf": [block["properties"]["layers"], chain]}
    # A block written as a list is a chain block (compact.py): one input `x`, its last layer out;
    # a mapping with none of a block's keys is its layers.
    schema["properties"]["blocks"]["additionalProperties"] = {
        "anyOf": [
            {"$ref": "#/$defs/BlockSpec"},
            chain,
            {
                "type": "object",
                "minProperties": 1,
                "not": {"anyOf": [{"required": [key]} for key in compact.BLOCK_KEYS]},
                "additionalProperties": {"anyOf": [{"$ref": "#/$defs/LayerSpec"}, chain]},
            },
        ]
    }
    schema["$defs"]["Expression"] = dict(EXPRESSION)
    return _computable(schema)


def op_names() -> list[str]:
    """The keras.ops functions an op node may name, sorted."""
    return sorted(catalog.catalog().get("ops", {}))


def _computable(node: Any) -> Any:
    """`node` with each schema of a number or a boolean widened to also take an expression."""
    if isinstance(node, list):
        return [_computable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _computable(value) for key, value in node.items()}
    if node.get("type") in _COMPUTED_TYPES:
        inner = {k: v for k, v in node.items() if k not in _KEPT_OUTSIDE}
        outer = {k: v for k, v in node.items() if k in _KEPT_OUTSIDE}
        return {**outer, "anyOf": [inner, {"$ref": "#/$defs/Expression"}]}
    return node


def render() -> str:
    """The schema as the text committed in `schemas/graphspec.schema.json`."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def _layer_arguments(name: str) -> dict:
    """The arguments a node of type `name` may and must give; a KerasHub backbone needs its
    configuration arguments only when it names no `preset`, which gives them."""
    entry = catalog.layer(name)
    required = [a for a in entry["required"] if a not in catalog.LAYER_VALUED_ARGS]
    then: dict = {"properties": {arg: {} for arg in entry["args"]}}
    if entry.get("backbone") and required:
        then["anyOf"] = [{"required": ["preset"]}, {"required": required}]
    else:
        then["required"] = required
    return {"if": {"properties": {"type": {"const": name}}, "required": ["type"]}, "then": then}

"""The JSON Schema of the format, for editors (the YAML language server) and other tools.

It is pydantic's schema of `Spec`, with the Keras catalog folded in. A layer's `type` lists every
known class, and each class selects its own properties (`if type is Dense then ...`): its
constructor arguments, typed where the catalog records a type (the catalog's `types`, fragments
of JSON Schema) and described in Keras's own words (catalog_docs.json, from the docstrings), plus
the keys every node may have; any other key is an error (`additionalProperties: false`), so an
editor flags `activaton:` and completes `units:` after `type: Dense`. Op nodes, graphspec's own
node kinds, and losses, metrics, optimizers and callbacks written `{type: ...}` are closed the
same way.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from graphspec import policy
from graphspec.spec import catalog, compact, nodes, types
from graphspec.spec.adapt import ADAPTABLE
from graphspec.spec.model import VALUE_LOSS, Spec

SCHEMA_ID = "https://graphspec.dev/schemas/graphspec.schema.json"
DOCS_PATH = Path(__file__).with_name("catalog_docs.json")
# A value computed by an expression is a string until params are substituted, so wherever the
# format takes a typed value the schema also takes a `${...}` string.
EXPRESSION = {
    "type": "string",
    "pattern": r"\$\{[^}]*\}",
    # A comment, not a description: an editor's hover shows the descriptions of every branch a
    # value may take, and this one would hide the argument's own.
    "$comment": "A param or an expression: ${width}, ${width * 4} (docs/format.md).",
}
EXPRESSION_REF = {"$ref": "#/$defs/Expression"}
_COMPUTED_TYPES = ("integer", "number", "boolean")
_KEPT_OUTSIDE = ("default", "description", "title")
# The catalog's shared type fragments (its top-level `$defs`) join the schema's `$defs` under
# this prefix, so that they cannot clash with the format's own (`LayerSpec`, `Expression`, ...).
ARG_DEF_PREFIX = "arg."
# The keys a node of each kind may have besides its arguments (docs/format.md, "Layers").
TYPE_NODE_KEYS = ("type", "in", "call", "doc")
OP_NODE_KEYS = ("op", "in", "doc")


def json_schema(source: dict | None = None) -> dict:
    """The format's JSON Schema as a dict; `source` is a catalog in catalog.json's format (the
    committed catalog when None), for tests of how its types become the schema."""
    source = catalog.catalog() if source is None else source
    hub = catalog.hub_catalog()
    schema = Spec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    layer = schema["$defs"]["LayerSpec"]
    entries = _layer_entries(source, hub)
    docs = _docs()
    # `enumDescriptions` (VS Code's JSON language service, which yaml-language-server uses) show
    # each class's summary beside its name in completion, and on hover of `type: Dense`.
    layer["properties"]["type"] = {
        "anyOf": [_described_enum(list(entries), docs["layers"]), {"type": "null"}],
        "default": None,
        "description": layer["properties"]["type"].get("description", ""),
    }
    # An op node's `op` is one of the catalog's keras.ops functions (docs/format.md lists them).
    layer["properties"]["op"] = {
        "anyOf": [_described_enum(sorted(source.get("ops", {})), docs["ops"]), {"type": "null"}],
        "default": None,
        "description": layer["properties"]["op"].get("description", ""),
    }
    # `range` is a node kind's key (an axis) or, on an op node, keras.ops.histogram's argument (a
    # pair): its type is given by the rule of each (`_own_node_rules`, `_op_rule`).
    range_node = layer["properties"]["range"]
    layer["properties"]["range"] = {"description": range_node.get("description", "")}
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
    # A block's layers are checked as a spec's are (its `${...}` params are expressions).
    block_layers = {
        **block["properties"]["layers"],
        "additionalProperties": {"anyOf": [{"$ref": "#/$defs/LayerSpec"}, chain]},
    }
    block["properties"]["layers"] = {"anyOf": [block_layers, chain]}
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
    schema = _computable(schema)
    # What follows is widened to take expressions as it is made (`_or_expression`), not by
    # `_computable` above, which would wrap the catalog's numbers twice.
    defs = _catalog_defs(source, hub)
    names = frozenset(defs)
    layer = schema["$defs"]["LayerSpec"]
    layer["allOf"] = [
        *(_type_rule(name, entry, docs["layers"].get(name, {}), names) for name, entry in entries.items()),
        *(
            _op_rule(name, entry, docs["ops"].get(name, {}), names)
            for name, entry in sorted(source["ops"].items())
        ),
        *_own_node_rules(_computable(range_node)),
    ]
    for name, fragment in defs.items():
        schema["$defs"][ARG_DEF_PREFIX + name] = _widened(_rewrite_refs(fragment, names))
    _typed_objects(schema, source, docs, names)
    return schema


def op_names() -> list[str]:
    """The keras.ops functions an op node may name, sorted."""
    return sorted(catalog.catalog().get("ops", {}))


def _layer_entries(source: dict, hub: dict) -> dict[str, dict]:
    """Every layer type a spec may name, in `catalog.layer_names()`'s order, with its entry (an
    application's with the call `catalog.layer` gives it). Classes graphspec refuses (`Lambda`,
    ...) are left out: for an editor as for `validate`, no spec may name them."""
    entries = dict(source["layers"])
    entries.update(
        {
            catalog.APPLICATION_PREFIX + n: {**e, "call": ["inputs", "training", "mask"]}
            for n, e in source["applications"].items()
        }
    )
    entries.update(source.get("application_layers", {}))
    entries.update(hub["layers"])
    return {name: entry for name, entry in entries.items() if policy.class_refusal(entry) is None}


def _catalog_defs(source: dict, hub: dict) -> dict[str, Any]:
    """The shared type fragments of the catalog and of KerasHub's catalog, by name."""
    return {**hub.get("$defs", {}), **source.get("$defs", {})}


@lru_cache(maxsize=1)
def _docs() -> dict:
    """Keras's docstrings, shortened, per layer and op (graphspec.keras.catalog_docs_gen)."""
    if not DOCS_PATH.is_file():
        return {"layers": {}, "ops": {}}
    return json.loads(DOCS_PATH.read_text(encoding="utf-8"))


def _typed_objects(schema: dict, source: dict, docs: dict, names: frozenset[str]) -> None:
    """Losses, metrics, the optimizer and callbacks, written by name or as `{type: ..., args}`:
    each `{type:}` form takes only its class's arguments, typed and described like a layer's."""
    from graphspec.spec.builtins import BUILTIN_CALLBACKS, schedule_schema

    losses, metrics = (source.get(key, {"classes": {}, "names": []}) for key in ("losses", "metrics"))
    kinds = {
        "Loss": (losses["classes"], [*losses["names"], VALUE_LOSS]),
        "Metric": (metrics["classes"], metrics["names"]),
        # An optimizer's name is any spelling of a class's name (`adam`, `Adam`): not an enum.
        "Optimizer": (source.get("optimizers", {}), None),
        "Callback": ({**source.get("callbacks", {}), **BUILTIN_CALLBACKS}, None),
    }
    for kind, (classes, strings) in kinds.items():
        classes = {n: e for n, e in classes.items() if policy.class_refusal(e) is None}
        section = docs.get({"Loss": "losses"}.get(kind, kind.lower() + "s"), {})
        rules = []
        for name, entry in sorted(classes.items()):
            rule = _type_rule(name, {**entry, "call": None}, section.get(name, {}), names)
            for key in ("in", "call", "doc"):
                del rule["then"]["properties"][key]
            if kind == "Callback" and name == "LearningRateScheduler":
                # graphspec's own declarative schedule, where Keras takes a function.
                schedule = schedule_schema()
                described = schedule.pop("description")
                rule["then"]["properties"]["schedule"] = _argument(schedule, described, names)
            rules.append(rule)
        typed = {
            "type": "object",
            "properties": {"type": _described_enum(sorted(classes), section)},
            "required": ["type"],
            "allOf": rules,
        }
        if strings is None:
            schema["$defs"][kind] = {"anyOf": [{"type": "string"}, typed]}
        else:
            named = sorted(set(strings) | set(classes))
            schema["$defs"][kind] = {"anyOf": [{"enum": named}, EXPRESSION_REF, typed]}
    output = schema["$defs"]["OutputSpec"]["properties"]
    output["loss"]["anyOf"] = [{"$ref": "#/$defs/Loss"}, {"type": "null"}]
    output["metrics"]["items"] = {"$ref": "#/$defs/Metric"}
    optimizer = schema["$defs"]["CompileSpec"]["properties"]["optimizer"]
    optimizer["anyOf"] = [{"$ref": "#/$defs/Optimizer"}]
    schema["$defs"]["TrainSpec"]["properties"]["callbacks"]["items"] = {"$ref": "#/$defs/Callback"}
    stage = schema["$defs"].get("StageSpec", {}).get("properties", {})
    if "optimizer" in stage:  # a fine-tuning stage's own optimizer (train.stages)
        stage["optimizer"] = {"anyOf": [{"$ref": "#/$defs/Optimizer"}, {"type": "null"}]}
    del schema["$defs"]["TypedObject"]


def _described_enum(names: list[str], docs: dict) -> dict:
    """An enum of `names`, with each one's summary from `docs` as its description."""
    return {"enum": names, "enumDescriptions": [docs.get(name, {}).get("doc", "") for name in names]}


def _type_rule(name: str, entry: dict, docs: dict, names: frozenset[str]) -> dict:
    """`if type is NAME then` its arguments, typed and described, and nothing else."""
    properties = {key: {} for key in TYPE_NODE_KEYS}
    if name in ADAPTABLE:  # `adapt:` (graphspec/spec/adapt.py), typed by LayerSpec's property
        properties["adapt"] = {}
    if entry.get("call") is not None:
        # The layer's call arguments: the keys of `call:`, and of `in:` where it is a mapping
        # (`in: {query: x, value: ctx}`); a list or a name is not an object, and not concerned.
        call = {"properties": {arg: {} for arg in entry["call"]}, "additionalProperties": False}
        properties["call"] = properties["in"] = call
        if entry.get("backbone"):
            # A KerasHub backbone reads one dict of its own inputs: `in:` maps those names, which
            # only the built backbone knows.
            properties["in"] = {}
    for arg in entry["args"]:
        fragment = entry.get("types", {}).get(arg)
        if fragment is None and arg in catalog.LAYER_VALUED_ARGS:
            fragment = {"$ref": "#/$defs/LayerSpec"}
        properties[arg] = _argument(fragment, docs.get("args", {}).get(arg), names)
    required = [a for a in entry["required"] if a not in catalog.LAYER_VALUED_ARGS]
    then: dict = {"properties": properties, "additionalProperties": False}
    if entry.get("backbone") and required:
        # A KerasHub backbone needs its configuration only when it names no `preset`, which
        # gives it.
        then["anyOf"] = [{"required": ["preset"]}, {"required": required}]
    elif required:
        then["required"] = required
    if conditions := _conditions(entry, names):
        then["allOf"] = conditions
    if docs.get("doc"):
        then["description"] = docs["doc"]
    return {"if": {"properties": {"type": {"const": name}}, "required": ["type"]}, "then": then}


def _conditions(entry: dict, names: frozenset[str]) -> list[dict]:
    """The arguments Keras reads only when another is true (`types_when`: an application's
    classes with its top, an optimizer's `ema_momentum` with `use_ema`, a dropout's seed with
    a rate above 0), checked only there: unless the flag is written as false where it is true
    by default (or required), else only where it is written as true. And those typed where
    another is one word (`types_where`), checked where it is that word."""
    found = []
    for flag, typed in entry.get("types_when", {}).items():
        checked = {"properties": {arg: _argument(f, None, names) for arg, f in typed.items()}}
        written_false = {"properties": {flag: {"enum": types.FALSE_VALUES}}, "required": [flag]}
        if entry.get("defaults", {}).get(flag, True):
            found.append({"if": written_false, "else": checked})
        else:
            written_true = {"properties": {flag: {"not": {"enum": types.FALSE_VALUES}}}, "required": [flag]}
            found.append({"if": written_true, "then": checked})
    for other, words in entry.get("types_where", {}).items():
        for word, typed in words.items():
            checked = {"properties": {arg: _argument(f, None, names) for arg, f in typed.items()}}
            # An absent argument meets `properties`: where the word is not the default, it must
            # be written.
            written = {"properties": {other: {"const": word}}}
            if entry.get("defaults", {}).get(other) != word:
                written["required"] = [other]
            found.append({"if": written, "then": checked})
    return found


def _op_rule(name: str, entry: dict, docs: dict, names: frozenset[str]) -> dict:
    """`if op is NAME then` the function's arguments (its tensors too: `in` or keys give them)."""
    properties = {key: {} for key in OP_NODE_KEYS}
    for arg in entry["args"]:
        properties[arg] = _argument(entry.get("types", {}).get(arg), docs.get("args", {}).get(arg), names)
    then = {"properties": properties, "additionalProperties": False}
    if docs.get("doc"):
        then["description"] = docs["doc"]
    return {"if": {"properties": {"op": {"const": name}}, "required": ["op"]}, "then": then}


def _own_node_rules(range_node: dict) -> list[dict]:
    """graphspec's own node kinds (nodes.py), shared layers, nested specs and math nodes: the keys
    each may have. A block use is left open: its other keys are the block's params."""
    closed = {
        "weight": ("weight", "in", "call", "doc", *nodes.ARGS["weight"]),
        "random": ("random", "in", "call", "doc", *nodes.ARGS["random"]),
        "share": ("share", "in", "call", "doc"),
        "spec": ("spec", "params", "in", "call", "doc"),
        "math": ("math", "in", "doc"),
    }
    rules = [
        {
            "if": {"required": [kind]},
            "then": {"properties": {key: {} for key in keys}, "additionalProperties": False},
        }
        for kind, keys in closed.items()
    ]
    # keras.ops.histogram has an argument `range`: on an op node the key is the op's.
    range_keys = ("range", "in", "call", "doc", *nodes.ARGS["range"])
    properties = {key: {} for key in range_keys}
    properties["range"] = {k: v for k, v in range_node.items() if k not in ("default", "description")}
    rules.append(
        {
            "if": {"required": ["range"], "not": {"required": ["op"]}},
            "then": {"properties": properties, "additionalProperties": False},
        }
    )
    distribution = {"anyOf": [{"enum": list(nodes.DISTRIBUTIONS)}, EXPRESSION_REF]}
    rules.append({"if": {"required": ["random"]}, "then": {"properties": {"random": distribution}}})
    return rules


def _argument(fragment: dict | None, doc: str | None, names: frozenset[str]) -> dict:
    """The schema of one argument: its type fragment (any value when the catalog records none),
    also taking an expression, with Keras's text for it as the description."""
    schema = _or_expression(_rewrite_refs(fragment, names)) if fragment else {}
    if doc:
        schema = {**schema, "description": doc}
    return schema


def _rewrite_refs(node: Any, names: frozenset[str]) -> Any:
    """A deep copy of catalog fragment `node` whose `#/$defs/NAME` refs, NAME one of the
    catalog's `$defs` (`names`), point at the schema's `#/$defs/arg.NAME`; refs to the format's
    own definitions (`#/$defs/LayerSpec`) are kept."""
    if isinstance(node, list):
        return [_rewrite_refs(item, names) for item in node]
    if not isinstance(node, dict):
        return copy.deepcopy(node)
    found = {key: _rewrite_refs(value, names) for key, value in node.items()}
    ref = found.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[len("#/$defs/") :] in names:
        found["$ref"] = "#/$defs/" + ARG_DEF_PREFIX + ref[len("#/$defs/") :]
    return found


def _widened(node: Any, enums: bool = True) -> Any:
    """`node` with each schema of a number or a boolean, and with `enums` of an enumeration or a
    constant, also taking an expression."""
    if isinstance(node, list):
        return [_widened(item, enums) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _widened(value, enums) for key, value in node.items()}
    if node.get("type") in _COMPUTED_TYPES or (enums and ("enum" in node or "const" in node)):
        inner = {k: v for k, v in node.items() if k not in _KEPT_OUTSIDE}
        outer = {k: v for k, v in node.items() if k in _KEPT_OUTSIDE}
        return {**outer, "anyOf": [inner, EXPRESSION_REF]}
    return node


def _or_expression(fragment: dict) -> dict:
    """`fragment` widened, and taking a whole `${...}` where it is a list, a string pattern, ...;
    a bare `$ref` is left as it is (the catalog's `$defs` are widened where they are defined)."""
    fragment = _widened(fragment)
    if set(fragment) == {"$ref"} or EXPRESSION_REF in fragment.get("anyOf", ()):
        return fragment
    return {"anyOf": [fragment, EXPRESSION_REF]}


def _computable(node: Any) -> Any:
    """`node` with each schema of a number or a boolean widened to also take an expression (the
    format's own fields: their enumerations are names, never computed)."""
    return _widened(node, enums=False)


def render() -> str:
    """The schema as the text committed in `schemas/graphspec.schema.json`: indented, except that
    each class's rule (`if type is Dense then ...`) is one line, so that a change to a class is a
    one-line diff and the file stays about a third smaller than indented throughout."""
    rules: list[dict] = []

    def set_aside(node: Any) -> Any:
        if isinstance(node, list):
            return [set_aside(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "if" in node:
            rules.append(node)
            return f"{_RULE}{len(rules) - 1}"
        return {key: set_aside(value) for key, value in node.items()}

    text = json.dumps(set_aside(json_schema()), indent=1, sort_keys=True)
    placeholder = re.compile(re.escape(json.dumps(_RULE)[:-1]) + r'(\d+)"')
    return placeholder.sub(lambda m: json.dumps(rules[int(m[1])], sort_keys=True), text) + "\n"


# Stands for a rule while the rest of the schema is indented; no schema string holds it.
_RULE = "\u0000rule "

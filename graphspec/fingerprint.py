"""Content hashes of a spec: one for the architecture, one for the training settings.

The architecture hash identifies the model a spec builds. It is taken of a canonical form of
the *resolved* spec (params, overrides and blocks applied: `LoadedSpec.spec`), so it does not
change with how the spec is written:

- key order, formatting, comments, docs, the spec's `name`, writing a layer inline or through a
  block, or a nested spec's file name (it counts by its own canonical architecture);
- an argument written at the value Keras would use anyway (`use_bias: true`, `strides: 1`), or
  in another spelling Keras reads the same (`kernel_size: 3` and `[3, 3]` for Conv2D, `axis: [-1]`
  and `-1` for LayerNormalization, `glorot_uniform` and `{type: GlorotUniform}`): defaults come
  from the catalog, and `graphspec/spec/defaults.py` lists the equivalences and what it does not
  normalize;
- the name of a `share:` node (a layer's second call has no name in Keras: it is identified by
  the layer it calls, what it reads and its call arguments);
- `out: {from: h}` against the Identity layer the build adds for it, written out
  (`out: {type: Identity, in: h}` with `out: {}`); an op node's operands given by position or by
  parameter; a nested spec's inputs given as a list (in its inputs' order) or by name.

It changes with anything that changes the built model: the inputs (shape, dtype, sparse,
optional, batch_size), every layer node's name, type and arguments that differ from the
defaults, an op node's function and arguments, what each node reads and shares, its call
arguments, a nested spec's contents, the outputs (which tensor, loss, loss weight, metrics),
and the model's input and output `structure` and `trainable: false`. Hashes made under another
`SCHEME` are not comparable: changing the canonical form is a format change.

The training hash covers `compile` (the optimizer with its defaults left out, the same way),
`train`, the inputs' synthetic-data settings (range, seq_len), the `data:` section where there
is one (how files and columns feed the model), which layers are adapted and on how many samples
(`adapt:`, where any is), and the grants the command gave
(`--allow-download`, `--allow-read DIR`), where it gave any: they are the command's, never the
architecture's.

Not hashed: `name`, `doc`, `params` (only their substituted values count), block definitions,
`include`. No TensorFlow here: Keras's defaults are read from the catalog.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphspec.spec import defaults, nodes
from graphspec.spec.adapt import adapted_nodes
from graphspec.spec.model import REFERENCE

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec
    from graphspec.spec.model import InputSpec, LayerSpec, OutputSpec

# Changing what goes into the canonical form changes every hash: say so by changing this.
SCHEME = "graphspec-fingerprint/2"
# Input fields that only say how synthetic data is made: training, not architecture.
_DATA_FIELDS = ("range", "seq_len", "doc")


@dataclass(frozen=True)
class Fingerprint:
    """The two hashes of a spec, as `sha256:<hex>`."""

    architecture: str
    training: str

    def as_dict(self) -> dict[str, str]:
        return {"architecture": self.architecture, "training": self.training}


def fingerprint(loaded: LoadedSpec) -> Fingerprint:
    """The architecture and training hashes of a loaded spec.

    >>> import graphspec
    >>> a = graphspec.load("graphspec: 1\\nname: a\\ninputs: {x: {shape: [4]}}\\n"
    ...                    "layers: {y: {type: Dense, units: 2, in: x}}\\noutputs: {y: {loss: mse}}\\n")
    >>> b = graphspec.load("# same model, other words\\ngraphspec: 1\\nname: b\\n"
    ...                    "outputs: {y: {loss: mse}}\\nlayers:\\n  y: {in: x, units: 2, type: Dense}\\n"
    ...                    "inputs: {x: {shape: [4]}}\\n")
    >>> fingerprint(a) == fingerprint(b)
    True
    """
    return Fingerprint(_hash(architecture_form(loaded)), _hash(training_form(loaded)))


def architecture_form(loaded: LoadedSpec, identities: Collection[str] | None = None) -> dict[str, Any]:
    """The canonical data the architecture hash is taken of (JSON-ready, order-free).

    Layer nodes are those of `layer_nodes(loaded, identities)`, keyed by `node_names`: their own
    names, but a `share:` node's identity (see there). Every reference (`in`, an output's
    tensor) names nodes that way.
    """
    spec = loaded.spec
    layers = layer_nodes(loaded, identities)
    names = node_names(loaded, layers)
    form = {
        "inputs": {name: _input(i) for name, i in spec.inputs.items()},
        "layers": {names[name]: layer_form(loaded, name, names, layers) for name in layers},
        "outputs": {
            name: _output(name, o, names, name in layers and name not in spec.layers)
            for name, o in spec.outputs.items()
        },
    }
    form.update(model_form(loaded))
    return form


def layer_nodes(loaded: LoadedSpec, identities: Collection[str] | None = None) -> dict[str, LayerSpec]:
    """The spec's layer nodes, and the Identity layer the build adds for an output read with
    `from` (named as the output: `out: {from: h}` is `out: {type: Identity, in: h}`), for the
    outputs named in `identities` (by default every such output)."""
    from graphspec.spec.model import LayerSpec

    layers = dict(loaded.spec.layers)
    for name, output in loaded.spec.outputs.items():
        if output.source is not None and name not in layers and (identities is None or name in identities):
            layers[name] = LayerSpec.model_validate({"type": "Identity", "in": output.source})
    return layers


def model_form(loaded: LoadedSpec) -> dict[str, Any]:
    """The model-wide settings that change the model, where a spec gives them: the structure of
    its inputs and outputs (when not dicts by name) and `trainable: false`."""
    spec = loaded.spec
    found: dict[str, Any] = {}
    structure = getattr(spec, "structure", None)
    if structure is not None:
        found["structure"] = structure.model_dump(mode="json", exclude_none=True)
    if getattr(spec, "trainable", True) is not True:
        found["trainable"] = spec.trainable
    return found


def training_form(loaded: LoadedSpec) -> dict[str, Any]:
    """The canonical data the training hash is taken of: compile, train and synthetic data."""
    spec = loaded.spec
    compile_form = spec.compile.model_dump(mode="json", by_alias=True)
    compile_form["optimizer"] = defaults.optimizer(compile_form.get("optimizer"))
    form = {
        "compile": compile_form,
        "train": spec.train.model_dump(mode="json", by_alias=True, exclude={"stages"}),
        "data": {
            name: {k: getattr(i, k) for k in _DATA_FIELDS if k != "doc"} for name, i in spec.inputs.items()
        },
    }
    if spec.train.stages:  # left out when none, so that a run without stages hashes as before
        form["train"]["stages"] = [s.model_dump(mode="json", exclude_none=True) for s in spec.train.stages]
    grants = getattr(loaded, "grants", None)
    if grants:  # left out when none, so that a run without grants hashes as before
        form["grants"] = grants.record()
    if spec.data is not None:  # only where written, so a spec without one hashes as before
        form["feeding"] = spec.data.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    adapted = adapted_nodes(spec)
    if adapted:  # what learns from the data before fit; left out when nothing does
        form["adapt"] = {
            name: how.model_dump(mode="json", exclude_none=True) for name, how in adapted.items()
        }
    return form


def layer_form(
    loaded: LoadedSpec,
    name: str,
    names: dict[str, str] | None = None,
    layers: dict[str, LayerSpec] | None = None,
) -> dict[str, Any]:
    """One layer node's canonical form: what it is, what it reads, how it is called.

    Arguments equal to Keras's defaults are left out and the rest spelled one way
    (`graphspec.spec.defaults`); references name nodes as `names` does (`node_names`). A
    nested spec is replaced by its own canonical architecture, and what it reads by a mapping
    of its inputs (`in: [a, b]` is matched to them in order, as the build does).
    """
    layers = layer_nodes(loaded) if layers is None else layers
    names = node_names(loaded, layers) if names is None else names
    node = layers[name]
    form: dict[str, Any] = {"in": _rename(node.inbound, names), "call": _call(layers, name)}
    if node.type is not None:
        form["type"] = node.type
        form["args"] = defaults.layer_args(node.type, node.args)
    elif node.op is not None:
        form["op"] = node.op
        form["args"] = defaults.op_args(node.op, node.args)
        form["in"] = _rename(_operands(node), names)
    elif nodes.kind_of(node) is not None:  # weight, range, random: like a layer
        kind = nodes.kind_of(node)
        form[kind] = getattr(node, kind)
        form["args"] = defaults.node_args(kind, node.args)
    elif node.share is not None:
        form["share"] = names[_shared_layer(layers, name)]
    elif node.spec is not None:
        nested = loaded.nested.get(name)
        form["spec"] = architecture_form(nested) if nested is not None else node.spec
        if nested is not None:  # `in: [a, b]` is matched to the nested spec's inputs in order
            form["in"] = _rename(_by_input(node.inbound, list(nested.spec.inputs)), names)
    return form


def _by_input(inbound: Any, order: list[str]) -> Any:
    """A nested spec node's `in` as a mapping of its inputs, as the build passes it."""
    if isinstance(inbound, str):
        return {order[0]: inbound} if order else inbound
    if isinstance(inbound, list):
        return dict(zip(order, inbound, strict=False))
    return inbound


def node_names(loaded: LoadedSpec, layers: dict[str, LayerSpec] | None = None) -> dict[str, str]:
    """Each layer node's name in the canonical form: its own, except for a `share:` node.

    A share node is a further call of another node's layer; Keras gives that call no name of its
    own, so an exported model names it anew (`embed_2`). It is identified instead by what it is:
    the layer it calls, what it reads (named this same way) and its call arguments, as
    `LAYER@CALL-HASH` (`embed@3f2a...`); identical calls of one layer are numbered in spec order.
    """
    layers = layer_nodes(loaded) if layers is None else layers
    inputs = loaded.spec.inputs
    names = {name: name for name, node in layers.items() if node.share is None}
    pending = [name for name, node in layers.items() if node.share is not None]
    taken: set[str] = set(names)
    while pending:
        ready = [
            n
            for n in pending
            if all(_node_of(r) in names or _node_of(r) in inputs for r in _references(layers[n].inbound))
        ]
        if not ready:  # references to nothing, or a cycle: checks report those; keep the names
            names.update({n: n for n in pending})
            break
        for name in ready:
            node = layers[name]
            identity = canonical_json([_rename(node.inbound, names), _call(layers, name)])
            base = f"{_shared_layer(layers, name)}@{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
            canonical, count = base, 1
            while canonical in taken:
                count += 1
                canonical = f"{base}#{count}"
            taken.add(canonical)
            names[name] = canonical
        pending = [n for n in pending if n not in ready]
    return names


def _call(layers: dict[str, LayerSpec], name: str) -> dict[str, Any]:
    """Node `name`'s call arguments without those at the default of its layer's `call`."""
    return defaults.call_args(layers[_shared_layer(layers, name)].type, layers[name].call)


def _shared_layer(layers: dict[str, LayerSpec], name: str) -> str:
    """The node whose layer a share node calls, through shares of shares."""
    seen = {name}
    while layers[name].share is not None and layers[name].share in layers and layers[name].share not in seen:
        name = layers[name].share
        seen.add(name)
    return name


def _operands(node: LayerSpec) -> Any:
    """An op node's `in` as parameter -> reference, however it was written (by position or name)."""
    from graphspec.spec import ops

    entry = ops.op(node.op)
    if entry is None:
        return node.inbound
    filled, problems = ops.operands(entry, node.args, node.inbound)
    return node.inbound if problems else filled


def _references(inbound: Any) -> list[str]:
    if isinstance(inbound, str):
        return [inbound]
    if isinstance(inbound, list):
        return [r for item in inbound for r in _references(item)]
    if isinstance(inbound, dict):
        return [r for item in inbound.values() for r in _references(item)]
    return []


def _node_of(reference: str) -> str:
    match = REFERENCE.match(reference)
    return match.group("node") if match else reference


def _rename(inbound: Any, names: dict[str, str]) -> Any:
    """`inbound` with every reference's node named as `names` says (`a[0]` keeps its index)."""
    if isinstance(inbound, str):
        match = REFERENCE.match(inbound)
        if not match or match.group("node") not in names:
            return inbound
        index = match.group("index")
        return names[match.group("node")] + (f"[{index}]" if index is not None else "")
    if isinstance(inbound, list):
        return [_rename(item, names) for item in inbound]
    if isinstance(inbound, dict):
        return {key: _rename(item, names) for key, item in inbound.items()}
    return inbound


def canonical_json(data: Any) -> str:
    """The one JSON text of `data`: sorted keys, no whitespace, ASCII only."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def _hash(form: dict[str, Any]) -> str:
    text = SCHEME + "\n" + canonical_json(form)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def _input(spec_input: InputSpec) -> dict[str, Any]:
    data = spec_input.model_dump(mode="json", by_alias=True)
    return {k: v for k, v in data.items() if k not in _DATA_FIELDS}


def _output(name: str, output: OutputSpec, names: dict[str, str], identity: bool) -> dict[str, Any]:
    """An output's canonical form: the tensor it is, named as `node_names` does (the node of its
    own name, which is the Identity layer of `layer_nodes` where `identity`), its loss, weight
    and metrics."""
    data = output.model_dump(mode="json", by_alias=True)
    data.pop("doc", None)
    if data.get("target") is None:  # absent before `target:` existed: earlier hashes stand
        data.pop("target", None)
    data["from"] = _rename(output.source if output.source is not None and not identity else name, names)
    return data

"""Content hashes of a spec: one for the architecture, one for the training settings.

The hash is taken of a canonical form of the *resolved* spec (params, overrides and blocks
applied: `LoadedSpec.spec`), so it does not change with key order, formatting, comments, docs,
or with writing a layer inline instead of through a block, as long as the resulting nodes,
their names and arguments are the same. It changes with anything that changes the model:

- architecture: the inputs (shape, dtype, sparse, batch_size), every layer node (its type and
  constructor arguments, an op node's function and arguments, what it shares, the nested spec
  it uses, what it reads, its call arguments) and the outputs (which tensor, loss, loss weight,
  metrics). A nested spec (`spec: file.yaml`) counts by its own canonical architecture, not by
  its file name.
- training: `compile`, `train`, and the inputs' synthetic-data settings (range, seq_len).

Not hashed: `name`, `doc`, `params` (only their substituted values count), block definitions,
`include`. The hash is of the spec, not of Keras's config: writing a Keras default explicitly
(`use_bias: true`) changes it. No TensorFlow here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec
    from graphspec.spec.model import InputSpec, LayerSpec, OutputSpec

# Changing what goes into the canonical form changes every hash: say so by changing this.
SCHEME = "graphspec-fingerprint/1"
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


def architecture_form(loaded: LoadedSpec) -> dict[str, Any]:
    """The canonical data the architecture hash is taken of (JSON-ready, order-free)."""
    spec = loaded.spec
    return {
        "inputs": {name: _input(i) for name, i in spec.inputs.items()},
        "layers": {name: layer_form(loaded, name) for name in spec.layers},
        "outputs": {name: _output(o) for name, o in spec.outputs.items()},
    }


def training_form(loaded: LoadedSpec) -> dict[str, Any]:
    """The canonical data the training hash is taken of: compile, train and synthetic data."""
    spec = loaded.spec
    return {
        "compile": spec.compile.model_dump(mode="json", by_alias=True),
        "train": spec.train.model_dump(mode="json", by_alias=True),
        "data": {
            name: {k: getattr(i, k) for k in _DATA_FIELDS if k != "doc"} for name, i in spec.inputs.items()
        },
    }


def layer_form(loaded: LoadedSpec, name: str) -> dict[str, Any]:
    """One layer node's canonical form: what it is, what it reads, how it is called.

    A nested spec is replaced by its own canonical architecture, and by the order of its
    inputs, which is how a parent's `in: [a, b]` is matched to them.
    """
    node: LayerSpec = loaded.spec.layers[name]
    form: dict[str, Any] = {"in": node.inbound, "call": node.call}
    if node.type is not None:
        form["type"] = node.type
        form["args"] = node.args
    elif node.op is not None:
        form["op"] = node.op
        form["args"] = node.args
    elif node.share is not None:
        form["share"] = node.share
    elif node.spec is not None:
        nested = loaded.nested.get(name)
        form["spec"] = (
            {**architecture_form(nested), "input_order": list(nested.spec.inputs)}
            if nested is not None
            else node.spec
        )
    return form


def canonical_json(data: Any) -> str:
    """The one JSON text of `data`: sorted keys, no whitespace, ASCII only."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def _hash(form: dict[str, Any]) -> str:
    text = SCHEME + "\n" + canonical_json(form)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def _input(spec_input: InputSpec) -> dict[str, Any]:
    data = spec_input.model_dump(mode="json", by_alias=True)
    return {k: v for k, v in data.items() if k not in _DATA_FIELDS}


def _output(output: OutputSpec) -> dict[str, Any]:
    data = output.model_dump(mode="json", by_alias=True)
    data.pop("doc", None)
    return data

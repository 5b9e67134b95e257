"""Which written arguments change nothing: Keras's defaults and equivalent spellings, as data.

The fingerprint (`graphspec/fingerprint.py`) and `graphspec diff` compare specs by the model they
build, so an argument written at the value Keras would use anyway must count as not written.
This module puts a node's arguments in one canonical form:

1. each value in one spelling (the table below), then
2. every argument equal to its default dropped, the default read from the catalog
   (`catalog.json`, generated from the installed Keras by `graphspec.keras.catalog_gen`).

An argument whose default the catalog does not record (a default that is not plain data, or
an argument Keras takes through `**kwargs` only) is never dropped: when in doubt it counts.

Equivalent spellings (what Keras itself makes the same):

- a number written as a default by value: `dropout: 0` is the default `0.0` (booleans stay
  booleans; a value kept is hashed as written, since Keras takes `units: 2` but not `2.0`);
- the per-axis arguments of a 1-3D convolution, pooling or upsampling layer (`kernel_size`,
  `strides`, `pool_size`, `dilation_rate`, `output_padding`, `size`): `3` is `[3, 3]` for
  Conv2D, as Keras's `standardize_tuple` makes it;
- `ZeroPadding1-3D`'s `padding` and `Cropping1-3D`'s `cropping`: `1` is `[[1, 1], [1, 1]]` and
  `[1, 2]` is `[[1, 1], [2, 2]]` in 2D, as Keras reads them;
- a pooling layer's `strides` equal to its `pool_size` is Keras's default (`strides: null`);
- EinsumDense's `output_shape: 64` is `[64]`, as Keras stores it;
- a one-element axis list is its axis: `axis: [-1]` is `-1` for LayerNormalization,
  UnitNormalization and Normalization, `attention_axes: [1]` is `1` for MultiHeadAttention;
- `activation: linear` (and `recurrent_activation: linear`) is `null`: Keras makes `null` linear;
  an activation Keras saves under another name is that name (`swish` is `silu`);
- an initializer, regularizer or constraint by any name Keras accepts or as
  `{type: Class, ...}`: `glorot_uniform`, `GlorotUniform` and `{type: GlorotUniform, seed: null}`
  are one value, with the class's own defaults left out;
- a `call:` argument at the default of the layer's `call` (`use_causal_mask: false` on a
  MultiHeadAttention) is not written, as `graphspec export` writes it;
- an optimizer (`compile.optimizer`, in the training hash) likewise: `adam`, `{type: Adam}` and
  `{type: Adam, learning_rate: 0.001}` are one value.

Not normalized, so they count as written: a default Keras derives from the input's shape
(MultiHeadAttention's `attention_axes: [1]` is what it uses on a sequence, but not on an image),
`data_format: channels_last` and `dtype: float32` (they follow Keras's global configuration),
`padding: SAME` against `same`, and losses or metrics by other names
(`mse` and `mean_squared_error`).

No TensorFlow here: only the catalog.
"""

from __future__ import annotations

import json
import re
from typing import Any

from graphspec.spec import catalog

_MISSING = object()

# Arguments Keras reads through `standardize_tuple(value, rank)`: one int means every axis.
_PER_AXIS_ARGS = ("kernel_size", "strides", "pool_size", "dilation_rate", "output_padding", "size")
_PER_AXIS_LAYER = re.compile(
    r"^(Conv|ConvLSTM|DepthwiseConv|SeparableConv|MaxPooling|AveragePooling|UpSampling)([123])D(Transpose)?$"
)
_POOLING = re.compile(r"^(MaxPooling|AveragePooling)[123]D$")
_PADDING_LAYER = re.compile(r"^(ZeroPadding|Cropping)([123])D$")
# (layer, argument) where a one-element list means the same as its element.
_ONE_AXIS = {
    ("LayerNormalization", "axis"),
    ("UnitNormalization", "axis"),
    ("Normalization", "axis"),
    ("MultiHeadAttention", "attention_axes"),
}
_ACTIVATIONS = ("activation", "recurrent_activation")
_OBJECT_SUFFIXES = {
    "_initializer": "initializers",
    "_regularizer": "regularizers",
    "_constraint": "constraints",
}


def layer_args(type_name: str, args: dict[str, Any]) -> dict[str, Any]:
    """`args` of a `{type: type_name}` node in canonical form: one spelling per value, and
    without the arguments equal to Keras's default (or to graphspec's safe default, where
    graphspec passes one instead of Keras's: an application's `weights: null`)."""
    entry = catalog.layer(type_name) or {}
    defaults = {**entry.get("defaults", {}), **entry.get("safe_defaults", {})}
    found = {}
    for key, value in args.items():
        value = _layer_value(type_name, key, value)
        default = defaults.get(key, _MISSING)
        if default is not _MISSING and same(value, _layer_value(type_name, key, default)):
            continue
        found[key] = value
    if _POOLING.match(type_name) and "strides" in found:
        pool_size = found.get("pool_size", _layer_value(type_name, "pool_size", defaults.get("pool_size")))
        if same(found["strides"], pool_size):
            del found["strides"]  # Keras's strides=None means "as pool_size"
    return found


def call_args(type_name: str | None, call: dict[str, Any]) -> dict[str, Any]:
    """A node's `call:` arguments without those equal to the default of the layer's `call`
    (`type_name`'s, as the catalog records it; all kept for a type it does not know)."""
    entry = (catalog.layer(type_name) or {}) if type_name is not None else {}
    defaults = entry.get("call_defaults", {})
    return {k: v for k, v in call.items() if k not in defaults or not same(v, defaults[k])}


def op_args(op_name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The arguments of an `{op: op_name}` node without those equal to the function's default."""
    from graphspec.spec import ops

    entry = ops.op(op_name) or {}
    defaults = entry.get("defaults", {})
    found = {}
    for key, value in args.items():
        if key in defaults and same(value, defaults[key]):
            continue
        found[key] = value
    return found


def node_args(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a `weight`, `range` or `random` node (`kind`) in canonical form: Keras
    objects in one spelling, and without the arguments equal to their defaults
    (`graphspec.spec.nodes.ARGS`)."""
    from graphspec.spec import nodes

    defaults = nodes.ARGS[kind]
    found = {}
    for key, value in args.items():
        section = nodes.OBJECTS.get(key)
        if section is not None:
            value = keras_object(section, value)
        default = defaults.get(key, _MISSING)
        if default is not _MISSING and section is not None:
            default = keras_object(section, default)
        if default is not _MISSING and same(value, default):
            continue
        found[key] = value
    return found


def keras_object(section: str, value: Any) -> Any:
    """An initializer, regularizer or constraint (`section`) in one form: `{type: Class, ...}`
    with the class's defaults left out, from any name Keras accepts. Values the catalog does not
    know (None, a name it does not list) are returned as they are."""
    objects = catalog.catalog().get("objects", {}).get(section)
    if objects is None:
        return value
    if isinstance(value, str):
        cls = objects["names"].get(value)
        return {"type": cls} if cls is not None else value
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        cls = objects["names"].get(value["type"], value["type"])
        defaults = objects["classes"].get(cls, {}).get("defaults", {})
        rest = {k: v for k, v in value.items() if k != "type"}
        return {
            "type": cls,
            **{k: v for k, v in rest.items() if k not in defaults or not same(v, defaults[k])},
        }
    return value


def optimizer(value: Any) -> Any:
    """`compile.optimizer` in one form: `{type: Class, ...}` without the class's defaults, from
    its name in any case Keras accepts (`adam`, `Adam`) or a `{type: ...}` mapping."""
    classes = catalog.catalog().get("optimizers", {})
    by_name = {name.lower(): name for name in classes}
    if isinstance(value, str):
        cls = value if value in classes else by_name.get(value.lower())
        return {"type": cls} if cls is not None else value
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        cls = value["type"] if value["type"] in classes else by_name.get(value["type"].lower(), value["type"])
        defaults = classes.get(cls, {}).get("defaults", {})
        rest = {k: v for k, v in value.items() if k != "type"}
        return {
            "type": cls,
            **{k: v for k, v in rest.items() if k not in defaults or not same(v, defaults[k])},
        }
    return value


def same(a: Any, b: Any) -> bool:
    """Whether two canonical values are equal as data (numbers by value, booleans apart)."""
    return _text(a) == _text(b)


def _text(value: Any) -> str:
    return json.dumps(_number(value), sort_keys=True, separators=(",", ":"), default=str)


def _number(value: Any) -> Any:
    """Integral floats as ints, inside lists and mappings too: `1.0` and `1` are one number."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_number(v) for v in value]
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    return value


def _layer_value(type_name: str, key: str, value: Any) -> Any:
    """One argument of a layer in its canonical spelling (see the module's table)."""
    is_layer = key in catalog.LAYER_VALUED_ARGS or key in _ACTIVATIONS  # `activation: {type: ReLU}`
    if is_layer and isinstance(value, dict) and isinstance(value.get("type"), str):
        inner = {k: v for k, v in value.items() if k != "type"}
        return {"type": value["type"], **layer_args(value["type"], inner)}
    for suffix, section in _OBJECT_SUFFIXES.items():
        if key.endswith(suffix):
            return keras_object(section, value)
    if key in _ACTIVATIONS and isinstance(value, str):
        value = catalog.catalog().get("activation_aliases", {}).get(value, value)
        return None if value == "linear" else value
    per_axis = _PER_AXIS_LAYER.match(type_name)
    if (
        per_axis
        and key in _PER_AXIS_ARGS
        and not (per_axis.group(1) == "UpSampling" and per_axis.group(2) == "1")
    ):
        if isinstance(value, int) and not isinstance(value, bool):
            return [value] * int(per_axis.group(2))
        return value
    padding = _PADDING_LAYER.match(type_name)
    if padding and key in ("padding", "cropping"):
        return _padding(value, int(padding.group(2)))
    if (type_name, key) == ("EinsumDense", "output_shape") and isinstance(value, int):
        return [value]
    if (type_name, key) in _ONE_AXIS and isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _padding(value: Any, rank: int) -> Any:
    """ZeroPadding/Cropping amounts as one `[before, after]` pair per axis (1D: one pair)."""

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if rank == 1:
        return [value, value] if is_int(value) else value
    if is_int(value):
        return [[value, value]] * rank
    if isinstance(value, list) and len(value) == rank and all(is_int(v) for v in value):
        return [[v, v] for v in value]
    return value

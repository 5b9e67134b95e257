"""graphspec's own node kinds: `weight:`, `range:` and `random:`, and the checks of their arguments.

Each is one graphspec Keras layer (graphspec/keras/layers.py) reading one tensor:
- `weight: SHAPE` — a learnable tensor of SHAPE, broadcast over the batch of what it reads;
- `range: AXIS` — the positions 0..n-1 along axis AXIS of what it reads, for each sample;
- `random: normal|uniform` — random values shaped like what it reads, sampled in training.

Their arguments are listed here with their defaults (fingerprints fill them in), and checked
without TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphspec.errors import did_you_mean
from graphspec.spec import catalog
from graphspec.spec.model import MAX_SEED

if TYPE_CHECKING:
    from graphspec.spec.check import Context
    from graphspec.spec.model import LayerSpec

KINDS = ("weight", "range", "random")
DISTRIBUTIONS = ("normal", "uniform")
# Each kind's arguments beside its own key, with their defaults.
ARGS: dict[str, dict[str, Any]] = {
    "weight": {
        "initializer": "zeros",
        "regularizer": None,
        "constraint": None,
        "dtype": None,
        "trainable": True,
    },
    "range": {"start": 0, "step": 1, "dtype": "int32"},
    "random": {"mean": 0.0, "stddev": 1.0, "minval": 0.0, "maxval": 1.0, "seed": None, "dtype": None},
}
# Arguments of one distribution only.
_DISTRIBUTION_ARGS = {"normal": ("mean", "stddev"), "uniform": ("minval", "maxval")}
# The Keras layer class each kind builds, as its class name (graphspec/keras/layers.py).
CLASSES = {"weight": "Weight", "range": "Range", "normal": "RandomNormal", "uniform": "RandomUniform"}
OBJECTS = {"initializer": "initializers", "regularizer": "regularizers", "constraint": "constraints"}
_FLOATS = ("float16", "bfloat16", "float32", "float64")
_MIXED = ("mixed_float16", "mixed_bfloat16")  # dtype policies: float32 weights, computed in 16 bits
_INTEGERS = ("int8", "int16", "int32", "int64", "uint8")


def kind_of(node: LayerSpec) -> str | None:
    """Which of graphspec's own kinds `node` is, or None for any other node."""
    return next((k for k in KINDS if getattr(node, k, None) is not None), None)


def class_name(node: LayerSpec) -> str:
    """The name of the graphspec Keras layer class a `weight`/`range`/`random` node builds."""
    kind = kind_of(node)
    return CLASSES[node.random if kind == "random" else kind]


def label(node: LayerSpec) -> str:
    """A short label for plots and views: `weight [1, 768]`, `range 1`, `random normal`."""
    kind = kind_of(node)
    value = getattr(node, kind)
    return f"{kind} {list(value)}" if kind == "weight" else f"{kind} {value}"


def check_nodes(ctx: Context) -> None:
    """Every `weight`, `range` and `random` node: its own value, its arguments, what it reads."""
    for name, node in ctx.spec.layers.items():
        kind = kind_of(node)
        if kind is None:
            continue
        path = ("layers", name)
        what = f"{kind} node '{name}'"
        value = getattr(node, kind)
        if kind == "weight":
            if not value:
                ctx.error(f"{what} has an empty shape", path + ("weight",), hint="e.g. weight: [1, 768]")
            for i, dim in enumerate(value):
                if dim <= 0:
                    ctx.error(f"{what}: dimension {dim} of its shape is not positive", path + ("weight", i))
        elif kind == "random" and value not in DISTRIBUTIONS:
            ctx.error(
                f"{what} draws from '{value}'; it is normal or uniform",
                path + ("random",),
                hint=did_you_mean(value, DISTRIBUTIONS),
            )
        known = ARGS[kind]
        for arg, arg_value in node.args.items():
            if arg not in known:
                ctx.error(
                    f"{what} has no argument '{arg}'",
                    path + (arg,),
                    key=True,
                    hint=did_you_mean(arg, known) or "it takes: " + ", ".join(known),
                )
            elif kind == "random" and value in DISTRIBUTIONS and arg in _other_distribution(value):
                ctx.error(
                    f"{what}: '{arg}' is an argument of a uniform draw, not a normal one"
                    if value == "normal"
                    else f"{what}: '{arg}' is an argument of a normal draw, not a uniform one",
                    path + (arg,),
                    key=True,
                    hint="normal takes mean and stddev; uniform takes minval and maxval",
                )
            else:
                _check_value(ctx, what, kind, arg, arg_value, path + (arg,))
        if not isinstance(node.inbound, str):
            ctx.error(
                f"{what} reads one tensor; 'in' names one node",
                path + ("in",),
                hint="its output takes the batch (and, for range and random, the shape) of that tensor",
            )
        for arg in node.call:
            if kind != "random" or arg != "training":
                ctx.error(
                    f"{what} has call argument '{arg}', which its call does not take",
                    path + ("call", arg),
                    key=True,
                    hint="only a random node takes one: call: {training: true}",
                )


def _other_distribution(distribution: str) -> tuple[str, ...]:
    return _DISTRIBUTION_ARGS["uniform" if distribution == "normal" else "normal"]


def _check_value(ctx: Context, what: str, kind: str, arg: str, value: Any, path: tuple) -> None:
    """One argument's value: of the right type, and a Keras object Keras has."""
    if arg in OBJECTS:
        if value is None and arg != "initializer":
            return
        _check_object(ctx, what, arg, value, path)
    elif arg == "dtype":
        if value is None and kind != "range":
            return
        allowed = _FLOATS + _INTEGERS if kind == "range" else _FLOATS + _MIXED
        if value not in allowed:
            ctx.error(
                f"{what}: dtype '{value}' is not one of {', '.join(allowed)}",
                path,
                hint=did_you_mean(str(value), allowed),
            )
    elif arg == "trainable":
        if not isinstance(value, bool):
            ctx.error(f"{what}: 'trainable' is true or false, not {value!r}", path)
    elif arg in ("start", "step"):
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.error(f"{what}: '{arg}' is a whole number, not {value!r}", path)
        elif arg == "step" and value == 0:
            ctx.error(f"{what}: 'step' is not 0", path)
    elif arg == "seed":
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED
        ):
            ctx.error(f"{what}: 'seed' is a whole number from 0 to {MAX_SEED:,}, not {value!r}", path)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):  # mean, stddev, minval, maxval
        ctx.error(f"{what}: '{arg}' is a number, not {value!r}", path)
    elif arg == "stddev" and value < 0:
        ctx.error(f"{what}: 'stddev' is not negative", path)


def _check_object(ctx: Context, what: str, arg: str, value: Any, path: tuple) -> None:
    """An initializer, regularizer or constraint: a Keras name, or `{type: CLASS, ...arguments}`."""
    objects = catalog.catalog()["objects"][OBJECTS[arg] if arg in OBJECTS else arg]
    names, classes = objects["names"], objects["classes"]
    if isinstance(value, str):
        if value not in names:
            ctx.error(f"{what}: unknown {arg} '{value}'", path, hint=did_you_mean(value, list(names)))
        return
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        ctx.error(f"{what}: '{arg}' is a name or {{type: NAME, ...}}", path)
        return
    entry = classes.get(value["type"])
    if entry is None:
        ctx.error(
            f"{what}: unknown {arg} '{value['type']}'",
            path + ("type",),
            hint=did_you_mean(value["type"], list(classes)),
        )
        return
    defaults = entry.get("defaults", {})
    for key, given in value.items():
        if key != "type" and key not in defaults:
            ctx.error(
                f"{what}: {arg} {value['type']} has no argument '{key}'",
                path + (key,),
                key=True,
                hint=did_you_mean(key, defaults),
            )
        elif arg == "initializer" and _refused_number(defaults.get(key), given):
            ctx.error(
                f"{what}: {arg} {value['type']}'s argument '{key}' is a number, not {given!r}", path + (key,)
            )


def _refused_number(default: Any, value: Any) -> bool:
    """Whether an initializer refuses `value` for an argument whose default is `default`: one
    with a number as default (mean, stddev, minval, maxval, gain, scale, value) refuses a
    string, null or mapping when the weight is made (a list is broadcast, and taken)."""
    numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
    if not numeric or (isinstance(value, str) and "${" in value):
        return False
    return value is None or isinstance(value, (str, dict))

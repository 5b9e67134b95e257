"""Generate `graphspec/spec/catalog.json` from the installed Keras.

The catalog is what lets `graphspec validate` check layer types and constructor arguments
without importing TensorFlow. Regenerate it after upgrading Keras:

    python -m graphspec.keras.catalog_gen
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from graphspec import policy
from graphspec.keras import catalog_types

CATALOG_PATH = Path(__file__).resolve().parent.parent / "spec" / "catalog.json"

# Keyword arguments every layer's base class accepts through **kwargs. `name` is left out on
# purpose: a node's name is its key in the spec.
_BASE_LAYER_ARGS = ["activity_regularizer", "autocast", "dtype", "trainable"]
# Those of them that a layer takes through **kwargs and then refuses whatever their value (it
# passes its own to the base class, or never forwards them): left out of its catalog entry, so
# that validate calls them unknown where Keras does. tests/test_catalog_types.py checks each.
REFUSED_BASE_ARGS = {
    "ActivityRegularization": {"activity_regularizer"},
    "IntegerLookup": {"activity_regularizer", "autocast"},
    "StringLookup": {"activity_regularizer", "autocast"},
}


def _parameters(func: Any) -> tuple[list[str], list[str], bool]:
    """Named parameters of `func`, those without default, and whether it takes **kwargs."""
    defaults, var_kw = _defaults(func)
    names = list(defaults)
    return names, [n for n in names if defaults[n] is _REQUIRED], var_kw


_REQUIRED = object()


def _defaults(func: Any) -> tuple[dict[str, Any], bool]:
    """Each named parameter of `func` with its default (`_REQUIRED` if none), and whether it
    takes **kwargs."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return {}, True
    defaults, var_kw = {}, False
    for p in signature.parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is not p.VAR_POSITIONAL:
            defaults[p.name] = _REQUIRED if p.default is p.empty else p.default
    return defaults, var_kw


def _capabilities(section: str, name: str, func: Any) -> dict:
    """What the arguments of `func` (class `name` of catalog `section`) can do, for the catalog:
    `capabilities` (argument -> read, write, network or code; plain data is left out),
    `resource_defaults` (Keras's default of such an argument, where it has one),
    `safe_defaults` (what graphspec passes instead of a default that would read, reach or run)
    and `refused` (the argument that makes the class unusable from a spec, whatever it says).
    """
    defaults, _ = _defaults(func)
    found: dict[str, Any] = {}
    for arg, default in defaults.items():
        kind = policy.capability(section, name, arg)
        if kind in (None, policy.DATA):
            continue
        found.setdefault("capabilities", {})[arg] = kind
        if default is not _REQUIRED and default is not None:
            found.setdefault("resource_defaults", {})[arg] = default
        if kind == policy.WRITE:
            continue
        replaced, value = policy.safe_default(section, name, arg)
        if replaced:
            found.setdefault("safe_defaults", {})[arg] = value
        elif default is not None and "refused" not in found:
            # Required, or a default that reads, reaches or runs something: no value a spec
            # could give makes this class safe.
            found["refused"] = {"argument": arg, "capability": kind}
    return found


def unclassified() -> list[tuple[str, str, str]]:
    """Arguments of the installed Keras that look like paths, addresses or code (by name or
    default) and that `graphspec.policy.CAPABILITIES` does not classify."""
    import keras

    # Every keras.ops function, not only those the catalog lists: an op left out today for its
    # shape may be listed by a later Keras, with its callable argument unclassified.
    ops = (
        ("ops", name, getattr(keras.ops, name)) for name in sorted(dir(keras.ops)) if not name.startswith("_")
    )
    missing = []
    for section, name, func in (*_catalogued(), *(op for op in ops if inspect.isfunction(op[2]))):
        for arg, default in _defaults(func)[0].items():
            value = None if default is _REQUIRED else default
            if policy.looks_like_resource(arg, value) and policy.capability(section, name, arg) is None:
                missing.append((section, name, arg))
    return missing


def _classes(module: Any, base: type) -> dict[str, type]:
    found = {}
    for name in dir(module):
        obj = getattr(module, name)
        if inspect.isclass(obj) and issubclass(obj, base):
            found[name] = obj
    return found


def _layer_entry(cls: type) -> dict:
    args, required, var_kw = _parameters(cls.__init__)
    defaults = _json_defaults(_defaults(cls.__init__)[0])
    if var_kw:
        refused = REFUSED_BASE_ARGS.get(cls.__name__, set())
        args = args + [a for a in _BASE_LAYER_ARGS if a not in args and a not in refused]
        # What the base class gives the arguments it takes through **kwargs.
        base = _json_defaults(_defaults(_base_layer_init())[0])
        defaults.update({a: v for a, v in base.items() if a in args and a not in defaults})
    call_args, _, _ = _parameters(cls.call)
    # The call's defaults too: `call: {use_causal_mask: false}` is the model without it.
    call_defaults = _json_defaults(_defaults(cls.call)[0])
    return {
        "args": sorted(a for a in args if a != "name"),
        "required": sorted(a for a in required if a != "name"),
        "call": call_args,
        "call_defaults": {k: v for k, v in sorted(call_defaults.items()) if k in call_args},
        "defaults": {k: v for k, v in sorted(defaults.items()) if k != "name"},
    }


class _InputSize(Exception):
    pass


def _input_size(application: Any) -> dict:
    """`{"default_size": S}`: the image size keras.applications' `obtain_input_shape` is given
    by `application` when built with neither weights nor an input shape (its model then takes
    (S, S, 3) with include_top, else any size); {} for an application that does not ask it
    (MobileNetV3). Asked by calling the application with `obtain_input_shape` replaced by one
    that stops it, before any layer is made."""
    from keras.src.applications import imagenet_utils

    def stop(input_shape: Any, default_size: int, **kwargs: Any) -> None:
        raise _InputSize(default_size)

    original = imagenet_utils.obtain_input_shape
    imagenet_utils.obtain_input_shape = stop
    try:
        application(weights=None)
    except _InputSize as asked:
        return {"default_size": asked.args[0]}
    except Exception:
        return {}
    finally:
        imagenet_utils.obtain_input_shape = original
    return {}


def _base_layer_init() -> Any:
    import keras

    return keras.layers.Layer.__init__


def _class_args(constructor: Any, left_out: tuple[str, ...] = ("name",)) -> dict:
    args, required, _ = _parameters(constructor)
    defaults = _json_defaults(_defaults(constructor)[0])
    return {
        "args": sorted(a for a in args if a not in left_out),
        "required": sorted(required),
        "defaults": {k: v for k, v in sorted(defaults.items()) if k not in left_out},
    }


def _json_defaults(defaults: dict[str, Any]) -> dict[str, Any]:
    """The defaults of `_defaults` that are plain data, as JSON values (tuples as lists).

    A default that is not plain data (an object, a function, a non-finite float) is left out,
    and so is a required argument: the fingerprint (`graphspec/spec/defaults.py`) drops an
    argument only where the catalog records its default, so such an argument always counts.
    """
    found = {}
    for name, value in defaults.items():
        if value is _REQUIRED:
            continue
        plain = _json_value(value)
        if plain is not _OPAQUE:
            found[name] = plain
    return found


_OPAQUE = object()


def _json_value(value: Any) -> Any:
    """`value` as JSON data, or `_OPAQUE` when it is not plain data."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else _OPAQUE
    if isinstance(value, (list, tuple)):
        items = [_json_value(v) for v in value]
        return _OPAQUE if any(v is _OPAQUE for v in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: _json_value(v) for k, v in value.items()}
        return _OPAQUE if any(v is _OPAQUE for v in items.values()) else items
    return _OPAQUE


# Keras objects a layer argument names by string or by `{type: Class, ...}`: initializers,
# regularizers and constraints. The catalog records which class each accepted name means and
# each class's defaults, so that `glorot_uniform` and `{type: GlorotUniform}` hash the same.
_OBJECT_MODULES = ("initializers", "regularizers", "constraints")


def _objects() -> dict:
    import importlib

    found = {}
    for section in _OBJECT_MODULES:
        module = importlib.import_module(f"keras.src.{section}")
        base = {"initializers": "Initializer", "regularizers": "Regularizer", "constraints": "Constraint"}
        names, classes = {}, {}
        for name, cls in sorted(module.ALL_OBJECTS_DICT.items()):
            if not inspect.isclass(cls) or cls.__name__ == base[section]:
                continue
            public = getattr(importlib.import_module(f"keras.{section}"), cls.__name__, None)
            canonical = cls.__name__ if public is cls else name
            names[name] = canonical
            entry = {
                "args": _class_args(cls.__init__)["args"],
                "defaults": _json_defaults(_defaults(cls.__init__)[0]),
            }
            classes[canonical] = {**entry, "types": catalog_types.types(section, canonical, entry)}
            if when := catalog_types.types_when(section, canonical, entry):
                classes[canonical]["types_when"] = when
        found[section] = {"names": names, "classes": dict(sorted(classes.items()))}
    return found


def _activation_aliases() -> dict[str, str]:
    """Activation names Keras saves under another name, the same function (`swish` -> `silu`)."""
    import keras
    from keras.src import activations

    aliases = {}
    for name, function in sorted(activations.ALL_OBJECTS_DICT.items()):
        saved = keras.activations.serialize(function)
        if isinstance(saved, str) and saved != name:
            aliases[name] = saved
    return aliases


# Base classes and wrappers no spec names.
_LEFT_OUT = {
    "layers": ("Layer", "InputLayer"),
    "optimizers": ("Optimizer", "LossScaleOptimizer", "MultiOptimizer", "OptimizerMap"),
    "losses": ("Loss", "LossFunctionWrapper"),
    "metrics": ("Metric", "MeanMetricWrapper"),
    "callbacks": ("Callback", "CallbackList", "History", "ProgbarLogger", "LambdaCallback"),
}


def _catalogued() -> Iterator[tuple[str, str, Any]]:
    """(section, name, constructor) of every class or function the catalog describes."""
    import keras

    for name, cls in sorted(_classes(keras.layers, keras.layers.Layer).items()):
        # An alias (AvgPool2D) is listed under its canonical name only.
        if name not in _LEFT_OUT["layers"] and not _is_alias(keras.layers, name, cls):
            yield "layers", name, cls
    for name in sorted(dir(keras.applications)):
        obj = getattr(keras.applications, name)
        if name[0].isupper() and callable(obj):
            yield "applications", name, obj
    for section, module, base in (
        ("optimizers", keras.optimizers, keras.optimizers.Optimizer),
        ("losses", keras.losses, keras.losses.Loss),
        ("metrics", keras.metrics, keras.metrics.Metric),
        ("callbacks", keras.callbacks, keras.callbacks.Callback),
    ):
        for name, cls in sorted(_classes(module, base).items()):
            if name not in _LEFT_OUT[section]:
                yield section, name, cls


def application_layers() -> dict[str, type]:
    """The layer classes keras.applications defines for its own models, by their spec name
    `applications.MODULE.CLASS` (`applications.convnext.LayerScale`): Keras's own code, which
    its applications use and save, though keras.layers does not export them."""
    import importlib
    import pkgutil

    import keras
    from keras.src import applications

    found = {}
    for info in sorted(pkgutil.iter_modules(applications.__path__), key=lambda i: i.name):
        if info.name.endswith("_test"):
            continue
        module = importlib.import_module(f"{applications.__name__}.{info.name}")
        for name, cls in sorted(vars(module).items()):
            if (
                inspect.isclass(cls)
                and issubclass(cls, keras.layers.Layer)
                and cls.__module__ == module.__name__
            ):
                found[f"applications.{info.name}.{name}"] = cls
    return found


def _is_alias(module: Any, name: str, cls: type) -> bool:
    return cls.__name__ != name and hasattr(module, cls.__name__)


def _constructor(obj: Any) -> Any:
    return obj.__init__ if inspect.isclass(obj) else obj


# keras.ops functions a spec may not use as nodes, though Keras builds an operation for each:
# they take Python callables (code), make a tensor from no tensor (a node that reads no tensor is
# taken by Keras's functional graph for an input, and its output is "not connected to inputs"),
# or return memory that was never written.
_CALLABLE_PARAMETERS = {"f", "fn", "function", "body", "body_fun", "cond", "true_fn", "false_fn", "branches"}
_OPS_LEFT_OUT = {
    "arange": "makes a tensor from no tensor",
    "full": "makes a tensor from no tensor",
    "geomspace": "makes a tensor from no tensor",
    "linspace": "makes a tensor from no tensor",
    "logspace": "makes a tensor from no tensor",
    "empty_like": "returns uninitialised memory",
    "convert_to_tensor": "converts Python data, which a spec does not hold",
}


def _ops() -> Iterator[tuple[str, Any, type]]:
    """(name, function, operation class) of each `keras.ops` function a spec may use as a node.

    A function is listed when Keras builds one `Operation` subclass for it (the class Keras
    saves in a model file and loads back) and every parameter of the function is either a
    parameter of that class's constructor or of its `call`, never both: then a spec's node
    says exactly what the saved operation holds, and `export` can write it back.
    """
    import keras
    from keras.src.ops.operation import Operation

    for name in sorted(dir(keras.ops)):
        function = getattr(keras.ops, name)
        if name.startswith("_") or not inspect.isfunction(function) or name in _OPS_LEFT_OUT:
            continue
        module = inspect.getmodule(function)
        wanted = name.replace("_", "").lower()
        classes = [
            cls
            for cls_name, cls in vars(module).items()
            if inspect.isclass(cls)
            and issubclass(cls, Operation)
            and cls_name.replace("_", "").lower() == wanted
        ]
        if len(classes) != 1:
            continue
        cls = classes[0]
        parameters = _signature_names(function)
        init, call = _signature_names(cls.__init__) - {"name"}, _signature_names(cls.call)
        code = {p for p in parameters if policy.capability("ops", name, p) == policy.CODE}
        if parameters & (_CALLABLE_PARAMETERS | code) or parameters != init | call or init & call:
            continue
        yield name, function, cls


def _signature_names(func: Any) -> set[str]:
    parameters = inspect.signature(func).parameters.values()
    return {p.name for p in parameters if p.name != "self" and p.kind is not p.VAR_KEYWORD}


def _op_entry(function: Any, cls: type) -> dict:
    """An op's catalog entry: the function's parameters in order (the spec's arguments and
    operands), which of them the operation's constructor takes (the rest go to its call), the
    variadic one, and the class Keras saves."""
    parameters = [p for p in inspect.signature(function).parameters.values() if p.kind is not p.VAR_KEYWORD]
    init = _signature_names(cls.__init__) - {"name"}
    defaults = {p.name: p.default for p in parameters if p.default is not p.empty}
    entry = {
        "args": [p.name for p in parameters],
        "required": [p.name for p in parameters if p.default is p.empty and p.kind is not p.VAR_POSITIONAL],
        "defaults": _json_defaults(defaults),
        "init": [p.name for p in parameters if p.name in init],
        "class": cls.__name__,
        "module": cls.__module__,
    }
    variadic = [p.name for p in parameters if p.kind is p.VAR_POSITIONAL]
    if variadic:
        entry["variadic"] = variadic[0]
    return entry


def generate() -> dict:
    """The catalog of the installed Keras, as plain JSON-ready data."""
    import keras
    from keras.src import losses as losses_module
    from keras.src import metrics as metrics_module

    sections: dict[str, dict] = {name: {} for name in ("layers", "applications", *_LEFT_OUT)}
    for section, name, obj in _catalogued():
        if section == "layers":
            entry = _layer_entry(obj)
        elif section == "applications":
            entry = {**_class_args(obj, ("name", "input_tensor")), **_input_size(obj)}
        else:
            entry = _class_args(obj.__init__)
        sections[section][name] = {**entry, **_capabilities(section, name, _constructor(obj))}
    aliases = {
        name: cls.__name__
        for name, cls in sorted(_classes(keras.layers, keras.layers.Layer).items())
        if _is_alias(keras.layers, name, cls)
    }
    # Every string `keras.losses.get` / `keras.metrics.get` resolves, functions and classes.
    loss_names = sorted(n for n in losses_module.ALL_OBJECTS_DICT if n not in _LEFT_OUT["losses"])
    # compile() understands these strings itself, beyond the registered metrics.
    metric_names = sorted(
        {n for n in metrics_module.ALL_OBJECTS_DICT if n not in _LEFT_OUT["metrics"]}
        | {"accuracy", "acc", "crossentropy", "ce"}
    )
    # Read like layers, built from the class the entry names (never from a spec's text).
    helpers = {
        name: {
            **_layer_entry(cls),
            **_capabilities("layers", name, cls.__init__),
            "module": cls.__module__,
            "class": cls.__name__,
        }
        for name, cls in application_layers().items()
    }
    _add_types("layers", sections["layers"])
    _add_types("application_layers", helpers)
    for section in ("applications", "optimizers", "losses", "metrics", "callbacks"):
        _add_types(section, sections[section])
    ops = {name: _op_entry(function, cls) for name, function, cls in _ops()}
    _add_types("ops", ops)
    return {
        "$defs": catalog_types.defs(),
        "keras_version": keras.__version__,
        "layers": sections["layers"],
        "layer_aliases": aliases,
        "applications": sections["applications"],
        "application_layers": helpers,
        "optimizers": sections["optimizers"],
        "losses": {"names": loss_names, "classes": sections["losses"]},
        "metrics": {"names": metric_names, "classes": sections["metrics"]},
        "callbacks": sections["callbacks"],
        "ops": ops,
        "objects": _objects(),
        "activation_aliases": _activation_aliases(),
    }


def _add_types(section: str, entries: dict[str, dict]) -> None:
    """Give each entry of `section` its `types` (graphspec/keras/catalog_types.py), always
    present, empty where no argument's type is known."""
    for name, entry in entries.items():
        entry["types"] = catalog_types.types(section, name, entry)
        if when := catalog_types.types_when(section, name, entry):
            entry["types_when"] = when
        if where := catalog_types.types_where(section, name, entry):
            entry["types_where"] = where
        if computed := catalog_types.computed(section, name, entry):
            entry["computed"] = computed
        if stand_ins := catalog_types.stand_ins(section, name, computed):
            entry["stand_ins"] = stand_ins


def render(catalog: dict) -> str:
    return json.dumps(catalog, indent=1, sort_keys=True) + "\n"


def compare(old: dict, new: dict) -> list[str]:
    """What changed from catalog `old` to catalog `new`, a line each: classes added or removed,
    and the arguments, required arguments and capabilities of each class kept."""
    lines = []
    if old.get("keras_version") != new.get("keras_version"):
        lines.append(f"keras_version: {old.get('keras_version')} -> {new.get('keras_version')}")
    for section in (
        "layers",
        "application_layers",
        "applications",
        "optimizers",
        "losses",
        "metrics",
        "callbacks",
    ):
        before, after = _classes_of(old, section), _classes_of(new, section)
        for name in sorted(after.keys() - before.keys()):
            lines.append(f"{section}: + {name}")
        for name in sorted(before.keys() - after.keys()):
            lines.append(f"{section}: - {name}")
        for name in sorted(before.keys() & after.keys()):
            for key in (
                "args",
                "required",
                "call",
                "defaults",
                "types",
                "capabilities",
                "refused",
                "safe_defaults",
            ):
                was, now = before[name].get(key), after[name].get(key)
                if was != now:
                    lines.append(f"{section}: ~ {name}.{key}: {was} -> {now}")
    return lines


def _classes_of(catalog: dict, section: str) -> dict:
    entries = catalog.get(section, {})
    return entries.get("classes", {}) if section in ("losses", "metrics") else entries


def main(argv: list[str]) -> int:
    """`--compare` prints what the installed Keras changes in the committed catalog (and exits 1
    when anything does); otherwise the catalog is rewritten."""
    if "--compare" in argv:
        changes = compare(json.loads(CATALOG_PATH.read_text()), generate())
        unknown = unclassified()
        for line in changes:
            print(line)
        for section, name, arg in unknown:
            print(
                f"{section}: {name}.{arg} looks like a path, address or code: classify it in graphspec.policy"
            )
        print(f"{len(changes)} change(s) to the catalog, {len(unknown)} unclassified argument(s)")
        return 1 if changes or unknown else 0
    CATALOG_PATH.write_text(render(generate()))
    print(f"wrote {CATALOG_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Generate `graphspec/spec/catalog.json` from the installed Keras.

The catalog is what lets `graphspec validate` check layer types and constructor arguments
without importing TensorFlow. Regenerate it after upgrading Keras:

    python -m graphspec.keras.catalog_gen
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

CATALOG_PATH = Path(__file__).resolve().parent.parent / "spec" / "catalog.json"

# Keyword arguments every layer's base class accepts through **kwargs. `name` is left out on
# purpose: a node's name is its key in the spec.
_BASE_LAYER_ARGS = ["activity_regularizer", "autocast", "dtype", "trainable"]


def _parameters(func: Any) -> tuple[list[str], list[str], bool]:
    """Named parameters of `func`, those without default, and whether it takes **kwargs."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return [], [], True
    names, required, var_kw = [], [], False
    for p in signature.parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is p.VAR_POSITIONAL:
            continue
        else:
            names.append(p.name)
            if p.default is p.empty:
                required.append(p.name)
    return names, required, var_kw


def _classes(module: Any, base: type) -> dict[str, type]:
    found = {}
    for name in dir(module):
        obj = getattr(module, name)
        if inspect.isclass(obj) and issubclass(obj, base):
            found[name] = obj
    return found


def _layer_entry(cls: type) -> dict:
    args, required, var_kw = _parameters(cls.__init__)
    if var_kw:
        args = args + [a for a in _BASE_LAYER_ARGS if a not in args]
    call_args, _, _ = _parameters(cls.call)
    return {
        "args": sorted(a for a in args if a != "name"),
        "required": sorted(a for a in required if a != "name"),
        "call": call_args,
    }


def _class_args(cls: type) -> dict:
    args, required, var_kw = _parameters(cls.__init__)
    return {"args": sorted(a for a in args if a != "name"), "required": sorted(required)}


def generate() -> dict:
    """The catalog of the installed Keras, as plain JSON-ready data."""
    import keras
    from keras.src import losses as losses_module
    from keras.src import metrics as metrics_module

    layers, aliases = {}, {}
    for name, cls in sorted(_classes(keras.layers, keras.layers.Layer).items()):
        if name in ("Layer", "InputLayer"):
            continue
        if cls.__name__ != name and hasattr(keras.layers, cls.__name__):
            aliases[name] = cls.__name__
            continue
        layers[name] = _layer_entry(cls)

    applications = {}
    for name in sorted(dir(keras.applications)):
        obj = getattr(keras.applications, name)
        if name[0].isupper() and callable(obj):
            args, required, _ = _parameters(obj)
            applications[name] = {
                "args": sorted(a for a in args if a not in ("name", "input_tensor")),
                "required": sorted(required),
            }

    optimizers = {
        name: _class_args(cls)
        for name, cls in sorted(_classes(keras.optimizers, keras.optimizers.Optimizer).items())
        if name not in ("Optimizer", "LossScaleOptimizer", "MultiOptimizer", "OptimizerMap")
    }
    loss_classes = {
        name: _class_args(cls)
        for name, cls in sorted(_classes(keras.losses, keras.losses.Loss).items())
        if name not in ("Loss", "LossFunctionWrapper")
    }
    metric_classes = {
        name: _class_args(cls)
        for name, cls in sorted(_classes(keras.metrics, keras.metrics.Metric).items())
        if name not in ("Metric", "MeanMetricWrapper")
    }
    callbacks = {
        name: _class_args(cls)
        for name, cls in sorted(_classes(keras.callbacks, keras.callbacks.Callback).items())
        if name not in ("Callback", "CallbackList", "History", "ProgbarLogger", "LambdaCallback")
    }
    # Every string `keras.losses.get` / `keras.metrics.get` resolves, functions and classes.
    loss_names = sorted(n for n in losses_module.ALL_OBJECTS_DICT if n not in ("Loss", "LossFunctionWrapper"))
    # compile() understands these strings itself, beyond the registered metrics.
    metric_names = sorted(
        {n for n in metrics_module.ALL_OBJECTS_DICT if n not in ("Metric", "MeanMetricWrapper")}
        | {"accuracy", "acc", "crossentropy", "ce"}
    )
    return {
        "keras_version": keras.__version__,
        "layers": layers,
        "layer_aliases": aliases,
        "applications": applications,
        "optimizers": optimizers,
        "losses": {"names": loss_names, "classes": loss_classes},
        "metrics": {"names": metric_names, "classes": metric_classes},
        "callbacks": callbacks,
    }


def render(catalog: dict) -> str:
    return json.dumps(catalog, indent=1, sort_keys=True) + "\n"


def main() -> None:
    CATALOG_PATH.write_text(render(generate()))
    print(f"wrote {CATALOG_PATH}")


if __name__ == "__main__":
    main()

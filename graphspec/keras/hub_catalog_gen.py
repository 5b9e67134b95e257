"""Generate `graphspec/spec/catalog_hub.json`, the catalog of KerasHub's layers, from the
installed keras_hub (the optional extra: `pip install 'graphspec[hub]'`, or `make hub`).

A spec names them `keras_hub.layers.NAME`, and KerasHub's backbones `keras_hub.models.NAME`
(made from their configuration arguments, or from a `preset`, which is graphspec's own argument:
`NAME.from_preset(preset, ...)`). Like Keras's own catalog, the file is what lets
`graphspec validate` check their arguments without importing TensorFlow or keras_hub. It is a
file of its own, so that regenerating Keras's catalog without KerasHub installed leaves it as
it is. Regenerate it after upgrading keras-hub:

    python -m graphspec.keras.hub_catalog_gen
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Iterator

from graphspec.keras import catalog_gen
from graphspec.spec.catalog import HUB_CATALOG_PATH, HUB_MODEL_PREFIX, HUB_PREFIX


def hub_layers() -> Iterator[tuple[str, type]]:
    """(spec name, class) of each layer `keras_hub.layers` exports, sorted by name."""
    import keras
    import keras_hub

    for name in sorted(dir(keras_hub.layers)):
        cls = getattr(keras_hub.layers, name)
        if not name.startswith("_") and inspect.isclass(cls) and issubclass(cls, keras.layers.Layer):
            yield HUB_PREFIX + name, cls


def hub_backbones() -> Iterator[tuple[str, type]]:
    """(spec name, class) of each backbone `keras_hub.models` exports, sorted by name."""
    import keras_hub

    for name in sorted(dir(keras_hub.models)):
        cls = getattr(keras_hub.models, name)
        if (
            name.endswith("Backbone")
            and inspect.isclass(cls)
            and issubclass(cls, keras_hub.models.Backbone)
            and cls is not keras_hub.models.Backbone
        ):
            yield HUB_MODEL_PREFIX + name, cls


def _backbone_entry(name: str, cls: type) -> dict:
    """A backbone's entry: its constructor's arguments, plus `preset`, which gives them all
    (graphspec builds it with `from_preset`); called as a model is."""
    from graphspec import policy

    entry = {**catalog_gen._layer_entry(cls), **catalog_gen._capabilities("layers", name, cls.__init__)}
    entry["args"] = sorted([*entry["args"], "preset"])
    entry["capabilities"] = {
        **entry.get("capabilities", {}),
        "preset": policy.capability("layers", name, "preset"),
    }
    entry["call"] = ["inputs", "training", "mask"]
    # Functional.call's, written out: the class's own signature reads differently once Keras
    # has made any functional model (its call is wrapped then), and the catalog must not.
    entry["call_defaults"] = {"mask": None, "training": None}
    # A default that is code (MobileNetV5's rounding function) is no JSON: its class is refused.
    entry["resource_defaults"] = {
        k: v for k, v in entry.get("resource_defaults", {}).items() if isinstance(v, (str, int, float, bool))
    }
    if not entry["resource_defaults"]:
        del entry["resource_defaults"]
    return {**entry, **_refusal(cls), "module": cls.__module__, "class": cls.__name__, "backbone": True}


# A class whose constructor takes no `name`, `trainable` or `dtype` (not even through **kwargs)
# cannot be loaded back from a saved model: Keras passes them all to `from_config`.
_UNLOADABLE = {
    "message": "its constructor takes no name, trainable or dtype, so a saved model cannot load "
    "it back; keras.layers has its own where one exists (RMSNormalization: `type: "
    "RMSNormalization, epsilon: 1.0e-6` computes the same)"
}


def _refusal(cls: type) -> dict:
    parameters = inspect.signature(cls.__init__).parameters.values()
    if any(p.name == "name" or p.kind is p.VAR_KEYWORD for p in parameters):
        return {}
    return {"refused": _UNLOADABLE}


def generate() -> dict:
    """The catalog of the installed keras_hub's layers, as plain JSON-ready data. Each entry is
    a layer entry as in Keras's catalog, plus the module and class it is built from."""
    import keras_hub

    layers = {
        name: {
            **catalog_gen._layer_entry(cls),
            **catalog_gen._capabilities("layers", name, cls.__init__),
            **_refusal(cls),
            "module": cls.__module__,
            "class": cls.__name__,
        }
        for name, cls in hub_layers()
    }
    layers.update({name: _backbone_entry(name, cls) for name, cls in hub_backbones()})
    return {"keras_hub_version": keras_hub.__version__, "layers": layers}


def unclassified() -> list[tuple[str, str, str]]:
    """Arguments of KerasHub's layers that look like paths, addresses or code and that
    `graphspec.policy.CAPABILITIES` does not classify."""
    from graphspec import policy

    missing = []
    for name, cls in [*hub_layers(), *hub_backbones()]:
        for arg, default in catalog_gen._defaults(cls.__init__)[0].items():
            value = None if default is catalog_gen._REQUIRED else default
            if policy.looks_like_resource(arg, value) and policy.capability("layers", name, arg) is None:
                missing.append(("layers", name, arg))
    return missing


def main(argv: list[str]) -> int:
    """Rewrite the file; with `--compare`, print what the installed keras_hub changes (exit 1
    when anything does, or an argument is unclassified)."""
    if "--compare" in argv:
        old = json.loads(HUB_CATALOG_PATH.read_text())
        new = generate()
        changes = catalog_gen.compare(
            {"layers": old["layers"], "keras_version": old["keras_hub_version"]},
            {"layers": new["layers"], "keras_version": new["keras_hub_version"]},
        )
        unknown = unclassified()
        for line in changes:
            print(line)
        for section, name, arg in unknown:
            print(f"{section}: {name}.{arg} looks like a path, address or code: classify it in policy.py")
        return 1 if changes or unknown else 0
    HUB_CATALOG_PATH.write_text(catalog_gen.render(generate()))
    print(f"wrote {HUB_CATALOG_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

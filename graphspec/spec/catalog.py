"""The Keras names a spec may use, read from `catalog.json` (generated from the installed Keras).

Keeping the catalog as data is what makes validation fast: checking `Dense(unitz=3)` needs the
list of Dense's arguments, not TensorFlow. `python -m graphspec.keras.catalog_gen` rewrites it,
and a test proves the committed file equals what the installed Keras generates.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from graphspec.policy import Refusal, class_refusal

CATALOG_PATH = Path(__file__).with_name("catalog.json")

APPLICATION_PREFIX = "applications."

# Layer arguments whose value is itself a layer, written as a nested `{type: ..., ...}`.
LAYER_VALUED_ARGS = ("layer", "backward_layer")


# Layers the user allowed with --allow-custom (graphspec/keras/custom.py): name -> (entry, class).
# Empty unless the command line or the calling program asked: a spec cannot fill it.
_CUSTOM: dict[str, tuple[dict, type]] = {}


def register_custom_layer(name: str, entry: dict, cls: type) -> None:
    _CUSTOM[name] = (entry, cls)


def custom_layers() -> dict[str, tuple[dict, type]]:
    return _CUSTOM


@lru_cache(maxsize=1)
def catalog() -> dict:
    """The whole catalog, parsed once per process."""
    return json.loads(CATALOG_PATH.read_text())


def layer(type_name: str) -> dict | None:
    """Constructor and call arguments of a layer type (`Dense`, `applications.Xception`, or a
    layer keras.applications defines for its models, `applications.convnext.LayerScale`)."""
    helper = catalog().get("application_layers", {}).get(type_name)
    if helper is not None:
        return helper
    if type_name.startswith(APPLICATION_PREFIX):
        entry = catalog()["applications"].get(type_name[len(APPLICATION_PREFIX) :])
        if entry is None:
            return None
        return {**entry, "call": ["inputs", "training", "mask"]}
    entry = catalog()["layers"].get(type_name)
    if entry is None and type_name in _CUSTOM:
        return _CUSTOM[type_name][0]
    return entry


def stale_warning(installed_keras: str) -> str | None:
    """A warning when the catalog was generated from another Keras than `installed_keras`: specs
    would be checked against that version's arguments, which may differ. None when they agree."""
    generated = catalog()["keras_version"]
    if installed_keras == generated:
        return None
    return (
        f"warning: graphspec checks specs against the arguments of Keras {generated}, and Keras "
        f"{installed_keras} is installed: run `make catalog` to check against it, or install the "
        f"tested version (pip install -c constraints.txt -e .)"
    )


def is_application(type_name: str) -> bool:
    """Whether `type_name` is a keras.applications model (`applications.Xception`), not a layer."""
    return (
        type_name.startswith(APPLICATION_PREFIX)
        and type_name[len(APPLICATION_PREFIX) :] in catalog()["applications"]
    )


def application_layer(cls: type) -> str | None:
    """The spec name of a layer class keras.applications defines for its models
    (`applications.convnext.LayerScale`), or None when `cls` is not one."""
    for name, entry in catalog().get("application_layers", {}).items():
        if entry["class"] == cls.__name__ and entry["module"] == cls.__module__:
            return name
    return None


def refusal(type_name: str) -> Refusal | None:
    """Why a spec can never use the layer `type_name` (it runs code, reads a file, ...), or None."""
    entry = layer(type_name)
    return class_refusal(entry) if entry is not None else None


def callback(type_name: str) -> dict | None:
    """Arguments and capabilities of a callback: Keras's, or one of graphspec's own."""
    from graphspec.spec.builtins import BUILTIN_CALLBACKS

    return catalog()["callbacks"].get(type_name) or BUILTIN_CALLBACKS.get(type_name)


def layer_names() -> list[str]:
    c = catalog()
    return (
        list(c["layers"])
        + [APPLICATION_PREFIX + n for n in c["applications"]]
        + list(c.get("application_layers", {}))
        + list(_CUSTOM)
    )

"""The Keras names a spec may use, read from `catalog.json` (generated from the installed Keras).

Keeping the catalog as data is what makes validation fast: checking `Dense(unitz=3)` needs the
list of Dense's arguments, not TensorFlow. `python -m graphspec.keras.catalog_gen` rewrites it,
and a test proves the committed file equals what the installed Keras generates.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

CATALOG_PATH = Path(__file__).with_name("catalog.json")

APPLICATION_PREFIX = "applications."

# Layers that run arbitrary code or load foreign objects: a spec is data, so they are refused.
UNSAFE_LAYERS = {
    "Lambda": "it runs Python code",
    "TFSMLayer": "it loads a TensorFlow SavedModel from disk",
    "TorchModuleWrapper": "it wraps arbitrary PyTorch code",
    "JaxLayer": "it wraps arbitrary JAX code",
    "FlaxLayer": "it wraps arbitrary Flax code",
}

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
    """Constructor and call arguments of a layer type (`Dense`, `applications.Xception`)."""
    if type_name.startswith(APPLICATION_PREFIX):
        entry = catalog()["applications"].get(type_name[len(APPLICATION_PREFIX) :])
        if entry is None:
            return None
        return {**entry, "call": ["inputs", "training", "mask"]}
    entry = catalog()["layers"].get(type_name)
    if entry is None and type_name in _CUSTOM:
        return _CUSTOM[type_name][0]
    return entry


def layer_names() -> list[str]:
    c = catalog()
    return list(c["layers"]) + [APPLICATION_PREFIX + n for n in c["applications"]] + list(_CUSTOM)

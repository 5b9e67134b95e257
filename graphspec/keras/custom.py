"""`--allow-custom MODULE`: the user, never the spec, lets graphspec use their own Keras layers.

Importing a module runs its code, so only the command line (or a notebook's explicit call) may
do it. The module's layers registered with `@keras.saving.register_keras_serializable` become
usable as `type:` by their class name or their registered name (`my_package>Gated`), checked
against their constructor's arguments like Keras's own layers.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import keras

from graphspec.errors import SpecErrors
from graphspec.keras.catalog_gen import _layer_entry
from graphspec.spec import catalog


def allow_custom(modules: list[str]) -> list[str]:
    """Import `modules` and make their registered layers usable; return the names added.

    Modules are found on `sys.path` and in the current folder, as `python -m` would find them.
    Raises `SpecErrors` when a module cannot be imported.
    """
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # the user's module may fail in any way: report it, once
            raise SpecErrors.single(
                f"--allow-custom {module}: cannot import it: {type(exc).__name__}: {exc}"
            ) from None
    added = []
    for registered, obj in keras.saving.get_custom_objects().items():
        # graphspec's own layers are written as weight, range and random nodes, not as types.
        if registered.startswith("graphspec>"):
            continue
        if isinstance(obj, type) and issubclass(obj, keras.layers.Layer):
            entry = _layer_entry(obj)
            for name in dict.fromkeys((registered, obj.__name__)):
                if catalog.layer(name) is None or name in catalog.custom_layers():
                    catalog.register_custom_layer(name, entry, obj)
                    added.append(name)
    return added

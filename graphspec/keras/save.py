"""Writing models to disk atomically: a kill or an error never leaves half a file."""

from __future__ import annotations

from pathlib import Path

import keras

from graphspec import atomic


def save_model(model: keras.Model, path: Path) -> None:
    """Save `model` to `path` (.keras) through `.NAME.partial.keras` in the same folder and a
    rename (see `graphspec.atomic`); `SpecErrors` when it cannot be written there.

    An untrained compiled model's optimizer is built first: `load_model` builds it while
    compiling, and would warn that the saved one lacks its variables.
    """
    path = Path(path)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    with atomic.replacing(path) as temporary:
        model.save(temporary)

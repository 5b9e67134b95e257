"""Writing models to disk atomically: a kill or an error never leaves half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import keras


def save_model(model: keras.Model, path: Path) -> None:
    """Save `model` to `path` (.keras) through a temporary file in the same folder and a rename.

    An untrained compiled model's optimizer is built first: `load_model` builds it while
    compiling, and would warn that the saved one lacks its variables.
    """
    path = Path(path)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

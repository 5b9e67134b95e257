"""Writing models to disk atomically: a kill or an error never leaves half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import keras


def save_model(model: keras.Model, path: Path) -> None:
    """Save `model` to `path` (.keras) through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

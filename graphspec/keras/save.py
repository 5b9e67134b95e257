"""Writing models to disk atomically: a kill or an error never leaves half a file; a model built
from a spec carries that spec inside its file (`graphspec.archive`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import keras

from graphspec import archive, atomic

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec


def save_model(model: keras.Model, path: Path, loaded: LoadedSpec | None = None) -> None:
    """Save `model` to `path` (.keras) through `.NAME.partial.keras` in the same folder and a
    rename (see `graphspec.atomic`); `SpecErrors` when it cannot be written there.

    With `loaded`, the spec the model was built from, the file also carries that spec's files,
    overrides and fingerprints under `graphspec/` (see `graphspec.archive`), which
    `keras.models.load_model` ignores and `graphspec fingerprint`, `diff` and `export` read.

    An untrained compiled model's optimizer is built first: `load_model` builds it while
    compiling, and would warn that the saved one lacks its variables.
    """
    path = Path(path)
    # Gathered before anything is written: a problem leaves no file behind.
    spec_members = archive.members(loaded) if loaded is not None else {}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    with atomic.replacing(path) as temporary:
        model.save(temporary)
        if spec_members:
            archive.append(temporary, spec_members)

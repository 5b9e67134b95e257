"""Writing models to disk atomically: a kill or an error never leaves half a file; a model built
from a spec carries that spec inside its file (`graphspec.archive`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import keras

from graphspec import archive, atomic
from graphspec.errors import SpecErrors

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec


def save_model(model: keras.Model, path: Path, loaded: LoadedSpec | None = None) -> None:
    """Save `model` to `path` (.keras) through `.NAME.partial.keras` in the same folder and a
    rename (see `graphspec.atomic`); `SpecErrors` when it cannot be written there.

    With `loaded`, the spec the model was built from, the file also carries that spec's files,
    overrides and fingerprints under `graphspec/` (see `graphspec.archive`), which
    `keras.models.load_model` ignores and `graphspec fingerprint`, `diff` and `export` read.

    A compiled model that was never trained is saved without its optimizer (its compile config
    is kept): the optimizer's state would be zeros as many as the weights, doubling the file (ViT-S:
    22,050,666 values). Stock `keras.models.load_model` then compiles it with a fresh optimizer,
    warning once that the file has no optimizer variables to load.
    """
    path = Path(path)
    _check_lookups_learned(model, loaded)
    # Gathered before anything is written: a problem leaves no file behind.
    spec_members = archive.members(loaded) if loaded is not None else {}
    optimizer = getattr(model, "optimizer", None)
    untrained = optimizer is not None and not optimizer.built
    with atomic.replacing(path) as temporary:
        if untrained:
            # Hidden from Keras's saver (which saves what the model's attributes hold), bypassing
            # Keras's attribute tracking, and put back however the save ends.
            object.__setattr__(model, "optimizer", None)
        try:
            model.save(temporary)
        finally:
            if untrained:
                object.__setattr__(model, "optimizer", optimizer)
        if spec_members:
            archive.append(temporary, spec_members)


# Keras saves a lookup layer's vocabulary as an asset and rebuilds its table from it on load;
# an empty one fails there ("keys and values cannot be empty tensors"), so such a file would be
# written and never read back.
_LOOKUPS = (keras.layers.StringLookup, keras.layers.IntegerLookup, keras.layers.TextVectorization)


def _check_lookups_learned(model: keras.Model, loaded: LoadedSpec | None) -> None:
    """Refuse to save a model with a lookup layer that has no vocabulary yet (one marked
    `adapt: true` that was built but never adapted): Keras cannot load that file."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, _LOOKUPS) and not layer.get_vocabulary(include_special_tokens=False):
            where = loaded.location("layers", layer.name, key=True) if loaded is not None else None
            raise SpecErrors.single(
                f"layer '{layer.name}' ({type(layer).__name__}) has no vocabulary yet, and Keras "
                "cannot load a model saved so",
                where,
                hint="train the spec on data (graphspec train --data PATH), which adapts it first, "
                "or give the layer its vocabulary",
                sources=loaded.diagnostics.sources if loaded is not None else None,
            )

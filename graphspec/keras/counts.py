"""Parameter counts of each layer node of a spec, read from the model Keras builds."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec


def param_counts(loaded: LoadedSpec) -> tuple[dict[str, int], int]:
    """Parameters of each layer node (0 for a node that shares another's layer, whose weights
    are counted once, at the node that owns them), and of the whole model."""
    from graphspec.keras.build import build_model

    model = build_model(loaded, compile=False)
    owned = {layer.name: layer.count_params() for layer in model.layers}
    counts = {
        name: (0 if node.share is not None else owned.get(name, 0))
        for name, node in loaded.spec.layers.items()
    }
    return counts, model.count_params()

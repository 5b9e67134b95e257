"""Parameter counts of each layer node of a spec, read from the model Keras builds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


def totals(model: Any) -> str:
    """The three totals lines of Keras's summary: all, trainable and non-trainable parameters."""
    trainable = sum(_size(w) for w in model.trainable_weights)
    frozen = sum(_size(w) for w in model.non_trainable_weights)
    return (
        f"Total params: {trainable + frozen:,}\n"
        f"Trainable params: {trainable:,}\n"
        f"Non-trainable params: {frozen:,}"
    )


def _size(weight: Any) -> int:
    size = 1
    for dim in weight.shape:
        size *= int(dim)
    return size

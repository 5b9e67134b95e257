"""Fine-tuning stages on a built model: what each stage freezes, and the marker that writes each
epoch's stage into the logs (history.json, TensorBoard, CSV).

A frozen layer is one whose Keras `trainable` is False. Keras then runs a frozen
BatchNormalization in inference mode (its moving statistics are used and left as they are),
as its fine-tuning guide documents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from graphspec.errors import SpecErrors
from graphspec.spec.model import StageSpec
from graphspec.spec.stages import is_nested_model, matched_nodes

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

STAGE_KEY = "stage"


class BuiltState:
    """Every layer's `trainable` as the spec built it, so each stage starts from the same model."""

    def __init__(self, model: keras.Model):
        self.model = model
        self.layers = list(model._flatten_layers(include_self=True, recursive=True))
        self.trainable = [layer.trainable for layer in self.layers]

    def restore(self) -> None:
        # Outermost first: setting a model's `trainable` sets its layers', which are then
        # put back one by one.
        for layer, trainable in zip(self.layers, self.trainable, strict=True):
            layer.trainable = trainable


def _own_layers(layer: Any) -> list[Any]:
    """A nested model's layers in order, without its inputs (they hold no weights)."""
    return [inner for inner in layer.layers if not isinstance(inner, keras.layers.InputLayer)]


def _targets(
    model: keras.Model, loaded: LoadedSpec, pattern: str, top: int | None, where: tuple
) -> list[Any]:
    spec = loaded.spec
    names = matched_nodes(spec, pattern)
    layers = []
    for name in names:
        try:
            layers.append(model.get_layer(name))
        except ValueError:
            continue  # a node with no layer of its own (an op): nothing to freeze
    if not layers:
        raise SpecErrors.single(
            f"'{pattern}' names no layer with weights in the built model",
            loaded.location(*where),
            sources=loaded.diagnostics.sources,
        )
    if top is None:
        return layers
    if len(names) == 1 and is_nested_model(spec, names[0]):
        return _own_layers(layers[0])[-top:]
    return layers[-top:]


def apply_stage(state: BuiltState, loaded: LoadedSpec, stage: StageSpec, index: int) -> None:
    """Set every layer's `trainable` as stage `index` (0-based) says: the built state, then
    `freeze`, then `unfreeze`."""
    state.restore()
    model = state.model
    for key in ("freeze", "unfreeze"):
        for pattern, top, where in stage.patterns(key):
            path = ("train", "stages", index, *where)
            names = matched_nodes(loaded.spec, pattern)
            targets = _targets(model, loaded, pattern, top, path)
            if (
                key == "unfreeze"
                and top is not None
                and len(names) == 1
                and is_nested_model(loaded.spec, names[0])
            ):
                # Only a trainable model trains any of its layers: the model is unfrozen, and
                # its layers below the top N stay frozen.
                nested = model.get_layer(names[0])
                nested.trainable = True
                for layer in _own_layers(nested):
                    layer.trainable = False
            for layer in targets:
                layer.trainable = key == "unfreeze"


class StageMarker(keras.callbacks.Callback):
    """Adds `stage` (1-based) to each epoch's logs, before the callbacks that write them: the
    history, TensorBoard's scalars and CSVLogger's rows show where each stage begins."""

    def __init__(self, stage: int):
        super().__init__()
        self.stage = stage

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs[STAGE_KEY] = self.stage

"""Weights from a saved model, copied into a model built from a spec, layer by layer, by name.

Layers are matched by name, which is what a spec keeps: a node's name is its layer's name, and
`graphspec export` names nodes after the layers. A model used as a layer (a nested spec, a
keras.applications base) is matched by name too, and its own layers inside it by theirs.
Every mismatch is reported at once: a layer missing on either side, a different number of
weights, a different shape.
"""

from __future__ import annotations

from pathlib import Path

import keras

from graphspec.errors import Diagnostics


def load_weights_by_name(model: keras.Model, source: Path | keras.Model) -> int:
    """Copy into `model` the weights of the same-named layers of `source` (a .keras file or a
    model); return how many layers received weights.

    Raises `SpecErrors` listing every layer with weights that has no counterpart on the other
    side, or whose weights differ in number or shape; nothing is copied then.
    """
    if not isinstance(source, keras.Model):
        from graphspec.keras.export import load_keras_file

        label = str(source)
        source, _ = load_keras_file(Path(source))
    else:
        label = f"model '{source.name}'"
    diagnostics = Diagnostics()
    pairs: list[tuple[keras.layers.Layer, list]] = []
    _match(model, source, "", label, pairs, diagnostics)
    diagnostics.raise_if_errors()
    for layer, weights in pairs:
        layer.set_weights(weights)
    return len(pairs)


def _layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    return {layer.name: layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)}


def _match(
    target: keras.Model, source: keras.Model, prefix: str, label: str, pairs: list, diagnostics: Diagnostics
) -> None:
    mine, theirs = _layers(target), _layers(source)
    for name, layer in mine.items():
        where = f"{prefix}{name}"
        other = theirs.get(name)
        if other is None:
            if layer.weights:
                diagnostics.error(f"layer '{where}' has weights, but {label} has no layer '{where}'")
            continue
        if isinstance(layer, keras.Model) and isinstance(other, keras.Model):
            _match(layer, other, f"{where}.", label, pairs, diagnostics)
            continue
        ours, source_weights = layer.weights, other.get_weights()
        if len(ours) != len(source_weights):
            diagnostics.error(
                f"layer '{where}' has {len(ours)} weights, but in {label} it has "
                f"{len(source_weights)} ({type(layer).__name__} vs {type(other).__name__})"
            )
            continue
        bad = [
            (v.path, tuple(v.shape), w.shape)
            for v, w in zip(ours, source_weights, strict=True)
            if tuple(v.shape) != tuple(w.shape)
        ]
        for path, shape, theirs_shape in bad:
            diagnostics.error(
                f"layer '{where}': weight '{path.split('/')[-1]}' has shape {shape}, but in "
                f"{label} it has shape {tuple(theirs_shape)}"
            )
        if not bad and ours:
            pairs.append((layer, source_weights))
    for name, layer in theirs.items():
        if name not in mine and layer.weights:
            diagnostics.error(
                f"{label} has weights for layer '{prefix}{name}', which the model built from "
                "the spec does not have"
            )

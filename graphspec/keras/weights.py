"""Weights from a saved model, copied into a model built from a spec, layer by layer, by name.

Layers are matched by name, which is what a spec keeps: a node's name is its layer's name, and
`graphspec export` names nodes after the layers. A model used as a layer (a nested spec, a
keras.applications base) is matched by name too, and its own layers inside it by theirs.

Every layer with weights, on either side, falls in one of four groups (`WeightsReport`):
copied (same name, same number of weights, same shapes), shape-mismatched (same name, weights
that differ in number or shape), new in the spec (no layer of that name in the source) and
unused in the source. Strict loading (`load_weights_by_name`, `build --weights`) copies only
when everything is copied and reports every other layer at once; partial loading
(`copy_matching_weights(partial=True)`, `build --weights --partial`, `train --init-from`)
copies the layers that fit, after an edit (one more block, a wider head), and says which.
In both, nothing is copied unless the whole plan is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from graphspec.errors import Diagnostics, SpecErrors
from graphspec.spec.load import DEFAULT_MAX_PARAMS

COPIED, MISMATCHED, NEW, UNUSED = "copied", "shape-mismatched", "new in the spec", "unused in the file"
STATUSES = (COPIED, MISMATCHED, NEW, UNUSED)


@dataclass(frozen=True)
class WeightShapes:
    """One weight of a layer, with its shape in the model built from the spec and in the
    source; None on the side that lacks it (the layers hold a different number of weights)."""

    name: str  # relative to its layer: 'kernel', 'query/kernel'
    spec: tuple[int, ...] | None
    source: tuple[int, ...] | None


@dataclass(frozen=True)
class LayerWeights:
    """A layer with weights in the model built from the spec, in the source, or in both."""

    name: str  # 'decoder.0.attn'; a layer inside a nested model is 'encoder.dense'
    status: str  # one of STATUSES
    kind: str  # its class (the spec's side, when the layer is there)
    params: int  # in the model built from the spec (0 when unused)
    source_params: int  # in the source (0 when new)
    source_kind: str = ""  # the source's class ("" when new)
    shapes: tuple[WeightShapes, ...] = ()  # for shape-mismatched: each weight, both shapes

    @property
    def differences(self) -> tuple[WeightShapes, ...]:
        """The weights whose shapes differ, or that one side lacks."""
        return tuple(s for s in self.shapes if s.spec != s.source)


@dataclass
class WeightsReport:
    """What matching a model against a source found, layer by layer, in the model's order (a
    source's unused layers after the model's at each level). `copied_weights` says whether the
    copied layers' weights were copied (False for `match_weights`, which only looks)."""

    source: str  # how messages name the source: a path, or "model 'name'"
    layers: list[LayerWeights]
    copied_weights: bool = False

    def of(self, status: str) -> list[LayerWeights]:
        """The layers with this status (one of STATUSES), in order."""
        return [layer for layer in self.layers if layer.status == status]

    @property
    def copied(self) -> list[LayerWeights]:
        return self.of(COPIED)

    @property
    def mismatched(self) -> list[LayerWeights]:
        return self.of(MISMATCHED)

    @property
    def new(self) -> list[LayerWeights]:
        return self.of(NEW)

    @property
    def unused(self) -> list[LayerWeights]:
        return self.of(UNUSED)

    @property
    def model_params(self) -> int:
        """Parameters of the model's layers with weights (all of them: copied or not)."""
        return sum(layer.params for layer in self.layers)

    @property
    def copied_params(self) -> int:
        return sum(layer.params for layer in self.copied)

    def summary(self) -> str:
        """One line: how much was copied, and how many layers fell in the other groups."""
        total = self.model_params
        share = f" ({100 * self.copied_params / total:.1f}%)" if total else ""
        verb = "copied" if self.copied_weights else "would copy"
        return (
            f"{verb} {len(self.copied)} of {_count(self.layers_in_model, 'layer')}, "
            f"{self.copied_params:,} of {total:,} parameters{share}; "
            f"{len(self.mismatched)} shape-mismatched, {len(self.new)} new in the spec, "
            f"{len(self.unused)} unused in the file"
        )

    @property
    def layers_in_model(self) -> list[LayerWeights]:
        return [layer for layer in self.layers if layer.status != UNUSED]

    def table(self) -> str:
        """Every layer with weights under its group, with its class, its parameters in the
        model and in the file (where they differ), the shapes that differ, each group's totals,
        and the summary line last."""
        rows: list[tuple[str, ...]] = [("layer", "class", "params", "in file", "")]
        for status in STATUSES:
            group = self.of(status)
            if not group:
                rows.append((f"{status}: none", "", "", "", ""))
                continue
            spec_params = f"{sum(layer.params for layer in group):,}" if status != UNUSED else ""
            source_params = (
                f"{sum(layer.source_params for layer in group):,}" if status in (MISMATCHED, UNUSED) else ""
            )
            rows.append((f"{status} ({_count(group, 'layer')})", "", spec_params, source_params, ""))
            rows += [_row(layer) for layer in group]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [f"weights from {self.source}, matched by layer name:"]
        for name, kind, params, source_params, detail in rows:
            line = (
                f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {params:>{widths[2]}}  "
                f"{source_params:>{widths[3]}}  {detail}"
            )
            lines.append(line.rstrip())
        lines.append(self.summary())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _row(layer: LayerWeights) -> tuple[str, ...]:
    name = f"  {layer.name}"
    if layer.status == UNUSED:
        return name, layer.source_kind, "", f"{layer.source_params:,}", ""
    if layer.status != MISMATCHED:
        return name, layer.kind, f"{layer.params:,}", "", ""
    kind = layer.kind if layer.kind == layer.source_kind else f"{layer.kind} (file: {layer.source_kind})"
    return name, kind, f"{layer.params:,}", f"{layer.source_params:,}", _differences(layer)


def _differences(layer: LayerWeights) -> str:
    """'kernel (16, 20) vs (16, 10) in file, bias (20,) vs (10,)'."""
    parts = [f"{s.name} {_shape(s.spec)} vs {_shape(s.source)}" for s in layer.differences]
    return ", ".join([parts[0] + " in file", *parts[1:]]) if parts else ""


def _shape(shape: tuple[int, ...] | None) -> str:
    return "absent" if shape is None else str(shape)


# --- matching ---------------------------------------------------------------------------------


def open_source(path: Path, max_params: int | None = DEFAULT_MAX_PARAMS) -> tuple[keras.Model, str]:
    """The model saved at `path` (a .keras file, or a graphspec run directory, whose
    model.keras is read) and how messages name it. The file is read as untrusted input, held
    to the bounds of `graphspec.keras.model_file` (at most `max_params` parameters declared).

    Raises `SpecErrors` when the path does not exist, a run directory has no model, or the file
    is not a Keras model (`graphspec.keras.export.load_keras_file`, which loads safely).
    """
    from graphspec import run_dir as rd
    from graphspec.keras.export import load_keras_file

    path = Path(path)
    if not path.exists():
        raise SpecErrors.single(f"no such file or run directory: {path}")
    if path.is_dir():
        model_file = path / rd.MODEL_FILE
        if not model_file.is_file():
            unfinished = rd.partial_path(path).is_dir() or path.name.endswith(".partial")
            raise SpecErrors.single(
                f"{path} has no {rd.MODEL_FILE}: weights come from a .keras file or a finished run directory",
                hint=f"the run did not finish: graphspec train --resume {path}" if unfinished else None,
            )
        path = model_file
    model, _ = load_keras_file(path, max_params)
    return model, str(path)


def match_weights(model: keras.Model, source: keras.Model, label: str | None = None) -> WeightsReport:
    """Match the layers with weights of `model` against `source`'s, by name, nested models
    recursively; copy nothing. `label` names the source in the report (default: the model)."""
    layers: list[LayerWeights] = []
    pairs: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []
    _match(model, source, "", layers, pairs)
    return WeightsReport(label or f"model '{source.name}'", layers)


def copy_matching_weights(
    model: keras.Model,
    source: Path | str | keras.Model,
    *,
    partial: bool = True,
    label: str | None = None,
    max_params: int | None = DEFAULT_MAX_PARAMS,
) -> WeightsReport:
    """Copy into `model` the weights of `source`'s layers (a .keras file, a run directory, or
    a model) that have the same name and weight shapes, and return what was found.

    With `partial=True` every layer that fits is copied, and the rest is left as built; it is
    an error (`SpecErrors`, nothing copied) only when no layer fits. With `partial=False` the
    copy is all or nothing: `SpecErrors` lists every layer that does not fit, and nothing is
    copied then. `label` names a model `source` in messages (default: its name). A file is read
    with at most `max_params` parameters declared (`graphspec.keras.model_file`). In a notebook:

        model = graphspec.load("specs/gpt2_small.yaml", ["layers=3"]).build()
        print(copy_matching_weights(model, "runs/gpt2_small/20261130-141500"))
    """
    if isinstance(source, keras.Model):
        label = label or f"model '{source.name}'"
    else:
        source, label = open_source(Path(source), max_params)
    layers: list[LayerWeights] = []
    pairs: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []
    _match(model, source, "", layers, pairs)
    report = WeightsReport(label, layers)
    if not partial:
        _raise_unless_all_fit(report)
    elif not pairs:
        raise SpecErrors.single(
            f"no layer of {label} fits the model built from the spec: "
            f"{len(report.mismatched)} shape-mismatched, {len(report.new)} new in the spec, "
            f"{len(report.unused)} unused in the file",
            hint=_no_match_hint(report),
        )
    for layer, weights in pairs:
        layer.set_weights(weights)
        if isinstance(layer, keras.layers.Normalization):
            # It computes with a copy of its mean and variance, made when it was built; Keras's
            # own loading (`load_own_variables`) makes it again from the weights, and so must we.
            layer.finalize_state()
    report.copied_weights = True
    return report


def load_weights_by_name(model: keras.Model, source: Path | keras.Model) -> int:
    """Copy into `model` the weights of the same-named layers of `source` (a .keras file, a run
    directory, or a model); return how many layers received weights.

    Raises `SpecErrors` listing every layer with weights that has no counterpart on the other
    side, or whose weights differ in number or shape; nothing is copied then.
    """
    return len(copy_matching_weights(model, source, partial=False).copied)


def _raise_unless_all_fit(report: WeightsReport) -> None:
    label = report.source
    messages = []
    for layer in report.layers:
        where = layer.name
        if layer.status == NEW:
            messages.append(f"layer '{where}' has weights, but {label} has no layer '{where}'")
        elif layer.status == UNUSED:
            messages.append(
                f"{label} has weights for layer '{where}', which the model built from the spec does not have"
            )
        elif layer.status == MISMATCHED and any(s.spec is None or s.source is None for s in layer.shapes):
            ours = sum(s.spec is not None for s in layer.shapes)
            theirs = sum(s.source is not None for s in layer.shapes)
            messages.append(
                f"layer '{where}' has {ours} weights, but in {label} it has {theirs} "
                f"({layer.kind} vs {layer.source_kind})"
            )
        elif layer.status == MISMATCHED:
            messages.extend(
                f"layer '{where}': weight '{s.name}' has shape {s.spec}, "
                f"but in {label} it has shape {s.source}"
                for s in layer.differences
            )
    diagnostics = Diagnostics()
    for number, message in enumerate(messages, 1):
        # After an edit some layers usually still fit: say once how to carry those over.
        last = number == len(messages) and report.copied
        hint = f"--partial copies what fits ({_count(report.copied, 'layer')}) and lists the rest"
        diagnostics.error(message, hint=hint if last else None)
    diagnostics.raise_if_errors()


def _no_match_hint(report: WeightsReport) -> str:
    if report.mismatched:
        first = report.mismatched[0]
        return (
            f"{_count(report.mismatched, 'layer')} of the same name differ in shape, as '{first.name}': "
            f"{_differences(first)}"
        )

    def names(layers: list[LayerWeights]) -> str:
        shown = ", ".join(f"'{layer.name}'" for layer in layers[:4])
        return shown + (f" and {len(layers) - 4} more" if len(layers) > 4 else "") if layers else "none"

    return f"layers are matched by name: the spec has {names(report.new)}, the file {names(report.unused)}"


def _layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    return {layer.name: layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)}


def _paired(mine: dict[str, keras.layers.Layer], theirs: dict[str, keras.layers.Layer]) -> dict:
    """`theirs` by our layers' names where the two models differ only in the names Keras made
    up (`conv2d_3` against `conv2d_7`): the same classes in the same order, every other name
    equal. A keras.applications model built in another session is such a twin; anything else
    is matched by name alone."""
    if mine.keys() == theirs.keys() or len(mine) != len(theirs):
        return theirs
    paired = {}
    for (name, layer), (other_name, other) in zip(mine.items(), theirs.items(), strict=True):
        same_name = name == other_name
        if type(layer) is not type(other) or not (same_name or (_made_up(layer) and _made_up(other))):
            return theirs
        paired[name] = other
    return paired


def _made_up(layer: keras.layers.Layer) -> bool:
    """Whether the layer's name is one Keras gives a layer nobody named: `conv2d`, `conv2d_7`."""
    from keras.src.utils.naming import to_snake_case

    return re.fullmatch(re.escape(to_snake_case(type(layer).__name__)) + r"(_\d+)?", layer.name) is not None


def _params(layer: keras.layers.Layer) -> int:
    return sum(int(np.prod(v.shape)) for v in layer.weights)


def _weight_name(layer: keras.layers.Layer, variable: keras.Variable) -> str:
    # Relative to the layer, so an attention layer's weights read 'query/kernel', not 'kernel'.
    prefix = f"{layer.path or layer.name}/"
    return variable.path[len(prefix) :] if variable.path.startswith(prefix) else variable.path.split("/")[-1]


def _match(
    target: keras.Model,
    source: keras.Model,
    prefix: str,
    found: list[LayerWeights],
    pairs: list[tuple[keras.layers.Layer, list[np.ndarray]]],
) -> None:
    mine, theirs = _layers(target), _paired(_layers(target), _layers(source))
    for name, layer in mine.items():
        where = f"{prefix}{name}"
        kind = type(layer).__name__
        other = theirs.get(name)
        if other is None:
            if layer.weights:
                found.append(LayerWeights(where, NEW, kind, _params(layer), 0))
            continue
        if isinstance(layer, keras.Model) and isinstance(other, keras.Model):
            _match(layer, other, f"{where}.", found, pairs)
            continue
        ours, source_weights = layer.weights, other.get_weights()
        if not ours and not source_weights:
            continue
        shapes = tuple(
            WeightShapes(
                _weight_name(layer, v) if v is not None else _weight_name(other, w_var),
                tuple(v.shape) if v is not None else None,
                tuple(w.shape) if w is not None else None,
            )
            for v, w, w_var in _zip_longest(ours, source_weights, other.weights)
        )
        fits = len(ours) == len(source_weights) and all(s.spec == s.source for s in shapes)
        found.append(
            LayerWeights(
                where,
                COPIED if fits else MISMATCHED,
                kind,
                _params(layer),
                _params(other),
                type(other).__name__,
                shapes,
            )
        )
        if fits:
            pairs.append((layer, source_weights))
    for name, layer in theirs.items():
        if name not in mine and layer.weights:
            found.append(LayerWeights(f"{prefix}{name}", UNUSED, "", 0, _params(layer), type(layer).__name__))


def _zip_longest(ours: list, values: list, variables: list):
    for i in range(max(len(ours), len(values))):
        yield (
            ours[i] if i < len(ours) else None,
            values[i] if i < len(values) else None,
            variables[i] if i < len(variables) else None,
        )

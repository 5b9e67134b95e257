"""The Keras side of `graphspec ensemble`: members loaded from run directories and checked
against each other, their predictions, scores computed from predictions, and the averaging model.

The saved ensemble is a functional model of built-in layers only: each member nested whole as a
layer, each output a `Rescaling` of every member's output by its weight, summed by `Add`. So
`keras.models.load_model` loads it with no custom objects and no code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from graphspec import run_dir as rd
from graphspec.data import npz
from graphspec.data.examples import bind, is_npz
from graphspec.data.stream import TableStream
from graphspec.errors import SpecErrors
from graphspec.keras.build import by_name, honour_call_training
from graphspec.keras.data import check_string_inputs, checked_arrays
from graphspec.keras.files import FileBatches, raising_failure, read_classes, string_tensors
from graphspec.keras.save import save_model
from graphspec.spec.load import DEFAULT_MAX_PARAMS

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

# Metrics better when larger; any other metric, and every loss, is better when smaller.
_LARGER_IS_BETTER = ("accuracy", "auc", "precision", "recall", "f1", "fbeta", "iou", "r2")
# "accuracy" means what Keras's compile makes it mean for the output's loss.
_ACCURACY_FOR_LOSS = {
    "categorical_crossentropy": "categorical_accuracy",
    "sparse_categorical_crossentropy": "sparse_categorical_accuracy",
    "binary_crossentropy": "binary_accuracy",
    "CategoricalCrossentropy": "categorical_accuracy",
    "SparseCategoricalCrossentropy": "sparse_categorical_accuracy",
    "BinaryCrossentropy": "binary_accuracy",
}


@dataclass
class Member:
    """A trained model from a run directory, with the spec it was trained from."""

    run: Path
    model: keras.Model
    loaded: LoadedSpec


def _signature(model: keras.Model) -> tuple[dict[str, Any], dict[str, Any]]:
    inputs = {name: (tuple(t.shape[1:]), str(t.dtype)) for name, t in _named(model.input).items()}
    outputs = {name: tuple(t.shape[1:]) for name, t in _named(model.output).items()}
    return inputs, outputs


def _named(tensors: Any) -> dict[str, Any]:
    if isinstance(tensors, dict):
        return dict(tensors)
    raise SpecErrors.single(
        "a member model has unnamed inputs or outputs; graphspec ensembles models "
        "it built (named inputs and outputs)"
    )


def load_members(runs: list[Path], max_params: int | None = DEFAULT_MAX_PARAMS) -> list[Member]:
    """Load each run directory's model.keras and spec.yaml; every member must read the same inputs
    (names, shapes, dtypes) and make the same outputs (names, shapes) as the first. A model.keras
    is untrusted input, read through `graphspec.keras.export.load_keras_file` (at most `max_params`
    parameters declared)."""
    import graphspec
    from graphspec import budget
    from graphspec.keras.export import load_keras_file

    members = []
    with budget.ensure():  # one budget over every member's files, as the command has
        for run in runs:
            model_path, spec_path = rd.finished_files(
                run, hint="name folders that `graphspec train` or `graphspec tune` wrote"
            )
            # A node's `call: {training: ...}` is in the file but not what makes predict honour it.
            model = honour_call_training(load_keras_file(model_path, max_params)[0])
            loaded = graphspec.load(spec_path)
            check_string_inputs(loaded)  # before the next member is read
            # An ensemble averages outputs by name: a member with `structure:` joins as its twin
            # that takes and gives dicts by name (the same layers).
            members.append(Member(run, by_name(model, loaded, compile=False), loaded))
    first_inputs, first_outputs = _signature(members[0].model)
    for member in members[1:]:
        inputs, outputs = _signature(member.model)
        what = f"run {member.run}"
        if sorted(outputs) != sorted(first_outputs):
            raise SpecErrors.single(
                f"{what} has outputs ({', '.join(sorted(outputs))}), which do not match "
                f"run {members[0].run}'s ({', '.join(sorted(first_outputs))})",
                hint="an ensemble averages models that make the same outputs",
            )
        for name, shape in outputs.items():
            if shape != first_outputs[name]:
                raise SpecErrors.single(
                    f"{what}: output '{name}' has shape {_shape(shape)}, and run "
                    f"{members[0].run}'s has {_shape(first_outputs[name])}"
                )
        if sorted(inputs) != sorted(first_inputs):
            raise SpecErrors.single(
                f"{what} reads inputs ({', '.join(sorted(inputs))}), which do not match "
                f"run {members[0].run}'s ({', '.join(sorted(first_inputs))})"
            )
        for name, (shape, dtype) in inputs.items():
            if (shape, dtype) != first_inputs[name]:
                raise SpecErrors.single(
                    f"{what}: input '{name}' is {_shape(shape)} {dtype}, and run {members[0].run}'s is "
                    f"{_shape(first_inputs[name][0])} {first_inputs[name][1]}"
                )
    return members


def _shape(shape: tuple) -> str:
    return "[" + ", ".join("null" if d is None else str(d) for d in shape) + "]"


def data_for(member: Member, data: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The validation arrays, checked against the member's model: inputs and targets by name."""
    checked = checked_arrays(npz.load(data, member.loaded), str(data), member.loaded, member.model)
    return checked.x, checked.y


def predicted_on(
    members: list[Member], data: Path, batch_size: int = 256
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every member's predictions on the examples at `data`, stacked per output as
    `predictions` gives them, and the examples' targets by output name.

    An .npz is read whole. A folder or a table is bound to the first member's spec as `train`
    bound it (the targets its `data:` section says) with the class names the runs recorded, so
    a label no member was trained on is refused as `predict` refuses it; its examples are read
    a batch at a time, each batch given to every member before the next is read."""
    if is_npz(data):
        x, y = data_for(members[0], data)
        return predictions(members, x), y
    first = members[0]
    section = _data_section(first)
    for member in members[1:]:
        if _data_section(member) != section:
            raise SpecErrors.single(
                f"run {member.run}'s spec reads its data otherwise than run {first.run}'s "
                "(their `data:` sections differ)",
                hint="an ensemble of folders or tables reads them one way for every member",
            )
    examples = bind(first.loaded, data, classes=agreed_classes(members), stream=True)
    made: list[dict[str, list[np.ndarray]]] = [{} for _ in members]
    targets: dict[str, list[np.ndarray]] = {}

    def take(x: dict[str, Any], y: dict[str, np.ndarray]) -> None:
        for name, values in y.items():
            targets.setdefault(name, []).append(np.asarray(values))
        for member, outputs in zip(members, made, strict=True):
            for name, value in member.model.predict_on_batch(x).items():
                outputs.setdefault(name, []).append(np.asarray(value, dtype=np.float32))

    if isinstance(examples, TableStream):  # read window by window
        for x, y, _ in examples.batches(batch_size):
            take(string_tensors(x), y)
    else:
        batches = FileBatches(examples, batch_size)
        with raising_failure(batches):
            for index in range(len(batches)):
                take(*batches[index])
    missing = [n for n, o in first.loaded.spec.outputs.items() if o.takes_data and n not in targets]
    if missing:
        raise SpecErrors.single(f"data {examples.path} has no targets for output '{missing[0]}'")
    stacked = {name: np.stack([np.concatenate(m[name]) for m in made]) for name in made[0]}
    return stacked, {name: np.concatenate(values) for name, values in targets.items()}


def _data_section(member: Member) -> Any:
    section = member.loaded.spec.data
    return section.model_dump(mode="json") if section is not None else None


def agreed_classes(members: list[Member]) -> dict[str, list[str]] | None:
    """The class names the members' runs recorded (`classes.json`), which must be the same for
    every member that recorded any: averaging outputs whose units mean other classes would
    mix them. None when no run recorded classes (trained on arrays)."""
    agreed: tuple[Path, dict[str, list[str]]] | None = None
    for member in members:
        classes = read_classes(member.run)
        if classes is None:
            continue
        if agreed is None:
            agreed = (member.run, classes)
        elif classes != agreed[1]:
            output = next(
                (n for n in sorted(set(classes) | set(agreed[1])) if classes.get(n) != agreed[1].get(n)), ""
            )
            raise SpecErrors.single(
                f"run {member.run} was trained with other classes of output '{output}' than "
                f"run {agreed[0]}: {_listed(classes.get(output))} against {_listed(agreed[1].get(output))}",
                hint="an ensemble averages models whose outputs mean the same classes, in the same order",
            )
    return agreed[1] if agreed is not None else None


def _listed(classes: list[str] | None) -> str:
    if classes is None:
        return "none"
    return "[" + ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "") + "]"


def predictions(members: list[Member], x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every member's predictions, stacked per output: {output: array (members, samples, ...)}."""
    made = [member.model.predict(x, batch_size=256, verbose=0) for member in members]
    return {name: np.stack([np.asarray(p[name], dtype=np.float32) for p in made]) for name in made[0]}


def average(stacked: dict[str, np.ndarray], weights: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The weighted average of the members' predictions on the samples `rows`."""
    return {
        name: np.tensordot(np.asarray(weights, dtype=np.float32), values[:, rows], axes=1)
        for name, values in stacked.items()
    }


class Scorer:
    """A score of predictions against targets: the members' losses as compiled (each output's
    loss, weighted by its loss weight, summed), or one named metric or loss on every output
    that has a loss (weighted the same way). `loss` is always lower-better; `value` is the score
    as people read it.

    Outputs trained without targets (`loss: value`, `target: index`) are averaged like any
    other but not scored: a KL term is no measure of the predictions, and row-index targets
    hold only within a training batch, not over the samples the weights are fitted on."""

    def __init__(self, loaded: LoadedSpec, metric: str | None):
        outputs = {name: o for name, o in loaded.spec.outputs.items() if o.takes_data}
        if not outputs:
            raise SpecErrors.single(
                f"no output of {loaded.name} is trained against targets, so nothing scores an ensemble of it",
                hint="an output with loss: value or target: index is averaged, not scored; "
                "an ensemble needs one output with a loss against data",
            )
        self.weights = {name: o.weight for name, o in outputs.items()}
        if metric is None:
            self.name, self.goal = "loss", "minimize"
            self.functions = {name: _loss(o.loss) for name, o in outputs.items()}
            return
        self.name = metric
        self.goal = "maximize" if any(word in metric.lower() for word in _LARGER_IS_BETTER) else "minimize"
        self.functions = {name: _metric(metric, o.loss) for name, o in outputs.items()}

    def value(self, predicted: dict[str, np.ndarray], y: dict[str, np.ndarray], rows: np.ndarray) -> float:
        total = 0.0
        for name, function in self.functions.items():
            total += self.weights[name] * function(y[name][rows], predicted[name])
        return float(total)

    def loss(self, predicted: dict[str, np.ndarray], y: dict[str, np.ndarray], rows: np.ndarray) -> float:
        value = self.value(predicted, y, rows)
        return -value if self.goal == "maximize" else value


def _mean_of(function: Any) -> Any:
    def mean(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(keras.ops.convert_to_numpy(keras.ops.mean(function(y_true, y_pred))))

    return mean


def _loss(loss: Any) -> Any:
    if isinstance(loss, str):
        return _mean_of(keras.losses.get(loss))
    return _mean_of(getattr(keras.losses, loss.type)(**loss.args))


def _metric(name: str, loss: Any) -> Any:
    if name in ("accuracy", "acc"):
        loss_name = loss if isinstance(loss, str) else loss.type
        name = _ACCURACY_FOR_LOSS.get(loss_name, "accuracy")
    try:
        found = keras.metrics.get(name)
    except (ValueError, TypeError):
        try:
            found = keras.losses.get(name)
        except (ValueError, TypeError):
            raise SpecErrors.single(
                f"unknown metric '{name}'", hint="name a Keras metric or loss: accuracy, mae, mse, ..."
            ) from None
    if isinstance(found, keras.metrics.Metric):

        def stateful(y_true: np.ndarray, y_pred: np.ndarray) -> float:
            found.reset_state()
            found.update_state(y_true, y_pred)
            return float(keras.ops.convert_to_numpy(found.result()))

        return stateful
    return _mean_of(found)


def averaged_model(members: list[Member], weights: np.ndarray, name: str) -> keras.Model:
    """One functional model: the members nested as layers, each output their weighted sum.
    Members with weight 0 are left out."""
    first = members[0].model
    inputs = {
        key: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=key) for key, t in _named(first.input).items()
    }
    made = []
    for i, (member, weight) in enumerate(zip(members, weights, strict=True)):
        if weight <= 0:
            continue
        # A new functional model over the member's layers, named apart: two runs of one spec
        # have the same model name, and the names of a model's layers must differ.
        nested = keras.Model(member.model.input, member.model.output, name=f"member_{i}")
        made.append((i, float(weight), nested(inputs)))
    outputs = {}
    for key in _named(first.output):
        scaled = [
            keras.layers.Rescaling(scale=weight, name=f"{key}_weight_{i}")(out[key])
            for i, weight, out in made
        ]
        outputs[key] = (
            keras.layers.Add(name=key)(scaled)
            if len(scaled) > 1
            else keras.layers.Identity(name=key)(scaled[0])
        )
    return keras.Model(inputs, outputs, name=f"{name}_ensemble")


def save(model: keras.Model, path: Path) -> None:
    save_model(model, path)

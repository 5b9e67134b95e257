"""Keras callbacks from a spec's `train.callbacks`, and graphspec's built-in ones.

Arguments are Keras's, verbatim, with two changes a spec needs: relative paths are taken from
the run directory (so every file a run writes lies in it), and LearningRateScheduler's
`schedule`, a Python function in Keras, is a description (`{type: cosine, decay_steps: 20}`).
Names and arguments were already checked without TensorFlow (`graphspec.spec.builtins`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from graphspec.errors import SpecErrors
from graphspec.keras.shapes import flatten
from graphspec.spec.builtins import PATH_ARGS

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

_MAX_MESSAGE = 400
# Where a callback writes when the spec names no path, relative to the run directory.
_DEFAULT_PATHS = {"TensorBoard": "logs", "ActivationLogger": "activations"}


class DeclarativeSchedule:
    """A learning rate per epoch from a `{type: step | exponential | cosine, ...}` description.

    Epochs count from 0, as LearningRateScheduler passes them. `initial_learning_rate`
    defaults to `default_rate` (the optimizer's rate when training starts).

    >>> schedule = DeclarativeSchedule({"type": "step", "decay_rate": 0.5, "decay_steps": 2}, 0.1)
    >>> [round(schedule(epoch, 0.0), 4) for epoch in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
    """

    def __init__(self, description: dict[str, Any], default_rate: float):
        self.kind = description["type"]
        self.initial = float(description.get("initial_learning_rate", default_rate))
        self.decay_rate = float(description.get("decay_rate", 1.0))
        self.decay_steps = float(description.get("decay_steps", 1))
        self.alpha = float(description.get("alpha", 0.0))

    def __call__(self, epoch: int, lr: float) -> float:
        if self.kind == "step":
            return self.initial * self.decay_rate ** math.floor(epoch / self.decay_steps)
        if self.kind == "exponential":
            return self.initial * self.decay_rate ** (epoch / self.decay_steps)
        # Keras's CosineDecay, per epoch.
        progress = min(epoch, self.decay_steps) / self.decay_steps
        return self.initial * ((1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * progress)) + self.alpha)


class ActivationLogger(keras.callbacks.Callback):
    """The book's custom callback: at each epoch's end, every layer's activations on the first
    validation sample, saved to `directory/activations_at_epoch_{epoch}.npz`.

    `tensors` maps a key to a symbolic tensor of the model (graphspec passes each node's
    output; a node with several outputs gives `node[0]`, `node[1]`, ...). Without it, the
    output of every layer called once is logged, as the book's version does.
    """

    def __init__(
        self, directory: str | Path, sample: dict[str, np.ndarray], tensors: dict[str, Any] | None = None
    ):
        super().__init__()
        self.directory = Path(directory)
        self.sample = sample
        self.tensors = tensors
        self._activations: keras.Model | None = None

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        tensors = self.tensors
        if tensors is None:
            tensors = {
                layer.name: layer.output
                for layer in model.layers
                if len(layer._inbound_nodes) == 1 and not isinstance(layer, keras.layers.InputLayer)
            }
        # A second model over the same layers: it sees the weights as training changes them.
        self._activations = keras.Model(model.input, tensors)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        activations = self._activations.predict_on_batch(self.sample)
        self.directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            self.directory / f"activations_at_epoch_{epoch}.npz",
            **{key: np.asarray(value) for key, value in activations.items()},
        )


def activation_tensors(tensors: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """One symbolic tensor per key from the builder's node values: `node`, or `node[i]` /
    `node[name]` for a node with several outputs."""
    return {
        name + suffix: tensor
        for name in names
        if name in tensors
        for suffix, tensor in flatten(tensors[name])
    }


def _resolve(value: Any, base: Path) -> Any:
    if not isinstance(value, (str, Path)):
        return value
    path = Path(value)
    return str(path if path.is_absolute() else base / path)


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint that writes each checkpoint to a temporary file and renames it into place,
    so a kill while saving never truncates the best checkpoint saved before."""

    def _get_file_path(self, epoch: int, batch: int | None, logs: dict | None) -> str:
        self._target = super()._get_file_path(epoch, batch, logs)
        return _temporary_sibling(self._target)

    def _save_model(self, epoch: int, batch: int | None, logs: dict | None) -> None:
        super()._save_model(epoch, batch, logs)
        written = _temporary_sibling(self._target)
        if os.path.exists(written):
            os.replace(written, self._target)


def _temporary_sibling(path: str) -> str:
    # Keras chooses the format by the ending (.keras, .weights.h5), so the ending is kept.
    folder, name = os.path.split(path)
    ending = ".weights.h5" if name.endswith(".weights.h5") else os.path.splitext(name)[1]
    return os.path.join(folder, f".{name[: len(name) - len(ending)]}.partial{ending}")


def build_callbacks(
    loaded: LoadedSpec,
    model: keras.Model,
    run_dir: Path,
    *,
    backup_root: Path,
    validation_sample: dict[str, np.ndarray] | None = None,
    tensors: dict[str, Any] | None = None,
) -> list[keras.callbacks.Callback]:
    """The callbacks `loaded.spec.train.callbacks` describes, writing into `run_dir`.

    `backup_root` is where a relative BackupAndRestore `backup_dir` is taken from (it must
    outlive one run directory). ActivationLogger needs `validation_sample`. A callback Keras
    refuses, or one that cannot run, is a `SpecErrors` at its line in the spec.
    """
    callbacks = []
    for i, spec in enumerate(loaded.spec.train.callbacks):
        args = dict(spec.args)
        path_arg = PATH_ARGS.get(spec.type)
        if path_arg is not None:
            if path_arg not in args and spec.type in _DEFAULT_PATHS:
                args[path_arg] = _DEFAULT_PATHS[spec.type]
            if path_arg in args:
                base = backup_root if spec.type == "BackupAndRestore" else run_dir
                args[path_arg] = _resolve(args[path_arg], base)
        where = loaded.location("train", "callbacks", i)
        try:
            if spec.type == "ActivationLogger":
                if validation_sample is None:
                    raise SpecErrors.single(
                        "callback ActivationLogger logs activations on the first validation "
                        "sample, and this run has no validation data",
                        where,
                        hint="set train.validation_split (--validation-split) or give --val-data",
                        sources=loaded.diagnostics.sources,
                    )
                callback = ActivationLogger(args["directory"], validation_sample, tensors)
            elif spec.type == "LearningRateScheduler":
                rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
                args["schedule"] = DeclarativeSchedule(args["schedule"], rate)
                callback = keras.callbacks.LearningRateScheduler(**args)
            elif spec.type == "ModelCheckpoint":
                callback = AtomicModelCheckpoint(**args)
            else:
                callback = getattr(keras.callbacks, spec.type)(**args)
        except SpecErrors:
            raise
        except Exception as exc:
            message = " ".join(str(exc).split())
            if len(message) > _MAX_MESSAGE:
                message = message[: _MAX_MESSAGE - 3] + "..."
            raise SpecErrors.single(
                f"callback {spec.type}: Keras refused it: {message}",
                where,
                sources=loaded.diagnostics.sources,
            ) from None
        callbacks.append(callback)
    return callbacks

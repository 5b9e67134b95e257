"""Keras callbacks from a spec's `train.callbacks`, and graphspec's built-in ones.

Arguments are Keras's, verbatim, with two changes a spec needs: relative paths are taken from
the run directory (so every file a run writes lies in it), and LearningRateScheduler's
`schedule`, a Python function in Keras, is a description (`{type: cosine, decay_steps: 20}`).
Names and arguments were already checked without TensorFlow (`graphspec.spec.builtins`).
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from graphspec import archive, atomic, policy
from graphspec.errors import Diagnostics, SpecErrors
from graphspec.keras.shapes import flatten
from graphspec.spec import catalog

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

_MAX_MESSAGE = 400


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
        with atomic.replacing(self.directory / f"activations_at_epoch_{epoch}.npz") as temporary:
            np.savez(temporary, **{key: np.asarray(value) for key, value in activations.items()})


def activation_tensors(tensors: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """One symbolic tensor per key from the builder's node values: `node`, or `node[i]` /
    `node[name]` for a node with several outputs."""
    return {
        name + suffix: tensor
        for name in names
        if name in tensors
        for suffix, tensor in flatten(tensors[name])
    }


def _confined_paths(loaded: LoadedSpec, index: int, run_dir: Path) -> dict[str, Any]:
    """The arguments of callback `index`, with every path it writes (its WRITE arguments by the
    catalog, and their Keras defaults) made absolute inside `run_dir`.

    Validation already refused paths that lead out by their text; this checks again with
    symlinks followed, so that nothing met at run time can lead a write (or BackupAndRestore's
    deletion of its folder) outside the run.
    """
    spec = loaded.spec.train.callbacks[index]
    args = dict(spec.args)
    entry = catalog.callback(spec.type) or {}
    defaults = entry.get("resource_defaults", {})
    for arg, kind in entry.get("capabilities", {}).items():
        value = args.get(arg, defaults.get(arg))
        if kind != policy.WRITE or value is None:
            continue
        try:
            args[arg] = str(policy.confined(str(value), run_dir))
        except policy.OutsideRun as exc:
            raise SpecErrors.single(
                f"callback {spec.type}: argument '{arg}': {exc}",
                loaded.location("train", "callbacks", index, arg),
                sources=loaded.diagnostics.sources,
            ) from None
    return args


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint that writes each checkpoint to a temporary file and renames it into place,
    so a kill while saving never truncates the best checkpoint saved before. A whole-model
    checkpoint (.keras) carries the spec, as `graphspec.keras.save.save_model` writes it."""

    spec_members: dict[str, bytes] = {}  # set per instance by `build_callbacks`, never changed in place

    def _get_file_path(self, epoch: int, batch: int | None, logs: dict | None) -> str:
        self._target = super()._get_file_path(epoch, batch, logs)
        return str(atomic.partial_path(self._target))

    def _save_model(self, epoch: int, batch: int | None, logs: dict | None) -> None:
        super()._save_model(epoch, batch, logs)
        written = str(atomic.partial_path(self._target))
        if os.path.exists(written):
            if self.spec_members and written.endswith(".keras") and not self.save_weights_only:
                archive.append(Path(written), self.spec_members)
            os.replace(written, self._target)


# Callbacks that Keras runs with TensorFlow whatever the backend: TensorBoard's event files are
# written by `tf.summary`.
NEEDS_TENSORFLOW = {"TensorBoard": "writes its event files with TensorFlow's tf.summary"}


def check_tensorflow(loaded: LoadedSpec) -> None:
    """Refuse, before anything is built or written, a callback that needs TensorFlow on a
    backend that runs without it, when TensorFlow is not installed: a `SpecErrors` at its line."""
    if keras.backend.backend() == "tensorflow" or importlib.util.find_spec("tensorflow") is not None:
        return
    diagnostics = Diagnostics(sources=dict(loaded.diagnostics.sources))
    for i, spec in enumerate(loaded.spec.train.callbacks):
        if spec.type in NEEDS_TENSORFLOW:
            diagnostics.error(
                f"callback {spec.type} {NEEDS_TENSORFLOW[spec.type]}, and TensorFlow is not "
                f"installed (the Keras backend is {keras.backend.backend()})",
                loaded.location("train", "callbacks", i),
                "install TensorFlow beside it (pip install tensorflow-cpu), or log with CSVLogger",
            )
    diagnostics.raise_if_errors()


def build_callbacks(
    loaded: LoadedSpec,
    model: keras.Model,
    run_dir: Path,
    *,
    validation_sample: dict[str, np.ndarray] | None = None,
    tensors: dict[str, Any] | None = None,
    writing: bool = True,
) -> list[keras.callbacks.Callback]:
    """The callbacks `loaded.spec.train.callbacks` describes, writing into `run_dir`.

    Every path a callback writes lies in `run_dir`: BackupAndRestore's `backup_dir` too, so
    the folder it deletes when training ends is inside the run (`graphspec train --resume`
    finds it there after a kill). ActivationLogger needs `validation_sample`. A callback Keras
    refuses, or one that cannot run, is a `SpecErrors` at its line in the spec. Without
    `writing` (the processes of a multi-process run other than process 0), only the callbacks
    that neither write nor reach the network are made: those that steer training.
    """
    callbacks = []
    for i, spec in enumerate(loaded.spec.train.callbacks):
        if not writing and (catalog.callback(spec.type) or {}).get("capabilities"):
            continue
        where = loaded.location("train", "callbacks", i)
        args = _confined_paths(loaded, i, run_dir)
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
                callback.spec_members = archive.members(loaded)
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

"""Training data as Keras takes it: synthetic batches made on demand, and .npz arrays checked.

Synthetic data is a `keras.utils.PyDataset` of NumPy arrays, so it works on any Keras backend
and memory does not grow with the number of samples: batch `i` is generated when Keras asks
for it, from a random generator seeded by (seed, split, i), so every epoch sees the same
samples, as it would from a file. What the values look like is decided in `graphspec.arrays`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from graphspec import arrays as arr
from graphspec.errors import Diagnostics, SpecErrors
from graphspec.keras.build import by_name
from graphspec.keras.distribute import Processes, local, part
from graphspec.spec.model import INDEX_TARGET

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

RANDOM, TEACHER = "random", "teacher"
# Independent random streams: training batches, validation batches, the teacher's calibration.
_TRAIN_STREAM, _VALIDATION_STREAM, _CALIBRATION_STREAM = 0, 1, 2


def output_shapes(model: keras.Model, input_shapes: dict[str, tuple]) -> dict[str, tuple]:
    """Each output's per-sample shape when the inputs have these per-sample shapes.

    Computed symbolically (nothing runs), so sequence outputs get their concrete lengths.
    """
    specs = {
        name: keras.KerasTensor((1,) + tuple(shape), dtype=model.input[name].dtype)
        for name, shape in input_shapes.items()
    }
    outputs = model.compute_output_spec(specs)
    return {name: tuple(tensor.shape[1:]) for name, tensor in outputs.items()}


def check_index_outputs(loaded: LoadedSpec, model: keras.Model, input_shapes: dict[str, tuple]) -> None:
    """Raise `SpecErrors` at the `target: index` of an output whose last axis is not the
    batch's: its rows are scored against the classes 0..batch-1, so it must be (batch, batch).
    Found symbolically, before any data is made, with a batch of a size unlike a layer's width."""
    indexed = [n for n, o in loaded.spec.outputs.items() if o.target == INDEX_TARGET]
    if not indexed:
        return
    batch = 101
    specs = {
        name: keras.KerasTensor((batch,) + tuple(shape), dtype=model.input[name].dtype)
        for name, shape in input_shapes.items()
    }
    outputs = model.compute_output_spec(specs)
    for name in indexed:
        shape = tuple(outputs[name].shape)
        if len(shape) < 2 or shape[-1] != batch:
            dims = ", ".join("batch" if d == batch else str(d) for d in shape)
            raise SpecErrors.single(
                f"output '{name}' has target: index, so it scores each row against the batch's "
                f"rows, but its shape is ({dims}), not (batch, batch)",
                loaded.location("outputs", name, "target"),
                hint="make it the similarity of every row with every other, e.g. matmul with a transpose",
                sources=loaded.diagnostics.sources,
            )


def check_string_inputs(loaded: LoadedSpec, backend: str | None = None) -> None:
    """Refuse, before anything is read, built or written, a spec with string inputs on a Keras
    backend other than TensorFlow (`backend`: the one running): a `SpecErrors` at each such
    input's line. Keras's string layers (StringLookup, HashedCrossing, TextVectorization, ...)
    run inside a model only on TensorFlow; on JAX and PyTorch a batch of strings reaches the
    backend as an array it cannot hold, and training fails with an unlocated dtype error."""
    backend = backend or keras.backend.backend()
    if backend == "tensorflow":
        return
    diagnostics = Diagnostics(sources=dict(loaded.diagnostics.sources))
    for name, spec in loaded.spec.inputs.items():
        if spec.dtype == "string":
            diagnostics.error(
                f"input '{name}' takes strings, and Keras runs string layers inside a model only "
                f"on TensorFlow (the Keras backend is {backend})",
                loaded.location("inputs", name, "dtype") or loaded.location("inputs", name),
                "run it with KERAS_BACKEND=tensorflow (its model.keras then predicts from strings "
                "wherever TensorFlow is installed), or feed this input integer ids made beforehand",
            )
    diagnostics.raise_if_errors()


def targets_of(loaded: LoadedSpec) -> dict[str, arr.Target]:
    """The target kind of each output that has a loss."""
    targets = {}
    for name, output in loaded.spec.outputs.items():
        if output.takes_data:
            targets[name] = arr.target_for(output.loss)
    return targets


class SyntheticData(keras.utils.PyDataset):
    """`samples` generated samples in batches: inputs by plan, targets random or from a teacher.

    A teacher is a model with the same inputs and outputs, fixed and randomly initialised:
    its predictions, made into targets that fit each loss, are a function the trained network
    can learn, so a working training loop lowers the loss (noise targets cannot show that).
    """

    def __init__(
        self,
        plans: dict[str, arr.InputPlan],
        targets: dict[str, tuple[arr.Target, tuple]],
        samples: int,
        batch_size: int,
        seed: int,
        stream: int = _TRAIN_STREAM,
        teacher: Teacher | None = None,
        processes: Processes | None = None,
        targetless: list[str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.plans, self.targets = plans, targets
        self.targetless = targetless or []
        self.samples, self.batch_size = samples, batch_size
        self.seed, self.stream, self.teacher = seed, stream, teacher
        # In a multi-process run, each process makes every batch and keeps its part of it.
        self.processes = processes if processes is not None and processes.count > 1 else None

    def __len__(self) -> int:
        return math.ceil(self.samples / self.batch_size)

    def inputs(self, index: int) -> dict[str, np.ndarray]:
        """The inputs of batch `index` (the same every time it is asked for)."""
        return self._batch(index)[0]

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Every sample at once, inputs and targets by name: what a file of them would hold."""
        batches = [self._batch(i) for i in range(len(self))]
        x = {name: np.concatenate([b[0][name] for b in batches]) for name in batches[0][0]}
        y = {name: np.concatenate([b[1][name] for b in batches]) for name in batches[0][1]}
        return x, y

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        x, y = self._batch(index)
        if self.targetless:  # what Keras hands their losses as y_true, which they ignore
            count = len(next(iter(x.values())))
            y = {**y, **{name: arr.dummy_target(count) for name in self.targetless}}
        return x, y

    def _batch(self, index: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        count = min(self.batch_size, self.samples - index * self.batch_size)
        rng = np.random.default_rng((self.seed, self.stream, index))
        x = {name: plan.generate(rng, count) for name, plan in self.plans.items()}
        rows = part(count, self.processes) if self.processes is not None else slice(None)
        if self.teacher is None:
            y = {
                name: arr.random_target(target, shape, rng, count)[rows]
                for name, (target, shape) in self.targets.items()
            }
            return {name: a[rows] for name, a in x.items()}, y
        x = {name: a[rows] for name, a in x.items()}
        return x, self.teacher.targets(x)


class Teacher:
    """A fixed, randomly initialised network with the student's inputs and outputs, and the
    targets it gives: see `graphspec.arrays.teacher_calibration` for how they are made."""

    def __init__(
        self,
        model: keras.Model,
        plans: dict[str, arr.InputPlan],
        targets: dict[str, tuple[arr.Target, tuple]],
        seed: int,
        calibration_samples: int = 256,
    ):
        self.model, self.targets_of = model, targets
        rng = np.random.default_rng((seed, _CALIBRATION_STREAM))
        x = {name: plan.generate(rng, calibration_samples) for name, plan in plans.items()}
        with local():
            predictions = model.predict(x, batch_size=64, verbose=0)
        self.calibration = {
            name: arr.teacher_calibration(target, predictions[name]) for name, (target, _) in targets.items()
        }

    def targets(self, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with local():
            predictions = self.model.predict_on_batch(x)
        return {
            name: arr.teacher_target(target, predictions[name], self.calibration[name])
            for name, (target, _) in self.targets_of.items()
        }


def synthetic_datasets(
    loaded: LoadedSpec,
    model: keras.Model,
    *,
    kind: str,
    samples: int,
    batch_size: int,
    validation_split: float,
    seed: int,
    seq_len: int | None = None,
    processes: Processes | None = None,
) -> tuple[SyntheticData, SyntheticData | None]:
    """Training and validation datasets for `model` (the student, built from `loaded`).

    `validation_split` of the samples are generated for validation, apart from the others.
    A teacher is built from the same spec with fresh random weights, outside any distribution:
    each process runs its own. In a multi-process run (`processes`), every batch holds this
    process's part of the samples alone.
    """
    if kind not in (RANDOM, TEACHER):
        raise SpecErrors.single(
            f"unknown kind of synthetic data '{kind}'", hint=f"use '{RANDOM}' or '{TEACHER}'"
        )
    for name, target in targets_of(loaded).items():
        if target.family == arr.OTHER:
            raise SpecErrors.single(
                f"output '{name}': synthetic data cannot make targets for loss '{target.loss}'",
                loaded.location("outputs", name, "loss"),
                hint="train it on arrays with --data FILE.npz",
                sources=loaded.diagnostics.sources,
            )
    plans = arr.input_plans(loaded, seq_len)
    check_index_outputs(loaded, model, {name: plan.shape for name, plan in plans.items()})
    shapes = output_shapes(model, {name: plan.shape for name, plan in plans.items()})
    targets = {name: (target, shapes[name]) for name, target in targets_of(loaded).items()}
    if kind == TEACHER and targets:  # with no target to make (`loss: value`, `target: index`) none is needed
        with local():
            network = by_name(loaded.build(compile=False), loaded, compile=False)
            teacher = Teacher(network, plans, targets, seed)
    else:
        teacher = None
    validation = round(samples * validation_split) if validation_split else 0
    if validation_split and validation == 0:
        validation = 1
    if validation >= samples:
        raise SpecErrors.single(
            f"{samples} samples leave none for training after a validation split of {validation_split}",
            loaded.location("train", "validation_split"),
            hint="raise train.samples (--samples)",
            sources=loaded.diagnostics.sources,
        )
    targetless = arr.targetless_outputs(loaded)
    train = SyntheticData(
        plans, targets, samples - validation, batch_size, seed, _TRAIN_STREAM, teacher, processes, targetless
    )
    val = (
        SyntheticData(
            plans, targets, validation, batch_size, seed, _VALIDATION_STREAM, teacher, processes, targetless
        )
        if validation
        else None
    )
    return train, val


def fit_arguments(train: SyntheticData, validation: SyntheticData | None, shuffle: bool) -> dict[str, Any]:
    """`model.fit`'s data arguments for synthetic batches, as it runs them fastest on the
    running Keras backend; training batches come in a new random order each epoch when
    `shuffle`, as Keras orders a PyDataset's.

    On TensorFlow the batches go through a `tf.data.Dataset` whose batch dimension is fixed
    when every batch is full. Keras reads a PyDataset with its batch dimension unknown, and
    TensorFlow then runs a training step of a recurrent model 8-10% slower than with it
    fixed, as `fit` on NumPy arrays has it (`bench/probe_batch_shape.py` shows it). Other
    backends take the PyDatasets themselves.
    """
    if keras.backend.backend() != "tensorflow":
        return {"x": train, "validation_data": validation, "shuffle": shuffle}
    return {
        "x": _tf_dataset(train, shuffle),
        "shuffle": False,
        "validation_data": _tf_dataset(validation, False) if validation is not None else None,
    }


def _tf_dataset(data: SyntheticData, shuffle: bool) -> Any:
    import tensorflow as tf

    batch = data.batch_size if data.samples % data.batch_size == 0 else None
    signature = keras.tree.map_structure(
        lambda a: tf.TensorSpec((batch, *a.shape[1:]), tf.as_dtype(a.dtype)), data[0]
    )

    # A new order is drawn only once a pass has been read to its end: a distribution strategy
    # starts a pass to inspect the data and abandons it, and the epochs' orders must not shift
    # for it (the single-device and the replicated run see the same batches).
    count = len(data)
    current: dict[str, list[int]] = {}

    def reorder() -> None:
        order = list(range(count))
        if shuffle:
            random.shuffle(order)  # as Keras shuffles a PyDataset, so one seed orders both alike
        current["order"] = order

    reorder()

    def batches():
        for index in current["order"]:
            yield data[index]
        reorder()

    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(data))).prefetch(tf.data.AUTOTUNE)


@dataclass
class ArrayData:
    """Arrays from .npz files, checked against the model: inputs and targets by name."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.x.values())))

    def batch(self, rows: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Inputs and targets of the samples at `rows` (as `Examples.batch`, for `FileBatches`)."""
        return {k: v[rows] for k, v in self.x.items()}, {k: v[rows] for k, v in self.y.items()}

    def split(self, fraction: float) -> tuple[ArrayData, ArrayData | None]:
        """The first samples for training and the last `fraction` for validation, as Keras's
        own `validation_split` cuts them (before any shuffling)."""
        if not fraction:
            return self, None
        cut = int(len(self) * (1 - fraction))
        if cut <= 0 or cut >= len(self):
            raise SpecErrors.single(
                f"a validation split of {fraction} leaves no samples on one side of {len(self)}"
            )
        head = ArrayData({k: v[:cut] for k, v in self.x.items()}, {k: v[:cut] for k, v in self.y.items()})
        tail = ArrayData({k: v[cut:] for k, v in self.x.items()}, {k: v[cut:] for k, v in self.y.items()})
        return head, tail


def checked_arrays(
    arrays: dict[str, np.ndarray], file: str, loaded: LoadedSpec, model: keras.Model
) -> ArrayData:
    """The arrays of an .npz file (see `graphspec.arrays.load_arrays`) as inputs and targets of
    `model`, built from `loaded`. Every problem is reported at once, naming the array, as
    `SpecErrors`: a missing array, a wrong shape, dtype or sample count, an index past a
    vocabulary. Arrays the model does not read are ignored."""
    diagnostics = Diagnostics()
    arr.check_inputs(arrays, file, loaded, diagnostics)
    inputs = list(loaded.spec.inputs)
    targets = targets_of(loaded)
    if not diagnostics.errors:
        check_index_outputs(loaded, model, {name: arrays[name].shape[1:] for name in inputs})
        shapes = output_shapes(model, {name: arrays[name].shape[1:] for name in inputs})
        arr.check_targets(arrays, file, {n: (t, shapes[n]) for n, t in targets.items()}, diagnostics)
    else:
        for name in targets:
            if name not in arrays:
                diagnostics.error(f"data file {file} has no array '{name}' for output '{name}'")
    arr.check_counts(arrays, file, inputs + list(targets), diagnostics)
    diagnostics.raise_if_errors()
    y = {name: arrays[name] for name in targets}
    count = len(arrays[inputs[0]])
    y.update({name: arr.dummy_target(count) for name in arr.targetless_outputs(loaded)})
    return ArrayData({name: arrays[name] for name in inputs}, y)


# About how many bytes of arrays one block handed to tf.data holds (`ArrayBatches.for_fit`).
def array_batches(arrays: ArrayData, batch_size: int, seed: int, epochs: int, first_epoch: int) -> Any:
    """`arrays` in batches for `fit(..., shuffle=False, steps_per_epoch=...)`, each epoch in the
    order (seed, epoch) draws (`files.FileBatches`), from epoch `first_epoch`: what a resumed run
    reads is what the uninterrupted run would have.

    On TensorFlow it is a `tf.data` pipeline, as Keras's own for arrays: the arrays are one
    tensor, each epoch's order is handed over whole, and batches are gathered from the tensor in
    parallel by TensorFlow, so no Python runs per batch (nor holds the GIL while a step runs);
    elsewhere (or for arrays of strings) the `FileBatches` itself. Its `first_epoch` is read when
    an iteration starts (each fine-tuning stage's fit)."""
    from graphspec.keras.files import FileBatches

    batches = FileBatches(arrays, batch_size, seed, True, None, epochs, first_epoch)
    every = [*arrays.x.values(), *arrays.y.values()]
    if keras.backend.backend() != "tensorflow" or any(a.dtype.kind in "OUS" for a in every):
        return batches, batches
    import tensorflow as tf

    def orders() -> Any:
        for epoch in range(batches.first_epoch, epochs):
            yield batches.order_of(epoch)

    whole = tf.data.Dataset.from_tensors((arrays.x, arrays.y)).repeat()
    rows = tf.data.Dataset.from_generator(orders, output_signature=tf.TensorSpec((None,), tf.int64))
    rows = rows.flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
    dataset = tf.data.Dataset.zip((rows, whole)).map(
        lambda taken, data: tf.nest.map_structure(lambda a: tf.gather(a, taken), data),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE), batches

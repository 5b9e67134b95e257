"""The Keras side of `graphspec tune`: the data every trial shares, the metric check made before
the first trial, and the callback through which a trial reports each epoch (and is pruned).

Optuna is only touched through the `trial` object handed in (`report`, `should_prune`).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from graphspec import arrays as arr
from graphspec import atomic, flock
from graphspec.data import npz
from graphspec.errors import Diagnostics
from graphspec.keras.build import by_name
from graphspec.keras.data import checked_arrays, output_shapes, synthetic_datasets, targets_of

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec


class TrialReporter(keras.callbacks.Callback):
    """Reports `metric` to an Optuna trial at each epoch's end and stops training when the trial's
    pruner says so (`pruned` is then true). Also times the fit, less its own time, so a tune can
    tell fitting from everything else a trial costs.

    A metric missing from the logs stops training too; `missing` then lists what was logged.
    """

    def __init__(self, trial: Any, metric: str):
        super().__init__()
        self.trial, self.metric = trial, metric
        self.values: list[float] = []
        self.pruned = False
        self.missing: list[str] | None = None
        self.fit_seconds = 0.0
        self._own = 0.0
        self._start = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        # Fine-tuning stages fit once each: the fits' times add up.
        self._start, self._own = time.perf_counter(), 0.0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        start = time.perf_counter()
        logs = logs or {}
        if self.metric not in logs:
            self.missing = sorted(logs)
            self.model.stop_training = True
            return
        value = float(logs[self.metric])
        self.values.append(value)
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True
        self._own += time.perf_counter() - start

    def on_train_end(self, logs: dict | None = None) -> None:
        self.fit_seconds += time.perf_counter() - self._start - self._own


def synthetic_arrays(
    loaded: LoadedSpec, *, kind: str, samples: int, seed: int, seq_len: int | None = None
) -> dict[str, np.ndarray]:
    """`samples` synthetic samples for `loaded`, keyed by input and output names, as an .npz holds.

    Made once for a whole search, so every trial learns the same function from the same samples:
    a teacher made per trial would have the trial's own architecture, and the trials' scores
    could not be compared.
    """
    keras.utils.set_random_seed(seed)
    model = by_name(loaded.build(compile=False), loaded, compile=False)
    batch = min(samples, 256)
    data, _ = synthetic_datasets(
        loaded,
        model,
        kind=kind,
        samples=samples,
        batch_size=batch,
        validation_split=0.0,
        seed=seed,
        seq_len=seq_len,
    )
    x, y = data.arrays()
    arrays = {**x, **y}
    keras.backend.clear_session(free_memory=False)
    return arrays


def save_arrays(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Write an .npz whole or not at all: workers starting together may all write it, and none
    ever reads half a file."""
    with atomic.replacing(path) as temporary:
        np.savez(temporary, **arrays)


def shapes_fitting(loaded: LoadedSpec, path: Path) -> dict[str, tuple] | None:
    """None when the arrays of the .npz at `path` fit `loaded`'s model (read from their headers,
    not their values); otherwise the per-sample shapes the model reads and gives, by input and
    output name, None for a length the data chooses."""
    headers = arr.read_headers(path)
    diagnostics = Diagnostics()
    arr.check_inputs(headers, str(path), loaded, diagnostics)
    model = by_name(loaded.build(compile=False), loaded, compile=False)
    try:
        wanted = {name: tuple(model.input[name].shape[1:]) for name in loaded.spec.inputs}
        targets = targets_of(loaded)
        if not diagnostics.errors:
            given = output_shapes(model, {name: headers[name].shape[1:] for name in loaded.spec.inputs})
            expected = {name: (target, given[name]) for name, target in targets.items()}
            arr.check_targets(headers, str(path), expected, diagnostics)
            if not diagnostics.errors:
                return None
        outputs = {name: tuple(model.output[name].shape[1:]) for name in targets}
    finally:
        keras.backend.clear_session(free_memory=False)
    return {**wanted, **outputs}


def data_for(
    loaded: LoadedSpec,
    shared: Path,
    directory: Path,
    *,
    kind: str,
    seed: int,
) -> Path:
    """The synthetic data file a trial of `loaded` trains on: `shared`, the search's own (made
    from the spec's values), when it fits the trial's model; otherwise, for a trial whose
    values change an input's or an output's shape, a file made for those shapes
    (`data-DIGEST.npz` in `directory`, made once with the search's seed and shared by every
    trial with the same shapes, whichever worker runs it)."""
    shapes = shapes_fitting(loaded, shared)
    if shapes is None:
        return shared
    digest = hashlib.sha256(json.dumps(shapes, sort_keys=True).encode()).hexdigest()[:16]
    path = directory / f"data-{digest}.npz"
    lock = flock.FileLock(f"{path}.flock") if flock.AVAILABLE else None
    if lock is not None:
        lock.acquire()
    try:
        if not path.exists():
            train = loaded.spec.train
            arrays = synthetic_arrays(
                loaded, kind=kind, samples=train.samples, seed=seed, seq_len=train.seq_len
            )
            save_arrays(arrays, path)
    finally:
        if lock is not None:
            lock.release()
    return path


def reported_metrics(loaded: LoadedSpec, data: Any, validation: bool) -> list[str]:
    """The metrics a fit of `loaded` on `data` (an .npz, its arrays, or the examples of a folder
    or a table as `graphspec.data.examples.bind` gives them) logs, found by evaluating a few
    samples (with `val_` twins when there is validation data). Checks the data against the
    model on the way."""
    keras.utils.set_random_seed(0)
    model = by_name(loaded.build(), loaded)
    if isinstance(data, (dict, str, Path)):
        found = data if isinstance(data, dict) else npz.load(data, loaded)
        arrays = checked_arrays(
            found, "synthetic data" if isinstance(data, dict) else str(data), loaded, model
        )
        count = min(len(arrays), 8)
        x = {k: v[:count] for k, v in arrays.x.items()}
        y = {k: v[:count] for k, v in arrays.y.items()}
    else:
        x, y = _first_examples(loaded, model, data)
        count = len(next(iter(y.values()))) if y else 1
    logs = model.evaluate(x, y, batch_size=count, verbose=0, return_dict=True)
    keras.backend.clear_session(free_memory=False)
    names = sorted(logs)
    return names + [f"val_{name}" for name in names] if validation else names


def _first_examples(loaded: LoadedSpec, model: keras.Model, examples: Any) -> tuple[dict, dict]:
    """The first few examples of a folder (files read) or the first row of a table, as inputs
    and targets the model is evaluated on; class counts checked against the outputs' units as
    `train` checks them."""
    from graphspec.data.stream import TableStream
    from graphspec.keras.files import string_tensors

    # The check `train` makes before fitting, made here before trial 0.
    from graphspec.keras.train import _check_class_counts

    _check_class_counts(loaded, model, examples)
    if isinstance(examples, TableStream):
        x, y = examples.first()
    else:
        x, y = examples.batch(np.arange(min(len(examples), 8)))
    count = len(next(iter(x.values())))
    y = {**y, **{name: arr.dummy_target(count) for name in arr.targetless_outputs(loaded)}}
    return string_tensors(x), y


def fresh_session() -> None:
    """Free the last trial's graph and layer-name counters before the next one builds."""
    keras.backend.clear_session(free_memory=False)

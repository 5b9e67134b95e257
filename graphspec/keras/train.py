"""A training run: a spec, data (synthetic, .npz, folders or tables), callbacks, and a run directory.

Everything that can be wrong with the input (a data file, an array, a callback) is found
before `fit` starts, and a run that fails leaves no run directory behind (`graphspec.run_dir`).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from graphspec import arrays as arr
from graphspec import run_dir as rd
from graphspec.data import npz
from graphspec.data.examples import Examples, bind, is_npz
from graphspec.data.npz_stream import ArrayRows, range_reads
from graphspec.data.skips import Skips
from graphspec.data.stream import TableStream
from graphspec.errors import Diagnostics, SpecErrors
from graphspec.fingerprint import fingerprint
from graphspec.keras.adapt import (
    InputBatches,
    adapt_batch_rows,
    adapt_layers,
    block_batches,
    first_batches,
    sampled_rows,
)
from graphspec.keras.backup import EpochBackup
from graphspec.keras.build import build_model_and_tensors, by_name, compile_model
from graphspec.keras.callbacks import activation_tensors, build_callbacks, check_tensorflow
from graphspec.keras.data import (
    ArrayData,
    array_batches,
    check_string_inputs,
    checked_arrays,
    fit_arguments,
    output_shapes,
    synthetic_datasets,
)
from graphspec.keras.distribute import (
    Cluster,
    ProcessBatches,
    Processes,
    across_processes,
    check_batches,
    check_cluster_run,
    device_count,
    join,
    local,
    replicated,
    same_seed,
    saving_alone,
)
from graphspec.keras.files import FileBatches, raising_failure, score, write_classes
from graphspec.keras.image_stream import reader_for
from graphspec.keras.npz_batches import NpzBatches
from graphspec.keras.save import save_model
from graphspec.keras.stages import STAGE_KEY, BuiltState, StageMarker, apply_stage
from graphspec.keras.streams import StreamBatches
from graphspec.spec.load import DEFAULT_MAX_PARAMS

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec


BACKUP_DIR = "backup"
TEST_METRICS_FILE = "test_metrics.json"


@dataclass
class TrainResult:
    """What a finished run left: its directory, per-epoch history, and last epoch's metrics.
    A process of a multi-process run other than process 0 leaves no directory (None)."""

    run_dir: Path | None
    history: dict[str, list[float]]
    model_path: Path | None
    metrics: dict[str, float] = field(default_factory=dict)
    skipped: int = 0  # bad examples `--skip-bad` skipped (`skipped.jsonl` in the run lists them)


@dataclass
class DataSource:
    """Where the training data comes from: `synthetic` (`kind` random or teacher), or files.
    `skip_bad`: how many bad training examples may be skipped over the run (a damaged image or
    text file, a bad table row: `graphspec.data.skips`); 0 stops the run at the first."""

    synthetic: bool = False
    kind: str | None = None
    data: Path | None = None
    val_data: Path | None = None
    test_data: Path | None = None
    skip_bad: int = 0

    def describe(self) -> dict[str, Any]:
        if self.synthetic:
            return {"synthetic": True, "kind": self.kind}
        described: dict[str, Any] = {
            "data": str(self.data),
            "val_data": str(self.val_data) if self.val_data else None,
        }
        if self.test_data is not None:
            described["test_data"] = str(self.test_data)
        if self.skip_bad:
            described["skip_bad"] = self.skip_bad
        return described


class EpochHistory(keras.callbacks.Callback):
    """Writes the history after every epoch, so a resumed run keeps the epochs before its kill."""

    def __init__(self, directory: Path | None, history: dict[str, list[float]]):
        super().__init__()
        self.directory = directory
        self.history = history

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            series = self.history.setdefault(key, [])
            del series[epoch:]
            series.append(float(value))
        if self.directory is not None:  # None: a multi-process run's process other than 0
            rd.write_history(self.directory, self.history)


def train(
    loaded: LoadedSpec,
    source: DataSource,
    *,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
    verbose: int | str = "auto",
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
    resume: bool = False,
    announce: Callable[[Path], None] | None = None,
    devices: str | None = None,
    on_built: Callable[[keras.Model], None] | None = None,
    cluster: Cluster | None = None,
    max_params: int | None = DEFAULT_MAX_PARAMS,
) -> TrainResult:
    """Train the model `loaded` describes, as its `train` section says, into a run directory.

    `loaded.spec.train` already holds every override (flags are passed as `--set train.x=...`).
    Synthetic data follows `source.kind` (default: `train.synthetic`); files are checked against
    the model before training. Raises `SpecErrors` for bad input, with nothing written.
    `extra_callbacks` run after the spec's own (`graphspec tune` reports each epoch through one).

    Every run backs up its last completed epoch (weights, optimizer, epoch) in its folder; with
    `resume=True`, `out` names a killed run (`rd.interrupted_run`) and training continues from
    that backup to the same epoch count. `announce` is told the run directory before fitting.
    `devices` (a count or `all`) replicates the model over that many local devices and splits
    each batch between them (`graphspec.keras.distribute`). `on_built` is given the model once
    it is built, before any data is made or the run directory exists (`train --init-from` copies
    weights into it then); a `SpecErrors` it raises ends the run with nothing written.
    `cluster` makes this process one of a multi-process run (JAX): it joins the others, trains
    on its part of each batch, and writes the run directory only if it is process 0.
    A model of more than `max_params` parameters is refused before any weight is allocated.
    """
    settings = loaded.spec.train
    if source.synthetic == (source.data is not None):
        raise SpecErrors.single("say what to train on: --synthetic, or --data PATH (.npz, folder or table)")
    if source.val_data is not None and source.data is None:
        raise SpecErrors.single("--val-data needs --data: synthetic runs make their own validation data")
    if source.val_data is not None and settings.validation_split:
        raise SpecErrors.single(
            "give either --val-data or a validation split, not both",
            loaded.location("train", "validation_split"),
            hint="add --validation-split 0 to validate on --val-data",
            sources=loaded.diagnostics.sources,
        )
    check_tensorflow(loaded)
    check_string_inputs(loaded)
    if out is None and not resume:
        rd.checked_base(runs_root, loaded.name)  # a link on the way is refused before any work
    if source.test_data is not None and source.data is None:
        raise SpecErrors.single("--test-data needs --data: it scores a model trained on files")
    skips = Skips(source.skip_bad)
    if cluster is not None and skips.limit:
        # A bad example skipped on one process would leave its part of the batch short, out of
        # step with the others' parts.
        raise SpecErrors.single(
            "--skip-bad skips bad files in a run in one process; in a multi-process run each "
            "process reads its part of every batch, which must stay whole",
            hint="leave --skip-bad out (the run stops at a bad file, naming it), or train in one process",
        )
    if resume and skips.limit:
        # Known before the data is scanned: the rows the run skipped as it read them keep their
        # place in its order (graphspec.data.stream), and none is counted twice.
        skips.recall(rd.partial_path(rd.interrupted_run(out)))
    # Files are read before TensorFlow builds anything, so a missing one fails at once: .npz
    # arrays checked from their headers, then read whole when small (charged to the data-bytes
    # limit first) or streamed (graphspec.data.npz), folders as examples whose headers
    # and labels are checked now and whose files are read batch by batch, tables as streams
    # whose every cell is checked now and which are read window by window.
    files: dict[str, Any] = {}
    if source.data is not None:
        if is_npz(source.data) and (source.val_data is None or is_npz(source.val_data)):
            files["data"] = npz.load(source.data, loaded, stream=True)
            if source.val_data is not None:
                files["val"] = npz.load(source.val_data, loaded, stream=True)
        else:
            files["examples"] = bind(loaded, source.data, stream=True, skips=skips)
            classes = files["examples"].classes
            if source.val_data is not None:
                files["val_examples"] = bind(
                    loaded, source.val_data, classes=classes, stream=True, skips=skips
                )
        if source.test_data is not None:
            classes = files["examples"].classes if "examples" in files else None
            files["test_examples"] = bind(loaded, source.test_data, classes=classes, stream=True, skips=skips)
    if skips.limit and not isinstance(files.get("examples"), Examples | TableStream):
        raise SpecErrors.single(
            "--skip-bad skips bad image and text files and table rows; "
            + (
                "synthetic data has none"
                if source.synthetic
                else f"data {source.data} is checked whole before training"
            ),
            hint="leave --skip-bad out: bad data here is found before training starts",
        )
    if cluster is not None and source.test_data is not None:
        # Scoring after fit would run the distributed model on process 0 alone, which waits for
        # the others forever.
        raise SpecErrors.single(
            "--test-data is scored by a run in one process; a multi-process run's model is spread "
            "over every process",
            hint="leave --test-data out, then score the run with `graphspec evaluate RUN --data TEST`",
        )
    if cluster is not None:
        check_cluster_run(cluster, [c.type for c in settings.callbacks], devices, resume)
        if cluster.process_id == 0 and out is not None:
            rd.final_path(loaded.name, out)  # a used --out is refused before the others wait
        processes = join(cluster)
        check_batches(processes.devices, settings.batch_size, {}, processes)  # before building
        replicas, context = processes.devices, across_processes()
    else:
        processes, replicas = Processes(), device_count(devices)
        context = replicated(replicas)
    with context as scope:
        return _train(
            loaded,
            source,
            files,
            settings,
            replicas,
            scope,
            out,
            runs_root,
            verbose,
            extra_callbacks,
            resume,
            announce,
            on_built=on_built,
            processes=processes,
            max_params=max_params,
            skips=skips,
        )


def _train(
    loaded: LoadedSpec,
    source: DataSource,
    files: dict[str, Any],
    settings: Any,
    replicas: int,
    scope: Callable[[], Any],
    out: Path | None,
    runs_root: Path,
    verbose: int | str,
    extra_callbacks: list[keras.callbacks.Callback] | None,
    resume: bool,
    announce: Callable[[Path], None] | None,
    on_built: Callable[[keras.Model], None] | None = None,
    processes: Processes | None = None,
    max_params: int | None = DEFAULT_MAX_PARAMS,
    skips: Skips | None = None,
) -> TrainResult:
    """`train` once its arguments are checked: the model is built and compiled in `scope`,
    which replicates it over `replicas` devices (of every process in `processes`). Training
    files found bad mid-stream are given to `skips`."""
    processes = processes or Processes()
    skips = skips if skips is not None else Skips()
    seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
    seed = same_seed(seed, processes)
    keras.utils.set_random_seed(seed)
    with scope():
        built, tensors = build_model_and_tensors(loaded, max_params=max_params)
        if on_built is not None:
            on_built(built)
        # A spec with `structure:` trains through a twin that takes dicts by name (the same
        # layers and weights); the run keeps the model in the spec's structure.
        model = by_name(built, loaded)

    # The batches read from files (folders, tables): what fit reads may wrap them (tf.data).
    readers: list[FileBatches | StreamBatches | None] = []
    if source.synthetic:
        kind = source.kind or settings.synthetic
        train_data, val_data = synthetic_datasets(
            loaded,
            model,
            kind=kind,
            samples=settings.samples,
            batch_size=settings.batch_size,
            validation_split=settings.validation_split,
            seed=seed,
            processes=processes,
        )
        source = DataSource(True, kind)
        counts = {"training": train_data.samples, "validation": val_data.samples if val_data else 0}
        check_batches(replicas, settings.batch_size, counts, processes)
        sample = val_data.inputs(0) if val_data is not None else None
        fit_args: dict[str, Any] = fit_arguments(train_data, val_data, settings.shuffle)
        training_inputs: InputBatches = first_batches(len(train_data), train_data.inputs)
    elif "examples" in files:
        examples: Examples | TableStream = files["examples"]
        _check_class_counts(loaded, model, examples, skips)
        if "val_examples" in files:
            validation_examples: Examples | TableStream | None = files["val_examples"]
        else:
            # A folder lists its examples class by class: the split is drawn from the seed.
            # A table's is its last rows (graphspec.data.stream).
            if isinstance(examples, Examples) and examples.files:
                examples = examples.shuffled(seed)
            examples, validation_examples = examples.split(settings.validation_split)
        counts = {
            "training": len(examples),
            "validation": len(validation_examples) if validation_examples is not None else 0,
        }
        check_batches(replicas, settings.batch_size, counts, processes)
        targetless = arr.targetless_outputs(loaded)
        done = _epochs_done(out) if resume else 0
        # The batches come in the order (seed, epoch) draws; Keras must not reorder them (its
        # `shuffle` would shuffle every epoch's batches together, and a resumed run's anew).
        # On TensorFlow a folder of images streams through tf.data (`ImageStream`), unless bad
        # files are to be skipped, which the Python reader does. In a multi-process run (JAX)
        # each process reads its own part of every batch, in the order every process draws.
        reader = StreamBatches if isinstance(examples, TableStream) else reader_for(examples, skips.limit)
        batches = reader(
            examples,
            settings.batch_size,
            seed,
            settings.shuffle,
            targetless,
            settings.total_epochs,
            done,
            processes=processes,
        )
        if isinstance(batches, FileBatches) and skips.limit:
            batches.skips = skips
        # TensorFlow prefetches what it is given (tf.data); JAX's and PyTorch's trainers do not.
        if isinstance(batches, FileBatches) and keras.backend.backend() != "tensorflow":
            batches.read_ahead = True
        val_batches = (
            _batches_of(validation_examples, settings.batch_size, targetless, skips.limit, processes)
            if validation_examples is not None
            else None
        )
        if isinstance(val_batches, FileBatches) and skips.limit:
            val_batches.skips = skips  # the same N, counted over the run
        sample = val_batches[0][0] if val_batches is not None else None
        readers = [batches, val_batches]
        fit_args = {
            "x": batches.for_fit(),
            "validation_data": val_batches.for_fit() if val_batches is not None else None,
            "steps_per_epoch": batches.per_epoch,
            "shuffle": False,
        }
        if isinstance(examples, TableStream):
            # A streamed table adapts window by window, in the order the run's seed draws.
            stream = examples
            training_inputs = block_batches(
                lambda: (block.kept().x for block in stream.blocks(settings.batch_size, seed, 0, True))
            )
        else:
            # Files (images, texts) are read a training batch at a time, as training reads them.
            file_reader = batches
            # Bad files skipped where the run allows it, as found before training.
            training_inputs = sampled_rows(
                len(examples), lambda rows: file_reader.read_good(rows, None)[0], settings.batch_size, seed
            )
    else:
        arrays = checked_arrays(files["data"], str(source.data), loaded, model)
        if "val" in files:
            validation: ArrayData | None = checked_arrays(files["val"], str(source.val_data), loaded, model)
        else:
            arrays, validation = arrays.split(settings.validation_split)
        counts = {"training": len(arrays), "validation": len(validation) if validation is not None else 0}
        check_batches(replicas, settings.batch_size, counts, processes)
        sample = {k: v[:1] for k, v in validation.x.items()} if validation is not None else None
        validation_data = (validation.x, validation.y) if validation is not None else None
        streamed = any(npz.is_streamed(f) for k, f in files.items() if k in ("data", "val"))
        if processes.count > 1:
            # Each process reads its slice of each batch (from disk when streamed).
            fit_args = _process_batches(arrays, validation, settings, processes)
        elif streamed:
            # Batches read from disk in an order drawn from (seed, epoch), as folders are, so a
            # resumed run goes on in its order; Keras must not reorder them.
            done = _epochs_done(out) if resume else 0
            rows_batches = NpzBatches(
                ArrayRows(arrays.x, arrays.y),
                settings.batch_size,
                seed,
                settings.shuffle,
                epochs=settings.total_epochs,
                first_epoch=done,
            )
            val_rows = (
                NpzBatches(ArrayRows(validation.x, validation.y), settings.batch_size)
                if validation is not None
                else None
            )
            readers = [rows_batches, val_rows]
            fit_args = {
                "x": rows_batches,
                "validation_data": val_rows,
                "steps_per_epoch": rows_batches.per_epoch,
                "shuffle": False,
            }
        elif settings.shuffle:
            # Each epoch's order is drawn from (seed, epoch), as a folder's is, so a resumed run
            # trains on the batches the uninterrupted run would have (Keras's own shuffling of
            # arrays follows its generator's state, which a resumed process starts anew).
            done = _epochs_done(out) if resume else 0
            ordered, batches = array_batches(arrays, settings.batch_size, seed, settings.total_epochs, done)
            readers = [batches, None]
            fit_args = {
                "x": ordered,
                "steps_per_epoch": batches.per_epoch,
                "shuffle": False,  # the order is drawn by `batches`
                "validation_data": validation_data,
            }
        else:
            fit_args = {
                "x": arrays.x,
                "y": arrays.y,
                "batch_size": settings.batch_size,
                "shuffle": False,
                "validation_data": validation_data,
            }
        training_x = arrays.x
        training_inputs = sampled_rows(
            len(arrays),
            lambda rows: {k: v[rows] for k, v in training_x.items()},
            adapt_batch_rows(training_x, settings.batch_size),
            seed,
        )
    if sample is not None:
        sample = {k: np.asarray(v[:1]) for k, v in sample.items()}
    # Preprocessing layers marked `adapt` learn from the training split alone, before the run
    # directory exists: a problem found here leaves nothing behind. A resumed run adapts again
    # (the same examples, so the same state) before its backup restores the weights.
    with local():
        adapt_layers(loaded, built, tensors, training_inputs)

    stages = Stages(loaded, built, model, scope, readers[0] if readers else None)
    if not processes.writes:
        return _follow(loaded, model, stages, fit_args, extra_callbacks)

    final = rd.interrupted_run(out) if resume else rd.final_path(loaded.name, out, runs_root)
    layer_nodes = [name for name in loaded.spec.layers if name in tensors]
    if announce is not None:
        announce(final)
    with rd.RunDirectory(final, resume=resume) as run:
        callbacks = build_callbacks(
            loaded,
            model,
            run.path,
            validation_sample=sample,
            tensors=activation_tensors(tensors, layer_nodes),
        )
        if not settings.stages and not any(
            isinstance(c, keras.callbacks.BackupAndRestore) for c in callbacks
        ):
            # Written whole or not at all, so a kill mid-write still leaves the previous one
            # to resume from; first, so the history never records an epoch it does not hold.
            callbacks.insert(0, EpochBackup(run.path / BACKUP_DIR))
        if processes.count > 1:
            callbacks = saving_alone(callbacks)
        epochs = EpochHistory(run.path, rd.read_history(run.path) if resume else {})
        callbacks += [epochs, *(extra_callbacks or [])]
        if not resume:
            rd.write_spec(run.path, loaded, seed)
            from graphspec.revision import spec_revision

            granted = {"grants": loaded.grants.record()} if loaded.grants else {}
            revision = spec_revision(loaded.path)  # for the model card; None outside git
            started = {"overrides": loaded.overrides, **source.describe(), **granted}
            rd.write_json(
                run.path / rd.OVERRIDES_FILE, {**started, **({"revision": revision} if revision else {})}
            )
            rd.write_json(run.path / "fingerprint.json", fingerprint(loaded).as_dict())
            if "examples" in files:
                write_classes(run.path, files["examples"].classes)
        skips.attach(run.path)  # a resumed run counts the skips its folder records
        try:
            with raising_failure(*readers):
                stages.fit(callbacks, run.path / BACKUP_DIR, verbose=verbose, **fit_args)
        except SpecErrors as exc:
            # Bad data found mid-stream: fixed, the run goes on from its last completed epoch.
            run.keep()
            raise _resumable(exc, final) from None
        values = epochs.history
        rd.write_history(run.path, values)
        if "test_examples" in files:
            tested = score(model, loaded, files["test_examples"], settings.batch_size, skips)
            rd.write_json(run.path / TEST_METRICS_FILE, tested)
            values = {**values, **{f"test_{key}": [value] for key, value in tested.items()}}
        with local():  # a multi-process run saves on process 0 alone (`saving_alone`)
            save_model(built, run.path / rd.MODEL_FILE, loaded)
        where = run.commit()
    metrics = {key: series[-1] for key, series in values.items() if series and key != STAGE_KEY}
    return TrainResult(where, values, where / rd.MODEL_FILE, metrics, skipped=len(skips))


def _resumable(error: SpecErrors, final: Path) -> SpecErrors:
    """`error`, found while training, saying that the run stopped and is kept to resume."""
    resume = f"graphspec train --resume {final}"
    kept = Diagnostics(sources=dict(error.diagnostics.sources))
    for diagnostic in error.diagnostics.items:
        if diagnostic.severity != "error":
            continue
        hint = (
            f"{diagnostic.hint}; then continue the run: {resume}"
            if diagnostic.hint
            else f"fix it, then continue the run: {resume}"
        )
        kept.items.append(
            replace(
                diagnostic, message=f"{diagnostic.message} (training stopped; the run is kept)", hint=hint
            )
        )
    return SpecErrors(kept)


class Stages:
    """The run's fits: one of `train.epochs`, or one per fine-tuning stage (`train.stages`),
    each with its layers frozen as it says and the model recompiled with its optimizer."""

    def __init__(
        self,
        loaded: LoadedSpec,
        built: keras.Model,
        model: keras.Model,
        scope: Callable[[], Any],
        files: FileBatches | StreamBatches | None = None,
    ):
        """`files`: the batches read from files (folders, tables) that `fit` reads, drawn by epoch."""
        self.loaded, self.built, self.model, self.scope = loaded, built, model, scope
        self.files = files
        self.settings = loaded.spec.train
        self.state = BuiltState(built) if self.settings.stages else None

    def fit(self, callbacks: list[keras.callbacks.Callback], backups: Path | None, **fit_args: Any) -> None:
        """Fit every stage in turn with `callbacks`. With `backups` (a folder), each stage backs
        up its epochs in its own subfolder, kept until the last stage ends: a resumed run
        replays the finished stages as no epochs (restoring their weights and optimizer) and
        continues the stage it was killed in, with that stage's frozen layers and optimizer."""
        stages = self.settings.stages
        if not stages:
            self.model.fit(epochs=self.settings.epochs, callbacks=callbacks, **fit_args)
            return
        start = 0
        # Batches read from files are drawn by epoch: each stage's fit starts at its first epoch
        # (or, resumed, at the first one not done), not at the run's.
        files = self.files
        resumed_at = files.first_epoch if files is not None else 0
        for index, stage in enumerate(stages):
            apply_stage(self.state, self.loaded, stage, index)
            with self.scope():
                compile_model(
                    self.model,
                    self.loaded,
                    structured=self.model is self.built,
                    optimizer=stage.optimizer,
                    optimizer_at=("train", "stages", index, "optimizer"),
                )
            own: list[keras.callbacks.Callback] = [StageMarker(index + 1)]
            if backups is not None:
                folder = str(backups / f"stage-{index + 1}")
                own.append(EpochBackup(folder, delete_checkpoint=False))
            # Keras keeps the epoch a backup restored on the model; the next stage starts at its own.
            self.model._initial_epoch = None
            if files is not None:
                files.first_epoch = min(max(start, resumed_at), start + stage.epochs - 1)
            self.model.fit(
                initial_epoch=start, epochs=start + stage.epochs, callbacks=own + callbacks, **fit_args
            )
            start += stage.epochs
            if self.model.stop_training:
                # A callback ended training (EarlyStopping, TerminateOnNaN, a pruned trial):
                # it ends the run, not only its stage.
                break
        if backups is not None:
            shutil.rmtree(backups, ignore_errors=True)


def _epochs_done(out: Path | None) -> int:
    """The epochs the interrupted run `out` completed: a resumed run goes on from the next one,
    in that epoch's order."""
    return max((len(v) for v in rd.read_history(rd.partial_path(out)).values()), default=0)


def _batches_of(
    examples: Examples | TableStream,
    batch_size: int,
    targetless: list[str],
    skip_bad: int = 0,
    processes: Processes | None = None,
) -> FileBatches | StreamBatches:
    """Batches of `examples` in their order (validation, scoring): in a multi-process run,
    this process's part of each."""
    reader = StreamBatches if isinstance(examples, TableStream) else reader_for(examples, skip_bad)
    return reader(examples, batch_size, targetless=targetless, processes=processes)


def _check_class_counts(
    loaded: LoadedSpec, model: keras.Model, examples: Examples | TableStream, skips: Skips | None = None
) -> None:
    """Refuse data with more classes than an output has units (sparse or one-hot targets): its
    last classes would be out of range, which Keras does not always notice. A table's first
    row is read to learn the shapes (its first batch is checked here, before training); a
    folder's first example that reads, where `skips` allow skipping bad ones."""
    if not examples.classes or not len(examples):
        return
    x, y = examples.first() if isinstance(examples, TableStream) else FileBatches(examples, 1, skips=skips)[0]
    shapes = output_shapes(model, {name: value.shape[1:] for name, value in x.items()})
    for name, classes in examples.classes.items():
        units = shapes[name][-1] if shapes.get(name) else None
        target = y.get(name)
        if (
            units is None
            or target is None
            or (target.ndim == 2 and target.shape[1] == 1 and target.dtype.kind == "f")
        ):
            continue  # a binary output: one unit, two classes
        if len(classes) > units:
            raise SpecErrors.single(
                f"output '{name}' has {units} units, and data {examples.path} has {len(classes)} classes",
                loaded.location("outputs", name, key=True),
                hint="give the output one unit per class (specs/image_classifier.yaml: --set classes=N)",
                sources=loaded.diagnostics.sources,
            )


def _process_batches(
    arrays: ArrayData, validation: ArrayData | None, settings: Any, processes: Processes
) -> dict[str, Any]:
    """`fit`'s data arguments for .npz arrays in a multi-process run: this process's part of
    every batch (read from disk, when streamed)."""
    x, y = range_reads(arrays.x), range_reads(arrays.y)
    return {
        "x": ProcessBatches(x, y, settings.batch_size, processes),
        "shuffle": settings.shuffle,
        "validation_data": (
            ProcessBatches(
                range_reads(validation.x), range_reads(validation.y), settings.batch_size, processes
            )
            if validation is not None
            else None
        ),
    }


def _follow(
    loaded: LoadedSpec,
    model: keras.Model,
    stages: Stages,
    fit_args: dict[str, Any],
    extra_callbacks: list[keras.callbacks.Callback] | None,
) -> TrainResult:
    """Training on a process of a multi-process run other than process 0: in step with it,
    with the callbacks that steer training (early stopping, learning rates) and none that
    write. Its history is process 0's: the metrics are computed over every process."""
    callbacks = build_callbacks(loaded, model, Path.cwd(), writing=False)
    history = EpochHistory(None, {})
    stages.fit([*callbacks, history, *(extra_callbacks or [])], None, verbose=0, **fit_args)
    metrics = {key: series[-1] for key, series in history.history.items() if series and key != STAGE_KEY}
    return TrainResult(None, history.history, None, metrics)

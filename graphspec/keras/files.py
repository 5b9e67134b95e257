"""Examples of a data path (`graphspec.data.examples`) as Keras takes them, and the scoring and
predicting of a trained model on them.

`FileBatches` is a `keras.utils.PyDataset`, so it runs on every Keras backend: batch `i` is read
(images decoded, texts read) when Keras asks for it, in an order drawn each epoch from the run's
seed and the epoch's number. A file found damaged mid-stream raises `SpecErrors` naming it; Keras
wraps whatever a dataset raises in its own errors, so the error is kept on the dataset and
`raising_failure` raises it in place of Keras's. Given `Skips` that allow it (`train --skip-bad
N`), the damaged example is dropped from its batch instead (`graphspec.data.skips`).

In a multi-process run each process's `FileBatches` reads its own part of every batch: every
process draws the same order (the seed is the same), and reads and decodes only its rows of it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from graphspec import arrays as arr
from graphspec import run_dir as rd
from graphspec.data.examples import Examples, bind
from graphspec.data.skips import Skips
from graphspec.data.stream import TableStream
from graphspec.errors import SpecErrors
from graphspec.keras.distribute import Processes, part
from graphspec.spec.load import DEFAULT_MAX_PARAMS

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

CLASSES_FILE = "classes.json"


class FileBatches(keras.utils.PyDataset):
    """`examples` in batches of `batch_size`, for epochs `first_epoch` to `epochs - 1`, in a new
    order each epoch when `shuffle`: train with `steps_per_epoch=batches.per_epoch`.

    Batch `k` is batch `k % per_epoch` of epoch `first_epoch + k // per_epoch`, whose order is
    drawn from (seed, epoch) alone: no state follows the calls, which Keras makes out of order
    and more than once (it reads batches ahead to learn their shapes, and calls `on_epoch_end`
    when it resets an iterator too). So a run resumed at epoch `e` (`first_epoch=e`) reads the
    batches the uninterrupted run would have. `examples` may be any object with a length and
    `batch(rows)` (`keras.data.ArrayData`: .npz arrays, ordered the same way).

    With `skips` that allow skipping, an example whose file cannot be read is left out of its
    batch (recorded in `skips`, and not read again); a batch of bad examples alone is made of
    the next good example of its epoch's order, so that no batch is empty.

    With `processes` of a multi-process run, batch `k` is this process's part of it
    (`distribute.part`): the processes draw the same order, so their parts make the batch a
    single process reads, and each reads and decodes only its own examples. Skipping bad
    examples is for a single process (a batch left short on one process would not match the
    others'); validation reads its part likewise.
    """

    def __init__(
        self,
        examples: Examples,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = False,
        targetless: list[str] | None = None,
        epochs: int = 1,
        first_epoch: int = 0,
        skips: Skips | None = None,
        processes: Processes | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.examples, self.batch_size = examples, batch_size
        self.processes = processes if processes is not None else Processes()
        self.seed, self.shuffle = seed, shuffle
        self.epochs, self.first_epoch = epochs, min(first_epoch, epochs - 1)
        self.targetless = targetless or []
        self.skips = skips if skips is not None and skips.limit else None
        self.failure: SpecErrors | None = None
        self._orders: dict[int, np.ndarray] = {}
        # Set for training on backends whose trainers read no batch ahead (`_read_ahead`).
        self.read_ahead = False
        self._ahead: tuple[tuple[int, int], Future] | None = None

    @property
    def per_epoch(self) -> int:
        """Batches in one epoch."""
        return math.ceil(len(self.examples) / self.batch_size)

    def order_of(self, epoch: int) -> np.ndarray:
        """The order of the examples in epoch `epoch`."""
        order = self._orders.get(epoch)
        if order is None:
            count = len(self.examples)
            order = (
                np.random.default_rng((self.seed, epoch)).permutation(count)
                if self.shuffle
                else np.arange(count)
            )
            self._orders = {epoch: order, **{e: o for e, o in self._orders.items() if e >= epoch - 1}}
        return order

    def __len__(self) -> int:
        return self.per_epoch * (self.epochs - self.first_epoch)

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        epoch, batch, order, rows = self._rows(index)
        try:
            if self.skips is None:
                x, y = self._read_ahead(index, rows)
            else:
                x, y = self._good(rows, order[(batch + 1) * self.batch_size :], epoch)
        except SpecErrors as exc:
            self.failure = exc
            raise
        if self.targetless:
            count = len(next(iter(y.values()))) if y else len(next(iter(x.values())))
            y = {**y, **{name: arr.dummy_target(count) for name in self.targetless}}
        return string_tensors(x), y

    def rows_of(self, index: int) -> np.ndarray:
        """The rows of batch `index` (this process's part of them), before any is read."""
        return self._rows(index)[3]

    def _rows(self, index: int) -> tuple[int, int, np.ndarray, np.ndarray]:
        """Batch `index`'s epoch, its place in the epoch, the epoch's order and its rows (this
        process's part of them)."""
        epoch, batch = divmod(index, self.per_epoch)
        epoch += self.first_epoch
        order = self.order_of(epoch)
        rows = order[batch * self.batch_size : (batch + 1) * self.batch_size]
        if self.processes.count > 1:
            rows = rows[part(len(rows), self.processes)]  # this process reads its rows alone
        return epoch, batch, order, rows

    def _read_ahead(
        self, index: int, rows: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """`read(rows)`, taken from the batch read ahead where it is this one; with `read_ahead`,
        batch `index + 1` is then read on a thread of its own while this one trains (Keras's JAX
        and PyTorch trainers ask for a PyDataset's batches one at a time, in order, and read none
        ahead). A batch read ahead is keyed by its index and `first_epoch`, which a new stage's
        fit may change."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == (index, self.first_epoch):
            x, y = ahead[1].result()  # raises what reading it raised, now that it is asked for
        else:
            x, y = self.read(rows)
        if self.read_ahead and index + 1 < len(self):
            following = self.rows_of(index + 1)
            self._ahead = ((index + 1, self.first_epoch), _ahead_reader().submit(self.read, following))
        return x, y

    def read(self, rows: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Inputs and targets of the examples at `rows`, read as this reader reads them (files
        in Python: images decoded with Pillow)."""
        return self.examples.batch(rows)

    def read_good(
        self, rows: np.ndarray, epoch: int | None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """`read(rows)`, but with `skips` that allow it, without the bad examples (each given to
        `skips` as found in `epoch`, None before training), or one good example if all are."""
        if self.skips is None:
            return self.read(rows)
        return self._good(rows, self.order_of(0), epoch)

    def for_fit(self) -> Any:
        """What `fit` reads: this PyDataset (`image_stream.ImageStream` makes a `tf.data`
        pipeline)."""
        return self

    def failure_for(self, error: BaseException) -> SpecErrors | None:
        """graphspec's error behind `error`, a failure of `fit` or of a read: a file this
        reader found damaged, or None."""
        return self.failure

    def _read_one(self, row: int, epoch: int) -> tuple[dict, dict] | None:
        """The example at `row` as a batch of one, or None when it is bad (given to `skips`)."""
        example = self.examples.ids[row]
        if (example, None) in self.skips:
            return None
        try:
            return self.examples.batch(np.asarray([row]))
        except SpecErrors as exc:
            self.skips.skip(example, exc, epoch)
            return None

    def kept(
        self, rows: np.ndarray, epoch: int | None
    ) -> tuple[np.ndarray, tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None]:
        """The rows of `rows` that read well, and their batch (None when none did): each bad one
        is given to `skips` (which raises past its limit) as found in `epoch`."""
        skips, ids = self.skips, self.examples.ids
        rows = np.asarray([r for r in rows if (ids[r], None) not in skips], dtype=np.int64)
        if len(rows):
            try:
                return rows, self.examples.batch(rows)
            except SpecErrors:
                pass  # which of them is bad is found one by one
        parts = [(row, part) for row in rows if (part := self._read_one(row, epoch)) is not None]
        if not parts:
            return rows[:0], None
        return np.asarray([row for row, _ in parts]), _joined([part for _, part in parts])

    def good_batches(
        self, epoch: int | None
    ) -> Iterator[tuple[np.ndarray, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]]:
        """Each batch's rows that read well and their batch, in order (`kept`, bad examples found
        in `epoch`); a batch of bad examples alone is left out, not stood in for, so that
        scoring and predicting see every good example once."""
        for index in range(len(self)):
            rows, batch = self.kept(self.rows_of(index), epoch)
            if batch is not None:
                yield rows, batch

    def _good(
        self, rows: np.ndarray, after: np.ndarray, epoch: int | None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The batch of `rows` without its bad examples (`kept`); if none is good, the first
        good one of `after`, a stand-in so that no batch is empty."""
        batch = self.kept(rows, epoch)[1]
        if batch is not None:
            return batch
        for row in after:
            part = self._read_one(row, epoch)
            if part is not None:
                return part
        raise SpecErrors.single(
            f"every example left {f'in epoch {epoch + 1}' if epoch is not None else 'to read'} "
            f"of {self.examples.path} is bad",
            hint="fix or remove the bad examples (skipped.jsonl in the run lists them)",
        )


def _joined(parts: list[tuple[dict, dict]]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Batches of inputs and targets joined, in order, into one."""
    return tuple(  # type: ignore[return-value]
        {name: np.concatenate([part[i][name] for part in parts]) for name in parts[0][i]} for i in (0, 1)
    )


@functools.cache
def _ahead_reader() -> ThreadPoolExecutor:
    """The thread that reads the next training batch while one trains (`FileBatches`)."""
    return ThreadPoolExecutor(1, thread_name_prefix="graphspec-read-ahead")


def string_tensors(x: dict[str, np.ndarray]) -> dict[str, Any]:
    """`x` with each array of strings (NumPy's dtype object) as a TensorFlow string tensor on
    TensorFlow: Keras's datasets refuse NumPy arrays of strings (`Invalid dtype: object`), and a
    string input (a category column for a StringLookup, a text file) reaches the model so."""
    if keras.backend.backend() != "tensorflow" or not any(v.dtype == object for v in x.values()):
        return x
    import tensorflow as tf

    return {name: tf.constant(v) if v.dtype == object else v for name, v in x.items()}


@contextlib.contextmanager
def raising_failure(*datasets: Any) -> Iterator[None]:
    """Run the block; if it fails after one of `datasets` (each a `FileBatches`, an
    `ImageStream` or a `StreamBatches`, or None) failed to read a file, raise that dataset's
    located error instead of what Keras or TensorFlow made of it."""
    try:
        yield
    except Exception as exc:
        for dataset in datasets:
            if dataset is None:
                continue
            explain = getattr(dataset, "failure_for", None)
            failure = explain(exc) if explain is not None else dataset.failure
            if failure is not None:
                raise failure from None
        raise


def write_classes(directory: Path, classes: dict[str, list[str]]) -> None:
    """Record each output's class names in a run directory (`classes.json`)."""
    if classes:
        rd.write_json(directory / CLASSES_FILE, classes)


def read_classes(directory: Path) -> dict[str, list[str]] | None:
    """The class names a run recorded, or None when it recorded none."""
    path = directory / CLASSES_FILE
    if not path.is_file():
        return None
    data = rd.read_json(path)
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(c, str) for c in v) for v in data.values()
    ):
        raise SpecErrors.single(f"{path} is damaged: it should map outputs to lists of class names")
    return data


def open_trained(
    path: Path, max_params: int | None = DEFAULT_MAX_PARAMS
) -> tuple[keras.Model, Any, dict | None]:
    """A trained model to score or predict with, from a run directory or a `.keras` file that
    graphspec wrote (it carries its spec): compiled as its spec says, by name, with the file's
    weights; its spec; and the class names its run recorded (None when unknown)."""
    import graphspec
    from graphspec import archive
    from graphspec.keras.adapt import copy_adapted
    from graphspec.keras.build import by_name
    from graphspec.keras.data import check_string_inputs
    from graphspec.keras.export import load_keras_file

    path = Path(path)
    if path.is_dir():
        model_path, spec_path = rd.finished_files(
            path, hint="name a folder that graphspec train wrote, or its model.keras"
        )
        loaded = graphspec.load(spec_path)
        classes = read_classes(path)
    else:
        model_path = path
        if not path.is_file():
            raise SpecErrors.single(f"no such model file or run directory: {path}")
        loaded = archive.load_embedded(path)
        classes = read_classes(path.parent)
    check_string_inputs(loaded)
    # Read through the untrusted-file checks; its weights go into the model its spec builds,
    # compiled with the spec's losses and metrics.
    saved = load_keras_file(model_path, max_params)[0]
    built = loaded.build(max_params=max_params)
    try:
        built.set_weights(saved.get_weights())
    except ValueError as exc:
        raise SpecErrors.single(f"{model_path}'s weights do not fit its spec: {exc}") from None
    # What adapted layers learned is not all weights (a vocabulary is an asset).
    copy_adapted(saved, built, loaded)
    return by_name(built, loaded), loaded, classes


def evaluate(
    path: Path,
    data: Path,
    batch_size: int | None = None,
    max_params: int | None = DEFAULT_MAX_PARAMS,
    skip_bad: int = 0,
) -> tuple[dict[str, float], int, list[dict[str, Any]]]:
    """The spec's loss and metrics of the trained model at `path` on the examples at `data`,
    how many examples were scored, and the bad ones skipped (`Skips.records`: at most
    `skip_bad`; past it, or with 0, the first bad one is refused). A label the run never saw
    is refused."""
    skips = Skips(skip_bad)
    model, loaded, classes = open_trained(path, max_params)
    examples = bind(loaded, data, classes=classes, stream=True, skips=skips)
    metrics = score(model, loaded, examples, batch_size, skips)
    # A table's rows the check found bad are not in its length; those found as read are.
    read = sum(1 for record in skips.records if record["epoch"] is not None)
    return metrics, len(examples) - read, skips.records


def score(
    model: keras.Model,
    loaded: LoadedSpec,
    examples: Examples | TableStream,
    batch_size: int | None = None,
    skips: Skips | None = None,
) -> dict[str, float]:
    """`model.evaluate` on `examples` (a table streamed), as a dict of floats. A folder's file
    found bad is given to `skips` (a table's rows, to the `skips` it was bound with), which
    leave it out of its batch where they allow it."""
    from graphspec.keras.streams import StreamBatches

    targets = examples.first()[1] if isinstance(examples, TableStream) else examples.targets
    missing = [n for n, o in loaded.spec.outputs.items() if o.takes_data and n not in targets]
    if missing:
        raise SpecErrors.single(f"data {examples.path} has no targets for output '{missing[0]}'")

    skipping = skips is not None and skips.limit > 0
    limit = skips.limit if skipping else 0
    reader = StreamBatches if isinstance(examples, TableStream) else _reader(examples, limit)
    size, targetless = batch_size or loaded.spec.train.batch_size, arr.targetless_outputs(loaded)
    if reader is FileBatches and skipping:
        values = _scored_without_stand_ins(
            model, FileBatches(examples, size, targetless=targetless, skips=skips)
        )
    else:
        batches = reader(examples, size, targetless=targetless)
        with raising_failure(batches):
            values = model.evaluate(batches.for_fit(), verbose=0, return_dict=True)
    return {key: float(value) for key, value in values.items()}


def _scored_without_stand_ins(model: keras.Model, batches: FileBatches) -> dict[str, Any]:
    """`model.evaluate` on the examples of `batches` that read well (`good_batches`), so that
    every good example is scored once."""
    scored, failure = 0, None

    def good() -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        nonlocal scored, failure
        try:
            for rows, (x, y) in batches.good_batches(epoch=0):
                scored += len(rows)
                yield string_tensors(x), {**y, **{n: arr.dummy_target(len(rows)) for n in batches.targetless}}
        except SpecErrors as exc:  # past the limit: tf.data would wrap it in its own error
            failure = exc
            raise

    try:
        return model.evaluate(good(), verbose=0, return_dict=True)
    except Exception:
        if failure is not None:
            raise failure from None
        if scored:
            raise
        raise SpecErrors.single(
            f"every example of {batches.examples.path} is bad: there is nothing to score"
        ) from None


@dataclass
class Predictions:
    """What `predict` gives: each example's id, each output's values (a row per id), the class
    names of the outputs whose classes are known, and the bad examples skipped
    (`Skips.records`)."""

    ids: list[str]
    outputs: dict[str, np.ndarray]
    classes: dict[str, list[str]]
    skipped: list[dict[str, Any]]


def predict(
    path: Path,
    data: Path,
    batch_size: int | None = None,
    max_params: int | None = DEFAULT_MAX_PARAMS,
    skip_bad: int = 0,
) -> Predictions:
    """The outputs of the trained model at `path` on the examples at `data`. Labels in the data
    are checked against the run's classes; targets are not read. A bad example (a table row, an
    image or text file) is refused, or with `skip_bad`, at most that many are left out: no row,
    no id."""
    skips = Skips(skip_bad)
    model, loaded, classes = open_trained(path, max_params)
    examples = bind(loaded, data, classes=classes, labelled=False, stream=True, skips=skips)
    size = batch_size or loaded.spec.train.batch_size
    outputs: dict[str, list[np.ndarray]] = {}

    def take(x: dict[str, Any]) -> None:
        for name, value in model.predict_on_batch(x).items():
            outputs.setdefault(name, []).append(np.asarray(value))

    ids: list[str] = []
    if isinstance(examples, TableStream):  # read window by window; the ids come with the rows
        for x, _, rows in examples.batches(size):
            if len(rows):  # every row of a batch may have been found bad as it was read
                ids += rows.strings()
                take(x)
    elif skips.limit:
        # In Python, batch by batch, so that each batch's bad files are left out with their ids.
        for rows, (x, _) in FileBatches(examples, size, skips=skips).good_batches(epoch=None):
            ids += [examples.ids[row] for row in rows]
            take(string_tensors(x))
    else:
        ids = list(examples.ids)
        batches = _reader(examples)(examples, size)
        # In order; on TensorFlow a folder of images is decoded by tf.data, as training read it.
        read = batches.for_fit()
        with raising_failure(batches):
            for x, _ in read if read is not batches else (batches[i] for i in range(len(batches))):
                take(x)
    if not ids:
        raise SpecErrors.single(f"every example of {data} is bad: there is nothing to predict on")
    known = classes if classes is not None else examples.classes
    values = {name: np.concatenate(parts) for name, parts in outputs.items()}
    return Predictions(ids, values, dict(known or {}), skips.records)


def _reader(examples: Examples, skip_bad: int = 0) -> type[FileBatches]:
    """What reads `examples` in order, to score or predict: `NpzBatches` for an .npz streamed
    (no index of its rows held), else `image_stream.reader_for`'s."""
    from graphspec.data.npz import is_streamed
    from graphspec.keras.image_stream import reader_for
    from graphspec.keras.npz_batches import NpzBatches

    return NpzBatches if is_streamed(examples.arrays) else reader_for(examples, skip_bad)


def classes_json(classes: dict[str, list[str]]) -> str:
    return json.dumps(classes, indent=2)

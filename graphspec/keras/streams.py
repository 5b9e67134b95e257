"""A streamed table (`graphspec.data.stream.TableStream`) as Keras takes it.

On TensorFlow, `StreamBatches.for_fit()` is a `tf.data` pipeline: a generator hands over blocks
of whole batches (a window's rows, a few MB), read and made into inputs and targets in Python
while the previous block trains (`prefetch`), and tf.data cuts them into batches in C++, so
no Python runs per batch. On JAX and PyTorch it is the `keras.utils.PyDataset` itself, which
Keras reads batch 0, 1, 2, ... when `fit(..., shuffle=False)` does not reorder them (its first
batch or two also once more, to learn their shapes): batches are made by walking the stream, a
batch asked for out of turn restarts the walk at its epoch, and the last few are kept for the
repeat.

In a multi-process run each process's `StreamBatches` reads its part of every batch: the
processes walk the same order, and each reads and assembles only its rows of each batch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from graphspec import arrays as arr
from graphspec.data.stream import TableStream, cut_block
from graphspec.errors import SpecErrors
from graphspec.keras.distribute import Processes

# Batches kept for Keras's second look at the first ones.
_KEPT = 4


class StreamBatches(keras.utils.PyDataset):
    """`stream` in batches of `batch_size`, for epochs `first_epoch` to `epochs - 1`, each
    epoch in the order (seed, epoch) draws when `shuffle`: train with
    `steps_per_epoch=batches.per_epoch` and `shuffle=False`. Batch `k` is batch
    `k % per_epoch` of epoch `first_epoch + k // per_epoch`, so a run resumed at epoch `e`
    reads what the uninterrupted run would have. A bad cell found mid-stream is kept on
    `failure` (Keras wraps what a dataset raises; `files.raising_failure` raises it).

    With `processes` of a multi-process run, batch `k` is this process's part of it (as
    `distribute.part` cuts a batch): the processes' parts make the batch a single process reads,
    and each process reads only its own rows."""

    def __init__(
        self,
        stream: TableStream,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = False,
        targetless: list[str] | None = None,
        epochs: int = 1,
        first_epoch: int = 0,
        processes: Processes | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.stream, self.batch_size = stream, batch_size
        processes = processes if processes is not None else Processes()
        # Which part of every batch this process reads: its index, of how many.
        self.share = (processes.index, processes.count)
        self.seed, self.shuffle = seed, shuffle
        self.epochs = epochs
        self.targetless = targetless or []
        self.failure: SpecErrors | None = None
        self._lock = threading.Lock()
        self._walk: Iterator | None = None
        self._next = -1
        self._kept: dict[int, tuple[dict, dict]] = {}
        self.first_epoch = min(first_epoch, epochs - 1)

    @property
    def first_epoch(self) -> int:
        """The epoch batch 0 belongs to (each fine-tuning stage sets its own)."""
        return self._first_epoch

    @first_epoch.setter
    def first_epoch(self, epoch: int) -> None:
        self._first_epoch = epoch
        self._walk, self._next, self._kept = None, -1, {}

    @property
    def per_epoch(self) -> int:
        """Batches in one epoch."""
        return self.stream.per_epoch(self.batch_size)

    def __len__(self) -> int:
        return self.per_epoch * (self.epochs - self.first_epoch)

    def for_fit(self) -> Any:
        """What `fit` reads: a `tf.data.Dataset` on TensorFlow, else this PyDataset. The
        dataset starts at `first_epoch` as it is when an iteration starts (each fit's)."""
        if keras.backend.backend() != "tensorflow":
            return self
        import tensorflow as tf

        x, y = self.stream.first()
        if self.targetless:
            y = {**y, **{name: arr.dummy_target(1) for name in self.targetless}}
        signature = keras.tree.map_structure(
            lambda a: tf.TensorSpec(
                (None, None, *a.shape[1:]), tf.string if a.dtype == object else tf.as_dtype(a.dtype)
            ),
            (x, y),
        )

        def blocks() -> Iterator[tuple[dict, dict]]:
            size = self.batch_size // self.share[1]  # this process's part of a batch
            try:
                for epoch in range(self.first_epoch, self.epochs):
                    for block in self.stream.blocks(
                        self.batch_size, self.seed, epoch, self.shuffle, self.share
                    ):
                        if block.good is not None:
                            # Rows found bad as read leave their batches short: one at a time.
                            for part in cut_block(block, size):
                                y = {**part.y, **{n: arr.dummy_target(len(part)) for n in self.targetless}}
                                yield _reshaped((part.x, y), (1, len(part)))
                            continue
                        count = len(block)
                        # A block of k whole batches as k batches of one element each; the
                        # epoch's last part batch as one.
                        k, each = (count // size, size) if count % size == 0 else (1, count)
                        y = {**block.y, **{n: arr.dummy_target(count) for n in self.targetless}}
                        yield _reshaped((block.x, y), (k, each))
            except SpecErrors as exc:
                self.failure = exc
                raise

        dataset = tf.data.Dataset.from_generator(blocks, output_signature=signature)
        dataset = dataset.prefetch(1).unbatch()
        if self.epochs == 1:
            # Validation and scoring read it to its end: told its length, Keras does not run off
            # the end and warn. (Training is told by steps_per_epoch; a fine-tuning stage's
            # first epoch, so its length, changes between fits.)
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(self)))
        return dataset.prefetch(tf.data.AUTOTUNE)

    def _batches(self, epoch: int) -> Iterator[tuple[dict, dict]]:
        for current in range(epoch, self.epochs):
            batches = self.stream.batches(self.batch_size, self.seed, current, self.shuffle, self.share)
            for x, y, _ in batches:
                yield x, y

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        with self._lock:
            if index in self._kept:
                x, y = self._kept[index]
            else:
                try:
                    x, y = self._walk_to(index)
                except SpecErrors as exc:
                    self.failure = exc
                    raise
                self._kept = {i: b for i, b in self._kept.items() if i > index - _KEPT}
                self._kept[index] = (x, y)
        if self.targetless:
            count = len(next(iter(x.values())))
            y = {**y, **{name: arr.dummy_target(count) for name in self.targetless}}
        return x, y

    def _walk_to(self, index: int) -> tuple[dict, dict]:
        if self._walk is None or index < self._next:
            epoch, skip = divmod(index, self.per_epoch)
            self._walk = self._batches(self.first_epoch + epoch)
            self._next = index - skip
        while self._next < index:  # skipped batches are still read: the order runs through them
            next(self._walk)
            self._next += 1
        self._next += 1
        return next(self._walk)


def _reshaped(tree: Any, batches: tuple[int, int]) -> Any:
    """Every array of `tree` with its first axis split in two: (batches, rows per batch)."""
    return keras.tree.map_structure(lambda a: a.reshape(*batches, *a.shape[1:]), tree)

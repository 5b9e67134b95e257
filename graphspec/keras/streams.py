"""A streamed table (`graphspec.data.stream.TableStream`) as Keras takes it: a PyDataset read in
order, on every backend.

Keras reads a `keras.utils.PyDataset` through a `tf.data` generator with `prefetch(AUTOTUNE)` on
TensorFlow, and through its own iterator on JAX and PyTorch; either way it asks for batch 0, 1,
2, ... of a run that `fit(..., shuffle=False)` does not reorder (its first batch or two also once
more, to learn their shapes). So batches are made by walking the stream: a batch asked for out of
turn restarts the walk at its epoch, and the last few batches are kept for the repeat.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from graphspec import arrays as arr
from graphspec.data.stream import TableStream
from graphspec.errors import SpecErrors

# Batches kept for Keras's second look at the first ones.
_KEPT = 4


class StreamBatches(keras.utils.PyDataset):
    """`stream` in batches of `batch_size`, for epochs `first_epoch` to `epochs - 1`, each
    epoch in the order (seed, epoch) draws when `shuffle`: train with
    `steps_per_epoch=batches.per_epoch` and `shuffle=False`. Batch `k` is batch
    `k % per_epoch` of epoch `first_epoch + k // per_epoch`, so a run resumed at epoch `e`
    reads what the uninterrupted run would have. A bad cell found mid-stream is kept on
    `failure` (Keras wraps what a dataset raises; `files.raising_failure` raises it)."""

    def __init__(
        self,
        stream: TableStream,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = False,
        targetless: list[str] | None = None,
        epochs: int = 1,
        first_epoch: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.stream, self.batch_size = stream, batch_size
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

    def _batches(self, epoch: int) -> Iterator[tuple[dict, dict]]:
        for current in range(epoch, self.epochs):
            for x, y, _ in self.stream.batches(self.batch_size, self.seed, current, self.shuffle):
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

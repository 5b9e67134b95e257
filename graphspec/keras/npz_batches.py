"""A streamed `.npz` (`graphspec.data.npz_stream`) as Keras takes it: `FileBatches` over its
rows, in an epoch order made a batch at a time (`EpochOrder`), so that no per-row index of the
file is held: memory holds a batch, whatever the file's size."""

from __future__ import annotations

from typing import Any

from graphspec.data.npz_stream import ArrayRows, EpochOrder
from graphspec.keras.files import FileBatches


class NpzBatches(FileBatches):
    """`FileBatches` over `ArrayRows`: batch `k` is batch `k % per_epoch` of epoch
    `first_epoch + k // per_epoch`, its rows drawn from (seed, epoch) alone, so a run resumed
    at epoch `e` reads the batches the uninterrupted run would have."""

    def __init__(self, rows: ArrayRows, batch_size: int, *args: Any, **kwargs: Any):
        super().__init__(rows, batch_size, *args, **kwargs)  # type: ignore[arg-type]

    def order_of(self, epoch: int) -> EpochOrder:  # type: ignore[override]
        """The order of the rows in epoch `epoch`, sliced a batch at a time."""
        return EpochOrder(len(self.examples), self.seed, epoch, self.shuffle)

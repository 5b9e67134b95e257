"""A table read window by window: batches in a seeded order, without holding the table.

`bind(..., stream=True)` checks every cell of a table in one pass (`graphspec.data.tables.scan`)
and keeps where its chunks start. A `TableStream` then reads a window of chunks at a time (about
`WINDOW_BYTES` of the columns the spec reads), makes its inputs and targets, and cuts it into
batches, carrying a last part batch over into the next window. Memory holds a window or two,
whatever the table's size.

The order is drawn from (seed, epoch) alone. A table that fits in one window is one window,
ordered by `default_rng((seed, epoch)).permutation(rows)`, as a table held whole was. A larger
one is shuffled in two steps with the same generator: the order of its chunks (Parquet row
groups, `CHUNK_ROWS` lines of a text table), then the rows within each window of consecutive
chunks in that order. A validation split is the last fraction of the rows, as Keras's
`validation_split` cuts arrays, so it is the same rows every epoch, run and resume.

In a multi-process run each process reads its share of every batch (`share`: its index and the
number of processes): the processes draw the same order, each keeps its consecutive part of
every batch (as `graphspec.keras.distribute.part` cuts one), and reads and makes inputs and
targets of those rows alone. A window's chunks are still opened on every process that has rows
in them (a Parquet row group is read column by column, a text table's lines are split), but
only its rows' cells are converted and assembled.
No TensorFlow here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from graphspec import budget
from graphspec.data.tables import Chunk, Table, read_chunk
from graphspec.errors import SpecErrors

# About how many bytes of the columns the spec reads one window holds (before they are made
# into inputs and targets, which takes about as much again). Small tables are one window.
WINDOW_BYTES = 8 * 2**20

Batch = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]


class RowIds:
    """The ids (`file:line`, `file:row`) of rows, made only when one is asked for."""

    def __init__(self, shards: list[Any], shard: np.ndarray, line: np.ndarray):
        self.shards, self.shard, self.line = shards, shard, line

    def __len__(self) -> int:
        return len(self.line)

    def __getitem__(self, index: int) -> str:
        return f"{self.shards[self.shard[index]]}:{self.line[index]}"

    def take(self, rows: Any) -> RowIds:
        return RowIds(self.shards, self.shard[rows], self.line[rows])

    def strings(self) -> list[str]:
        return [self[i] for i in range(len(self))]


@dataclass
class Rows:
    """Rows made into inputs and targets (a window, a block, a batch), with their ids."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    ids: RowIds

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: Any) -> Rows:
        return Rows(
            {n: a[rows] for n, a in self.x.items()},
            {n: a[rows] for n, a in self.y.items()},
            self.ids.take(rows),
        )

    def then(self, other: Rows) -> Rows:
        def joined(a: dict, b: dict) -> dict:
            return {n: np.concatenate([a[n], b[n]]) for n in a}

        ids = RowIds(
            self.ids.shards,
            np.concatenate([self.ids.shard, other.ids.shard]),
            np.concatenate([self.ids.line, other.ids.line]),
        )
        return Rows(joined(self.x, other.x), joined(self.y, other.y), ids)


@dataclass
class TableStream:
    """A table's rows `start` to `stop` (all by default) for a model: `assemble` makes inputs
    and targets from the columns `numeric` and `text` of some rows (and their ids, which name
    a bad label). `classes` are each output's class names, found by the scan or given."""

    path: str
    table: Table
    chunks: list[Chunk]
    numeric: list[str]
    text: list[str]
    assemble: Callable[[dict[str, np.ndarray], Any], Batch]
    classes: dict[str, list[str]] = field(default_factory=dict)
    start: int = 0
    stop: int | None = None
    _cache: dict[tuple, Rows] = field(default_factory=dict, repr=False)
    _handles: dict[int, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.stop is None:
            self.stop = self.chunks[-1].first + self.chunks[-1].rows if self.chunks else 0
        # What one window holds is charged once: it is all a stream keeps, however long it runs.
        budget.current().charge(
            "data-bytes",
            min(len(self), self.window_rows(1)) * self.row_bytes,
            None,
            f"a window of table {self.path}",
        )

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def row_bytes(self) -> int:
        """About what one row of the columns read takes in memory (a text cell: a pointer
        and a short string)."""
        return 8 * len(self.numeric) + 64 * len(self.text) + 16

    def window_rows(self, batch_size: int) -> int:
        """Rows read and shuffled together: about `WINDOW_BYTES`, at least a batch."""
        return max(batch_size, WINDOW_BYTES // self.row_bytes, 1)

    def split(self, fraction: float) -> tuple[TableStream, TableStream | None]:
        """The first rows for training and the last `fraction` for validation, as Keras's
        `validation_split` cuts arrays. Class names are the whole table's."""
        if not fraction:
            return self, None
        cut = self.start + int(len(self) * (1 - fraction))
        if cut <= self.start or cut >= self.stop:
            raise SpecErrors.single(
                f"a validation split of {fraction} leaves no examples on one side of {len(self)}"
            )
        return replace(self, stop=cut, _cache={}), replace(self, start=cut, _cache={})

    def _pieces(self) -> list[tuple[Chunk, int, int]]:
        """The chunks of rows `start` to `stop`, each with the part of it inside them."""
        pieces = []
        for chunk in self.chunks:
            low, high = max(self.start, chunk.first), min(self.stop, chunk.first + chunk.rows)
            if low < high:
                pieces.append((chunk, low - chunk.first, high - chunk.first))
        return pieces

    def _read(
        self, pieces: list[tuple[Chunk, int, int]], keep: bool = False, rows: np.ndarray | None = None
    ) -> Rows:
        """The rows of `pieces` (in table order) as inputs and targets. With `keep` (a stream
        of one window), the window is kept, so such a table is read once, not every epoch.
        With `rows` (positions among the pieces' rows, in table order), only those rows' cells
        are converted and assembled, in the order `rows` gives; nothing is kept."""
        key = tuple((c.first, low, high) for c, low, high in pieces)
        if rows is None and key in self._cache:
            return self._cache[key]
        wanted = np.sort(rows) if rows is not None else None
        parts, shards, lines = [], [], []
        offset = 0
        for chunk, low, high in pieces:
            select = None
            if wanted is not None:
                first, last = np.searchsorted(wanted, [offset, offset + high - low])
                select, offset = wanted[first:last] - offset + low, offset + high - low
                if not len(select):
                    continue  # none of this chunk's rows are wanted: it is not read
            values, numbers = read_chunk(self.table, chunk, self.numeric, self.text, self._handles, select)
            if select is None:
                values, numbers = {n: v[low:high] for n, v in values.items()}, numbers[low:high]
            parts.append(values)
            lines.append(numbers)
            shards.append(np.full(len(numbers), chunk.shard, dtype=np.int32))
        # One piece (a window of one row group) is used as read, not copied.
        values = {
            n: parts[0][n] if len(parts) == 1 else np.concatenate([p.pop(n) for p in parts])
            for n in [*self.numeric, *self.text]
        }
        ids = RowIds(self.table.shards, np.concatenate(shards), np.concatenate(lines))
        x, y = self.assemble(values, ids)
        window = Rows(x, y, ids)
        if wanted is not None:
            return window.take(np.searchsorted(wanted, rows))  # in the order asked for
        if keep:
            self._cache[key] = window
        return window

    def _windows(
        self, batch_size: int, seed: int, epoch: int, shuffle: bool, share: tuple[int, int] = (0, 1)
    ) -> Iterator[Rows]:
        pieces = self._pieces()
        size = self.window_rows(batch_size)
        rng = np.random.default_rng((seed, epoch)) if shuffle else None
        mine = _share(len(self), batch_size, *share) if share[1] > 1 else None
        if len(self) <= size and mine is None:
            window = self._read(pieces, keep=True)
            yield window.take(rng.permutation(len(window))) if rng is not None else window
            return
        if len(self) > size and rng is not None:
            pieces = [pieces[i] for i in rng.permutation(len(pieces))]
        group: list[tuple[Chunk, int, int]] = []
        start = 0  # where the window starts in the epoch's order
        for index, piece in enumerate(pieces):
            group.append(piece)
            if sum(high - low for _, low, high in group) >= size or index == len(pieces) - 1:
                group = sorted(group, key=lambda p: p[0].first)
                count = sum(high - low for _, low, high in group)
                # Drawn before the window is read (the same draws, in the same sequence): a
                # process with a share reads only its rows of it.
                order = rng.permutation(count) if rng is not None else None
                if mine is None:
                    window = self._read(group)
                    yield window.take(order) if order is not None else window
                else:
                    order = order if order is not None else np.arange(count)
                    chosen = order[mine(np.arange(start, start + count))]
                    if len(chosen):
                        yield self._read(group, rows=chosen)
                start += count
                # Let go of it before the next is read: memory holds one window, not two.
                window, group = None, []

    def per_epoch(self, batch_size: int) -> int:
        """Batches in one epoch."""
        return math.ceil(len(self) / batch_size)

    def blocks(
        self,
        batch_size: int,
        seed: int = 0,
        epoch: int = 0,
        shuffle: bool = False,
        share: tuple[int, int] = (0, 1),
    ) -> Iterator[Rows]:
        """One epoch's rows in the order (seed, epoch) draws when `shuffle`, else in table
        order, as blocks of whole batches (a window's rows, a last part batch carried over into
        the next window), then the epoch's last part batch, if any, as a block of its own.
        With `share` (index, count), the blocks hold process `index`'s part of every batch of
        `batch_size` alone: blocks of whole parts of `batch_size // count` rows."""
        cut = batch_size // share[1]
        left: Rows | None = None
        for window in self._windows(batch_size, seed, epoch, shuffle, share):
            if left is not None:
                window, left = left.then(window), None
            full = len(window) - len(window) % cut
            if full == len(window):
                yield window
            else:
                left = window.take(slice(full, None))
                if full:
                    yield window.take(slice(0, full))
            window = None  # not held while the next window is read
        if left is not None:
            yield left

    def batches(
        self,
        batch_size: int,
        seed: int = 0,
        epoch: int = 0,
        shuffle: bool = False,
        share: tuple[int, int] = (0, 1),
    ) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray], RowIds]]:
        """One epoch's batches (`blocks` cut): inputs, targets and the rows' ids. Every batch
        is full but the last. With `share` (index, count), each is process `index`'s part of
        the batch."""
        cut = batch_size // share[1]
        for block in self.blocks(batch_size, seed, epoch, shuffle, share):
            for low in range(0, len(block), cut):
                part = block.take(slice(low, low + cut))
                yield part.x, part.y, part.ids
            block = part = None

    def first(self) -> Batch:
        """Inputs and targets of the first chunk's rows (to check shapes before training)."""
        chunk, low, high = self._pieces()[0]
        values, numbers = read_chunk(self.table, chunk, self.numeric, self.text, self._handles)
        values = {n: v[low : low + 1] for n, v in values.items()}
        ids = RowIds(self.table.shards, np.full(1, chunk.shard, dtype=np.int32), numbers[low : low + 1])
        return self.assemble(values, ids)


def _share(rows: int, batch_size: int, index: int, count: int) -> Callable[[np.ndarray], np.ndarray]:
    """Whether each of some positions in an epoch's order of `rows` rows is in process
    `index`'s share: the `index`th of `count` consecutive parts of its batch of `batch_size`
    (the epoch's last batch may be smaller), as `graphspec.keras.distribute.part` cuts one."""

    def mine(positions: np.ndarray) -> np.ndarray:
        start = positions - positions % batch_size
        each = np.maximum(np.minimum(batch_size, rows - start) // count, 1)
        return (positions - start) // each == index

    return mine

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

With `train --skip-bad N` (`Skips` allowing it), the rows the scan found bad are `excluded`:
the epoch's order, its batches and their count are those of the table without them (a seeded
run trains as it would on a table with those rows deleted). A row found bad later, as a window
is read (a cell changed since the scan), is given to the `Skips`, which stops the run past its
limit; below it, the row keeps its place in the order and is left out of its batch, so the
batches and their count stay as planned (a batch of such rows alone is made of one good row of
its window instead, so that none is empty). A resumed run keeps those rows in its order too
(`Skips.found_while_training`): it reads the batches the uninterrupted run would have.
No TensorFlow here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from graphspec import budget
from graphspec.data.skips import Skips
from graphspec.data.tables import Chunk, OnBad, Table, read_chunk
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
    """Rows made into inputs and targets (a window, a block, a batch), with their ids. `good`,
    where some rows were found bad as they were read: False at each of them, which holds a
    copy of a good row only to keep its place (`kept` leaves them out)."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    ids: RowIds
    good: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: Any) -> Rows:
        return Rows(
            {n: a[rows] for n, a in self.x.items()},
            {n: a[rows] for n, a in self.y.items()},
            self.ids.take(rows),
            self.good[rows] if self.good is not None else None,
        )

    def then(self, other: Rows) -> Rows:
        def joined(a: dict, b: dict) -> dict:
            return {n: np.concatenate([a[n], b[n]]) for n in a}

        ids = RowIds(
            self.ids.shards,
            np.concatenate([self.ids.shard, other.ids.shard]),
            np.concatenate([self.ids.line, other.ids.line]),
        )
        good = None
        if self.good is not None or other.good is not None:
            good = np.concatenate([_all_good(self), _all_good(other)])
        return Rows(joined(self.x, other.x), joined(self.y, other.y), ids, good)

    def kept(self) -> Rows:
        """These rows without those found bad as they were read; if all were, the first (a copy
        of a good row of its window) alone, so that a batch is never empty."""
        if self.good is None or self.good.all():
            return self
        return self.take(self.good if self.good.any() else slice(0, 1))


def _all_good(rows: Rows) -> np.ndarray:
    return rows.good if rows.good is not None else np.ones(len(rows), dtype=bool)


@dataclass
class TableStream:
    """A table's rows `start` to `stop` (all by default) for a model: `assemble` makes inputs
    and targets from the columns `numeric` and `text` of some rows (and their ids, which name
    a bad label). `classes` are each output's class names, found by the scan or given.
    `excluded`: the indices in the table (ascending) of rows left out, found bad by the scan;
    `skips`: what is done with a row found bad as it is read (None: it stops the stream)."""

    path: str
    table: Table
    chunks: list[Chunk]
    numeric: list[str]
    text: list[str]
    assemble: Callable[[dict[str, np.ndarray], Any], Batch]
    classes: dict[str, list[str]] = field(default_factory=dict)
    start: int = 0
    stop: int | None = None
    excluded: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    skips: Skips | None = None
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
        return self.stop - self.start - self._excluded_before(self.stop)

    @property
    def _skipping(self) -> bool:
        """Whether a row found bad as it is read is skipped (else it stops the stream)."""
        return self.skips is not None and self.skips.limit > 0

    def _excluded_before(self, index: int) -> int:
        """How many excluded rows are at or after `start` and before `index`."""
        low, high = np.searchsorted(self.excluded, [self.start, index])
        return int(high - low)

    def _index_of(self, position: int) -> int:
        """The index in the table of the row at `position` among this stream's rows."""
        index = self.start + position
        for excluded in self.excluded[np.searchsorted(self.excluded, self.start) :]:
            if excluded > index:
                break
            index += 1  # each excluded row at or before it moves it one on
        return int(index)

    def _own(self, chunk: Chunk, low: int, high: int) -> np.ndarray:
        """The positions in `chunk` of rows `low` to `high` of it that are not excluded."""
        own = np.arange(low, high)
        if len(self.excluded):
            own = own[~np.isin(chunk.first + own, self.excluded)]
        return own

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
        kept = int(len(self) * (1 - fraction))
        if kept <= 0 or kept >= len(self):
            raise SpecErrors.single(
                f"a validation split of {fraction} leaves no examples on one side of {len(self)}"
            )
        cut = self._index_of(kept)
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
        self,
        pieces: list[tuple[Chunk, int, int]],
        keep: bool = False,
        rows: np.ndarray | None = None,
        epoch: int | None = None,
    ) -> Rows:
        """The rows of `pieces` (in table order, the excluded left out) as inputs and targets.
        With `keep` (a stream of one window), the window is kept, so such a table is read once,
        not every epoch. With `rows` (positions among the pieces' rows, in table order), only
        those rows' cells are converted and assembled, in the order `rows` gives; nothing is
        kept. A row found bad is given to `skips` (as found in `epoch`) and marked not `good`."""
        key = tuple((c.first, low, high) for c, low, high in pieces)
        if rows is None and key in self._cache:
            return self._cache[key]
        wanted = np.sort(rows) if rows is not None else None
        skipping = self._skipping
        found: list[int] = []  # the indices of rows found bad as they were read
        bad = self._on_bad(epoch, found) if skipping else None
        parts, shards, lines, planned = [], [], [], []
        offset = 0
        for chunk, low, high in pieces:
            own = self._own(chunk, low, high)
            # Every row of the chunk read is converted, and the piece cut from it, unless some
            # rows are left out: then those wanted alone.
            select = None if len(own) == high - low and not skipping else own
            if wanted is not None:
                first, last = np.searchsorted(wanted, [offset, offset + len(own)])
                select, offset = own[wanted[first:last] - offset], offset + len(own)
            if select is not None and not len(select):
                continue  # none of this chunk's rows are wanted: it is not read
            values, numbers = read_chunk(
                self.table, chunk, self.numeric, self.text, self._handles, select, bad
            )
            if select is None:
                values, numbers = {n: v[low:high] for n, v in values.items()}, numbers[low:high]
            parts.append(values)
            lines.append(numbers)
            shards.append(np.full(len(numbers), chunk.shard, dtype=np.int32))
            planned.append(chunk.first + (select if select is not None else own))
        if found and len(found) == sum(len(p) for p in planned):
            raise SpecErrors.single(
                f"every row left in a window of table {self.path} is bad",
                hint="fix or remove the bad rows (skipped.jsonl in the run lists them)",
            )
        # One piece (a window of one row group) is used as read, not copied.
        values = {
            n: parts[0][n] if len(parts) == 1 else np.concatenate([p.pop(n) for p in parts])
            for n in [*self.numeric, *self.text]
        }
        ids = RowIds(self.table.shards, np.concatenate(shards), np.concatenate(lines))
        x, y = self.assemble(values, ids)
        window = Rows(x, y, ids)
        if found:
            # Each bad row keeps its place, holding a copy of the first good row.
            good = ~np.isin(np.concatenate(planned), found)
            place = np.where(good, np.cumsum(good) - 1, 0)
            window = window.take(place)
            window.good = good
        if wanted is not None:
            return window.take(np.searchsorted(wanted, rows))  # in the order asked for
        if keep:
            self._cache[key] = window
        return window

    def _on_bad(self, epoch: int | None, found: list[int]) -> OnBad:
        """Gives a row found bad to `skips` (which raises past its limit) and notes its index."""
        skips = self.skips

        def bad(shard: int, number: int, index: int, error: SpecErrors) -> None:
            skips.skip(str(self.table.shards[shard]), error, epoch, row=number)
            found.append(index)

        return bad

    def _windows(
        self, batch_size: int, seed: int, epoch: int, shuffle: bool, share: tuple[int, int] = (0, 1)
    ) -> Iterator[Rows]:
        pieces = self._pieces()
        size = self.window_rows(batch_size)
        rng = np.random.default_rng((seed, epoch)) if shuffle else None
        mine = _share(len(self), batch_size, *share) if share[1] > 1 else None
        if len(self) <= size and mine is None:
            window = self._read(pieces, keep=True, epoch=epoch)
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
                count = sum(len(self._own(*piece)) for piece in group)
                # Drawn before the window is read (the same draws, in the same sequence): a
                # process with a share reads only its rows of it.
                order = rng.permutation(count) if rng is not None else None
                if mine is None:
                    window = self._read(group, epoch=epoch)
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
            for part in cut_block(block, cut):
                yield part.x, part.y, part.ids
            block = part = None

    def first(self) -> Batch:
        """Inputs and targets of the first row (to check shapes before training)."""
        if not len(self.excluded) and not self._skipping:
            chunk, low, high = self._pieces()[0]
            values, numbers = read_chunk(self.table, chunk, self.numeric, self.text, self._handles)
            values = {n: v[low : low + 1] for n, v in values.items()}
            ids = RowIds(self.table.shards, np.full(1, chunk.shard, dtype=np.int32), numbers[low : low + 1])
            return self.assemble(values, ids)
        # The first row not excluded, read among the few after it (one may be found bad now).
        index = self._index_of(0)
        chunk = next(c for c in self.chunks if index < c.first + c.rows)
        piece = (chunk, index - chunk.first, min(chunk.rows, self.stop - chunk.first))
        rows = self._read([piece], rows=np.arange(min(8, len(self._own(*piece)))))
        first = rows.kept().take(slice(0, 1))
        return first.x, first.y


def cut_block(block: Rows, size: int) -> Iterator[Rows]:
    """`block`'s batches of `size` rows (its last may be smaller), each without the rows found
    bad as they were read (`Rows.kept`)."""
    for low in range(0, len(block), size):
        yield block.take(slice(low, low + size)).kept()


def _share(rows: int, batch_size: int, index: int, count: int) -> Callable[[np.ndarray], np.ndarray]:
    """Whether each of some positions in an epoch's order of `rows` rows is in process
    `index`'s share: the `index`th of `count` consecutive parts of its batch of `batch_size`
    (the epoch's last batch may be smaller), as `graphspec.keras.distribute.part` cuts one."""

    def mine(positions: np.ndarray) -> np.ndarray:
        start = positions - positions % batch_size
        each = np.maximum(np.minimum(batch_size, rows - start) // count, 1)
        return (positions - start) // each == index

    return mine

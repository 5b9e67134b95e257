"""An `.npz`'s arrays read row by row from disk, so that training holds a batch, not the arrays.

An .npz is a zip of .npy members. A member stored uncompressed (`numpy.savez`) is an .npy file
lying in the archive: its rows are read in place, by offset (`os.preadv` into the batch's own
buffer; nothing is memory-mapped, so the pages read are not kept in the process's resident
memory). A deflated member (`numpy.savez_compressed`) cannot be read from the middle: deflate
has no random access, and every out-of-order batch would inflate the member from its start. It
is inflated once, in bounded chunks through zipfile's stream (which checks its CRC), into a
temporary file (in the system's temporary folder: `TMPDIR`), removed when the arrays are let go
of or the process exits. The bytes so written are charged to the `data-disk` limit, and refused
beyond the free space of that folder, before any is written.

Why a file and not windows shuffled in the stream: with random access to every row, a streamed
run's batches are the same rows in the same order however the file was written, and the order
is a permutation of all the rows drawn from (seed, epoch) (`EpochOrder`, made a batch at a time
so that no index of the rows is held), so a resumed run continues in the same order and a
multi-process run reads its slice of each batch.
Windows of an inflating stream would shuffle only rows close together in the file: a file
sorted by class would train on one class at a time.

`Column` is the array-like each member becomes: `len`, `shape`, `dtype`, `ndim`, `size`, and
rows by index (`column[rows]`, a NumPy array) or a range of rows (`column[a:b]`, a `Column`).
No TensorFlow here.
"""

from __future__ import annotations

import math
import mmap
import os
import shutil
import struct
import tempfile
import threading
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphspec import budget
from graphspec.errors import SpecErrors

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

# Bytes inflated (and written) at a time, and read at a time by a pass over a whole column.
CHUNK_BYTES = 4 * 2**20
# Scattered rows smaller than this are gathered through a mapping, this many at a time (about
# 256 x 64 KB resident at most while they are copied); larger ones are read one by one.
_GATHER_ROW_BYTES = 4096
_GATHER_ROWS = 256
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


class _File:
    """An open file read by offset, from any thread; closed when no column holds it."""

    def __init__(self, path: Path, owned: Path | None = None):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._lock = threading.Lock()
        # A temporary file of inflated arrays is removed with its last reader (or at exit).
        self._finalizer = weakref.finalize(self, _close, self.fd, owned)

    def check_size(self, end: int) -> None:
        """Raise `SpecErrors` when the file no longer reaches `end` (a mapping past a file's
        end would crash the process on reading, not raise)."""
        size = os.fstat(self.fd).st_size
        if size < end:
            raise SpecErrors.single(
                f"data file {self.path} is {size:,} bytes, not {end:,}: it changed while it was read"
            )

    def read_into(self, buffer: memoryview, offset: int) -> None:
        wanted = len(buffer)
        while len(buffer):
            if hasattr(os, "preadv"):
                count = os.preadv(self.fd, [buffer], offset)
            else:  # pragma: no cover - Windows has no pread
                with self._lock:
                    os.lseek(self.fd, offset, os.SEEK_SET)
                    data = os.read(self.fd, len(buffer))
                    buffer[: len(data)] = data
                    count = len(data)
            if count == 0:
                raise SpecErrors.single(
                    f"data file {self.path} ended {len(buffer):,} bytes short of {wanted:,}: it "
                    "changed while it was read"
                )
            buffer, offset = buffer[count:], offset + count


def _close(fd: int, owned: Path | None) -> None:
    os.close(fd)
    if owned is not None:
        shutil.rmtree(owned, ignore_errors=True)


@dataclass(frozen=True)
class Column:
    """Rows `start` to `stop` of an array whose rows lie one after another in `file` from
    `offset` (an .npy's data, C order): an array read a few rows at a time."""

    file: _File
    offset: int
    dtype: np.dtype
    row_shape: tuple[int, ...]
    start: int
    stop: int

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.stop - self.start, *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def row_bytes(self) -> int:
        return math.prod(self.row_shape) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            low, high, step = key.indices(len(self))
            if step == 1:
                high = max(low, high)
                return Column(
                    self.file, self.offset, self.dtype, self.row_shape, self.start + low, self.start + high
                )
            key = np.arange(low, high, step)
        if isinstance(key, (int, np.integer)):
            return self.rows(np.array([key]))[0]
        return self.rows(np.asarray(key))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self.rows(np.arange(len(self)))
        return values if dtype is None else values.astype(dtype)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows `rows` (numbers within this column, any order) as a NumPy array: the rows are
        read in file order, consecutive ones in one read, and put in the order asked."""
        rows = rows.astype(np.int64, copy=False)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows {rows.min()}..{rows.max()} of {len(self)}")
        order = np.argsort(rows, kind="stable")
        ordered = rows[order] + self.start
        values = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        row_bytes = self.row_bytes
        if row_bytes and len(rows):
            flat = values.reshape(len(rows), -1).view(np.uint8).reshape(len(rows), row_bytes)
            in_order = np.array_equal(order, np.arange(len(rows)))
            target = flat if in_order else np.empty_like(flat)
            breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
            if row_bytes < _GATHER_ROW_BYTES and len(breaks) > len(rows) // 8:
                self._gather(ordered, target)
            else:
                firsts = np.concatenate([[0], breaks])
                lasts = np.concatenate([breaks, [len(rows)]])
                for first, last in zip(firsts.tolist(), lasts.tolist(), strict=True):
                    view = memoryview(target[first:last]).cast("B")
                    self.file.read_into(view, self.offset + int(ordered[first]) * row_bytes)
            if not in_order:
                flat[order] = target
        return values

    def _gather(self, ordered: np.ndarray, target: np.ndarray) -> None:
        """Scattered small rows (`ordered`, file order) into `target` (one row of bytes each),
        `_GATHER_ROWS` at a time through a mapping of the part of the file they span, let go of
        before the next: a read call per row costs ten times as much, and a mapping of the whole
        file would keep every page it touched (the kernel maps 64 KB around each) resident."""
        row_bytes = self.row_bytes
        for low in range(0, len(ordered), _GATHER_ROWS):
            part = ordered[low : low + _GATHER_ROWS]
            first = self.offset + int(part[0]) * row_bytes
            end = self.offset + (int(part[-1]) + 1) * row_bytes
            base = first - first % mmap.ALLOCATIONGRANULARITY
            self.file.check_size(end)
            mapped = mmap.mmap(self.file.fd, end - base, access=mmap.ACCESS_READ, offset=base)
            try:
                view = np.frombuffer(mapped, np.uint8, end - first, first - base).reshape(-1, row_bytes)
                target[low : low + len(part)] = view[part - part[0]]
                del view
            finally:
                mapped.close()

    def chunks(self) -> Any:
        """The column's rows in order, about `CHUNK_BYTES` at a time."""
        step = max(1, CHUNK_BYTES // max(self.row_bytes, 1))
        for low in range(0, len(self), step):
            yield self.rows(np.arange(low, min(low + step, len(self))))


@dataclass(frozen=True)
class Member:
    """Where an .npy member's array data lies: its zip entry, its .npy header's length, shape,
    dtype and order."""

    info: zipfile.ZipInfo
    header_bytes: int
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def streams(self) -> bool:
        """Whether its rows can be read one at a time: an array of rows in C order."""
        return len(self.shape) > 0 and (not self.fortran or len(self.shape) == 1)


def members(path: Path, names: list[str]) -> dict[str, Member]:
    """The members `names` of the .npz at `path` (its headers already checked by
    `graphspec.arrays.read_headers`), each with where its data starts."""
    from numpy.lib import format as npy

    found: dict[str, Member] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if name not in names:
                continue
            with archive.open(info) as member:
                version = npy.read_magic(member)
                read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                shape, fortran, dtype = read(member)
                found[name] = Member(info, member.tell(), tuple(shape), dtype, fortran)
    return found


def disk_bytes(found: dict[str, Member]) -> int:
    """What streaming `found` writes to disk: the data of its deflated members."""
    return sum(m.data_bytes for m in found.values() if m.info.compress_type != zipfile.ZIP_STORED)


def open_columns(path: Path, found: dict[str, Member]) -> dict[str, Column]:
    """Each member of `found` as a `Column`: stored ones read in place, deflated ones inflated
    once into a temporary file. Raises `SpecErrors` past the `data-disk` limit or the free
    space of the temporary folder (before writing), and for a member whose data is damaged."""
    path = Path(path)
    columns: dict[str, Column] = {}
    deflated = {n: m for n, m in found.items() if m.info.compress_type != zipfile.ZIP_STORED}
    if len(deflated) < len(found):
        archive_file = _File(path)
        with open(path, "rb") as raw:
            for name, member in found.items():
                if name in deflated:
                    continue
                raw.seek(member.info.header_offset)
                fields = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
                if fields[0] != b"PK\x03\x04":
                    raise SpecErrors.single(f"cannot read array '{name}' in data file {path}: bad zip header")
                start = member.info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
                columns[name] = _column(archive_file, start + member.header_bytes, member)
    if deflated:
        size = disk_bytes(found)
        budget.current().charge(
            "data-disk", size, None, f"data file {path}, whose compressed arrays inflate to {size:,} bytes,"
        )
        folder = Path(tempfile.mkdtemp(prefix="graphspec-npz-"))
        free = shutil.disk_usage(folder).free
        if size > free:
            shutil.rmtree(folder, ignore_errors=True)
            raise SpecErrors.single(
                f"data file {path}'s compressed arrays inflate to {size:,} bytes, and {folder.parent} "
                f"has {free:,} free",
                hint="point TMPDIR at a folder with room, or save the arrays with numpy.savez (uncompressed)",
            )
        spill = folder / "arrays.bin"
        offsets, name = {}, ""
        try:
            with zipfile.ZipFile(path) as archive, open(spill, "wb") as out:
                for name, member in deflated.items():
                    offsets[name] = out.tell()
                    with archive.open(member.info) as stream:
                        stream.read(member.header_bytes)
                        left = member.data_bytes
                        while left:
                            chunk = stream.read(min(CHUNK_BYTES, left))
                            if not chunk:
                                raise ValueError("the member ends early")
                            out.write(chunk)
                            left -= len(chunk)
                        stream.read(1)  # to its end, where zipfile checks the CRC
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise SpecErrors.single(
                f"cannot read array '{name}' in data file {path}: {exc}",
                hint="write it with numpy.savez(path, input_name=array, ...)",
            ) from None
        spilled = _File(spill, owned=folder)
        for name, offset in offsets.items():
            columns[name] = _column(spilled, offset, deflated[name])
    return {name: columns[name] for name in found}


def _column(file: _File, offset: int, member: Member) -> Column:
    return Column(file, offset, member.dtype, member.shape[1:], 0, member.shape[0])


def check_values(columns: dict[str, Any], file: str, loaded: LoadedSpec) -> None:
    """Raise `SpecErrors` for an integer input whose values pass the vocabulary of the layer it
    feeds, as `graphspec.arrays.check_inputs` reports it for arrays in memory, read a chunk at
    a time."""
    from graphspec import arrays as arr
    from graphspec.errors import Diagnostics

    diagnostics = Diagnostics()
    for name, spec_input in loaded.spec.inputs.items():
        column = columns.get(name)
        if not isinstance(column, Column) or arr.dtype_kind(spec_input.dtype) != "int" or not column.size:
            continue
        if column.dtype.kind not in "biu":
            continue
        limit = arr.vocabulary_limit(loaded, name)
        if limit is None:
            continue
        low = high = None
        for chunk in column.chunks():
            if chunk.size:
                low = chunk.min() if low is None else min(low, chunk.min())
                high = chunk.max() if high is None else max(high, chunk.max())
        if high is not None and (high >= limit[1] or low < 0):
            bad = high if high >= limit[1] else low
            diagnostics.error(
                f"array '{name}' in {file} holds {bad}; layer '{limit[0]}' takes "
                f"indices from 0 to {limit[1] - 1}"
            )
    diagnostics.raise_if_errors()


class RangeReads:
    """A `Column` whose ranges of rows (`column[a:b]`) are read, as NumPy arrays: for readers
    that slice arrays (`graphspec.keras.distribute.ProcessBatches`)."""

    def __init__(self, column: Column):
        self.column = column

    def __len__(self) -> int:
        return len(self.column)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.column[key])


def range_reads(arrays: dict[str, Any]) -> dict[str, Any]:
    """`arrays` with each `Column` read a range at a time (`RangeReads`)."""
    return {n: RangeReads(a) if isinstance(a, Column) else a for n, a in arrays.items()}


class ArrayRows:
    """Arrays checked against a model (`graphspec.keras.data.ArrayData`, whose values may be
    `Column`s) as the examples `graphspec.keras.files.FileBatches` reads: `len` and `batch`."""

    def __init__(self, x: dict[str, Any], y: dict[str, Any]):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(next(iter(self.x.values())))

    def batch(self, rows: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return {n: v[rows] for n, v in self.x.items()}, {n: v[rows] for n, v in self.y.items()}


class EpochOrder:
    """The order of `count` rows in one epoch, made a slice at a time: `order[a:b]` are the
    rows of positions a to b. Shuffled, it is a permutation drawn from (seed, epoch) that is
    never held whole (a held permutation takes 8 bytes a row: as much as the data of a file of
    two float32 columns): a Feistel network keyed from `default_rng((seed, epoch))`, a bijection
    of [0, 4^k) for the least 4^k >= count, walked again from any value past `count` until it
    falls inside (which keeps it a bijection of [0, count))."""

    _ROUNDS = 6

    def __init__(self, count: int, seed: int = 0, epoch: int = 0, shuffle: bool = True):
        self.count, self.shuffle = count, shuffle
        self.half = max(1, ((max(count, 2) - 1).bit_length() + 1) // 2)
        keys = np.random.default_rng((seed, epoch)).integers(0, 2**63, size=self._ROUNDS, dtype=np.uint64)
        self.keys = [np.uint64(k) for k in keys]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, key: slice) -> np.ndarray:
        low, high, step = key.indices(self.count)
        positions = np.arange(low, high, step, dtype=np.uint64)
        if not self.shuffle:
            return positions.astype(np.int64)
        rows = self._permute(positions)
        outside = rows >= self.count
        while outside.any():
            rows[outside] = self._permute(rows[outside])
            outside = rows >= self.count
        return rows.astype(np.int64)

    def _permute(self, values: np.ndarray) -> np.ndarray:
        half = np.uint64(self.half)
        mask = np.uint64((1 << self.half) - 1)
        left, right = values >> half, values & mask
        for key in self.keys:
            left, right = right, left ^ (_mix(right ^ key) & mask)
        return (left << half) | right


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: each bit of the result depends on every bit of the value."""
    with np.errstate(over="ignore"):
        values = values + np.uint64(0x9E3779B97F4A7C15)
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))

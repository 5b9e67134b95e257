"""`.npz` arrays as data: held whole when small, else streamed from disk a batch at a time.

An .npz is a zip of .npy members; a member of zeros compresses a thousand times, so a 2 MB file
can hold 2 GB. Every member's .npy header is checked against the archive and the spec first
(`graphspec.arrays.read_headers`: shapes, dtypes, no Python objects, sizes that agree), before
any array data is read. Then only the arrays the spec reads are used:

- when their declared sizes together are at most `WHOLE_BYTES` and fit in what is left of the
  `data-bytes` limit, they are read whole (`model.fit` on arrays in memory is the fastest way
  to train on a small file), and their sizes are charged to `data-bytes`;
- else each becomes a `graphspec.data.npz_stream.Column`, read a batch of rows at a time, and
  what is held, one batch of the rows, is charged to `data-bytes`. Compressed members are
  inflated once to a temporary file, charged to `data-disk` (see that module for why).

No TensorFlow here.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphspec import arrays as arr
from graphspec import budget
from graphspec.data import npz_stream
from graphspec.errors import Diagnostics, SpecErrors

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

# Arrays that declare at most this many bytes together are read whole.
WHOLE_BYTES = 64 * 2**20


def declared_bytes(path: Path, names: list[str] | None = None) -> int:
    """The uncompressed bytes the zip headers of `path` declare for the members `names` (all
    when None), read from the archive's directory alone."""
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(
                info.file_size
                for info in archive.infolist()
                if not info.is_dir() and (names is None or info.filename.removesuffix(".npy") in names)
            )
    except (OSError, zipfile.BadZipFile) as exc:
        raise SpecErrors.single(f"cannot read data file {path}: {exc}", hint=arr._NPZ_HINT) from None


def charge(path: Path, names: list[str] | None = None) -> None:
    """Charge what reading `names` of `path` whole takes to `data-bytes`; refuse it past the limit."""
    size = declared_bytes(path, names)
    budget.current().charge(
        "data-bytes", size, None, f"data file {path}, whose arrays inflate to {size:,} bytes,"
    )


def load(path: Path, loaded: LoadedSpec | None = None, stream: bool = False) -> dict[str, Any]:
    """The arrays of `path` that the spec reads (all without a spec), checked from their
    headers before any is read (see `graphspec.arrays.load_arrays`): NumPy arrays when they are
    small or not `stream` (then charged whole to `data-bytes`), else `Column`s read a
    batch at a time, whose integer inputs' values are checked against their vocabularies here."""
    path = Path(path)
    headers = arr.read_headers(path)
    names = list(headers)
    if loaded is not None:
        wanted = set(loaded.spec.inputs) | {n for n, o in loaded.spec.outputs.items() if o.takes_data}
        names = [n for n in names if n in wanted]
    size = declared_bytes(path, names)
    if not stream or size <= min(WHOLE_BYTES, budget.current().left("data-bytes")):
        charge(path, names)
        return arr.load_arrays(path, loaded)
    if loaded is not None:
        _check_headers(headers, path, loaded)
    try:
        found = npz_stream.members(path, names)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SpecErrors.single(f"cannot read data file {path}: {exc}", hint=arr._NPZ_HINT) from None
    if not all(member.streams for member in found.values()):
        # An array of one value, or one in Fortran order, has no rows to read one at a time.
        charge(path, names)
        return arr.load_arrays(path, loaded)
    batch = loaded.spec.train.batch_size if loaded is not None else 1
    row_bytes = sum(m.data_bytes // max(m.shape[0], 1) for m in found.values())
    budget.current().charge(
        "data-bytes", batch * row_bytes, None, f"a batch of {batch:,} rows of data file {path}"
    )
    columns = npz_stream.open_columns(path, found)
    if loaded is not None:
        npz_stream.check_values(columns, str(path), loaded)
    return columns


def _check_headers(headers: dict[str, arr.ArrayHeader], path: Path, loaded: LoadedSpec) -> None:
    """What `graphspec.arrays.load_arrays` checks of the headers before it reads (presence,
    shapes and dtypes of inputs, presence and dtype of targets), raised as `SpecErrors`."""
    diagnostics = Diagnostics()
    arr.check_inputs(headers, str(path), loaded, diagnostics)
    targets = [n for n, o in loaded.spec.outputs.items() if o.takes_data]
    for name in targets:
        arr._check_target_dtype(headers, str(path), name, diagnostics)
    if diagnostics.errors:
        arr.check_counts(headers, str(path), list(loaded.spec.inputs) + targets, diagnostics)
        diagnostics.raise_if_errors()


def is_streamed(arrays: dict[str, Any]) -> bool:
    """Whether `load` gave arrays read a batch at a time."""
    return any(isinstance(a, npz_stream.Column) for a in arrays.values())

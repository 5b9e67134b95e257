"""`.npz` arrays as data, refused before anything is inflated when they would not fit.

An .npz is a zip of .npy members; a member of zeros compresses a thousand times, so a 2 MB file
can hold 2 GB. The uncompressed size each member's zip header declares (which `read_headers`
holds to the .npy header's shape and dtype, and which Python's zipfile never reads past) is
charged to the `data-bytes` limit before any member is read: only the arrays the spec reads.
No TensorFlow here.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from graphspec import arrays as arr
from graphspec import budget
from graphspec.errors import SpecErrors

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec


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
    """Charge what reading `names` of `path` takes to `data-bytes`; refuse it past the limit."""
    size = declared_bytes(path, names)
    budget.current().charge(
        "data-bytes", size, None, f"data file {path}, whose arrays inflate to {size:,} bytes,"
    )


def load(path: Path, loaded: LoadedSpec | None = None) -> dict[str, np.ndarray]:
    """The arrays of `path` that the spec reads (all without a spec), checked from their
    headers and charged to `data-bytes` before any is read (see `graphspec.arrays.load_arrays`)."""
    path = Path(path)
    headers = arr.read_headers(path)
    names = list(headers)
    if loaded is not None:
        wanted = set(loaded.spec.inputs) | {n for n, o in loaded.spec.outputs.items() if o.takes_data}
        names = [n for n in names if n in wanted]
    charge(path, names)
    return arr.load_arrays(path, loaded)

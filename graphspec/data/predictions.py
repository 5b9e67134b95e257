"""Predictions written to a file: one row per example, its id, each output's values, and the
predicted class name where the classes are known. CSV, Parquet or .npz, whole or not at all
(`graphspec.atomic`). No TensorFlow here.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from graphspec import atomic
from graphspec.errors import SpecErrors

FORMATS = (".csv", ".parquet", ".npz")


def check_output(path: Path) -> Path:
    """`path` if predictions can be written there (a known ending, a writable place), else
    `SpecErrors`: checked before any model is loaded."""
    if Path(path).suffix.lower() not in FORMATS:
        raise SpecErrors.single(
            f"cannot write predictions to {path}", hint="name a .csv, .parquet or .npz file"
        )
    return atomic.check_target(path)


def predicted_classes(values: np.ndarray, names: list[str]) -> list[str] | None:
    """The class name each row of an output predicts: its largest unit, or for one unit (a
    binary output) the second class above 0.5. None when the output's shape does not fit."""
    flat = values.reshape(len(values), -1)
    if flat.shape[1] == len(names) and len(names) > 1:
        return [names[i] for i in np.argmax(flat, axis=1)]
    if flat.shape[1] == 1 and len(names) == 2:
        return [names[int(v > 0.5)] for v in flat[:, 0]]
    return None


def write(path: Path, ids: list[str], outputs: dict[str, np.ndarray], classes: dict[str, list[str]]) -> None:
    """Write the predictions to `path` (.csv, .parquet or .npz) whole or not at all. CSV and
    Parquet have the same columns: `id`, then per output `NAME_class` (where its classes are
    known) and `NAME`, or `NAME[i]` for each of its values."""
    path = Path(path)
    chosen = {n: predicted_classes(v, classes[n]) for n, v in outputs.items() if n in classes}
    if path.suffix.lower() == ".npz":
        arrays: dict[str, np.ndarray] = {"id": np.asarray(ids, dtype=str)}
        for name, values in outputs.items():
            arrays[name] = values
            if chosen.get(name) is not None:
                arrays[f"{name}_class"] = np.asarray(chosen[name], dtype=str)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic.write_bytes(path, buffer.getvalue())
        return
    columns = _columns(ids, outputs, chosen)
    if path.suffix.lower() == ".parquet":
        _write_parquet(path, columns)
        return
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(list(columns))
    cells = [
        values if isinstance(values, list) else [f"{v:.7g}" for v in values] for values in columns.values()
    ]
    writer.writerows(zip(*cells, strict=True))
    atomic.write_text(path, text.getvalue())


def _columns(
    ids: list[str], outputs: dict[str, np.ndarray], chosen: dict[str, list[str] | None]
) -> dict[str, list[str] | np.ndarray]:
    """The table's columns by header, in order: ids and class names as lists of strings, each
    output's values as a float column apiece."""
    columns: dict[str, list[str] | np.ndarray] = {"id": list(ids)}
    for name, values in outputs.items():
        flat = values.reshape(len(values), -1)
        if chosen.get(name) is not None:
            columns[f"{name}_class"] = chosen[name]
        if flat.shape[1] == 1:
            columns[name] = flat[:, 0]
        else:
            columns.update({f"{name}[{i}]": flat[:, i] for i in range(flat.shape[1])})
    return columns


def _write_parquet(path: Path, columns: dict[str, list[str] | np.ndarray]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            header: pa.array(values, type=pa.string())
            if isinstance(values, list)
            else pa.array(np.ascontiguousarray(values))
            for header, values in columns.items()
        }
    )
    # Written by name into the temporary file, renamed onto `path` once whole.
    with atomic.replacing(path) as temporary:
        pq.write_table(table, temporary)

"""Predictions written to a file: one row per example, its id, each output's values, and the
predicted class name where the classes are known. CSV or .npz, whole or not at all
(`graphspec.atomic`). No TensorFlow here.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from graphspec import atomic
from graphspec.errors import SpecErrors

FORMATS = (".csv", ".npz")


def check_output(path: Path) -> Path:
    """`path` if predictions can be written there (a known ending, a writable place), else
    `SpecErrors`: checked before any model is loaded."""
    if Path(path).suffix.lower() not in FORMATS:
        raise SpecErrors.single(f"cannot write predictions to {path}", hint="name a .csv or .npz file")
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
    """Write the predictions to `path` (.csv or .npz) whole or not at all."""
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
    header = ["id"]
    flat = {n: v.reshape(len(v), -1) for n, v in outputs.items()}
    for name, values in flat.items():
        if chosen.get(name) is not None:
            header.append(f"{name}_class")
        header += [name] if values.shape[1] == 1 else [f"{name}[{i}]" for i in range(values.shape[1])]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for row, example in enumerate(ids):
        cells: list[str] = [example]
        for name, values in flat.items():
            if chosen.get(name) is not None:
                cells.append(chosen[name][row])
            cells += [f"{v:.7g}" for v in values[row]]
        writer.writerow(cells)
    atomic.write_text(path, text.getvalue())

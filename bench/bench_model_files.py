"""Hostile model files refused before Keras reads them (`graphspec/keras/model_file.py`): the
time of `export` on each, against `export` of a small model that it loads whole. The files are
the ones tests/test_model_files.py makes; the tests assert exit 2 and memory, this the time."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench_limits import _refused
from harness import GRAPHSPEC, ROOT, Row, time_process

sys.path.insert(0, str(ROOT / "tests"))


def run() -> list[Row]:
    import keras
    from test_model_files import GIB, model_config, weights_bomb, write_bomb_zip, write_keras

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        small = folder / "small.keras"
        x = keras.Input((4,), name="x")
        keras.Model(x, keras.layers.Dense(3, name="d")(x)).save(small)
        baseline = time_process(GRAPHSPEC + ["export", str(small)], repeats=3)
        files = {
            "a config.json inflating to 2 GiB": write_bomb_zip(
                folder / "config_bomb.keras", {"metadata.json": b"{}"}, "config.json", 2 * GIB
            ),
            "a config.json nested 100,000 deep": write_keras(
                folder / "deep.keras", b"[" * 100_000 + b"]" * 100_000
            ),
            "2.4e9 parameters declared in 2 KB": write_keras(
                folder / "params.keras", model_config(units=400_000_000, width=5)
            ),
            "a weights dataset declaring 1 GiB": write_keras(
                folder / "weights.keras", model_config(), weights_bomb(folder / "bomb.h5").read_bytes()
            ),
        }
        for what, path in files.items():
            refused = _refused(GRAPHSPEC + ["export", str(path)])
            rows.append(
                Row(
                    f"export {what}: refused",
                    str(refused),
                    f"export a small model: {baseline}",
                    refused.median / baseline.median,
                    "<= 1.2x exporting a small model",
                    refused.median <= 1.2 * baseline.median,
                    "python bench/run.py model_files",
                )
            )
    return rows

"""Training on .npz arrays in a seeded order (each epoch's drawn from the seed and its number,
so `--resume` reads what the uninterrupted run would) against Keras's own shuffling of arrays.

graphspec's side is what `train` fits an .npz with `shuffle` on: `keras.data.array_batches` (on
TensorFlow a tf.data pipeline given each epoch's seeded order whole, batches gathered by
`tf.gather` from the arrays held as one tensor), `fit(..., shuffle=False)`. The baseline is
`model.fit(x, y, shuffle=True)` on the same arrays, the same small MLP (32 -> 64 -> 10),
compiled alike. Each run fits three epochs and the last two are timed (the first pays for
tracing); the sides alternate run by run.
The ratio is Keras's median epoch time over graphspec's (above 1: graphspec is faster).

Standalone: `.venv/bin/python bench/bench_npz_order.py` prints the rows.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from harness import Row  # noqa: E402

SAMPLES = 20_000
PAIRS = 3
COMMAND = "python bench/run.py npz_order"


def _epoch_times(batch: int, seeded: bool) -> list[float]:
    import keras
    import numpy as np

    from graphspec.keras.data import ArrayData, array_batches

    rng = np.random.default_rng(0)
    x = {"x": rng.normal(size=(SAMPLES, 32)).astype("float32")}
    y = {"y": rng.integers(0, 10, SAMPLES).astype("int64")}
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32,), name="x")
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    model = keras.Model(inputs, {"y": keras.layers.Dense(10, activation="softmax", name="y")(hidden)})
    model.compile("adam", {"y": "sparse_categorical_crossentropy"})

    class Timer(keras.callbacks.Callback):
        times: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.times.append(time.perf_counter() - self.start)

    timer = Timer()
    timer.times = []
    if seeded:
        ordered, batches = array_batches(ArrayData(x, y), batch, 0, 3, 0)
        model.fit(
            ordered, steps_per_epoch=batches.per_epoch, epochs=3, shuffle=False, verbose=0, callbacks=[timer]
        )
    else:
        model.fit(x, y, batch_size=batch, epochs=3, shuffle=True, verbose=0, callbacks=[timer])
    return timer.times[1:]


def order_row(batch: int) -> Row:
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(PAIRS):
        ours += _epoch_times(batch, seeded=True)
        theirs += _epoch_times(batch, seeded=False)
    ratio = statistics.median(theirs) / statistics.median(ours)
    return Row(
        f".npz training in a seeded, resumable order (MLP 32-64-10, batch {batch}, {SAMPLES:,} samples)",
        f"{statistics.median(ours):.3f} s an epoch ({min(ours):.3f}-{max(ours):.3f}, n={len(ours)})",
        f"Keras fit on the arrays, shuffle=True: {statistics.median(theirs):.3f} s "
        f"({min(theirs):.3f}-{max(theirs):.3f})",
        ratio,
        ">= 0.9x",
        ratio >= 0.9,
        COMMAND,
    )


def run() -> list[Row]:
    return [order_row(32), order_row(256)]


if __name__ == "__main__":
    for row in run():
        print(f"{row.name}\n  measured: {row.measured}\n  baseline: {row.baseline}")
        print(f"  ratio {row.ratio:.2f} {row.verdict}")

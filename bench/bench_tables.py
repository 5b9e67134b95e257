"""Training on a Parquet table, streamed by `graphspec train`, against the same model fitted by
hand from the table read whole.

Throughput: a Parquet table of `ROWS` rows (1,000,000 by default; `BENCH_TABLE_ROWS=N` for a
quick run) of 32 float columns and a target, written once. Side by side, alternating, each a
whole process of its own: `graphspec train` on it (read window by window as batches are asked
for, shuffled by seed and epoch) and a hand-written script that reads it with pyarrow into NumPy,
makes `tf.data.Dataset.from_tensor_slices(...).shuffle(...).batch(...).prefetch(AUTOTUNE)` and
fits the same model (written in Keras) for the same epochs, then saves it (the issue's baseline);
and the same script fitting the NumPy arrays themselves (`fit(x, y, shuffle=True)`), which on
TensorFlow is faster than the per-row `shuffle` of tf.data. Each side also runs on
a table of `SMALL` rows, and its rate is that of the difference: (rows - SMALL) x epochs over the
difference of the median wall times, so what each pays once (start, imports, build, writing its
run) cancels, and what is left is reading and training. `graphspec train` pays more of that once
than the script (on a 2,048-row table, 9.9 s against 5.7 s on the shared 2-core machine: its
imports, spec checks, run directory and model file), a sixth of a 1,000,000-row run's time;
both whole times are printed beside the rates.

Memory: the peak resident memory (VmHWM) of `graphspec train` on the table, against the same
command on a table of one row group (65,536 rows, about what one window holds): streamed, the
large table's peak is within 10% of the small one's. The hand-written script's peak, which holds
the table, is given beside it.

Standalone: `.venv/bin/python bench/bench_tables.py` prints the rows.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import PRINT_PEAK, Marginal, Row, graphspec_with_peak, not_measured, run_with_peak  # noqa: E402

ROWS = int(os.environ.get("BENCH_TABLE_ROWS", "1000000"))
FEATURES = 32
BATCH = 1024
EPOCHS = 2
REPEATS = 3
# Rows of the table whose run is subtracted, and whose peak is the memory row's baseline: one
# row group, about one window.
SMALL = min(65536, ROWS // 4)
COMMAND = "python bench/bench_tables.py"

SPEC = f"""
graphspec: 1
name: table_bench
inputs:
  x: {{shape: [{FEATURES}]}}
layers:
  hidden: {{type: Dense, units: 64, activation: relu, in: x}}
  y: {{type: Dense, units: 1, in: hidden}}
outputs:
  y: {{loss: mse}}
compile:
  optimizer: {{type: Adam, learning_rate: 0.001}}
train: {{epochs: {EPOCHS}, batch_size: {BATCH}, seed: 0}}
data:
  inputs:
    x: {{columns: "f*"}}
"""

# The same model by hand: pyarrow -> NumPy -> tf.data, as a user would write it.
BY_HAND = textwrap.dedent(
    f"""
    import os, sys
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import numpy as np
    import pyarrow.parquet as pq
    import tensorflow as tf
    import keras

    table = pq.read_table(sys.argv[1])
    names = [n for n in table.column_names if n.startswith("f")]
    x = np.stack([table.column(n).to_numpy() for n in names], axis=1).astype("float32")
    y = table.column("y").to_numpy().astype("float32")[:, None]
    del table
    keras.utils.set_random_seed(0)
    inputs = keras.Input((x.shape[1],), name="x")
    hidden = keras.layers.Dense(64, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, {{"y": keras.layers.Dense(1, name="y")(hidden)}})
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss={{"y": "mse"}})
    if sys.argv[3] == "tf.data":
        data = (
            tf.data.Dataset.from_tensor_slices(({{"x": x}}, {{"y": y}}))
            .shuffle(16384, seed=0)
            .batch({BATCH})
            .prefetch(tf.data.AUTOTUNE)
        )
        model.fit(data, epochs={EPOCHS}, verbose=0)
    else:  # the arrays themselves: Keras batches and shuffles them
        model.fit({{"x": x}}, {{"y": y}}, batch_size={BATCH}, epochs={EPOCHS}, shuffle=True, verbose=0)
    model.save(sys.argv[2])
    {PRINT_PEAK}
    """
)


def write_table(path: Path, rows: int) -> None:
    """`rows` rows of `FEATURES` float64 columns and a target, a row group of 65,536 at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    weights = rng.normal(size=FEATURES)
    names = [f"f{i:02d}" for i in range(FEATURES)]
    schema = pa.schema([(n, pa.float64()) for n in [*names, "y"]])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 65536):
            count = min(65536, rows - start)
            x = rng.normal(size=(count, FEATURES))
            y = x @ weights + rng.normal(scale=0.1, size=count)
            writer.write_table(pa.table({**dict(zip(names, x.T, strict=True)), "y": y}, schema=schema))


def run() -> list[Row]:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return [not_measured("Parquet training throughput", ">= 0.95x", COMMAND, "pyarrow is not installed")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec, tables = folder / "spec.yaml", {ROWS: folder / "table.parquet", SMALL: folder / "small.parquet"}
        spec.write_text(SPEC)
        (folder / "by_hand.py").write_text(BY_HAND)
        for rows, path in tables.items():
            write_table(path, rows)
        runs = iter(range(10**6))

        def ours(rows: int) -> tuple[float, float]:
            return graphspec_with_peak(
                "train", spec, "--data", tables[rows], "--out", folder / f"run{next(runs)}", "-q"
            )

        def by_hand(mode: str) -> Callable[[int], tuple[float, float]]:
            def fit(rows: int) -> tuple[float, float]:
                out = folder / f"hand{next(runs)}.keras"
                return run_with_peak(
                    [sys.executable, str(folder / "by_hand.py"), str(tables[rows]), str(out), mode]
                )

            return fit

        sides = {"ours": ours, "theirs": by_hand("tf.data"), "numpy": by_hand("numpy")}
        measured = Marginal.measure(sides, ROWS, SMALL, EPOCHS, REPEATS)

    rate, whole = measured.rate, measured.whole
    ratio = rate("ours") / rate("theirs")
    against_numpy = rate("ours") / rate("numpy")
    peak, small_peak = measured.peak("ours", ROWS), measured.peak("ours", SMALL)
    hand_peak = measured.peak("theirs", ROWS)
    return [
        Row(
            f"Parquet training throughput, {ROWS:,} rows x {FEATURES} columns, {EPOCHS} epochs, "
            f"batch {BATCH}",
            f"graphspec train (streamed): {rate('ours'):,.0f} rows/s; {whole('ours')}",
            f"pyarrow -> tf.data + fit by hand: {rate('theirs'):,.0f} rows/s; {whole('theirs')}",
            ratio,
            ">= 0.95x",
            ratio >= 0.95,
            COMMAND,
            note=f"rows/s of the {ROWS - SMALL:,} rows beyond a {SMALL:,}-row table's run (medians of "
            f"{REPEATS}), so that each side's fixed start, build and save cancel out",
        ),
        Row(
            f"Parquet training throughput against fit on NumPy arrays, {ROWS:,} rows",
            f"graphspec train (streamed): {rate('ours'):,.0f} rows/s; {whole('ours')}",
            f"pyarrow -> NumPy + fit(x, y, shuffle=True) by hand: {rate('numpy'):,.0f} rows/s; "
            f"{whole('numpy')}",
            against_numpy,
            ">= 0.95x",
            against_numpy >= 0.95,
            COMMAND,
            note="as above; the table held whole, Keras batching and shuffling the arrays",
        ),
        Row(
            f"peak memory of graphspec train on a Parquet table of {ROWS:,} rows",
            f"{peak:.0f} MiB",
            f"{SMALL:,} rows: {small_peak:.0f} MiB",
            peak / small_peak,
            "<= 1.10x",
            peak / small_peak <= 1.10,
            COMMAND,
            note=f"the table whole as float64: {ROWS * (FEATURES + 1) * 8 / 2**20:.0f} MiB; "
            f"the by-hand script that holds it peaks at {hand_peak:.0f} MiB",
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)

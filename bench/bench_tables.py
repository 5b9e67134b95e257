"""Training on a Parquet table, streamed by `graphspec train`, against the same model fitted by
hand from the table read whole.

Throughput: a Parquet table of `ROWS` rows (1,000,000 by default; `BENCH_TABLE_ROWS=N` for a
quick run) of 32 float columns and a target, written once. Side by side, alternating, each a
whole process of its own: `graphspec train` on it (read window by window as batches are asked
for, shuffled by seed and epoch) and a hand-written script that reads it with pyarrow into NumPy,
makes `tf.data.Dataset.from_tensor_slices(...).shuffle(...).batch(...).prefetch(AUTOTUNE)` and
fits the same model (written in Keras) for the same epochs, then saves it. Rows per second are
rows x epochs over the process's wall time (start, read, train, save: the same steps both sides),
medians of `REPEATS`.

Memory: the peak resident memory (VmHWM) of `graphspec train` on the table, against the same
command on a table of one row group (65,536 rows, about what one window holds): streamed, the
large table's peak is within 10% of the small one's. The hand-written script's peak, which holds
the table, is given beside it.

Standalone: `.venv/bin/python bench/bench_tables.py` prints the rows.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import ENV, ROOT, Row, not_measured  # noqa: E402

ROWS = int(os.environ.get("BENCH_TABLE_ROWS", "1000000"))
FEATURES = 32
BATCH = 1024
EPOCHS = 2
REPEATS = 3
SMALL = 65536  # rows of the table whose peak is the memory row's baseline: one row group, a window
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
    data = (
        tf.data.Dataset.from_tensor_slices(({{"x": x}}, {{"y": y}}))
        .shuffle(16384, seed=0)
        .batch({BATCH})
        .prefetch(tf.data.AUTOTUNE)
    )
    model.fit(data, epochs={EPOCHS}, verbose=0)
    model.save(sys.argv[2])
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    print(f"PEAK_RSS_KB={{peak}}", file=sys.stderr)
    """
)

# `graphspec train` in a process that reports its own peak (VmHWM; ru_maxrss would carry a
# forking parent's across exec).
GRAPHSPEC_PEAK = textwrap.dedent(
    """
    import runpy, sys
    sys.argv = ["graphspec", *sys.argv[1:]]
    code = 0
    try:
        runpy.run_module("graphspec", run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    print(f"PEAK_RSS_KB={peak}", file=sys.stderr)
    sys.exit(code)
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


def _run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process."""
    env = {**ENV, "PYTHONPATH": str(ROOT), "TF_ENABLE_ONEDNN_OPTS": "0"}
    start = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{result.stderr[-2000:]}")
    peak = [line for line in result.stderr.splitlines() if line.startswith("PEAK_RSS_KB=")]
    return seconds, int(peak[-1].split("=")[1]) / 1024


def _graphspec(spec: Path, table: Path, out: Path) -> tuple[float, float]:
    return _run(
        [
            sys.executable,
            "-c",
            GRAPHSPEC_PEAK,
            "train",
            str(spec),
            "--data",
            str(table),
            "--out",
            str(out),
            "-q",
        ]
    )


def run() -> list[Row]:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return [not_measured("Parquet training throughput", ">= 0.95x", COMMAND, "pyarrow is not installed")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec, table, small = folder / "spec.yaml", folder / "table.parquet", folder / "small.parquet"
        spec.write_text(SPEC)
        (folder / "by_hand.py").write_text(BY_HAND)
        write_table(table, ROWS)
        write_table(small, SMALL)
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        for repeat in range(REPEATS):  # alternating, so load from outside weighs on both alike
            sides = [
                (ours, lambda r=repeat: _graphspec(spec, table, folder / f"run{r}")),
                (
                    theirs,
                    lambda r=repeat: _run(
                        [
                            sys.executable,
                            str(folder / "by_hand.py"),
                            str(table),
                            str(folder / f"hand{r}.keras"),
                        ]
                    ),
                ),
            ]
            for results, side in sides if repeat % 2 == 0 else sides[::-1]:
                results.append(side())
        small_peak = _graphspec(spec, small, folder / "small")[1]
    rate = ROWS * EPOCHS / statistics.median(s for s, _ in ours)
    hand = ROWS * EPOCHS / statistics.median(s for s, _ in theirs)
    peak = max(p for _, p in ours)
    hand_peak = max(p for _, p in theirs)

    def spread(results: list[tuple[float, float]]) -> str:
        rates = [ROWS * EPOCHS / s for s, _ in results]
        return f"{statistics.median(rates):,.0f} rows/s ({min(rates):,.0f}-{max(rates):,.0f}, n={len(rates)})"

    return [
        Row(
            f"Parquet training throughput, {ROWS:,} rows x {FEATURES} columns, {EPOCHS} epochs, "
            f"batch {BATCH}",
            f"graphspec train (streamed): {spread(ours)}",
            f"pyarrow -> tf.data + fit by hand: {spread(theirs)}",
            rate / hand,
            ">= 0.95x",
            rate / hand >= 0.95,
            COMMAND,
            note="whole processes: start, read, train, save",
        ),
        Row(
            f"peak memory of graphspec train on a Parquet table of {ROWS:,} rows",
            f"{peak:.0f} MiB",
            f"{SMALL:,} rows (one row group): {small_peak:.0f} MiB",
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

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
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import ENV, ROOT, Row, not_measured  # noqa: E402

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
        spec, tables = folder / "spec.yaml", {ROWS: folder / "table.parquet", SMALL: folder / "small.parquet"}
        spec.write_text(SPEC)
        (folder / "by_hand.py").write_text(BY_HAND)
        for rows, path in tables.items():
            write_table(path, rows)
        runs = iter(range(10**6))

        def ours(rows: int) -> tuple[float, float]:
            return _graphspec(spec, tables[rows], folder / f"run{next(runs)}")

        def by_hand(mode: str) -> Callable[[int], tuple[float, float]]:
            def fit(rows: int) -> tuple[float, float]:
                out = folder / f"hand{next(runs)}.keras"
                return _run([sys.executable, str(folder / "by_hand.py"), str(tables[rows]), str(out), mode])

            return fit

        measured: dict[str, dict[int, list[tuple[float, float]]]] = {
            name: {ROWS: [], SMALL: []} for name in ("ours", "theirs", "numpy")
        }
        for repeat in range(REPEATS):  # alternating, so load from outside weighs on all alike
            sides = [("ours", ours), ("theirs", by_hand("tf.data")), ("numpy", by_hand("numpy"))]
            for name, side in sides if repeat % 2 == 0 else sides[::-1]:
                for rows in (ROWS, SMALL):
                    measured[name][rows].append(side(rows))

    def seconds(name: str, rows: int) -> float:
        return statistics.median(s for s, _ in measured[name][rows])

    def rate(name: str) -> float:
        """Rows per second of the rows the large table has beyond the small one: the start,
        imports, build and save that both runs pay cancel out."""
        return (ROWS - SMALL) * EPOCHS / (seconds(name, ROWS) - seconds(name, SMALL))

    def whole(name: str) -> str:
        times = [s for s, _ in measured[name][ROWS]]
        return (
            f"whole process {seconds(name, ROWS):.1f} s ({min(times):.1f}-{max(times):.1f}, n={len(times)}), "
            f"{SMALL:,} rows {seconds(name, SMALL):.1f} s"
        )

    ratio = rate("ours") / rate("theirs")
    against_numpy = rate("ours") / rate("numpy")
    peak = max(p for _, p in measured["ours"][ROWS])
    small_peak = max(p for _, p in measured["ours"][SMALL])
    hand_peak = max(p for _, p in measured["theirs"][ROWS])
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

"""Training on a large `.npz`, streamed by `graphspec train`, against `model.fit(x, y)` on the
same arrays loaded into memory.

Throughput: an `.npz` (`numpy.savez_compressed`) of `ROWS` rows (1,000,000 by default;
`BENCH_NPZ_ROWS=N` for a quick run) of 32 float32 features and a target, 132 MB as arrays, over
`graphspec.data.npz.WHOLE_BYTES`, so it is streamed: inflated once to a temporary file, then
read a shuffled batch at a time. Side by side, alternating, each a whole process of its own:
`graphspec train` on it, and a hand-written script that `np.load`s the arrays and fits the same
model (written in Keras) with `fit(x, y, shuffle=True)` for the same epochs, then saves it. Each
side also runs on a file of `SMALL` rows, and its rate is that of the difference: (rows - SMALL)
x epochs over the difference of the median wall times, so what each pays once (start, imports,
build, writing its run) cancels.

Memory: the peak resident memory (VmHWM) of both on the large file.

Standalone: `.venv/bin/python bench/bench_npz.py` prints the rows.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import PRINT_PEAK, Marginal, Row, graphspec_with_peak, run_with_peak  # noqa: E402

ROWS = int(os.environ.get("BENCH_NPZ_ROWS", "1000000"))
FEATURES = 32
BATCH = 1024
EPOCHS = 2
REPEATS = 3
SMALL = min(65536, ROWS // 4)
COMMAND = "python bench/bench_npz.py"

SPEC = f"""
graphspec: 1
name: npz_bench
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
"""

BY_HAND = textwrap.dedent(
    f"""
    import os, sys
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import numpy as np
    import keras

    with np.load(sys.argv[1]) as arrays:
        x, y = arrays["x"], arrays["y"]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((x.shape[1],), name="x")
    hidden = keras.layers.Dense(64, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, {{"y": keras.layers.Dense(1, name="y")(hidden)}})
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss={{"y": "mse"}})
    model.fit({{"x": x}}, {{"y": y}}, batch_size={BATCH}, epochs={EPOCHS}, shuffle=True, verbose=0)
    model.save(sys.argv[2])
    {PRINT_PEAK}
    """
)


def write_npz(path: Path, rows: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, FEATURES)).astype("float32")
    y = (x @ rng.normal(size=(FEATURES, 1)) + rng.normal(scale=0.1, size=(rows, 1))).astype("float32")
    np.savez_compressed(path, x=x, y=y)


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec, files = folder / "spec.yaml", {ROWS: folder / "large.npz", SMALL: folder / "small.npz"}
        spec.write_text(SPEC)
        (folder / "by_hand.py").write_text(BY_HAND)
        for rows, path in files.items():
            write_npz(path, rows)
        runs = iter(range(10**6))

        def ours(rows: int) -> tuple[float, float]:
            out = folder / f"run{next(runs)}"
            return graphspec_with_peak("train", spec, "--data", files[rows], "--out", out, "-q")

        def by_hand(rows: int) -> tuple[float, float]:
            out = folder / f"hand{next(runs)}.keras"
            return run_with_peak([sys.executable, str(folder / "by_hand.py"), str(files[rows]), str(out)])

        measured = Marginal.measure({"ours": ours, "numpy": by_hand}, ROWS, SMALL, EPOCHS, REPEATS)

    rate, whole = measured.rate, measured.whole
    ratio = rate("ours") / rate("numpy")
    peak, hand_peak = measured.peak("ours", ROWS), measured.peak("numpy", ROWS)
    held = ROWS * (FEATURES + 1) * 4 / 2**20
    return [
        Row(
            f"streamed .npz training throughput, {ROWS:,} rows x {FEATURES} float32 (compressed), "
            f"{EPOCHS} epochs, batch {BATCH}",
            f"graphspec train (streamed): {rate('ours'):,.0f} samples/s; {whole('ours')}",
            f"np.load + fit(x, y, shuffle=True) by hand: {rate('numpy'):,.0f} samples/s; {whole('numpy')}",
            ratio,
            None,
            None,
            COMMAND,
            note=f"samples/s of the {ROWS - SMALL:,} rows beyond a {SMALL:,}-row file's run (medians of "
            f"{REPEATS}); the small file is read whole",
        ),
        Row(
            f"peak memory training on a {held:.0f} MiB .npz, {ROWS:,} rows",
            f"graphspec train (streamed): {peak:.0f} MiB",
            f"np.load + fit(x, y) by hand: {hand_peak:.0f} MiB",
            peak / hand_peak,
            None,
            None,
            COMMAND,
            note=f"the arrays held whole: {held:.0f} MiB",
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)

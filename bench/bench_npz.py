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
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import ENV, ROOT, Row  # noqa: E402

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
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    print(f"PEAK_RSS_KB={{peak}}", file=sys.stderr)
    """
)

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


def write_npz(path: Path, rows: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, FEATURES)).astype("float32")
    y = (x @ rng.normal(size=(FEATURES, 1)) + rng.normal(scale=0.1, size=(rows, 1))).astype("float32")
    np.savez_compressed(path, x=x, y=y)


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
            return _run(
                [
                    sys.executable,
                    "-c",
                    GRAPHSPEC_PEAK,
                    "train",
                    str(spec),
                    "--data",
                    str(files[rows]),
                    "--out",
                    str(out),
                    "-q",
                ]
            )

        def by_hand(rows: int) -> tuple[float, float]:
            out = folder / f"hand{next(runs)}.keras"
            return _run([sys.executable, str(folder / "by_hand.py"), str(files[rows]), str(out)])

        measured: dict[str, dict[int, list[tuple[float, float]]]] = {
            name: {ROWS: [], SMALL: []} for name in ("ours", "numpy")
        }
        for repeat in range(REPEATS):  # alternating, so load from outside weighs on both alike
            sides = [("ours", ours), ("numpy", by_hand)]
            for name, side in sides if repeat % 2 == 0 else sides[::-1]:
                for rows in (ROWS, SMALL):
                    measured[name][rows].append(side(rows))

    def seconds(name: str, rows: int) -> float:
        return statistics.median(s for s, _ in measured[name][rows])

    def rate(name: str) -> float:
        return (ROWS - SMALL) * EPOCHS / (seconds(name, ROWS) - seconds(name, SMALL))

    def whole(name: str) -> str:
        times = [s for s, _ in measured[name][ROWS]]
        return (
            f"whole process {seconds(name, ROWS):.1f} s ({min(times):.1f}-{max(times):.1f}, n={len(times)}), "
            f"{SMALL:,} rows {seconds(name, SMALL):.1f} s"
        )

    ratio = rate("ours") / rate("numpy")
    peak = max(p for _, p in measured["ours"][ROWS])
    hand_peak = max(p for _, p in measured["numpy"][ROWS])
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

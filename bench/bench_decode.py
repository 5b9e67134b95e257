"""Reading a folder of images as the Python reader does (JAX, PyTorch, `--skip-bad`): a batch's
files decoded on a pool of threads, against decoding them one by one.

The folder is bench_images.py's (`IMAGES` 64x64 RGB JPEGs, 2,000 by default here), bound to
its spec by `graphspec.data.examples.bind`; one epoch of batches of 32 is read with
`Examples.batch` (what `FileBatches` asks for each batch), then again with
`DECODE_THREADS` set to 1 (one file after another, as before the pool). No model and no TensorFlow:
this is the reading alone, which a JAX or PyTorch step waits for. The sides alternate; the
figure is the median epoch of each.

Read-ahead: a whole `train` of the same folder's small CNN (bench_images.py's spec, 4 epochs)
on JAX, each run a process of its own, with the next training batch read on a thread while one
trains (`FileBatches.read_ahead`, what `train` sets off TensorFlow) and without it; the sides
alternate, and the figure is the median of the epochs after the first.

Standalone: `.venv/bin/python bench/bench_decode.py` prints the rows.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_images import BATCH, SPEC, write_folder  # noqa: E402
from harness import ENV, PYTHON, ROOT, Row  # noqa: E402

IMAGES = int(os.environ.get("BENCH_DECODE_IMAGES", "2000"))
REPEATS = 5
COMMAND = "python bench/bench_decode.py"


# One training run on JAX, with read-ahead ("on") or without ("off"): prints its epochs' seconds.
TRAIN = """
import sys, time
from pathlib import Path
sys.path.insert(0, "bench")
from bench_train import _timer
import graphspec
from graphspec.keras import files
from graphspec.keras.train import DataSource, train
mode, folder = sys.argv[1], Path(sys.argv[2])
if mode == "off":
    files.FileBatches.read_ahead = property(lambda self: False, lambda self, value: None)
timer = _timer()
train(graphspec.load(folder / "spec.yaml"), DataSource(data=folder / "images"),
      out=folder / f"run-{mode}-{time.time_ns()}", verbose=0, extra_callbacks=[timer])
print(" ".join(f"{seconds:.4f}" for seconds in timer.epochs))
"""


def read_ahead_row(folder: Path, pairs: int = 3) -> Row:
    (folder / "spec.yaml").write_text(SPEC.replace("epochs: 2", "epochs: 4"))
    env = {**ENV, "KERAS_BACKEND": "jax"}
    sides: dict[str, list[float]] = {"on": [], "off": []}
    for pair in range(pairs):
        for mode in ("on", "off") if pair % 2 == 0 else ("off", "on"):
            done = subprocess.run(
                [PYTHON, "-c", TRAIN, mode, str(folder)], env=env, cwd=ROOT, capture_output=True, text=True
            )
            if done.returncode:
                raise RuntimeError(done.stderr[-2000:])
            sides[mode] += [float(s) for s in done.stdout.split()[1:]]
    on, off = statistics.median(sides["on"]), statistics.median(sides["off"])
    images = len(list((folder / "images").rglob("*.jpg")))
    return Row(
        f"training on a folder of {images:,} 64x64 JPEGs on JAX, the next batch read ahead",
        f"{images / on:,.0f} images/s a whole epoch ({on:.3f} s, n={len(sides['on'])})",
        f"without reading ahead: {images / off:,.0f} images/s ({off:.3f} s)",
        off / on,
        "-",
        None,
        COMMAND,
        note="ratio: epoch time without over with; reported, not gated",
    )


def run() -> list[Row]:
    import numpy as np

    import graphspec
    from graphspec.data import examples as examples_module

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_folder(folder / "images", IMAGES)
        (folder / "spec.yaml").write_text(SPEC)
        examples = examples_module.bind(graphspec.load(folder / "spec.yaml"), folder / "images")
        order = np.random.default_rng(0).permutation(len(examples))
        batches = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]

        def epoch() -> float:
            start = time.perf_counter()
            for rows in batches:
                examples.batch(rows)
            return time.perf_counter() - start

        threads = examples_module.DECODE_THREADS
        sides: dict[str, list[float]] = {"pool": [], "serial": []}
        epoch()  # the files into the page cache, the pool started
        for repeat in range(REPEATS):
            for side in ("pool", "serial") if repeat % 2 == 0 else ("serial", "pool"):
                examples_module.DECODE_THREADS = threads if side == "pool" else 1
                try:
                    sides[side].append(epoch())
                finally:
                    examples_module.DECODE_THREADS = threads
        ahead = read_ahead_row(folder)
    pool, serial = statistics.median(sides["pool"]), statistics.median(sides["serial"])

    def rate(seconds: list[float]) -> str:
        return (
            f"{IMAGES / statistics.median(seconds):,.0f} images/s "
            f"({IMAGES / max(seconds):,.0f}-{IMAGES / min(seconds):,.0f}, n={len(seconds)})"
        )

    return [
        Row(
            f"reading a folder of {IMAGES:,} 64x64 JPEGs in batches of {BATCH} (the JAX and PyTorch "
            f"reader), {threads} decoding threads",
            rate(sides["pool"]),
            f"the same files decoded one by one: {rate(sides['serial'])}",
            serial / pool,
            "-",
            None,
            COMMAND,
            note="ratio: one-by-one epoch time over the pool's; reported, not gated",
        ),
        ahead,
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row.name}\n  measured: {row.measured}\n  baseline: {row.baseline}\n  ratio {row.ratio:.2f}")
        print(f"  {row.note}")

"""Reading a folder of images as the Python reader does (JAX, PyTorch, `--skip-bad`): a batch's
files decoded on a pool of threads, against decoding them one by one.

The folder is bench_images.py's (`IMAGES` 64x64 RGB JPEGs, 2,000 by default here), bound to
its spec by `graphspec.data.examples.bind`; one epoch of batches of 32 is read with
`Examples.batch` (what `FileBatches` asks for each batch), then again with the pool replaced
by Python's `map` (one file after another, as before the pool). No model and no TensorFlow:
this is the reading alone, which a JAX or PyTorch step waits for. The sides alternate; the
figure is the median epoch of each.

Standalone: `.venv/bin/python bench/bench_decode.py` prints the row.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_images import BATCH, SPEC, write_folder  # noqa: E402
from harness import Row  # noqa: E402

IMAGES = int(os.environ.get("BENCH_DECODE_IMAGES", "2000"))
REPEATS = 5
COMMAND = "python bench/bench_decode.py"


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

        pooled = examples_module._decoders
        one_by_one = types.SimpleNamespace(map=map)
        sides: dict[str, list[float]] = {"pool": [], "serial": []}
        epoch()  # the files into the page cache, the pool started
        for repeat in range(REPEATS):
            for side in ("pool", "serial") if repeat % 2 == 0 else ("serial", "pool"):
                examples_module._decoders = pooled if side == "pool" else (lambda: one_by_one)
                try:
                    sides[side].append(epoch())
                finally:
                    examples_module._decoders = pooled
    pool, serial = statistics.median(sides["pool"]), statistics.median(sides["serial"])
    threads = min(8, os.cpu_count() or 1)

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
        )
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row.name}\n  measured: {row.measured}\n  baseline: {row.baseline}\n  ratio {row.ratio:.2f}")
        print(f"  {row.note}")

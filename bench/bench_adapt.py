"""Adapting preprocessing layers (`adapt:`) streamed batch by batch, against Keras's `adapt` on
the whole split at once.

The training split of a table, as `train` holds it once read (13 float32 columns and one
categorical string column, ROWS rows), adapts specs/tabular.yaml's three layers (a Normalization
and two StringLookups) through `graphspec.keras.adapt.adapt_layers`, in the batches `train` uses
(`adapt_batch_rows`, sampled_rows). The baseline is the same three Keras layers adapted on the
whole arrays, as a hand-written script would. Both in this process, alternated, medians of
REPEATS. A second row: what Python allocates at its peak while streaming (tracemalloc) all the
rows, against a quarter of them: it does not grow with the split.

Standalone: `.venv/bin/python bench/bench_adapt.py` prints the rows.
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from harness import ROOT, Row, Timing, not_measured  # noqa: E402

SPEC = "specs/tabular.yaml"
ROWS = 1_000_000
REPEATS = 3
TARGET = 0.5
COMMAND = "python bench/run.py adapt"


def _data():
    import numpy as np

    rng = np.random.default_rng(0)
    numbers = rng.normal(5.0, 2.0, size=(ROWS, 13)).astype("float32")
    first = rng.choice([f"c{i}" for i in range(12)], size=(ROWS, 1)).astype(object)
    second = rng.choice(["dark", "pale"], size=(ROWS, 1)).astype(object)
    return {"numbers": numbers, "first": first, "second": second}


def run() -> list[Row]:
    name = f"adapt: {SPEC}'s Normalization and 2 StringLookups on {ROWS:,} rows, streamed"
    target = f">= {TARGET}x Keras's whole-array adapt"
    if not (ROOT / SPEC).exists():
        return [not_measured(name, target, COMMAND, f"{SPEC} does not exist")]
    import keras

    import graphspec
    from graphspec.keras.adapt import adapt_batch_rows, adapt_layers, sampled_rows
    from graphspec.keras.build import build_model_and_tensors

    arrays = _data()
    loaded = graphspec.load(ROOT / SPEC)
    model, tensors = build_model_and_tensors(loaded)
    per_batch = adapt_batch_rows(arrays, loaded.spec.train.batch_size)
    batches = sampled_rows(ROWS, lambda rows: {k: v[rows] for k, v in arrays.items()}, per_batch, 0)

    def streamed() -> None:
        adapt_layers(loaded, model, tensors, batches)

    def whole() -> None:
        keras.layers.Normalization().adapt(arrays["numbers"])
        keras.layers.StringLookup(max_tokens=16).adapt(arrays["first"])
        keras.layers.StringLookup(max_tokens=16).adapt(arrays["second"])

    streamed()
    whole()  # warm-up: both sides' first calls trace and allocate
    ours, theirs = [], []
    for _ in range(REPEATS):
        for func, samples in ((streamed, ours), (whole, theirs)):
            start = time.perf_counter()
            func()
            samples.append(time.perf_counter() - start)
    mine, baseline = Timing(ours), Timing(theirs)
    ratio = baseline.median / mine.median

    def peak(rows: int) -> int:
        """What Python allocates at its peak while `rows` of the arrays are streamed."""
        some = sampled_rows(rows, lambda r: {k: v[r] for k, v in arrays.items()}, per_batch, 0)
        tracemalloc.start()
        try:
            adapt_layers(loaded, model, tensors, some)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(ROWS // 4), peak(ROWS)
    mib = 2**20
    return [
        Row(
            name,
            f"{mine} ({ROWS / mine.median:,.0f} rows/s, {per_batch:,} rows a batch)",
            f"Keras adapt on the whole arrays: {baseline}",
            ratio,
            target,
            ratio >= TARGET,
            COMMAND,
        ),
        Row(
            f"adapt: peak Python memory streaming (tracemalloc), {per_batch:,} rows a batch",
            f"{ROWS:,} rows: {large / mib:.1f} MiB",
            f"{ROWS // 4:,} rows: {small / mib:.1f} MiB",
            large / small,
            "<= 1.10x",
            large <= 1.10 * small,
            COMMAND,
            note="TensorFlow's own allocations are not traced; the whole split's arrays: "
            f"{sum(a.nbytes for a in arrays.values()) / mib:.0f} MiB",
        ),
    ]


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for row in run():
        print(row)


if __name__ == "__main__":
    main()

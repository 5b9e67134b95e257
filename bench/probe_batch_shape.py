"""Why synthetic batches go to TensorFlow through tf.data: a fixed batch dimension is faster.

Keras reads a `PyDataset` with its batch dimension unknown (None), while `fit` on NumPy arrays
that split into full batches gets it fixed. This probe fits one model from the same in-memory
arrays through two `tf.data` pipelines that differ only in that (`batch(n, drop_remainder=True)`
against `batch(n)`), so no Python data code is involved, and prints the median training step of
each, epochs alternating. On book_qa.yaml (two LSTMs) on a 2-core CPU, the unknown batch
dimension made a step 8-10% slower; `graphspec.keras.data.fit_arguments` fixes it.

Run: `.venv/bin/python bench/probe_batch_shape.py [SPEC]`
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
BATCH, SAMPLES, SEQ_LEN, ROUNDS = 128, 4096, 100, 6


def main() -> None:
    import keras
    import tensorflow as tf

    import graphspec
    from graphspec.keras.data import synthetic_datasets

    spec = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "specs/book_qa.yaml")
    loaded = graphspec.load(spec, [f"train.seq_len={SEQ_LEN}"])
    keras.utils.set_random_seed(0)
    models = {"fixed": loaded.build(), "unknown": loaded.build()}
    data, _ = synthetic_datasets(
        loaded,
        models["fixed"],
        kind="random",
        samples=SAMPLES,
        batch_size=BATCH,
        validation_split=0.0,
        seed=0,
    )
    slices = tf.data.Dataset.from_tensor_slices(data.arrays())
    datasets = {
        "fixed": slices.batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE),
        "unknown": slices.batch(BATCH).prefetch(tf.data.AUTOTUNE),
    }
    steps: dict[str, list[float]] = {name: [] for name in models}

    class StepTimer(keras.callbacks.Callback):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def on_train_batch_begin(self, batch, logs=None) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None) -> None:
            if batch:  # the first step of an epoch also waits for the pipeline to start
                steps[self.name].append(time.perf_counter() - self.start)

    def fit(name: str, timed: bool) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input ran out of data": the epoch's end
            models[name].fit(
                datasets[name], epochs=2, verbose=0, callbacks=[StepTimer(name)] if timed else []
            )

    for name in models:
        fit(name, timed=False)  # tracing
    for round_ in range(ROUNDS):
        for name in list(models) if round_ % 2 == 0 else list(models)[::-1]:
            fit(name, timed=True)
    print(f"{Path(spec).name}, batch {BATCH}, element_spec batch dimension:")
    for name, dataset in datasets.items():
        shape = next(iter(dataset.element_spec[0].values())).shape
        print(
            f"  {name:<8} {str(shape):<12} median step {1e3 * statistics.median(steps[name]):6.2f} ms"
            f" (n={len(steps[name])})"
        )
    ratio = statistics.median(steps["unknown"]) / statistics.median(steps["fixed"])
    print(f"unknown / fixed: {ratio:.3f}")


if __name__ == "__main__":
    main()

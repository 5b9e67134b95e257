"""specs/resnet50.yaml against keras.applications.ResNet50(weights=None), trained side by side on
the first GPU with JAX: images/s of each and their ratio, in float32 and in mixed_bfloat16.

Both models get the same random images (224x224x3) and one-hot labels in batches of 128, the
same optimizer (SGD with momentum, the spec's) and loss; each is fitted once untimed (tracing)
and then for STEPS steps, timed. A machine without JAX or without a GPU prints "no GPU" and
exits 0, so the script can sit in any pipeline.

    .venv/bin/python bench/gpu.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# Keras picks its backend at import: JAX, whatever the environment says.
os.environ["KERAS_BACKEND"] = "jax"

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "resnet50.yaml"
BATCH = 128
STEPS = 50  # timed, after one untimed epoch of WARMUP steps
WARMUP = 5
POLICIES = ("float32", "mixed_bfloat16")


def first_gpu():
    """The first GPU JAX sees, or None (no JAX, or no GPU)."""
    try:
        import jax
    except ImportError:
        return None
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:  # JAX has no GPU backend here
        return None
    return gpus[0] if gpus else None


def images_per_second(model, images, labels) -> float:
    """Training throughput of `model` (compiled) over STEPS batches, after a traced warm-up."""
    model.fit(images, labels, batch_size=BATCH, epochs=1, steps_per_epoch=WARMUP, verbose=0)
    start = time.perf_counter()
    model.fit(images, labels, batch_size=BATCH, epochs=1, steps_per_epoch=STEPS, verbose=0)
    return STEPS * BATCH / (time.perf_counter() - start)


def measure(policy: str) -> tuple[float, float]:
    """images/s of the spec's ResNet-50 and of Keras's own, both under `policy`."""
    import keras
    import numpy as np

    import graphspec

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    # Enough distinct batches that steps do not replay one; repeated by fit's steps_per_epoch.
    rng = np.random.default_rng(0)
    images = rng.random((BATCH * 4, 224, 224, 3), dtype=np.float32)
    labels = np.eye(1000, dtype=np.float32)[rng.integers(0, 1000, BATCH * 4)]

    spec_model = graphspec.load(SPEC).build()
    reference = keras.applications.ResNet50(weights=None)
    reference.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    assert spec_model.count_params() == reference.count_params()
    return images_per_second(spec_model, images, labels), images_per_second(reference, images, labels)


def main() -> int:
    gpu = first_gpu()
    if gpu is None:
        print("no GPU: nothing measured")
        return 0
    print(f"ResNet-50 training on {gpu.device_kind} (JAX), batch {BATCH}, {STEPS} timed steps")
    print(f"{'policy':<16} | {'spec images/s':>13} | {'keras.applications images/s':>27} | ratio")
    for policy in POLICIES:
        spec_rate, reference_rate = measure(policy)
        print(
            f"{policy:<16} | {spec_rate:>13.0f} | {reference_rate:>27.0f} | {spec_rate / reference_rate:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

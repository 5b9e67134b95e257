"""Training on a folder of class subfolders of JPEGs through graphspec's train (tf.data on
TensorFlow, graphspec/keras/image_stream.py) against Keras's own loader.

A folder of `IMAGES` 64x64 RGB JPEGs in 10 classes is written once: scikit-learn's digits,
upscaled, coloured and with noise, so that each file differs (about 3 KB each). graphspec's side
is `graphspec.keras.train.train` (what `graphspec train --data FOLDER` runs, in this process so
that a callback times its steps): a small CNN, its images read through tf.data in an order drawn
from the seed and the epoch. The baseline is hand-written:
`keras.utils.image_dataset_from_directory(FOLDER, image_size=(64, 64), batch_size=32)
.prefetch(tf.data.AUTOTUNE)` and `model.fit` of the same CNN written in Keras. Each run fits two
epochs and the second is timed; the sides alternate run by run. The ratio is that of the median
training steps, as in bench_finetune; whole-epoch rates are given beside it (graphspec's epoch
also writes its backup for --resume). The scan before training (every header read with Pillow,
`bind`) is timed against image_dataset_from_directory's listing of the folder.

Standalone: `.venv/bin/python bench/bench_images.py` prints the row.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from bench_train import _timer  # noqa: E402
from harness import Row  # noqa: E402

IMAGES = int(os.environ.get("BENCH_IMAGES", "5000"))
SIZE = 64
CLASSES = 10
BATCH = 32
PAIRS = 3  # timed runs of each side, alternating
COMMAND = "python bench/bench_images.py"

SPEC = f"""\
graphspec: 1
name: images_bench
inputs:
  image: {{shape: [{SIZE}, {SIZE}, 3]}}
layers:
  scaled: {{type: Rescaling, scale: 0.00392156862745098, in: image}}
  conv1: {{type: Conv2D, filters: 16, kernel_size: 3, strides: 2, activation: relu, in: scaled}}
  conv2: {{type: Conv2D, filters: 32, kernel_size: 3, strides: 2, activation: relu, in: conv1}}
  pooled: {{type: GlobalAveragePooling2D, in: conv2}}
  label: {{type: Dense, units: {CLASSES}, activation: softmax, in: pooled}}
outputs:
  label: {{loss: sparse_categorical_crossentropy}}
compile:
  optimizer: adam
train: {{epochs: 2, batch_size: {BATCH}, seed: 0}}
"""


def write_folder(root: Path, count: int = IMAGES) -> None:
    """`count` JPEGs in `CLASSES` class folders, from scikit-learn's digits."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    for i in range(count):
        index = i % len(digits.target)
        label = int(digits.target[index])
        grey = Image.fromarray((digits.images[index] * 255 / 16).astype(np.uint8), "L")
        big = np.asarray(grey.resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float32)
        colour = rng.uniform(0.3, 1.0, 3)
        noise = rng.normal(0, 12, (SIZE, SIZE, 3))
        pixels = np.clip(big[..., None] * colour + noise, 0, 255).astype(np.uint8)
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, "RGB").save(folder / f"{i:05d}.jpg", quality=90)


def _keras_model():
    """The spec's CNN, written in Keras."""
    import keras

    image = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255)(image)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    label = keras.layers.Dense(CLASSES, activation="softmax", name="label")(x)
    model = keras.Model(image, {"label": label})
    model.compile(optimizer="adam", loss={"label": "sparse_categorical_crossentropy"})
    return model


def throughput_row(pairs: int = PAIRS) -> Row:
    import keras
    import tensorflow as tf

    import graphspec
    from graphspec.data.examples import bind
    from graphspec.keras.train import DataSource, train

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "images.yaml").write_text(SPEC)
        start = time.perf_counter()
        write_folder(folder / "photos")
        written = time.perf_counter() - start
        loaded = graphspec.load(folder / "images.yaml")
        runs = iter(range(2 * pairs + 2))
        scans: dict[str, list[float]] = {"graphspec": [], "keras": []}

        def graphspec_side() -> tuple[float, list[float]]:
            timer = _timer()
            start = time.perf_counter()
            bind(loaded, folder / "photos")
            scans["graphspec"].append(time.perf_counter() - start)
            source = DataSource(data=folder / "photos")
            train(loaded, source, out=folder / f"run{next(runs)}", verbose=0, extra_callbacks=[timer])
            keras.backend.clear_session()
            return timer.epochs[1], timer.steps[1]

        def keras_side() -> tuple[float, list[float]]:
            timer = _timer()
            start = time.perf_counter()
            data = keras.utils.image_dataset_from_directory(
                folder / "photos", image_size=(SIZE, SIZE), batch_size=BATCH, seed=0, verbose=False
            )
            scans["keras"].append(time.perf_counter() - start)
            data = data.map(lambda x, y: (x, {"label": y})).prefetch(tf.data.AUTOTUNE)
            _keras_model().fit(data, epochs=2, verbose=0, callbacks=[timer])
            keras.backend.clear_session()
            return timer.epochs[1], timer.steps[1]

        graphspec_side(), keras_side()  # first-run costs on both sides
        sides: dict[str, tuple[list[float], list[float]]] = {"graphspec": ([], []), "keras": ([], [])}
        for pair in range(pairs):
            order = [("graphspec", graphspec_side), ("keras", keras_side)]
            for side, fit in order if pair % 2 == 0 else order[::-1]:
                seconds, steps = fit()
                sides[side][0].append(seconds)
                sides[side][1].extend(steps)
    (ours_epochs, ours_steps), (keras_epochs, keras_steps) = sides["graphspec"], sides["keras"]
    ratio = statistics.median(keras_steps) / statistics.median(ours_steps)
    paired = [k / o for k, o in zip(keras_epochs, ours_epochs, strict=True)]

    def rates(epochs: list[float], steps: list[float]) -> str:
        return (
            f"{BATCH / statistics.median(steps):.0f} images/s by median step of {len(steps)}; "
            f"whole epochs {IMAGES / statistics.median(epochs):.0f} "
            f"({IMAGES / max(epochs):.0f}-{IMAGES / min(epochs):.0f}, n={len(epochs)})"
        )

    return Row(
        f"training on a folder of {IMAGES:,} {SIZE}x{SIZE} JPEGs in {CLASSES} classes (small CNN, "
        f"batch {BATCH})",
        f"graphspec train --data FOLDER (tf.data): {rates(ours_epochs, ours_steps)}",
        "image_dataset_from_directory(...).prefetch(AUTOTUNE) + fit by hand: "
        + rates(keras_epochs, keras_steps),
        ratio,
        ">= 0.95x",
        ratio >= 0.95,
        COMMAND,
        note=f"ratio of median steps; whole epochs' paired ratios: median {statistics.median(paired):.2f}, "
        f"{min(paired):.2f}-{max(paired):.2f}; the scan before training (every header, Pillow) "
        f"{statistics.median(scans['graphspec']):.2f} s against Keras's listing "
        f"{statistics.median(scans['keras']):.2f} s (medians); the folder written in {written:.0f} s",
    )


def run() -> list[Row]:
    return [throughput_row()]


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for row in run():
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        print(
            f"{row.name}\n  measured: {row.measured}\n  baseline: {row.baseline}\n"
            f"  ratio {ratio} {row.verdict}"
        )
        if row.note:
            print(f"  {row.note}")

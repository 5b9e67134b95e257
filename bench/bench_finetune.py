"""Fine-tuning with a frozen backbone (`train.stages`), through graphspec's train, against the
same model written in Keras by hand.

graphspec's side is `graphspec.keras.train.train` (what `graphspec train` runs, in this process
so that its steps can be timed by a callback): a spec with a MobileNetV2 backbone
(`applications.MobileNetV2`, random weights) frozen by a stage, trained on arrays from an .npz.
The baseline is the model written out in Keras (`MobileNetV2(...)`, `trainable = False`, a new
head), compiled alike and fitted on the same arrays with `model.fit(x, y)`. Each run fits
`EPOCHS` epochs and all but the first are timed (the first pays for tracing); the sides
alternate run by run. The gated ratio is that of whole epochs, what a user waits for: graphspec's
include its per-epoch backup for `--resume` (graphspec.keras.backup) and history files, which
a hand-written fit does not write. The row's figure is Keras's median epoch over graphspec's,
of all the timed epochs of each side (the alternation spreads a drift in outside load over
both); each pair of runs' own ratio (the two back to back) is reported as the spread, and the
ratio of median training steps (as bench_train gates) beside it.

Standalone: `.venv/bin/python bench/bench_finetune.py` prints the row.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from bench_train import _timer  # noqa: E402
from harness import Row  # noqa: E402

SIZE = 64
ALPHA = 0.35
CLASSES = 10
BATCH = 32
SAMPLES = 512  # per epoch
EPOCHS = 6  # per run; the first is not timed
PAIRS = 4  # timed runs of each side, alternating
COMMAND = "python bench/bench_finetune.py"

SPEC = f"""\
graphspec: 1
name: finetune_bench
inputs:
  image: {{shape: [{SIZE}, {SIZE}, 3]}}
layers:
  backbone: {{type: applications.MobileNetV2, weights: null, include_top: false, alpha: {ALPHA}, in: image}}
  pooled: {{type: GlobalAveragePooling2D, in: backbone}}
  label: {{type: Dense, units: {CLASSES}, activation: softmax, in: pooled}}
outputs:
  label: {{loss: sparse_categorical_crossentropy}}
compile:
  optimizer: adam
train:
  batch_size: {BATCH}
  stages:
    - {{epochs: {EPOCHS}, freeze: [backbone]}}
"""


def _keras_model():
    """The spec's model, written in Keras as the fine-tuning guide writes it."""
    import keras

    image = keras.Input((SIZE, SIZE, 3), name="image")
    backbone = keras.applications.MobileNetV2(
        weights=None, include_top=False, alpha=ALPHA, input_shape=(SIZE, SIZE, 3)
    )
    backbone.trainable = False
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(image))
    label = keras.layers.Dense(CLASSES, activation="softmax", name="label")(pooled)
    model = keras.Model(image, {"label": label})
    model.compile(optimizer="adam", loss={"label": "sparse_categorical_crossentropy"})
    return model


def throughput_row(pairs: int = PAIRS) -> Row:
    import keras
    import numpy as np

    import graphspec
    from graphspec.keras.train import DataSource, train

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (SAMPLES, SIZE, SIZE, 3)).astype("float32")
    y = rng.integers(0, CLASSES, SAMPLES).astype("int32")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "finetune.yaml").write_text(SPEC)
        np.savez(folder / "data.npz", image=x, label=y)
        loaded = graphspec.load(folder / "finetune.yaml")
        runs = iter(range(2 * pairs + 2))

        def graphspec_side() -> tuple[list[float], list[float]]:
            timer = _timer()
            source = DataSource(data=folder / "data.npz")
            train(loaded, source, out=folder / f"run{next(runs)}", verbose=0, extra_callbacks=[timer])
            keras.backend.clear_session()
            return timer.epochs[1:], [s for epoch in timer.steps[1:] for s in epoch]

        def keras_side() -> tuple[list[float], list[float]]:
            timer = _timer()
            _keras_model().fit(
                x, {"label": y}, batch_size=BATCH, epochs=EPOCHS, shuffle=True, verbose=0, callbacks=[timer]
            )
            keras.backend.clear_session()
            return timer.epochs[1:], [s for epoch in timer.steps[1:] for s in epoch]

        graphspec_side(), keras_side()  # first-run costs on both sides
        sides: dict[str, tuple[list[float], list[float]]] = {"graphspec": ([], []), "keras": ([], [])}
        paired: list[float] = []
        for pair in range(pairs):
            order = [("graphspec", graphspec_side), ("keras", keras_side)]
            medians = {}
            for side, fit in order if pair % 2 == 0 else order[::-1]:
                seconds, steps = fit()
                sides[side][0].extend(seconds)
                sides[side][1].extend(steps)
                medians[side] = statistics.median(seconds)
            paired.append(medians["keras"] / medians["graphspec"])
    (ours_epochs, ours_steps), (keras_epochs, keras_steps) = sides["graphspec"], sides["keras"]
    ratio = statistics.median(keras_epochs) / statistics.median(ours_epochs)
    step_ratio = statistics.median(keras_steps) / statistics.median(ours_steps)
    # What an epoch spends outside its steps: graphspec's per-epoch backup (for --resume) and
    # history files, which a hand-written fit does not write.
    outside = {
        side: statistics.median(epochs) - statistics.median(steps) * (SAMPLES // BATCH)
        for side, (epochs, steps) in sides.items()
    }

    def rates(epochs: list[float], steps: list[float]) -> str:
        return (
            f"{BATCH / statistics.median(steps):.0f} samples/s by median step of {len(steps)}; "
            f"whole epochs {SAMPLES / statistics.median(epochs):.0f} "
            f"({SAMPLES / max(epochs):.0f}-{SAMPLES / min(epochs):.0f}, n={len(epochs)})"
        )

    return Row(
        f"fine-tuning throughput, frozen MobileNetV2 (alpha {ALPHA}, {SIZE}x{SIZE}, batch {BATCH}) "
        "through train.stages",
        rates(ours_epochs, ours_steps),
        f"the same model in hand-written Keras, fit on the same arrays: {rates(keras_epochs, keras_steps)}",
        ratio,
        ">= 0.95x",
        ratio >= 0.95,
        COMMAND,
        note=f"ratio of median whole epochs; pairs of runs: {', '.join(f'{p:.2f}' for p in paired)}; "
        f"ratio of median steps {step_ratio:.2f}; an epoch outside its steps: graphspec "
        f"{outside['graphspec']:.3f} s (with its backup for --resume), Keras {outside['keras']:.3f} s",
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

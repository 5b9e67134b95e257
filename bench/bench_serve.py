"""Inference latency of the serving formats against Keras's `predict`, on the same batch and the
same weights: reported, not gated (a runtime's speed is not graphspec's to promise).

One model (bench_finetune's: a MobileNetV2 backbone and a new head, random weights) is built from
its spec and exported with `graphspec.keras.serve.export` to ONNX and to a SavedModel. Then, in
turn, `model.predict(x)`, onnxruntime's `session.run` and the SavedModel's `serving_default`
signature each run one batch, repeatedly; the medians are compared (ratio: Keras's time over the
runtime's, above 1 when the runtime is faster). The runtimes' outputs are checked against Keras's
first, so a fast wrong answer is not reported.

Standalone: `.venv/bin/python bench/bench_serve.py` prints the rows.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from bench_finetune import BATCH, SIZE, SPEC  # noqa: E402
from harness import Row, not_measured, time_call  # noqa: E402

REPEATS = 30
COMMAND = "python bench/bench_serve.py"
TARGET = "reported, not gated"


def run() -> list[Row]:
    import numpy as np
    import tensorflow as tf

    import graphspec
    from graphspec.keras import serve

    name = f"inference latency, MobileNetV2 (alpha 0.35, {SIZE}x{SIZE}), batch {BATCH}"
    x = np.random.default_rng(0).uniform(0, 1, (BATCH, SIZE, SIZE, 3)).astype("float32")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "served.yaml").write_text(SPEC.split("train:")[0])
        loaded = graphspec.load(folder / "served.yaml")
        model = loaded.build(compile=False)
        expected = model.predict({"image": x}, verbose=0)["label"]
        keras_time = time_call(lambda: model.predict({"image": x}, verbose=0), repeats=REPEATS, warmup=3)
        keras_text = f"Keras predict: {keras_time.median * 1000:.1f} ms"

        def row(runtime: str, timing, got) -> Row:
            np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
            return Row(
                f"{name}: {runtime}",
                f"{timing.median * 1000:.1f} ms ({min(timing.samples) * 1000:.1f}-"
                f"{max(timing.samples) * 1000:.1f}, n={len(timing.samples)})",
                f"{keras_text} ({min(keras_time.samples) * 1000:.1f}-{max(keras_time.samples) * 1000:.1f}, "
                f"n={len(keras_time.samples)})",
                keras_time.median / timing.median,
                TARGET,
                None,
                COMMAND,
                note="ratio: Keras's time over the runtime's",
            )

        if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("tf2onnx") is None:
            rows.append(
                not_measured(f"{name}: onnxruntime", TARGET, COMMAND, "the serve extra is not installed")
            )
        else:
            import onnxruntime

            serve.export(model, loaded, "onnx", folder / "served.onnx")
            session = onnxruntime.InferenceSession(str(folder / "served.onnx"))
            timing = time_call(lambda: session.run(None, {"image": x}), repeats=REPEATS, warmup=3)
            rows.append(row("onnxruntime", timing, session.run(["label"], {"image": x})[0]))

        serve.export(model, loaded, "saved_model", folder / "saved")
        signature = tf.saved_model.load(str(folder / "saved")).signatures["serving_default"]
        tensor = tf.constant(x)
        timing = time_call(lambda: signature(image=tensor), repeats=REPEATS, warmup=3)
        rows.append(row("SavedModel (tf.saved_model.load)", timing, signature(image=tensor)["label"].numpy()))
        # Keras's predict again, after the runtimes: a machine whose load changed meanwhile shows.
        again = time_call(lambda: model.predict({"image": x}, verbose=0), repeats=REPEATS, warmup=1)
        for each in rows:
            each.note += f"; Keras predict measured again after: {again.median * 1000:.1f} ms"
    return rows


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for each in run():
        ratio = f"{each.ratio:.2f}" if each.ratio is not None else "-"
        print(
            f"{each.name}\n  measured: {each.measured}\n  baseline: {each.baseline}\n"
            f"  ratio {ratio} {each.verdict}"
        )
        if each.note:
            print(f"  {each.note}")

"""graphspec on JAX and PyTorch (CPU): every spec builds to the TensorFlow build's parameter
counts, training lowers the loss, a run's model reloads, and a killed run resumes.

Keras picks its backend at import, so everything on another backend runs in a subprocess with
KERAS_BACKEND set, as a user would run it. A backend that is not installed is skipped, saying
so: `make test` installs JAX, and `make test-torch` PyTorch.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.backends import BACKENDS

ROOT = Path(__file__).resolve().parent.parent
# Specs too large to build in seconds at their defaults, shrunk: `PATH|a=1|b=2`.
SMALL = {
    "specs/vit.yaml": "|dim=32|depth=2|heads=2|mlp=64",
    "specs/clip.yaml": "|image_width=32|image_depth=1|text_width=24|text_depth=1",
    "specs/llama.yaml": "|vocab=101|dim=32|depth=2",
    "specs/unet.yaml": "|size=32|filters=4",
    # At full size its 124M weights are initialised on each backend; every layer type and the
    # tied reverse embedding are still there at this size (the full count: test_gpt2.py).
    "specs/gpt2_small.yaml": "|vocab=101|context=16|layers=2|heads=2|width=32",
}
SPECS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
SPECS = [path + SMALL.get(path, "") for path in SPECS]

COUNT_PARAMS = """\
import json, math, sys
import graphspec
counts = {}
for path in sys.argv[1:]:
    model = graphspec.load(path.split("|")[0], path.split("|")[1:]).build()
    counts[path] = [model.count_params(), sum(math.prod(w.shape) for w in model.trainable_weights)]
print(json.dumps(counts))
"""

RELOAD = """\
import json, sys
import keras
import numpy as np
model = keras.saving.load_model(sys.argv[1])
x = {t.name: np.ones((2, *t.shape[1:]), dtype="float32") for t in model.inputs}
outputs = keras.tree.map_structure(lambda a: np.asarray(a).tolist(), model.predict(x, verbose=0))
print(json.dumps({"params": model.count_params(), "outputs": outputs}))
"""


def _env(backend: str) -> dict[str, str]:
    return {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _python(backend: str, *args: str, unoptimised: bool = False) -> subprocess.CompletedProcess:
    env = _env(backend)
    if unoptimised and backend == "jax":
        # Building a model on JAX compiles an XLA program per weight initialiser; unoptimised,
        # the builds take about half the time (BENCHMARKS.md, Test suite time). Only for
        # builds: unoptimised training steps ran three times slower.
        env["XLA_FLAGS"] = " ".join(
            filter(None, [env.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"])
        )
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def tensorflow_counts() -> dict[str, list[int]]:
    result = _python("tensorflow", "-c", COUNT_PARAMS, *SPECS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def teacher_runs(tmp_path_factory) -> dict[str, Path]:
    """One short run on teacher data per backend, trained when a test first asks for it."""
    runs: dict[str, Path] = {}

    def run(backend: str) -> Path:
        if backend not in runs:
            out = tmp_path_factory.mktemp(backend) / "run"
            args = ["specs/book_mlp.yaml", "--synthetic", "--kind", "teacher", "--samples", "512"]
            args += ["--epochs", "3", "--seed", "2", "--quiet", "--out", str(out)]
            result = _python(backend, "-m", "graphspec", "train", *args)
            assert result.returncode == 0, result.stderr
            runs[backend] = out
        return runs[backend]

    return run


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_spec_builds_to_the_tensorflow_parameter_counts(backend, tensorflow_counts):
    result = _python(backend, "-c", COUNT_PARAMS, *SPECS, unoptimised=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == tensorflow_counts


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_on_teacher_data_lowers_the_loss(backend, teacher_runs):
    losses = json.loads((teacher_runs(backend) / "history.json").read_text())["loss"]
    assert len(losses) == 3
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_runs_model_reloads_on_its_backend(backend, teacher_runs, tensorflow_counts):
    model = teacher_runs(backend) / "model.keras"
    first = _python(backend, "-c", RELOAD, str(model))
    assert first.returncode == 0, first.stderr
    reloaded = json.loads(first.stdout.splitlines()[-1])
    assert reloaded["params"] == tensorflow_counts["specs/book_mlp.yaml"][0]
    # The weights were saved, not re-initialised: a second load predicts the same.
    second = json.loads(_python(backend, "-c", RELOAD, str(model)).stdout.splitlines()[-1])
    assert second["outputs"] == reloaded["outputs"]


# On TensorFlow, test_train.py trains each spec for an epoch and test_losses.py shows a KL output
# training on its own value and the contrastive loss falling: here, the other backends.
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", ["specs/vae.yaml", "specs/clip.yaml"])
def test_the_vae_and_clip_train_on_synthetic_data_with_finite_losses(backend, spec, tmp_path):
    # Their losses have no target array: the VAE's KL is its own value, CLIP's targets are the
    # batch's row indices. Teacher data, so that the loss has something to fall towards.
    path, *overrides = (spec + SMALL.get(spec, "")).split("|")
    args = ["train", path, "--synthetic", "--kind", "teacher", "--samples", "128", "--batch-size", "16"]
    args += ["--epochs", "3", "--seed", "3", "--quiet", "--out", str(tmp_path / "run")]
    for override in overrides:
        args += ["--set", override]
    result = _python(backend, "-m", "graphspec", *args)
    assert result.returncode == 0, result.stderr
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    losses = history["loss"]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]
    if spec == "specs/vae.yaml":
        assert all(math.isfinite(kl) and kl >= 0 for kl in history["kl_loss"])


def _epochs_written(partial: Path) -> int:
    try:
        return len(json.loads((partial / "history.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_run_resumes_to_the_same_epoch_count(backend, tmp_path):
    run, partial, epochs = tmp_path / "run", tmp_path / ".run.partial", 4
    args = ["specs/book_mlp.yaml", "--synthetic", "--epochs", str(epochs), "--samples", "8000"]
    args += ["--batch-size", "16", "--seed", "3", "--quiet", "--out", str(run)]
    process = subprocess.Popen(
        [sys.executable, "-m", "graphspec", "train", *args],
        env=_env(backend),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 600
    while _epochs_written(partial) < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    completed = _epochs_written(partial)
    assert 1 <= completed < epochs

    resumed = _python(backend, "-m", "graphspec", "train", "--resume", str(run), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == list(range(epochs))
    assert not partial.exists()


# --- Without TensorFlow: JAX alone -----------------------------------------------------------

needs_jax = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="jax is not installed: make test installs it"
)

TENSORBOARD_SPEC = """\
graphspec: 1
name: logged
inputs:
  x: {shape: [8]}
layers:
  y: {type: Dense, units: 1, in: x}
outputs:
  y: {loss: mse}
train:
  callbacks:
    - {type: CSVLogger, filename: log.csv}
    - {type: TensorBoard, log_dir: logs}
"""


def _without_tensorflow(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`graphspec` on JAX in a Python where `import tensorflow` fails, as it does where only
    the jax extra is installed: a sitecustomize marks the module missing before anything runs."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['tensorflow'] = None\n")
    env = _env("jax")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "graphspec", *args], env=env, capture_output=True, text=True, timeout=900
    )


@needs_jax
def test_training_on_jax_needs_no_tensorflow(tmp_path):
    args = ["specs/book_mlp.yaml", "--synthetic", "--kind", "teacher", "--samples", "64", "--epochs", "1"]
    result = _without_tensorflow(tmp_path, "train", *args, "--quiet", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "model.keras").is_file()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_image_folder_trains_and_is_scored(backend, tmp_path):
    # Your own data (graphspec/data) reads files with Pillow into a keras.utils.PyDataset on
    # JAX and PyTorch (tf.data on TensorFlow); --test-data scores the trained model on a folder too.
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, low in (("dark", 0), ("light", 160)):
        (tmp_path / "pics" / label).mkdir(parents=True)
        for i in range(16):
            pixels = rng.integers(low, low + 96, size=(4, 4, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pics" / label / f"{i}.png")
    sets = ["--set", "height=4", "--set", "width=4", "--set", "channels=3", "--set", "classes=2"]
    pics, out = str(tmp_path / "pics"), tmp_path / "run"
    args = ["specs/image_classifier.yaml", "--data", pics, "--test-data", pics, *sets]
    args += ["--epochs", "8", "--batch-size", "4", "--quiet", "--out", str(out)]
    result = _python(backend, "-m", "graphspec", "train", *args)
    assert result.returncode == 0, result.stderr
    tested = json.loads((out / "test_metrics.json").read_text())
    assert tested["accuracy"] >= 0.85
    assert json.loads((out / "classes.json").read_text()) == {"label": ["dark", "light"]}


@needs_jax
def test_a_callback_that_needs_tensorflow_is_refused_without_it(tmp_path):
    spec = tmp_path / "logged.yaml"
    spec.write_text(TENSORBOARD_SPEC)
    runs = tmp_path / "runs"
    result = _without_tensorflow(
        tmp_path,
        "train",
        str(spec),
        "--synthetic",
        "--samples",
        "64",
        "--epochs",
        "1",
        "--runs-dir",
        str(runs),
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"{spec}:12:7: error: callback TensorBoard writes its event files with TensorFlow's "
        "tf.summary, and TensorFlow is not installed (the Keras backend is jax)\n"
        "      - {type: TensorBoard, log_dir: logs}\n"
        "        ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n"
        "  hint: install TensorFlow beside it (pip install tensorflow-cpu), or log with CSVLogger\n"
        "1 error\n"
    )
    assert not runs.exists()


# graphspec's own nodes (weight, range, random) on a backend: shapes, positions, means at
# inference and samples in training, one fit step, and a save that stock Keras loads back.
NODES_SPEC = """\
graphspec: 1
name: own_nodes
inputs: {x: {shape: [null, 4]}}
layers:
  cls: {weight: [1, 4], initializer: ones, in: x}
  seq: {type: Concatenate, axis: 1, in: [cls, x]}
  pos: {range: 1, in: seq}
  noise: {random: normal, mean: 0.5, seed: 3, in: seq}
  noisy: {type: Add, in: [seq, noise]}
  drawn: {random: uniform, seed: 4, in: seq, call: {training: true}}
  out: {type: Dense, units: 2, in: noisy}
outputs: {out: {loss: mse}, pos: {}, drawn: {}}
"""

NODES = """\
import json, sys
import numpy as np
import keras
import graphspec
model = graphspec.load(sys.argv[1]).build()
x = np.ones((2, 3, 4), dtype="float32")
got = model.predict({"x": x}, verbose=0)
model.fit({"x": x}, {"out": np.zeros((2, 4, 2), "float32")}, epochs=1, verbose=0)
model.save(sys.argv[2])
drawn = np.asarray(got["drawn"])
print(json.dumps({
    "params": model.count_params(),
    "pos": np.asarray(got["pos"]).tolist(),
    "drawn_in_unit_interval": bool(((drawn >= 0) & (drawn < 1)).all()),
    "drawn_varies": bool(drawn.std() > 0),
    "noise_at_inference": np.asarray(model.get_layer("noise")(x)).mean().item(),
}))
"""

RELOAD_NODES = """\
import sys
import keras
import graphspec.keras.layers
model = keras.saving.load_model(sys.argv[1])
print(sorted(type(layer).__name__ for layer in model.layers))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_range_and_random_nodes_run_and_reload(backend, tmp_path):
    spec, saved = tmp_path / "own_nodes.yaml", tmp_path / "own_nodes.keras"
    spec.write_text(NODES_SPEC)
    result = _python(backend, "-c", NODES, str(spec), str(saved))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "params": 4 + 4 * 2 + 2,
        "pos": [[0, 1, 2, 3]] * 2,
        "drawn_in_unit_interval": True,
        "drawn_varies": True,
        "noise_at_inference": 0.5,
    }
    result = _python(backend, "-c", RELOAD_NODES, str(saved))
    assert result.returncode == 0, result.stderr
    assert "'RandomNormal', 'RandomUniform', 'Range', 'Weight'" in result.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_string_inputs_are_refused_off_tensorflow_before_any_work(backend, tmp_path):
    # Keras's StringLookup runs inside a model only on TensorFlow; elsewhere training used to
    # fail late with "Invalid dtype: object". Now: exit 2 at the input's line, no run written.
    table = tmp_path / "t.csv"
    table.write_text("n_1,first,second,label\n" + "".join(f"{i},a,b,{i % 3}\n" for i in range(8)))
    runs = tmp_path / "runs"
    sets = ["--set", "features=1", "--set", "label=label", "--runs-dir", str(runs)]
    result = _python(backend, "-m", "graphspec", "train", "specs/tabular.yaml", "--data", str(table), *sets)
    assert result.returncode == 2, result.stderr
    assert (
        "specs/tabular.yaml:28:32: error: input 'first' takes strings, and Keras runs string layers "
        f"inside a model only on TensorFlow (the Keras backend is {backend})"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert not runs.exists()

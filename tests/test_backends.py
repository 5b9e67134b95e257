"""graphspec on JAX and PyTorch (CPU): every spec builds to the TensorFlow build's parameter
counts, training lowers the loss, a run's model reloads, and a killed run resumes.

Keras picks its backend at import, so everything on another backend runs in a subprocess with
KERAS_BACKEND set, as a user would run it. A backend that is not installed is skipped, saying
so: `make test-backends` installs both.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
BACKENDS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            importlib.util.find_spec(name) is None,
            reason=f"{name} is not installed: make test-backends installs it",
        ),
    )
    for name in ("jax", "torch")
]

COUNT_PARAMS = """\
import json, math, sys
import graphspec
counts = {}
for path in sys.argv[1:]:
    model = graphspec.load(path).build()
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


def _python(backend: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], env=_env(backend), capture_output=True, text=True, timeout=900
    )


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
    result = _python(backend, "-c", COUNT_PARAMS, *SPECS)
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


def _epochs_written(partial: Path) -> int:
    try:
        return len(json.loads((partial / "history.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_run_resumes_to_the_same_epoch_count(backend, tmp_path):
    run, partial, epochs = tmp_path / "run", tmp_path / ".run.partial", 4
    args = ["specs/book_mlp.yaml", "--synthetic", "--epochs", str(epochs), "--samples", "20000"]
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

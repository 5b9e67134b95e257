"""Losses on any tensor: `loss: value` (a VAE's KL term is its own loss) and `target: index`
(CLIP's contrastive labels, each row's index in its batch). Neither reads nor makes a target
array; each loss is compared with the same loss computed in NumPy on the same batch, on
TensorFlow here and on JAX and PyTorch in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from fixtures.backends import BACKENDS
from typer.testing import CliRunner

import graphspec
from graphspec import ensemble
from graphspec.cli import app
from graphspec.errors import SpecErrors
from graphspec.keras.data import targets_of
from graphspec.keras.export import export_model, load_keras_file
from graphspec.keras.search import save_arrays, synthetic_arrays
from graphspec.keras.train import DataSource, train
from graphspec.tune import tune

runner = CliRunner()

VAE = """\
graphspec: 1
name: vae
inputs:
  x: {shape: [8]}
layers:
  hidden:    {type: Dense, units: 16, activation: relu, in: x}
  z_mean:    {type: Dense, units: 2, in: hidden}
  z_log_var: {type: Dense, units: 2, in: hidden}
  zeros:     {op: zeros_like, in: z_mean}
  eps:       {type: GaussianNoise, stddev: 1.0, in: zeros, call: {training: true}}
  half:      {op: multiply, in: z_log_var, x2: 0.5}
  std:       {op: exp, in: half}
  scaled:    {op: multiply, in: [std, eps]}
  z:         {type: Add, in: [z_mean, scaled]}
  decoded:   {type: Dense, units: 16, activation: relu, in: z}
  recon:     {type: Dense, units: 8, in: decoded}
  # kl = -0.5 * sum(1 + z_log_var - z_mean ** 2 - exp(z_log_var), axis=-1)
  mean_sq:   {op: square, in: z_mean}
  var:       {op: exp, in: z_log_var}
  t1:        {op: subtract, in: [z_log_var, mean_sq]}
  t2:        {op: subtract, in: [t1, var]}
  t3:        {op: add, in: t2, x2: 1.0}
  total:     {op: sum, in: t3, axis: -1}
  kl:        {op: multiply, in: total, x2: -0.5}
outputs:
  recon: {loss: mse}
  kl: {loss: value, weight: 0.001}
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
train: {samples: 64, batch_size: 16, epochs: 1, seed: 1}
"""

CLIP = """\
graphspec: 1
name: clip
params: {width: 16}
inputs:
  image: {shape: [6]}
  text: {shape: [5]}
layers:
  image_hidden: {type: Dense, units: "${width}", activation: relu, in: image}
  text_hidden:  {type: Dense, units: "${width}", activation: relu, in: text}
  image_embed:  {type: Dense, units: 8, in: image_hidden}
  text_embed:   {type: Dense, units: 8, in: text_hidden}
  text_t:       {op: transpose, in: text_embed}
  logits:       {op: matmul, in: [image_embed, text_t]}
outputs:
  logits:
    loss: {type: SparseCategoricalCrossentropy, from_logits: true}
    target: index
    metrics: [accuracy]
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
train: {samples: 64, batch_size: 16, epochs: 1, seed: 1}
"""

SEARCH = """\
search:
  metric: loss
  trials: 2
  seed: 0
  pruner: none
  params:
    width: {type: int, low: 4, high: 16}
"""


@pytest.fixture(autouse=True)
def _fresh_keras():
    yield
    keras.backend.clear_session()


def _write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def _kl(z_mean: np.ndarray, z_log_var: np.ndarray) -> float:
    per_sample = -0.5 * np.sum(1 + z_log_var - z_mean**2 - np.exp(z_log_var), axis=-1)
    return float(per_sample.mean())


def _cross_entropy_against_rows(logits: np.ndarray) -> float:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(logits)), np.arange(len(logits))].mean())


def _trained(tmp_path: Path, text: str, name: str, *overrides: str, **source) -> tuple:
    loaded = graphspec.load(_write(tmp_path, text, name), list(overrides))
    result = train(
        loaded, DataSource(**(source or {"synthetic": True})), out=tmp_path / f"run_{name}", verbose=0
    )
    return loaded, result


def test_a_kl_output_with_loss_value_trains_on_its_own_value(tmp_path):
    loaded, result = _trained(tmp_path, VAE, "vae")
    assert "kl" not in targets_of(loaded)  # no target is made for it
    assert all(np.isfinite(v[-1]) for v in result.history.values())
    model = keras.saving.load_model(result.model_path)  # graphspec's ValueLoss comes back
    x = {"x": np.random.default_rng(0).standard_normal((16, 8)).astype("float32")}
    logs = model.evaluate(
        x, {"recon": np.zeros((16, 8)), "kl": np.zeros(16)}, batch_size=16, verbose=0, return_dict=True
    )
    latent = keras.Model(model.input, [model.get_layer("z_mean").output, model.get_layer("z_log_var").output])
    z_mean, z_log_var = latent.predict(x, verbose=0)
    assert logs["kl_loss"] == pytest.approx(_kl(z_mean, z_log_var), rel=1e-5)
    assert logs["loss"] == pytest.approx(logs["recon_loss"] + 0.001 * logs["kl_loss"], rel=1e-5)


def test_logits_with_target_index_are_scored_against_the_row_indices(tmp_path):
    loaded, result = _trained(tmp_path, CLIP, "clip")
    assert targets_of(loaded) == {}
    assert np.isfinite(result.history["loss"][-1])
    model = keras.saving.load_model(result.model_path)
    rng = np.random.default_rng(0)
    x = {"image": rng.standard_normal((16, 6)), "text": rng.standard_normal((16, 5))}
    logs = model.evaluate(x, {"logits": np.zeros(16)}, batch_size=16, verbose=0, return_dict=True)
    logits = model.predict(x, batch_size=16, verbose=0)["logits"]
    assert logits.shape == (16, 16)
    assert logs["loss"] == pytest.approx(_cross_entropy_against_rows(logits), rel=1e-5)
    assert logs["accuracy"] == pytest.approx(np.mean(np.argmax(logits, axis=1) == np.arange(16)))


def test_the_contrastive_loss_falls_on_teacher_data(tmp_path):
    _, result = _trained(tmp_path, CLIP, "clip", "train.epochs=5", synthetic=True, kind="teacher")
    losses = result.history["loss"]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] < losses[0] - 0.25, losses


def test_a_data_file_needs_no_array_for_targetless_outputs(tmp_path):
    loaded = graphspec.load(_write(tmp_path, VAE, "vae"))
    arrays = synthetic_arrays(loaded, kind="teacher", samples=32, seed=3)
    assert sorted(arrays) == ["recon", "x"]
    save_arrays(arrays, tmp_path / "data.npz")
    _, result = _trained(tmp_path, VAE, "vae", data=tmp_path / "data.npz")
    assert np.isfinite(result.history["kl_loss"][-1])


def test_tune_searches_a_spec_with_target_index(tmp_path):
    spec = _write(tmp_path, CLIP + SEARCH, "clip")
    result = tune(spec, DataSource(synthetic=True), out=tmp_path / "tune", progress=False)
    assert result.counts["complete"] == 2, result.counts
    assert np.isfinite(result.best_value)


def test_an_ensemble_averages_a_kl_output_and_scores_the_others(tmp_path):
    loaded = graphspec.load(_write(tmp_path, VAE, "vae"))
    save_arrays(synthetic_arrays(loaded, kind="teacher", samples=96, seed=3), tmp_path / "data.npz")
    runs = []
    for seed in (1, 2):
        keras.backend.clear_session()
        _, result = _trained(tmp_path, VAE, "vae", f"train.seed={seed}", data=tmp_path / "data.npz")
        runs.append(result.run_dir.rename(tmp_path / f"member{seed}"))
    keras.backend.clear_session()
    fitted = ensemble.build_ensemble(
        runs, tmp_path / "data.npz", ensemble.EnsembleOptions(), out=tmp_path / "ens"
    )
    assert fitted.score_name == "loss" and np.isfinite(fitted.score)
    model = keras.saving.load_model(fitted.model_path, compile=False)
    assert sorted(model.output) == ["kl", "recon"]


def test_an_ensemble_of_a_model_with_no_output_against_targets_is_refused(tmp_path):
    runs = []
    for seed in (1, 2):
        keras.backend.clear_session()
        _, result = _trained(tmp_path, CLIP, "clip", f"train.seed={seed}")
        runs.append(result.run_dir.rename(tmp_path / f"member{seed}"))
    loaded = graphspec.load(tmp_path / "clip.yaml")
    save_arrays(synthetic_arrays(loaded, kind="random", samples=16, seed=3), tmp_path / "data.npz")
    with pytest.raises(SpecErrors) as raised:
        ensemble.build_ensemble(runs, tmp_path / "data.npz", ensemble.EnsembleOptions(), out=tmp_path / "ens")
    assert str(raised.value) == (
        "error: no output of clip is trained against targets, so nothing scores an ensemble of it\n"
        "  hint: an output with loss: value or target: index is averaged, not scored; "
        "an ensemble needs one output with a loss against data"
    )


BAD = """\
graphspec: 1
name: bad
inputs:
  x: {shape: [4]}
layers:
  a: {type: Dense, units: 3, in: x}
  b: {type: Dense, units: 3, in: x}
  c: {type: Dense, units: 3, in: x}
  d: {type: Dense, units: 3, in: x}
  e: {type: Dense, units: 3, in: x}
outputs:
  a: {loss: value, metrics: [mae]}
  b: {loss: mse, target: rows}
  c: {target: index}
  d: {loss: value, target: index}
  e: {loss: categorical_crossentropy, target: index}
"""


def test_bad_targets_and_value_losses_are_located_errors(tmp_path):
    path = _write(tmp_path, BAD, "bad")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"{path}:12:29: error: output 'a' has loss: value, which takes no target, and metrics, "
        "which compare predictions with targets\n"
        "    a: {loss: value, metrics: [mae]}\n"
        "                              ^~~~~\n"
        "  hint: remove its metrics: its loss is logged as it trains\n"
        f"{path}:13:26: error: output 'b' has unknown target 'rows'\n"
        "    b: {loss: mse, target: rows}\n"
        "                           ^~~~\n"
        "  hint: target: index makes each row's index in its batch the target; "
        "leave target out to read targets from the data\n"
        f"{path}:14:15: error: output 'c' has target: index but no loss\n"
        "    c: {target: index}\n"
        "                ^~~~~\n"
        "  hint: add a loss that takes class ids, such as SparseCategoricalCrossentropy\n"
        f"{path}:15:28: error: output 'd' has loss: value, which takes no target, and target: index\n"
        "    d: {loss: value, target: index}\n"
        "                             ^~~~~\n"
        f"{path}:16:47: error: output 'e': target: index gives class ids, and loss "
        "'categorical_crossentropy' takes one-hot rows\n"
        "    e: {loss: categorical_crossentropy, target: index}\n"
        "                                                ^~~~~\n"
        "  hint: use SparseCategoricalCrossentropy (from_logits: true on logits)\n"
        "5 errors\n"
    )


ON_BACKEND = """\
import json, sys
import keras
import numpy as np
import graphspec
from graphspec.keras.train import DataSource, train

out = {}
for name in ("clip", "vae"):
    loaded = graphspec.load(sys.argv[1] + f"/{name}.yaml")
    result = train(loaded, DataSource(synthetic=True), out=sys.argv[1] + f"/run_{name}", verbose=0)
    model = keras.saving.load_model(result.model_path)
    rng = np.random.default_rng(0)
    if name == "clip":
        x = {"image": rng.standard_normal((16, 6)), "text": rng.standard_normal((16, 5))}
        y = {"logits": np.zeros(16)}
        values = {"logits": np.asarray(model.predict(x, batch_size=16, verbose=0)["logits"]).tolist()}
    else:
        x = {"x": rng.standard_normal((16, 8)).astype("float32")}
        y = {"recon": np.zeros((16, 8)), "kl": np.zeros(16)}
        latent = keras.Model(model.input, [model.get_layer(n).output for n in ("z_mean", "z_log_var")])
        z_mean, z_log_var = latent.predict(x, verbose=0)
        values = {"z_mean": z_mean.tolist(), "z_log_var": z_log_var.tolist()}
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    out[name] = {"history": result.history, "logs": logs, "values": values}
print(json.dumps(out))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_losses_on_another_backend(backend, tmp_path):
    _write(tmp_path, CLIP, "clip")
    _write(tmp_path, VAE, "vae")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", ON_BACKEND, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    clip, vae = found["clip"], found["vae"]
    assert np.isfinite(clip["history"]["loss"][-1]) and np.isfinite(vae["history"]["loss"][-1])
    logits = np.asarray(clip["values"]["logits"])
    assert clip["logs"]["loss"] == pytest.approx(_cross_entropy_against_rows(logits), rel=1e-4)
    kl = _kl(np.asarray(vae["values"]["z_mean"]), np.asarray(vae["values"]["z_log_var"]))
    assert vae["logs"]["kl_loss"] == pytest.approx(kl, rel=1e-4)


def test_a_model_saved_by_plain_keras_exports_its_targetless_losses(tmp_path):
    saved = {}
    for name, text in (("vae", VAE), ("clip", CLIP)):
        keras.backend.clear_session()
        graphspec.load(_write(tmp_path, text, name)).build().save(tmp_path / f"{name}.keras")
        model, compile_config = load_keras_file(tmp_path / f"{name}.keras")
        saved[name] = export_model(model, compile_config).spec["outputs"]
    assert saved["vae"]["kl"] == {"loss": "value", "weight": 0.001}
    assert saved["clip"]["logits"] == {
        "loss": {"type": "SparseCategoricalCrossentropy", "from_logits": True},
        "target": "index",
        "metrics": [{"type": "SparseCategoricalAccuracy"}],
    }


def test_a_plot_shows_the_target_and_the_value_loss(tmp_path):
    for name, text, shown in (("clip", CLIP, "target: index"), ("vae", VAE, "loss: value")):
        spec, drawing = _write(tmp_path, text, name), tmp_path / f"{name}.dot"
        result = runner.invoke(app, ["plot", str(spec), "-o", str(drawing)])
        assert result.exit_code == 0, result.output
        assert shown in drawing.read_text()


def test_a_target_counts_in_the_fingerprint_and_a_diff_shows_it_with_the_losses(tmp_path):
    from graphspec.diff import Change, Changed, diff
    from graphspec.fingerprint import fingerprint

    plain = graphspec.load(_write(tmp_path, CLIP.replace("    target: index\n", ""), "plain"))
    indexed = graphspec.load(_write(tmp_path, CLIP, "clip"))
    assert fingerprint(plain) != fingerprint(indexed)
    result = diff(plain, indexed, "plain.yaml", "clip.yaml")
    assert result.losses_changed == [Changed("logits", [Change("target", None, "index", "added")])]


def test_the_view_page_gives_an_outputs_target(tmp_path):
    from graphspec.view import page_data

    data = page_data(graphspec.load(_write(tmp_path, CLIP, "clip")))
    (output,) = [n["output"] for n in data["nodes"] if n["kind"] == "output"]
    assert output["target"] == "index"
    assert output["loss"] == {"type": "SparseCategoricalCrossentropy", "from_logits": True}


NOT_SQUARE = """\
graphspec: 1
name: not_square
inputs:
  image: {shape: [6]}
layers:
  logits: {type: Dense, units: 8, in: image}
outputs:
  logits: {loss: {type: SparseCategoricalCrossentropy, from_logits: true}, target: index}
"""


def test_target_index_on_an_output_that_is_not_batch_by_batch_is_an_error_before_training(tmp_path):
    spec = _write(tmp_path, NOT_SQUARE, "not_square")
    result = runner.invoke(app, ["train", str(spec), "--synthetic", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"{spec}:8:84: error: output 'logits' has target: index, so it scores each row against the "
        "batch's rows, but its shape is (batch, 8), not (batch, batch)\n"
        "    logits: {loss: {type: SparseCategoricalCrossentropy, from_logits: true}, target: index}\n"
        "                                                                                     ^~~~~\n"
        "  hint: make it the similarity of every row with every other, e.g. matmul with a transpose\n"
        "1 error\n"
    )
    assert not (tmp_path / "run").exists()

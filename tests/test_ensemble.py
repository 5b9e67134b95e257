"""`graphspec ensemble`: weights fitted on one part of the validation data and scored on the
other, the saved ensemble loaded by plain Keras, members from a study, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec import ensemble
from graphspec.cli import app
from graphspec.keras.search import save_arrays, synthetic_arrays
from graphspec.keras.train import DataSource, train
from graphspec.tune import open_storage

runner = CliRunner()
SPEC = """\
graphspec: 1
name: member
params: {hidden: 16, classes: 4}
inputs:
  x: {shape: [12]}
layers:
  h: {type: Dense, units: "${hidden}", activation: relu, in: x}
  probs: {type: Dense, units: "${classes}", activation: softmax, in: h}
outputs:
  probs: {loss: categorical_crossentropy, metrics: [accuracy]}
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
train: {epochs: 6, batch_size: 32}
"""


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Three differing models (widths and seeds) trained on one teacher's samples long enough to
    overfit each in its own way, and validation samples from the same teacher."""
    folder = tmp_path_factory.mktemp("ensemble")
    spec = folder / "member.yaml"
    spec.write_text(SPEC)
    arrays = synthetic_arrays(graphspec.load(spec, ["hidden=32"]), kind="teacher", samples=1400, seed=7)
    save_arrays({k: v[:600] for k, v in arrays.items()}, folder / "train.npz")
    save_arrays({k: v[600:] for k, v in arrays.items()}, folder / "val.npz")
    runs = []
    for i, (hidden, seed) in enumerate([(32, 1), (48, 2), (64, 3)]):
        keras.backend.clear_session()
        loaded = graphspec.load(spec, [f"hidden={hidden}", f"train.seed={seed}", "train.epochs=20"])
        result = train(loaded, DataSource(data=folder / "train.npz"), out=folder / f"run{i}", verbose=0)
        runs.append(result.run_dir)
    keras.backend.clear_session()
    return folder, runs


def _ensemble(members, method: str, out: Path, *extra: str):
    folder, runs = members
    result = runner.invoke(
        app,
        [
            "ensemble",
            *map(str, runs),
            "--data",
            str(folder / "val.npz"),
            "--method",
            method,
            "--out",
            str(out),
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "ensemble.json").read_text())


@pytest.mark.parametrize("method", ["caruana", "nelder-mead"])
def test_the_ensemble_scores_at_least_the_best_member_on_held_out_data(members, method, tmp_path):
    result, record = _ensemble(members, method, tmp_path / "out")
    held = record["held_out"]
    assert held["samples"] == 400 and record["fit_samples"] == 400
    assert held["ensemble"] <= min(held["members"])
    weights = np.array(record["weights"])
    assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0)
    assert np.count_nonzero(weights > 1e-3) >= 2, "averaging should use more than one member here"
    # The report names each member with its weight and score, then the ensemble.
    lines = result.output.splitlines()
    assert lines[0] == "held-out loss (lower is better) on 400 samples; weights fitted on 400:"
    for run, weight, score, line in zip(members[1], weights, held["members"], lines[2:5], strict=True):
        assert line.split() == [str(run), f"{weight:.3f}", f"{score:.5g}"]
    assert lines[5].split() == ["ensemble", "1.000", f"{held['ensemble']:.5g}"]


def test_the_saved_ensemble_loads_in_plain_keras_and_predicts_the_weighted_average(members, tmp_path):
    folder, runs = members
    _, record = _ensemble(members, "caruana", tmp_path / "out", "--metric", "accuracy")
    assert record["score"] == "accuracy" and record["goal"] == "maximize"
    x = np.load(folder / "val.npz")["x"][:50]
    np.save(tmp_path / "x.npy", x)
    # A fresh process that imports Keras only: no graphspec, no custom objects.
    code = (
        "import sys, numpy as np, keras; m = keras.models.load_model(sys.argv[1]); "
        "np.save(sys.argv[3], m.predict({'x': np.load(sys.argv[2])}, verbose=0)['probs'])"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    files = [str(tmp_path / "out" / "ensemble.keras"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]
    subprocess.run([sys.executable, "-c", code, *files], check=True, env=env, cwd=tmp_path)
    loaded = np.load(tmp_path / "y.npy")
    expected = sum(
        w * keras.models.load_model(run / "model.keras").predict({"x": x}, verbose=0)["probs"]
        for w, run in zip(record["weights"], runs, strict=True)
    )
    np.testing.assert_allclose(loaded, expected, atol=1e-5)
    in_process = keras.models.load_model(tmp_path / "out" / "ensemble.keras")
    np.testing.assert_allclose(in_process.predict({"x": x}, verbose=0)["probs"], loaded, atol=1e-6)


def test_members_come_from_the_best_trials_of_a_study(members, tmp_path):
    _, runs = members
    storage = open_storage(str(tmp_path / "study.log"))
    study = optuna.create_study(study_name="s", storage=storage, direction="minimize")
    for value, run in zip([0.5, 0.2, 0.9], runs, strict=True):
        trial = study.ask()
        trial.set_user_attr("run_dir", str(run))
        study.tell(trial, value)
    assert ensemble.members_from_study(str(tmp_path / "study.log"), None, 2) == [runs[1], runs[0]]
    result = runner.invoke(
        app, ["ensemble", "--study", str(tmp_path / "study.log"), "--study-name", "t", "--data", "x.npz"]
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[:2] == [
        f"error: storage {tmp_path / 'study.log'} holds no study 't'",
        "  hint: its studies: s",
    ]


def test_runs_whose_outputs_do_not_match_are_an_error(members, tmp_path):
    folder, runs = members
    other = graphspec.load(folder / "member.yaml", ["classes=3", "train.epochs=1"])
    save_arrays(synthetic_arrays(other, kind="random", samples=32, seed=0), tmp_path / "three.npz")
    odd = train(other, DataSource(data=tmp_path / "three.npz"), out=tmp_path / "odd", verbose=0).run_dir
    keras.backend.clear_session()
    result = runner.invoke(
        app,
        [
            "ensemble",
            str(runs[0]),
            str(odd),
            "--data",
            str(folder / "val.npz"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"error: run {odd}: output 'probs' has shape [3], and run {runs[0]}'s has [4]"
    )
    assert not (tmp_path / "out").exists()


def test_bad_input_is_named(members, tmp_path):
    folder, runs = members
    cases = [
        (["--metric", "nope"], "error: unknown metric 'nope'"),
        (["--method", "average"], "error: unknown method 'average'"),
        ([str(tmp_path)], f"error: {tmp_path} is not a run directory: it has no model.keras"),
    ]
    for extra, message in cases:
        args = [str(runs[0]), str(runs[1])] + [a for a in extra if a.startswith("/")]
        options = [a for a in extra if not a.startswith("/")]
        result = runner.invoke(
            app,
            ["ensemble", *args, "--data", str(folder / "val.npz"), *options, "--out", str(tmp_path / "out")],
        )
        assert result.exit_code == 2, (extra, result.output)
        assert result.stderr.splitlines()[0] == message
        assert not (tmp_path / "out").exists()


def test_greedy_selection_starts_from_the_best_member_and_adds_with_replacement():
    target = np.array([0.75, 0.25, 0.0])

    def score(weights):
        return float(np.sum((weights - target) ** 2))

    weights = ensemble.caruana(score, 3, iterations=20)
    np.testing.assert_allclose(weights, target)
    # One round is the best single member.
    np.testing.assert_allclose(ensemble.caruana(score, 3, iterations=1), [1.0, 0.0, 0.0])


def test_nelder_mead_finds_non_negative_weights_summing_to_one():
    target = np.array([0.5, 0.3, 0.2])
    weights = ensemble.nelder_mead(lambda w: float(np.sum((w - target) ** 2)), 3)
    assert weights.sum() == pytest.approx(1.0) and np.all(weights >= 0)
    np.testing.assert_allclose(weights, target, atol=1e-3)


def test_members_whose_spec_gives_a_structure_are_averaged_by_output_name(tmp_path):
    spec = tmp_path / "listed.yaml"
    spec.write_text(
        SPEC.replace("train: {epochs: 6, batch_size: 32}", "train: {epochs: 2, batch_size: 32}")
        + "structure: {inputs: [x], outputs: probs}\n"
    )
    arrays = synthetic_arrays(graphspec.load(spec), kind="teacher", samples=200, seed=5)
    save_arrays(arrays, tmp_path / "data.npz")
    runs = []
    for seed in (1, 2):
        keras.backend.clear_session()
        loaded = graphspec.load(spec, [f"train.seed={seed}"])
        runs.append(
            train(loaded, DataSource(data=tmp_path / "data.npz"), out=tmp_path / f"r{seed}", verbose=0)
        )
    # Each run keeps its model in the spec's structure: a list in, one tensor out.
    saved = keras.models.load_model(runs[0].model_path)
    assert np.asarray(saved.predict([arrays["x"][:3]], verbose=0)).shape == (3, 4)
    result = runner.invoke(
        app,
        [
            "ensemble",
            *(str(r.run_dir) for r in runs),
            "--data",
            str(tmp_path / "data.npz"),
            "--out",
            str(tmp_path / "e"),
        ],
    )
    assert result.exit_code == 0, result.output
    from graphspec.keras.ensemble import load_members

    members = load_members([r.run_dir for r in runs])
    weights = json.loads((tmp_path / "e" / "ensemble.json").read_text())["weights"]
    averaged = keras.models.load_model(tmp_path / "e" / "ensemble.keras").predict(
        {"x": arrays["x"][:3]}, verbose=0
    )
    expected = sum(
        w * m.model.predict({"x": arrays["x"][:3]}, verbose=0)["probs"]
        for w, m in zip(weights, members, strict=True)
    )
    np.testing.assert_allclose(averaged["probs"], expected, rtol=1e-5, atol=1e-6)

"""`graphspec tune`: a search on synthetic teacher data, pruning, resuming a killed study, two
workers sharing one storage, the end report, and bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import keras
import optuna
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec import tune as tune_module
from graphspec.cli import app
from graphspec.keras.train import DataSource
from graphspec.tune import open_storage, tune

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
SPEC = """\
graphspec: 1
name: tiny
params: {hidden: 16}
inputs:
  x: {shape: [16]}
layers:
  h: {type: Dense, units: "${hidden}", activation: relu, in: x}
  probs: {type: Dense, units: 4, activation: softmax, in: h}
outputs:
  probs: {loss: categorical_crossentropy, metrics: [accuracy]}
compile:
  optimizer: {type: Adam, learning_rate: 0.001}
train: {epochs: EPOCHS, batch_size: 32, samples: 256, validation_split: 0.25}
search:
  metric: val_loss
  trials: 8
  seed: 0
  pruner: PRUNER
  params:
    hidden: {type: int, low: 4, high: 64, log: true}
    compile.optimizer.learning_rate: {type: float, low: 1.0e-5, high: 3.0e-2, log: true}
"""
States = optuna.trial.TrialState
FINISHED = (States.COMPLETE, States.PRUNED)


@pytest.fixture(autouse=True)
def _fresh_keras():
    yield
    keras.backend.clear_session()


def _spec(tmp_path: Path, epochs: int = 4, pruner: str = "{type: median, n_startup_trials: 2}") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SPEC.replace("EPOCHS", str(epochs)).replace("PRUNER", pruner))
    return path


def _study(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=open_storage(str(folder / "study.log")))


def _finished(folder: Path) -> list[optuna.trial.FrozenTrial]:
    if not (folder / "study.log").exists():
        return []
    try:
        return _study(folder).get_trials(states=FINISHED)
    except KeyError:  # the study is not created yet
        return []


def _worker(spec: Path, folder: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "graphspec",
            "tune",
            str(spec),
            "--synthetic",
            "--out",
            str(folder),
            "--quiet",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_search_beats_its_median_trial_prunes_and_reports(tmp_path):
    spec, folder = _spec(tmp_path), tmp_path / "tune"
    result = tune(spec, DataSource(synthetic=True), out=folder, progress=False)

    study = _study(folder)
    trials = study.get_trials()
    assert len(trials) == 8 and all(t.state in FINISHED for t in trials)
    # Every finished trial's score: a complete trial's value, a pruned one's last epoch.
    scores = [t.value if t.state == States.COMPLETE else t.intermediate_values[t.last_step] for t in trials]
    assert study.best_value < statistics.median(scores)
    assert result.best_number == study.best_trial.number and result.best_value == study.best_value

    # Pruning stopped at least one trial before its last epoch, and its run says so.
    pruned = [t for t in trials if t.state == States.PRUNED]
    assert pruned and all(len(t.intermediate_values) < 4 for t in pruned)
    first = pruned[0]
    record = json.loads((folder / "trials" / f"{first.number:04d}" / "trial.json").read_text())
    assert record["state"] == "pruned" and record["epochs"] == len(first.intermediate_values)
    history = json.loads((folder / "trials" / f"{first.number:04d}" / "history.json").read_text())
    assert len(history["loss"]) == len(first.intermediate_values)

    # Each trial kept a run directory whose spec is the spec with the trial's values applied.
    for t in trials:
        run = folder / "trials" / f"{t.number:04d}"
        assert Path(t.user_attrs["run_dir"]) == run.resolve()
        resolved = graphspec.load(run / "spec.yaml").spec
        assert resolved.layers["h"].args["units"] == t.params["hidden"]
        assert resolved.compile.optimizer.args["learning_rate"] == pytest.approx(
            t.params["compile.optimizer.learning_rate"]
        )
        assert json.loads((run / "trial.json").read_text())["params"] == t.params

    # The best spec stands alone: no params or search left, the best values in place; it builds.
    best = graphspec.load(folder / "best.yaml")
    assert best.spec.search is None and best.spec.params == {}
    assert best.spec.layers["h"].args["units"] == study.best_params["hidden"]
    model = best.build()
    hidden = study.best_params["hidden"]
    assert model.count_params() == 16 * hidden + hidden + hidden * 4 + 4

    with open(folder / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["number"]) for r in rows] == [t.number for t in trials]
    assert {r["state"] for r in rows} == {"complete", "pruned"}
    for name in ("history.png", "importances.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_killed_study_resumes_losing_at_most_the_running_trial(tmp_path):
    spec, folder = _spec(tmp_path, epochs=6, pruner="none"), tmp_path / "tune"
    worker = _worker(spec, folder)
    try:
        deadline = time.monotonic() + 120
        while len(_finished(folder)) < 2 and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.poll() is None, worker.communicate()[1][-2000:]
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    before = {t.number: t.value for t in _finished(folder)}
    assert 2 <= len(before) < 8

    result = runner.invoke(app, ["tune", "--resume", str(folder), "--quiet"])
    assert result.exit_code == 0, result.output
    trials = _study(folder).get_trials()
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == 8
    # The trials finished before the kill are kept as they were; at most one was lost.
    assert {t.number: t.value for t in finished if t.number in before} == before
    failed = [t for t in trials if t.state == States.FAIL]
    assert len(failed) <= 1 and all(t.user_attrs["error"] == "its worker process died" for t in failed)
    assert not any(t.state == States.RUNNING for t in trials)
    # Every finished trial has its run directory; nothing half-written is left.
    assert sorted(p.name for p in (folder / "trials").iterdir()) == [f"{t.number:04d}" for t in finished]


def test_two_workers_share_one_storage(tmp_path):
    spec, folder = _spec(tmp_path, epochs=3, pruner="none"), tmp_path / "tune"
    workers = [_worker(spec, folder, "--trials", "6") for _ in range(2)]
    for worker in workers:
        _, stderr = worker.communicate(timeout=240)
        assert worker.returncode == 0, stderr[-2000:]
    trials = _study(folder).get_trials()
    finished = [t for t in trials if t.state in FINISHED]
    # Six wanted; a worker may start one more while the other finishes the sixth.
    assert 6 <= len(finished) <= 7 and len(finished) == len(trials)
    assert {t.user_attrs["worker"].split(":")[1] for t in trials} == {str(w.pid) for w in workers}
    numbers = [t.number for t in trials]
    assert len(set(numbers)) == len(numbers)
    runs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(runs)) == len(runs)
    for t in trials:
        assert json.loads((Path(t.user_attrs["run_dir"]) / "trial.json").read_text())["trial"] == t.number


def test_a_storage_that_cannot_be_opened_is_an_error_naming_it(tmp_path):
    spec, folder = _spec(tmp_path), tmp_path / "tune"
    result = runner.invoke(
        app,
        [
            "tune",
            str(spec),
            "--synthetic",
            "--out",
            str(folder),
            "--storage",
            "sqlite:////nonexistent/folder/study.db",
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "error: cannot open storage 'sqlite:////nonexistent/folder/study.db': "
        "(sqlite3.OperationalError) unable to open database file"
    )
    assert not folder.exists()


def test_a_metric_the_model_does_not_log_is_an_error_before_any_trial(tmp_path):
    # `val_auc_7` reads like a Keras metric name (`auc` with a counter), so only the model can
    # say it is not logged: it is asked before the study is made.
    spec = tmp_path / "auc.yaml"
    spec.write_text(
        _spec(tmp_path)
        .read_text()
        .replace("metrics: [accuracy]", "metrics: [{type: AUC}]")
        .replace("metric: val_loss", "metric: val_auc_7\n  goal: maximize")
    )
    folder = tmp_path / "tune"
    result = runner.invoke(app, ["tune", str(spec), "--synthetic", "--out", str(folder)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"{spec}:15:11: error: search.metric 'val_auc_7' is not a metric this model logs"
    )
    assert result.stderr.splitlines()[3] == "  hint: it logs: auc, loss, val_auc, val_loss"
    assert not folder.exists()


def test_a_finished_study_is_left_intact_by_bad_input(tmp_path):
    spec, folder = _spec(tmp_path, epochs=2, pruner="none"), tmp_path / "tune"
    assert (
        runner.invoke(
            app, ["tune", str(spec), "--synthetic", "--out", str(folder), "--trials", "2", "-q"]
        ).exit_code
        == 0
    )
    before = [(t.number, t.state, t.value) for t in _study(folder).get_trials()]
    settings = (folder / "tune.json").read_text()

    other = runner.invoke(app, ["tune", str(spec), "--synthetic", "--out", str(folder), "--set", "hidden=8"])
    assert other.exit_code == 2
    assert other.stderr.splitlines()[0] == (
        f"error: {folder} holds a search of another spec, other overrides, search or data than this one"
    )
    storage = runner.invoke(
        app,
        [
            "tune",
            str(spec),
            "--synthetic",
            "--out",
            str(folder),
            "--storage",
            str(tmp_path / "elsewhere.log"),
        ],
    )
    assert storage.exit_code == 2
    assert storage.stderr.splitlines()[0] == (
        f"error: {folder} holds a study in storage '{folder / 'study.log'}', "
        f"not '{tmp_path / 'elsewhere.log'}'"
    )
    val = runner.invoke(
        app,
        [
            "tune",
            str(spec),
            "--synthetic",
            "--set",
            "train.validation_split=0",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert val.exit_code == 2
    assert val.stderr.splitlines()[0] == (
        f"{spec}:15:11: error: search.metric 'val_loss' is measured on "
        "validation data, and this search has none"
    )
    assert [(t.number, t.state, t.value) for t in _study(folder).get_trials()] == before
    assert (folder / "tune.json").read_text() == settings


@pytest.mark.parametrize(
    "sampler, pruner, classes",
    [
        ("tpe", "median", ("TPESampler", "MedianPruner")),
        ("random", "hyperband", ("RandomSampler", "HyperbandPruner")),
        ("qmc", "none", ("QMCSampler", "NopPruner")),
        ("cmaes", "{type: median, n_warmup_steps: 2}", ("CmaEsSampler", "MedianPruner")),
        ("{type: tpe, n_startup_trials: 3}", "median", ("TPESampler", "MedianPruner")),
    ],
)
def test_samplers_and_pruners_by_name(tmp_path, sampler, pruner, classes):
    spec = _spec(tmp_path, pruner=pruner)
    spec.write_text(spec.read_text().replace("  seed: 0\n", f"  seed: 0\n  sampler: {sampler}\n"))
    study = tune_module._study(graphspec.load(spec), open_storage(str(tmp_path / "s.log")), "s", 0)
    assert (type(study.sampler).__name__, type(study.pruner).__name__) == classes


def test_a_grid_search_runs_each_combination_once(tmp_path):
    spec = _spec(tmp_path, epochs=1, pruner="none")
    spec.write_text(
        spec.read_text()
        .replace("  seed: 0\n", "  seed: 0\n  sampler: grid\n")
        .replace("{type: int, low: 4, high: 64, log: true}", "{type: int, low: 4, high: 8, step: 4}")
        .replace(
            "{type: float, low: 1.0e-5, high: 3.0e-2, log: true}",
            "{type: categorical, choices: [0.001, 0.01]}",
        )
    )
    result = tune(spec, DataSource(synthetic=True), out=tmp_path / "tune", trials=10, progress=False)
    assert result.counts["complete"] == 4
    combinations = {tuple(t.params.values()) for t in _study(tmp_path / "tune").get_trials()}
    assert combinations == {(4, 0.001), (4, 0.01), (8, 0.001), (8, 0.01)}


def test_the_best_spec_of_a_spec_with_a_nested_spec_stands_alone(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "encoder.yaml").write_text("""\
graphspec: 1
name: encoder
params: {width: 8}
inputs: {x: {shape: [16]}}
layers: {code: {type: Dense, units: ${width}, activation: relu, in: x}}
outputs: {code: {}}
""")
    spec = tmp_path / "specs" / "outer.yaml"
    spec.write_text(
        SPEC.replace("name: tiny", "name: outer")
        .replace("EPOCHS", "1")
        .replace("PRUNER", "none")
        .replace(
            '  h: {type: Dense, units: "${hidden}", activation: relu, in: x}',
            "  h: {spec: encoder.yaml, params: {width: 12}, in: x}",
        )
        .replace("    hidden: {type: int, low: 4, high: 64, log: true}\n", "")
    )
    tune(spec, DataSource(synthetic=True), out=tmp_path / "tune", trials=2, progress=False)
    best = graphspec.load(tmp_path / "tune" / "best.yaml")
    assert best.nested["h"].spec.layers["code"].args["units"] == 12
    assert best.build().count_params() == graphspec.load(spec).build().count_params()

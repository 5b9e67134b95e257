"""`graphspec tune --data` on a folder of class subfolders of images and on a CSV table: every
trial trains through `train` on the same data and records its classes; bad data is refused
before trial 0; the study's digest follows the data's files."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest
from PIL import Image
from typer.testing import CliRunner

from graphspec.cli import app
from graphspec.keras.train import DataSource
from graphspec.tune import open_storage, tune

runner = CliRunner()

IMAGE_SPEC = """\
graphspec: 1
name: pictures
params: {hidden: 8}
inputs:
  image: {shape: [4, 4, 3]}
layers:
  flat: {type: Flatten, in: image}
  h: {type: Dense, units: "${hidden}", activation: relu, in: flat}
  label: {type: Dense, units: 2, activation: softmax, in: h}
outputs:
  label: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}
train: {epochs: 2, batch_size: 4, validation_split: 0.25, seed: 0}
search:
  metric: val_loss
  trials: 2
  seed: 0
  params:
    hidden: {type: int, low: 2, high: 16}
"""

TABLE_SPEC = """\
graphspec: 1
name: rows
params: {hidden: 8}
inputs:
  features: {shape: [3]}
layers:
  h: {type: Dense, units: "${hidden}", activation: relu, in: features}
  kind: {type: Dense, units: 3, activation: softmax, in: h}
outputs:
  kind: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}
data:
  inputs:
    features: {columns: "f*"}
train: {epochs: 2, batch_size: 4, validation_split: 0.25, seed: 0}
search:
  metric: val_accuracy
  trials: 2
  seed: 0
  params:
    hidden: {type: int, low: 2, high: 16}
"""


@pytest.fixture(autouse=True)
def _fresh_keras():
    yield
    keras.backend.clear_session()


def _images(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 255, size=(4, 4, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(root / name / f"{i}.png")
    return root


def _csv(path: Path, rows: int = 24) -> Path:
    rng = np.random.default_rng(1)
    lines = ["f0,f1,f2,kind"]
    for i in range(rows):
        values = rng.normal(size=3)
        lines.append(",".join(f"{v:.4f}" for v in values) + f",{['red', 'green', 'blue'][i % 3]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _trials(folder: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=open_storage(str(folder / "study.log")))
    return study.get_trials()


def test_a_study_on_a_png_folder_trains_each_trial_on_it_and_records_its_classes(tmp_path):
    spec = tmp_path / "pictures.yaml"
    spec.write_text(IMAGE_SPEC)
    data, folder = _images(tmp_path / "png"), tmp_path / "tune"
    result = tune(spec, DataSource(data=data), out=folder, progress=False)

    trials = _trials(folder, "pictures")
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert result.best_spec is not None and result.best_spec.is_file()
    for trial in trials:
        run = Path(trial.user_attrs["run_dir"])
        assert json.loads((run / "classes.json").read_text()) == {"label": ["cat", "dog"]}
        assert json.loads((run / "overrides.json").read_text())["data"] == str(data.resolve())
        # The trial's value is its run's last validation loss, as train logged it.
        history = json.loads((run / "history.json").read_text())
        assert trial.value == pytest.approx(history["val_loss"][-1])
    settings = json.loads((folder / "tune.json").read_text())
    assert settings["source"] == {"data": str(data.resolve()), "val_data": None}


def test_a_study_on_a_csv_table_with_validation_data_runs_through_the_cli(tmp_path):
    spec = tmp_path / "rows.yaml"
    spec.write_text(TABLE_SPEC.replace("validation_split: 0.25", "validation_split: 0"))
    table, held = _csv(tmp_path / "rows.csv"), _csv(tmp_path / "held.csv", rows=9)
    folder = tmp_path / "tune"
    result = runner.invoke(
        app,
        ["tune", str(spec), "--data", str(table), "--val-data", str(held), "--out", str(folder), "-q"],
    )
    assert result.exit_code == 0, result.output
    trials = _trials(folder, "rows")
    assert len(trials) == 2 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for trial in trials:
        run = Path(trial.user_attrs["run_dir"])
        # Labels are sorted as text: the class names any predict of this run will use.
        assert json.loads((run / "classes.json").read_text()) == {"kind": ["blue", "green", "red"]}
        history = json.loads((run / "history.json").read_text())
        assert trial.value == pytest.approx(history["val_accuracy"][-1])
        assert len(history["val_accuracy"]) == 2


def test_a_misspelled_column_is_refused_before_trial_0_and_nothing_is_written(tmp_path):
    spec = tmp_path / "rows.yaml"
    spec.write_text(TABLE_SPEC.replace('columns: "f*"', "columns: [f0, f1, f3]"))
    table, folder = _csv(tmp_path / "rows.csv"), tmp_path / "tune"
    result = runner.invoke(app, ["tune", str(spec), "--data", str(table), "--out", str(folder), "-q"])
    assert result.exit_code == 2, result.output
    assert f"table {table} has no column 'f3' for input 'features'" in result.output
    assert "trial 0" not in result.output
    assert not folder.exists()


def test_a_bad_folder_is_refused_before_trial_0(tmp_path):
    spec = tmp_path / "pictures.yaml"
    spec.write_text(IMAGE_SPEC)
    data = _images(tmp_path / "png")
    (data / "bird").mkdir()  # a class folder with no examples
    folder = tmp_path / "tune"
    result = runner.invoke(app, ["tune", str(spec), "--data", str(data), "--out", str(folder), "-q"])
    assert result.exit_code == 2, result.output
    assert f"class folder {data / 'bird'} has no image or text files" in result.output
    assert not folder.exists()


def test_more_classes_than_units_is_refused_before_trial_0(tmp_path):
    spec = tmp_path / "pictures.yaml"
    spec.write_text(IMAGE_SPEC)
    data = _images(tmp_path / "png")
    (data / "bird").mkdir()
    (data / "bird" / "0.png").write_bytes((data / "cat" / "0.png").read_bytes())
    folder = tmp_path / "tune"
    result = runner.invoke(app, ["tune", str(spec), "--data", str(data), "--out", str(folder), "-q"])
    assert result.exit_code == 2, result.output
    assert "output 'label' has 2 units" in result.output and "has 3 classes" in result.output
    assert not folder.exists()


def test_the_digest_follows_the_files_of_a_folder(tmp_path):
    spec = tmp_path / "pictures.yaml"
    spec.write_text(IMAGE_SPEC.replace("trials: 2", "trials: 1"))
    data, folder = _images(tmp_path / "png"), tmp_path / "tune"
    tune(spec, DataSource(data=data), out=folder, progress=False)
    digest = json.loads((folder / "tune.json").read_text())["digest"]
    # The same files: the study is resumed (it holds its trial already, so none runs).
    assert tune(spec, DataSource(data=data), out=folder, progress=False).counts["complete"] == 1
    # One more image: another search, which the folder refuses.
    (data / "dog" / "8.png").write_bytes((data / "dog" / "0.png").read_bytes())
    result = runner.invoke(app, ["tune", str(spec), "--data", str(data), "--out", str(folder), "-q"])
    assert result.exit_code == 2, result.output
    assert "holds a search of another spec, other overrides, search or data" in result.output
    assert json.loads((folder / "tune.json").read_text())["digest"] == digest


def test_each_trial_reads_the_folder_on_a_data_files_budget_of_its_own(tmp_path):
    # The folder lists 2 class folders and 16 images: 18 entries, charged when it is bound
    # before trial 0 and again by each trial's train. A limit of 30 holds one listing, not two.
    spec = tmp_path / "pictures.yaml"
    spec.write_text(IMAGE_SPEC)
    data, folder = _images(tmp_path / "png"), tmp_path / "tune"
    args = ["tune", str(spec), "--data", str(data), "--out", str(folder), "-q"]
    result = runner.invoke(app, ["--limit", "data-files=30", *args])
    assert result.exit_code == 0, result.output
    assert len(_trials(folder, "pictures")) == 2
    refused = runner.invoke(
        app, ["--limit", "data-files=17", *args[:-3], "--out", str(tmp_path / "t2"), "-q"]
    )
    assert refused.exit_code == 2, refused.output
    assert "data-files" in refused.output and "trial 0" not in refused.output

"""`graphspec ensemble --data` on a folder of class subfolders of images and on a CSV table:
the members' predictions, read batch by batch, scored as the same predictions made by hand
with `model.predict`; labels checked against the runs' recorded classes; `predict -o` to Parquet
from a run trained on a table."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.ensemble import split
from graphspec.keras.train import DataSource, train

runner = CliRunner()

IMAGE_SPEC = """\
graphspec: 1
name: pictures
params: {hidden: 8}
inputs:
  image: {shape: [4, 4, 3]}
layers:
  scaled: {type: Rescaling, scale: 0.00392156862745098, in: image}
  flat: {type: Flatten, in: scaled}
  h: {type: Dense, units: "${hidden}", activation: relu, in: flat}
  label: {type: Dense, units: 2, activation: softmax, in: h}
outputs:
  label: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}
train: {epochs: 3, batch_size: 4, seed: 0}
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
train: {epochs: 3, batch_size: 4, seed: 0}
"""
KINDS = ["red", "green", "blue"]


@pytest.fixture(autouse=True)
def _fresh_keras():
    yield
    keras.backend.clear_session()


def _images(root: Path, classes: tuple[str, ...] = ("cat", "dog"), count: int = 11) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 128, size=(4, 4, 3), dtype=np.uint8) + np.uint8(100 * c)
            Image.fromarray(pixels, "RGB").save(root / name / f"{i:02d}.png")
    return root


def _csv(path: Path, rows: int, labels: list[str] = KINDS) -> Path:
    rng = np.random.default_rng(len(labels) + rows)
    lines = ["f0,f1,f2,kind"]
    for i in range(rows):
        label = i % len(labels)
        values = rng.normal(size=3) + label
        lines.append(",".join(f"{v:.4f}" for v in values) + f",{labels[label]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _runs(spec: Path, data: Path, folder: Path) -> list[Path]:
    runs = []
    for i, (hidden, seed) in enumerate([(8, 1), (12, 2)]):
        keras.backend.clear_session()
        loaded = graphspec.load(spec, [f"hidden={hidden}", f"train.seed={seed}"])
        runs.append(train(loaded, DataSource(data=data), out=folder / f"run{i}", verbose=0).run_dir)
    keras.backend.clear_session()
    return runs


@pytest.fixture(scope="module")
def picture_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    spec = folder / "pictures.yaml"
    spec.write_text(IMAGE_SPEC)
    data = _images(folder / "png")
    return folder, data, _runs(spec, data, folder)


@pytest.fixture(scope="module")
def table_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rows")
    spec = folder / "rows.yaml"
    spec.write_text(TABLE_SPEC)
    data = _csv(folder / "rows.csv", 30)
    return folder, data, _runs(spec, data, folder)


def _by_hand(runs: list[Path], x: dict, y: np.ndarray, record: dict, output: str) -> None:
    """The record's held-out scores against the members' `model.predict` on `x`, averaged with
    the record's weights and scored with Keras's loss on the same held-out rows."""
    predicted = [keras.models.load_model(run / "model.keras").predict(x, verbose=0)[output] for run in runs]
    _, held = split(len(y), record["holdout"], record["seed"])
    loss = keras.losses.SparseCategoricalCrossentropy()

    def scored(values: np.ndarray) -> float:
        return float(loss(y[held], values[held]))

    average = sum(w * p for w, p in zip(record["weights"], predicted, strict=True))
    assert record["held_out"]["samples"] == len(held)
    np.testing.assert_allclose(record["held_out"]["members"], [scored(p) for p in predicted], rtol=1e-5)
    np.testing.assert_allclose(record["held_out"]["ensemble"], scored(average), rtol=1e-5)
    # The saved ensemble predicts that average.
    saved = keras.models.load_model(Path(record["out"]) / "ensemble.keras")
    np.testing.assert_allclose(saved.predict(x, verbose=0)[output], average, atol=1e-5)


def _ensemble(runs: list[Path], data: Path, out: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["ensemble", *map(str, runs), "--data", str(data), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return {**json.loads((out / "ensemble.json").read_text()), "out": str(out)}


def test_an_ensemble_on_a_png_folder_scores_what_predict_by_hand_scores(picture_runs, tmp_path):
    folder, data, runs = picture_runs
    # Nelder-Mead: weights strictly between 0 and 1, so the average mixes both members.
    record = _ensemble(runs, data, tmp_path / "out", "--method", "nelder-mead", "--holdout", "0.4")
    assert record["held_out"]["samples"] + record["fit_samples"] == 22
    # The folder read by hand: class folders and files in name order, labels by class.
    files = [data / c / f"{i:02d}.png" for c in ("cat", "dog") for i in range(11)]
    x = {"image": np.stack([np.asarray(Image.open(f), dtype=np.float32) for f in files])}
    y = np.array([0] * 11 + [1] * 11)
    _by_hand(runs, x, y, record, "label")


def test_an_ensemble_on_a_csv_table_scores_what_predict_by_hand_scores(table_runs, tmp_path):
    folder, _, runs = table_runs
    held = _csv(tmp_path / "held.csv", 17)
    record = _ensemble(runs, held, tmp_path / "out", "--method", "nelder-mead")
    rows = np.genfromtxt(held, delimiter=",", skip_header=1, usecols=(0, 1, 2), dtype=np.float32)
    labels = np.genfromtxt(held, delimiter=",", skip_header=1, usecols=3, dtype=str)
    # The classes the runs recorded, sorted as text: blue, green, red.
    recorded = json.loads((runs[0] / "classes.json").read_text())["kind"]
    assert recorded == ["blue", "green", "red"]
    y = np.array([recorded.index(label) for label in labels])
    _by_hand(runs, {"features": rows}, y, record, "kind")


def test_a_label_no_run_was_trained_on_is_refused_and_nothing_is_written(table_runs, tmp_path):
    _, _, runs = table_runs
    held = _csv(tmp_path / "held.csv", 12, labels=["red", "green", "purple"])
    out = tmp_path / "out"
    result = runner.invoke(app, ["ensemble", *map(str, runs), "--data", str(held), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"{held}:4: label 'purple' of output 'kind' is not one of its classes" in result.output
    assert "the model knows: blue, green, red" in result.output
    assert not out.exists()


def test_members_trained_on_other_classes_are_refused(picture_runs, tmp_path):
    folder, data, runs = picture_runs
    other = _images(tmp_path / "png", ("cat", "fox"), count=4)
    keras.backend.clear_session()
    odd = train(
        graphspec.load(folder / "pictures.yaml"), DataSource(data=other), out=tmp_path / "odd", verbose=0
    )
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["ensemble", str(runs[0]), str(odd.run_dir), "--data", str(data), "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert (
        f"run {odd.run_dir} was trained with other classes of output 'label' than run {runs[0]}: "
        "[cat, fox] against [cat, dog]"
    ) in result.output
    assert not out.exists()


def test_predict_writes_parquet_of_a_table_run_as_model_predict_gives(table_runs, tmp_path):
    _, data, runs = table_runs
    out = tmp_path / "preds.parquet"
    result = runner.invoke(app, ["predict", str(runs[0]), "--data", str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pydict()
    assert list(table) == ["id", "kind_class", "kind[0]", "kind[1]", "kind[2]"]
    assert table["id"][:2] == [f"{data}:2", f"{data}:3"]
    rows = np.genfromtxt(data, delimiter=",", skip_header=1, usecols=(0, 1, 2), dtype=np.float32)
    expected = keras.models.load_model(runs[0] / "model.keras").predict({"features": rows}, verbose=0)["kind"]
    got = np.array([table[f"kind[{i}]"] for i in range(3)]).T
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert table["kind_class"] == [["blue", "green", "red"][i] for i in np.argmax(expected, axis=1)]
    # The CSV of the same run has the same header.
    csv_out = tmp_path / "preds.csv"
    assert (
        runner.invoke(app, ["predict", str(runs[0]), "--data", str(data), "-o", str(csv_out)]).exit_code == 0
    )
    assert csv_out.read_text().splitlines()[0].split(",") == list(table)

"""Callbacks from `train.callbacks`: each writes what it should, and bad ones fail before training."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.keras.callbacks import DeclarativeSchedule, build_callbacks
from graphspec.keras.train import DataSource, train

runner = CliRunner()

SPEC = """
graphspec: 1
name: cbtest
inputs: {x: {shape: [4]}}
layers:
  h: {type: Dense, units: 8, activation: relu, in: x}
  y: {type: Dense, units: 3, activation: softmax, in: h}
outputs:
  y: {loss: categorical_crossentropy, metrics: [accuracy]}
train:
  epochs: 3
  batch_size: 8
  seed: 0
  callbacks:
"""

EVERYTHING = """
    - {type: ModelCheckpoint, filepath: best.keras, save_best_only: true, monitor: val_loss}
    - {type: CSVLogger, filename: log.csv}
    - {type: LearningRateScheduler, schedule: {type: step, decay_rate: 0.5, decay_steps: 1}}
    - {type: TensorBoard, histogram_freq: 1}
    - {type: BackupAndRestore, backup_dir: backup}
    - {type: ActivationLogger}
"""


@pytest.fixture(autouse=True)
def _fresh_keras():
    yield
    keras.backend.clear_session()


def _spec(write_spec, callbacks: str) -> Path:
    text = SPEC + textwrap.indent(textwrap.dedent(callbacks).strip("\n"), "  ") + "\n"
    return write_spec(text)


def _arrays(count: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((count, 4)).astype("float32"),
        "y": np.eye(3, dtype="float32")[rng.integers(0, 3, count)],
    }


@pytest.fixture
def trained(write_spec, tmp_path):
    """A run with every callback, on .npz data whose first validation sample is known."""
    np.savez(tmp_path / "train.npz", **_arrays(32, 1))
    np.savez(tmp_path / "val.npz", **_arrays(8, 2))
    loaded = graphspec.load(_spec(write_spec, EVERYTHING))
    result = train(
        loaded,
        DataSource(data=tmp_path / "train.npz", val_data=tmp_path / "val.npz"),
        runs_root=tmp_path / "runs",
        verbose=0,
    )
    return result, tmp_path


def test_model_checkpoint_saves_the_best_model_in_the_run_directory(trained):
    result, _ = trained
    best = keras.models.load_model(result.run_dir / "best.keras")
    assert best.count_params() == keras.models.load_model(result.model_path).count_params()
    # Each checkpoint went through a temporary file renamed into place: none is left behind.
    assert not [p.name for p in result.run_dir.iterdir() if ".partial" in p.name]


def test_a_checkpoint_is_renamed_into_place_never_written_over_the_last(tmp_path):
    from graphspec.atomic import partial_path
    from graphspec.keras.callbacks import AtomicModelCheckpoint

    assert partial_path(tmp_path / "best.keras") == tmp_path / ".best.partial.keras"
    assert partial_path("w/e3.weights.h5") == Path("w/.e3.partial.weights.h5")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    checkpoint = AtomicModelCheckpoint(str(tmp_path / "m-{epoch}.keras"))
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 1.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-1.keras"]


def test_csv_logger_writes_one_row_per_epoch_matching_the_history(trained):
    result, _ = trained
    rows = (result.run_dir / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 4 and header[0] == "epoch"
    losses = [float(row.split(",")[header.index("loss")]) for row in rows[1:]]
    assert losses == pytest.approx(result.history["loss"])


def test_learning_rate_scheduler_follows_the_declared_schedule(trained):
    result, _ = trained
    assert result.history["learning_rate"] == pytest.approx([0.001, 0.0005, 0.00025])


def test_tensorboard_writes_event_files_with_weight_histograms(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, _ = trained
    logs = result.run_dir / "logs"
    assert {p.parent.name for p in logs.rglob("events.out.tfevents.*")} == {"train", "validation"}
    events = EventAccumulator(str(logs / "train"))
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"epoch_loss", "h/kernel/histogram", "y/bias/histogram"} <= tags
    assert len(events.Tensors("h/kernel/histogram")) == 3  # histogram_freq 1: every epoch


def test_activation_logger_saves_every_layers_activations_on_the_first_validation_sample(trained):
    result, tmp_path = trained
    files = sorted(p.name for p in (result.run_dir / "activations").iterdir())
    assert files == [f"activations_at_epoch_{epoch}.npz" for epoch in range(3)]
    final = keras.models.load_model(result.model_path)
    by_hand = keras.Model(final.input, {name: final.get_layer(name).output for name in ("h", "y")})
    sample = {"x": np.load(tmp_path / "val.npz")["x"][:1]}
    expected = by_hand.predict_on_batch(sample)
    with np.load(result.run_dir / "activations" / "activations_at_epoch_2.npz") as saved:
        assert set(saved.files) == {"h", "y"}
        for name in ("h", "y"):
            np.testing.assert_allclose(saved[name], expected[name], rtol=1e-5, atol=1e-6)
    with np.load(result.run_dir / "activations" / "activations_at_epoch_0.npz") as first:
        assert not np.allclose(first["y"], expected["y"])  # saved as training went, not at the end


def test_backup_and_restore_keeps_its_backup_inside_the_run_directory(write_spec, tmp_path):
    loaded = graphspec.load(_spec(write_spec, "- {type: BackupAndRestore, backup_dir: backup}"))
    model = loaded.build()
    run_dir = tmp_path / "runs" / "cbtest" / "20250101-000000"
    run_dir.mkdir(parents=True)
    (callback,) = build_callbacks(loaded, model, run_dir)
    assert isinstance(callback, keras.callbacks.BackupAndRestore)
    # Keras deletes this folder when training ends: it must be the run's own.
    assert Path(callback.backup_dir) == run_dir.resolve() / "backup"


def test_early_stopping_and_reduce_lr_on_plateau_act_with_keras_arguments_verbatim(write_spec, tmp_path):
    loaded = graphspec.load(
        _spec(
            write_spec,
            """
        - {type: EarlyStopping, monitor: loss, patience: 2, min_delta: 1000.0}
        - {type: ReduceLROnPlateau, monitor: loss, patience: 0, factor: 0.5, min_delta: 1000.0}
    """,
        ),
        ["train.epochs=10", "train.samples=16"],
    )
    history = train(loaded, DataSource(synthetic=True), runs_root=tmp_path, verbose=0).history
    # Never "improving" by 1000 after the first epoch: training stops after two epochs without
    # improvement (patience 2), and the rate halves at the end of each (logged as the next begins).
    assert len(history["loss"]) == 3
    assert history["learning_rate"] == pytest.approx([0.001, 0.001, 0.0005])


@pytest.mark.parametrize(
    "kind, keras_schedule",
    [
        (
            {"type": "step", "decay_rate": 0.5, "decay_steps": 3},
            keras.optimizers.schedules.ExponentialDecay(0.1, 3, 0.5, staircase=True),
        ),
        (
            {"type": "exponential", "decay_rate": 0.9, "decay_steps": 2},
            keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.9),
        ),
        (
            {"type": "cosine", "decay_steps": 10, "alpha": 0.1},
            keras.optimizers.schedules.CosineDecay(0.1, 10, alpha=0.1),
        ),
        (
            {"type": "cosine", "decay_steps": 10, "initial_learning_rate": 0.05},
            keras.optimizers.schedules.CosineDecay(0.05, 10),
        ),
    ],
)
def test_declarative_schedules_equal_keras_own_schedules_counted_in_epochs(kind, keras_schedule):
    schedule = DeclarativeSchedule(kind, default_rate=0.1)
    for epoch in range(14):
        assert schedule(epoch, 0.0) == pytest.approx(float(keras_schedule(epoch)), rel=1e-5), epoch


# --- bad callbacks: found before training, nothing written --------------------------------------


def _validate(write_spec, callbacks: str) -> str:
    path = _spec(write_spec, callbacks)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    return result.stderr.replace(str(path), "spec.yaml")


def test_a_callback_with_an_unknown_argument_is_named(write_spec):
    assert _validate(write_spec, "- {type: EarlyStopping, monitor: val_loss, patiense: 2}") == (
        "spec.yaml:14:46: error: callback EarlyStopping has no argument 'patiense'\n"
        "    - {type: EarlyStopping, monitor: val_loss, patiense: 2}\n"
        "                                               ^~~~~~~~\n"
        "  hint: did you mean 'patience'?\n"
        "1 error\n"
    )
    assert _validate(write_spec, "- {type: ActivationLogger, directori: acts}") == (
        "spec.yaml:14:30: error: callback ActivationLogger has no argument 'directori'\n"
        "    - {type: ActivationLogger, directori: acts}\n"
        "                               ^~~~~~~~~\n"
        "  hint: did you mean 'directory'?\n"
        "1 error\n"
    )


def test_schedules_are_checked_without_tensorflow(write_spec):
    assert _validate(write_spec, "- {type: LearningRateScheduler, schedule: step}") == (
        "spec.yaml:14:45: error: callback LearningRateScheduler: 'schedule' is a description, not code: "
        "write {type: step, decay_rate: 0.5, decay_steps: 10}\n"
        "    - {type: LearningRateScheduler, schedule: step}\n"
        "                                              ^~~~\n"
        "  hint: schedule types: step, exponential, cosine\n"
        "1 error\n"
    )
    cosin = "- {type: LearningRateScheduler, schedule: {type: cosin, decay_steps: 5}}"
    assert _validate(write_spec, cosin) == (
        "spec.yaml:14:52: error: callback LearningRateScheduler: unknown schedule type 'cosin'\n"
        "    - {type: LearningRateScheduler, schedule: {type: cosin, decay_steps: 5}}\n"
        "                                                     ^~~~~\n"
        "  hint: did you mean 'cosine'?\n"
        "1 error\n"
    )
    line = "- {type: LearningRateScheduler, schedule: {type: step, decay_rate: fast, every: 2}}"
    assert _validate(write_spec, line) == (
        "spec.yaml:14:35: error: callback LearningRateScheduler: schedule 'step' needs argument "
        "'decay_steps'\n"
        f"    {line}\n"
        "                                    ^~~~~~~~\n"
        "spec.yaml:14:70: error: callback LearningRateScheduler: schedule 'step': 'decay_rate' must be a "
        "number, got 'fast'\n"
        f"    {line}\n"
        "                                                                       ^~~~\n"
        "spec.yaml:14:76: error: callback LearningRateScheduler: schedule 'step' has no argument 'every'\n"
        f"    {line}\n"
        "                                                                             ^~~~~\n"
        "  hint: its arguments: initial_learning_rate, decay_rate, decay_steps\n"
        "3 errors\n"
    )
    code = textwrap.dedent("""
        import sys, graphspec
        try:
            graphspec.load(sys.argv[1])
        except graphspec.SpecErrors:
            pass
        print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
    """)
    path = _spec(write_spec, "- {type: LearningRateScheduler, schedule: {type: step}}")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert result.stdout == "[]\n", result.stderr


def _train_fails(write_spec, tmp_path, callbacks: str, *args: str) -> str:
    runs = tmp_path / "runs"
    result = runner.invoke(
        app, ["train", str(_spec(write_spec, callbacks)), "--synthetic", "--runs-dir", str(runs), *args]
    )
    assert result.exit_code == 2, result.stdout + result.stderr
    assert not any(p.is_file() for p in runs.rglob("*")) and not any(runs.rglob(".*partial*"))
    return result.stderr.replace(str(tmp_path / "spec.yaml"), "spec.yaml")


def test_the_activation_logger_needs_validation_data(write_spec, tmp_path):
    assert _train_fails(write_spec, tmp_path, "- {type: ActivationLogger}") == (
        "spec.yaml:14:5: error: callback ActivationLogger logs activations on the first validation sample, "
        "and this run has no validation data\n"
        "    - {type: ActivationLogger}\n"
        "      ^~~~~~~~~~~~~~~~~~~~~~~~\n"
        "  hint: set train.validation_split (--validation-split) or give --val-data\n"
        "1 error\n"
    )


def test_a_callback_keras_refuses_fails_before_training_and_leaves_no_run(write_spec, tmp_path):
    # validate refuses a file name without .keras (tests/test_argument_types.py); past its checks,
    # Keras refuses it when the callback is made, before training, and no run is left.
    from fixtures.agreement import without_validate_checks

    with without_validate_checks():
        stderr = _train_fails(write_spec, tmp_path, "- {type: ModelCheckpoint, filepath: model.txt}")
    assert stderr.startswith(
        "spec.yaml:14:5: error: callback ModelCheckpoint: Keras refused it: The filepath provided must "
        "end in `.keras` (Keras model format)."
    )
    assert stderr.endswith(
        "    - {type: ModelCheckpoint, filepath: model.txt}\n      ^" + "~" * 43 + "\n1 error\n"
    )

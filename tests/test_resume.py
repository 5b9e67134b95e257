"""Training survives SIGKILL: `graphspec train --resume RUN_DIR` continues from the last completed
epoch and ends at the same epoch count as an uninterrupted run."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from fixtures.killed import kill_after, train_process
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.keras.files import FileBatches
from graphspec.keras.train import DataSource, train

# Killed after 2 epochs, so 1 or 2 are left to resume: enough to show it continues, not restarts.
EPOCHS = 4


def test_a_run_killed_mid_training_resumes_to_the_same_epoch_count(tmp_path):
    run = tmp_path / "run"
    partial = tmp_path / ".run.partial"
    process = train_process(
        "specs/book_mlp.yaml",
        "--synthetic",
        "--epochs",
        str(EPOCHS),
        "--samples",
        "8000",
        "--batch-size",
        "16",
        "--seed",
        "3",
        "--out",
        str(run),
    )
    before = kill_after(process, partial)
    completed = len(before["epoch"])
    assert 2 <= completed < EPOCHS
    assert not run.exists()  # a killed run never stands where a finished one would
    assert (partial / "backup").is_dir()

    resumed = train_process("--resume", str(run))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == list(range(EPOCHS))
    # The epochs completed before the kill were kept, not trained again.
    assert history["loss"][:completed] == before["loss"][:completed]
    assert not partial.exists()
    assert not (run / "backup").exists()
    assert (run / "model.keras").is_file()
    assert json.loads((run / "overrides.json").read_text())["synthetic"] is True


def test_resume_of_a_finished_run_is_a_clear_error(tmp_path):
    (tmp_path / "done").mkdir()
    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "done")])
    assert result.exit_code == 2
    assert result.stderr == f"error: run {tmp_path / 'done'} finished: there is nothing to resume\n1 error\n"


def test_resume_takes_no_other_inputs(tmp_path):
    result = CliRunner().invoke(app, ["train", "specs/book_mlp.yaml", "--resume", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: --resume continues a run with the spec, overrides and data it started with\n"
    )


@pytest.mark.parametrize("where", ["final", "partial"])
def test_resume_of_nothing_says_so(tmp_path, where):
    target = tmp_path / ("run" if where == "final" else ".run.partial")
    result = CliRunner().invoke(app, ["train", "--resume", str(target)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: no interrupted run at {target}\n")


class _KillAfterFirstEpoch(keras.callbacks.Callback):
    """Stops the run as a kill would after its first epoch is backed up (Ctrl-C leaves the run)."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def test_a_resumed_npz_run_trains_on_the_batches_the_uninterrupted_run_did(write_spec, tmp_path, monkeypatch):
    spec = write_spec(
        """
        graphspec: 1
        name: tiny
        inputs: {x: {shape: [4]}}
        layers: {y: {type: Dense, units: 1, in: x}}
        outputs: {y: {loss: mse}}
        train: {epochs: 3, batch_size: 8, seed: 5, shuffle: true, validation_split: 0}
        """
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    np.savez(tmp_path / "d.npz", x=x, y=(x @ rng.normal(size=(4, 1))).astype("float32"))
    data = DataSource(data=tmp_path / "d.npz")
    served = []
    order_of = FileBatches.order_of
    monkeypatch.setattr(
        FileBatches, "order_of", lambda self, epoch: served.append(order_of(self, epoch)) or served[-1]
    )
    whole = train(graphspec.load(spec), data, out=tmp_path / "whole", verbose=0)
    # The epochs are read in the orders drawn from (seed, epoch), a new order each epoch, each
    # handed to tf.data whole.
    orders = [np.random.default_rng((5, epoch)).permutation(64) for epoch in range(3)]
    assert np.concatenate(served).tolist() == np.concatenate(orders).tolist()
    monkeypatch.undo()

    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(graphspec.load(spec), data, out=killed, verbose=0, extra_callbacks=[_KillAfterFirstEpoch()])
    assert json.loads((tmp_path / ".killed.partial" / "history.json").read_text())["epoch"] == [0]
    resumed = train_process("--resume", str(killed))  # a new process, as after a kill
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    # Epochs 2 and 3 saw the same batches in the same order: the same weights, step for step.
    weights = keras.saving.load_model(killed / "model.keras").get_weights()
    uninterrupted = keras.saving.load_model(whole.model_path)
    for mine, theirs in zip(weights, uninterrupted.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6)
    history = json.loads((killed / "history.json").read_text())
    assert history["loss"] == pytest.approx(whole.history["loss"], rel=1e-6)

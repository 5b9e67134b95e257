"""Training survives SIGKILL: `graphspec train --resume RUN_DIR` continues from the last completed
epoch and ends at the same epoch count as an uninterrupted run."""

from __future__ import annotations

import json

import pytest
from fixtures.killed import kill_after, train_process
from typer.testing import CliRunner

from graphspec.cli import app

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
        "20000",
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

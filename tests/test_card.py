"""`graphspec card RUN`: a Hugging Face-style MODEL_CARD.md from a finished run (issue 23)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from graphspec.cli import app

SPEC = """\
graphspec: 1
name: card_demo
doc: Scores <b>four</b> features | two classes.
inputs:
  x: {shape: [4], doc: four features}
  tag: {shape: [3], dtype: int32, range: [0, 5]}
layers:
  embed: {type: Embedding, input_dim: 5, output_dim: 2, in: tag}
  flat: {type: Flatten, in: embed}
  both: {type: Concatenate, in: [x, flat]}
  y: {type: Dense, units: 2, activation: softmax, in: both}
outputs: {y: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
train: {epochs: 2, batch_size: 4, samples: 16, validation_split: 0.25}
"""


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run of a spec committed to a git repository (its revision is then known)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the spec's revision cannot be recorded")
    repo = tmp_path_factory.mktemp("repo")
    (repo / "model.yaml").write_text(SPEC)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "model.yaml"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "spec"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout
    result = run("train", str(repo / "model.yaml"), "--synthetic", "--out", str(repo / "run"), "-q")
    assert result.exit_code == 0, result.output
    return repo / "run", commit.strip()


def test_the_card_gives_what_the_run_and_the_spec_say(trained):
    folder, commit = trained
    result = run("card", str(folder))
    assert result.exit_code == 0, result.output
    card = (folder / "MODEL_CARD.md").read_text()
    prints = json.loads((folder / "fingerprint.json").read_text())
    history = json.loads((folder / "history.json").read_text())
    assert card.startswith("---\nlibrary_name: keras\n")
    sections = [line for line in card.splitlines() if line.startswith("#")]
    assert sections == [
        "# Model Card for card_demo",
        "## Model Details",
        "### Model Description",
        "## Uses",
        "## Training Details",
        "### Training Data",
        "### Training Procedure",
        "## Evaluation",
        "### Results",
        "## Technical Specifications",
        "### Model Architecture and Objective",
        "## How to Get Started with the Model",
    ]
    assert prints["architecture"] in card and prints["training"] in card
    assert f"<code>model.yaml</code> at commit <code>{commit}</code>" in card
    assert "**Grants used:** none" in card
    # Shapes and dtypes of each input and output, and the parameters, counted by hand:
    # the embedding's 5*2, the dense layer's (4+6)*2+2.
    assert "| <code>x</code> | <code>(batch, 4)</code> | <code>float32</code> | four features |" in card
    assert "| <code>tag</code> | <code>(batch, 3)</code> | <code>int32</code> |" in card
    assert "| <code>y</code> | <code>(batch, 2)</code> | <code>float32</code> |" in card
    assert "**Parameters:** 32 (32 trainable, 0 non-trainable)" in card
    # The last epoch's metrics, by split.
    assert f"| training | <code>loss</code> | {history['loss'][-1]:.6g} |" in card
    assert f"| validation | <code>accuracy</code> | {history['val_accuracy'][-1]:.6g} |" in card
    # The spec's text is shown as written, never as HTML or as a table's bar.
    assert "Scores &lt;b&gt;four&lt;/b&gt; features \\| two classes." in card
    assert "<b>" not in card
    # How to serve it without Keras (README, Serving formats).
    assert "For a server without Keras, `graphspec export-model RUN --format FORMAT -o OUT` writes" in card
    if shutil.which("dot"):
        assert "![The architecture, drawn by graphspec plot](architecture.svg)" in card
        assert (folder / "architecture.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_a_folder_that_is_no_run_is_an_error_and_nothing_is_written(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = run("card", str(tmp_path))
    assert result.exit_code == 2
    assert "is not a finished run" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]

"""The command line: what each command prints, writes and exits with."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import h5py
import keras
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app

runner = CliRunner()
TINY = """
graphspec: 1
name: tiny
params: {width: 3}
inputs:
  x: {shape: [4]}
layers:
  h: {type: Dense, units: ${width}, in: x}
  y: {type: Dense, units: 1, in: h}
outputs:
  y: {loss: mse}
"""


def test_version_prints_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"graphspec {graphspec.__version__}\n"


def test_validate_reports_each_valid_spec(write_spec):
    path = write_spec(TINY)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0
    assert result.stdout == f"{path}: ok (1 inputs, 2 layers, 1 outputs)\n"


def test_validate_exits_2_when_any_spec_is_invalid(write_spec):
    good = write_spec(TINY, "good.yaml")
    bad = write_spec(TINY.replace("units: 1", "unitz: 1"), "bad.yaml")
    result = runner.invoke(app, ["validate", str(good), str(bad)])
    assert result.exit_code == 2
    assert f"{good}: ok" in result.stdout
    assert f"{bad}:8:20: error: layer 'y': Dense has no argument 'unitz'" in result.stderr


def test_validate_of_a_missing_file_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert result.stderr == f"error: no such file: {tmp_path / 'nope.yaml'}\n1 error\n"


def test_build_prints_the_keras_summary_with_overrides(write_spec):
    result = runner.invoke(app, ["build", str(write_spec(TINY)), "--set", "width=5"])
    assert result.exit_code == 0, result.output
    assert "Total params: 31" in result.stdout  # 4*5+5 + 5*1+1
    assert "h (Dense)" in result.stdout


def test_build_totals_prints_the_three_totals_keras_counts(write_spec):
    normed = "  n: {type: BatchNormalization, in: h}\n  y: {type: Dense"
    spec = write_spec(TINY.replace("  y: {type: Dense", normed))
    spec.write_text(spec.read_text().replace("units: 1, in: h}", "units: 1, in: n}"))
    result = runner.invoke(app, ["build", str(spec), "--totals"])
    assert result.exit_code == 0, result.output
    model = graphspec.load(spec).build()
    frozen = 2 * 3  # BatchNormalization's moving mean and variance
    assert model.count_params() == 4 * 3 + 3 + 4 * 3 + 3 + 1
    assert result.stdout == (
        f"Total params: {model.count_params()}\n"
        f"Trainable params: {model.count_params() - frozen}\n"
        f"Non-trainable params: {frozen}\n"
    )


def test_build_saves_a_model_that_keras_loads(write_spec, tmp_path):
    out = tmp_path / "tiny.keras"
    result = runner.invoke(app, ["build", str(write_spec(TINY)), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.models.load_model(out)
    # Never trained: saved without optimizer state, which Keras says it had none to load.
    skipped = "Skipping variable loading for optimizer"
    assert [str(w.message).split(" 'rm_sprop")[0] for w in caught] == [skipped]
    assert model.count_params() == 4 * 3 + 3 + 3 + 1
    assert model.optimizer.built and model.get_compile_config()["loss"] == {"y": "mse"}
    with zipfile.ZipFile(out) as saved, h5py.File(io.BytesIO(saved.read("model.weights.h5"))) as weights:
        assert list(weights) == ["layers", "vars"] and "optimizer" not in weights
    assert sorted(p.name for p in out.parent.iterdir()) == ["spec.yaml", "tiny.keras"]


def test_build_writes_nothing_when_the_spec_is_invalid(write_spec, tmp_path):
    out = tmp_path / "model.keras"
    spec = write_spec(TINY.replace("in: h", "in: [x, h]").replace("Dense, units: 1", "Add"))
    result = runner.invoke(app, ["build", str(spec), "-o", str(out)])
    assert result.exit_code == 2
    assert "layer 'y' (Add): " in result.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_python_m_graphspec_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "graphspec", "--version"], capture_output=True, text=True)
    assert result.stdout == f"graphspec {graphspec.__version__}\n"


def test_validate_never_imports_tensorflow_or_keras(tmp_path):
    # Stand-in packages that fail on import: validate must finish without touching them.
    for name in ("tensorflow", "keras"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} was imported')")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    specs = sorted(str(p) for p in Path("specs").glob("*.yaml"))
    result = subprocess.run(
        [sys.executable, "-m", "graphspec", "validate", *specs], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (") == len(specs)


# Each command that reads a spec or a model file, with what it reads: `{spec}` a spec file,
# `{model}` a .keras file graphspec built (its recorded spec), `{out}` a fresh folder, `{run}` a
# folder holding both as a run does. export
# writes a recorded spec back unparsed: what it reads is charged to `model-bytes`.
READERS = {
    "validate": ["validate", "{spec}"],
    "build": ["build", "{spec}"],
    "fmt": ["fmt", "--check", "{spec}"],
    "plot": ["plot", "{spec}", "-o", "{out}/g.dot"],
    "view": ["view", "{spec}", "-o", "{out}/v.html"],
    "train": ["train", "{spec}", "--synthetic", "--runs-dir", "{out}/runs"],
    "expand": ["expand", "{spec}"],
    "export": ["export", "{model}", "-o", "{out}/s.yaml"],
    "fingerprint": ["fingerprint", "{model}"],
    "diff": ["diff", "{model}", "{spec}"],
    "tune": ["tune", "{spec}", "--synthetic", "--out", "{out}/tune"],
    "card": ["card", "{run}", "-o", "{out}/MODEL_CARD.md"],
    "export-model": ["export-model", "{run}", "--format", "saved_model", "-o", "{out}/served"],
    "evaluate": ["evaluate", "{model}", "--data", "{out}/d.npz"],
    "predict": ["predict", "{model}", "--data", "{out}/d.npz", "-o", "{out}/p.csv"],
    "git-diff": ["git-diff", "s.yaml", "{spec}", "0" * 40, "100644", "{spec}", "0" * 40, "100644"],
}
# ensemble reads model files only: tests/test_model_files.py shows its members spend one budget.
READS_NO_SPEC = {"schema", "ensemble"}
# The language server reads specs as they are edited, each analysis on a budget of its own with
# the command's limits (tests/test_lsp_analysis.py).
SERVES = {"lsp"}


def test_every_command_that_reads_a_spec_spends_the_budget_limit_sets(write_spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(TINY)
    model = tmp_path / "m.keras"
    assert runner.invoke(app, ["build", str(spec), "-o", str(model)]).exit_code == 0
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(spec, run / "spec.yaml")
    shutil.copy(model, run / "model.keras")
    commands = {command.name or command.callback.__name__ for command in app.registered_commands}
    assert commands == set(READERS) | READS_NO_SPEC | SERVES
    for name, args in READERS.items():
        out = tmp_path / name
        out.mkdir()
        filled = [a.format(spec=spec, model=model, out=out, run=run) for a in args]
        meter, counts = (
            ("model-bytes", "bytes of model files") if name == "export" else ("bytes", "bytes of spec")
        )
        result = runner.invoke(app, ["--limit", f"{meter}=10", *filled])
        text = result.stdout + result.stderr
        assert f"would go over the limit of 10 {counts}" in text, (name, text)
        assert f"graphspec --limit {meter}=N" in text, (name, text)
        assert result.exit_code == (0 if name == "git-diff" else 2), (name, text)
        assert not any(out.iterdir()), (name, list(out.iterdir()))

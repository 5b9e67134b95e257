"""The `search:` section: its format, and every problem reported at its line without TensorFlow."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import graphspec
from graphspec import SpecErrors
from graphspec.cli import app
from graphspec.spec import search

BASE = """\
graphspec: 1
name: searched
params: {hidden: 16}
inputs:
  x: {shape: [8]}
layers:
  h: {type: Dense, units: "${hidden}", activation: relu, in: x}
  probs: {type: Dense, units: 3, activation: softmax, in: h}
outputs:
  probs: {loss: categorical_crossentropy, metrics: [accuracy]}
compile:
  optimizer: {type: Adam, learning_rate: 0.001}
train: {validation_split: 0.25}
"""


def _write(tmp_path, search_text: str, base: str = BASE):
    path = tmp_path / "spec.yaml"
    path.write_text(base + search_text)
    return path


def _problems(path) -> list[str]:
    """Each diagnostic's first line, and its hint when it has one."""
    with pytest.raises(SpecErrors) as caught:
        graphspec.load(path)
    rendered = []
    for item in sorted(caught.value.diagnostics.errors, key=lambda d: (d.location.line, d.location.col)):
        line = f"{item.location}: error: {item.message}"
        rendered.append(line + (f" | hint: {item.hint}" if item.hint else ""))
    return rendered


def test_a_valid_search_section_loads_with_its_values(tmp_path):
    path = _write(
        tmp_path,
        """\
search:
  metric: val_accuracy
  goal: maximize
  sampler: {type: tpe, n_startup_trials: 4}
  pruner: hyperband
  trials: 12
  timeout: 30m
  params:
    hidden: {type: int, low: 4, high: 64, step: 4}
    compile.optimizer.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    train.batch_size: {type: categorical, choices: [16, 32]}
    layers.h.activation: {type: categorical, choices: [relu, tanh]}
""",
    )
    loaded = graphspec.load(path)
    found = loaded.spec.search
    assert found.metric == "val_accuracy" and found.goal == "maximize" and found.trials == 12
    assert search.method_name(found.sampler) == "tpe" and search.method_args(found.sampler) == {
        "n_startup_trials": 4
    }
    assert search.timeout_seconds(found.timeout) == 1800.0
    assert found.params["hidden"].step == 4 and found.params["compile.optimizer.learning_rate"].log
    assert found.params["train.batch_size"].choices == [16, 32]
    assert loaded.diagnostics.warnings == []
    # A search changes nothing about the model: the resolved spec is the same without it.
    assert graphspec.load(BASE).resolved() == {k: v for k, v in loaded.resolved().items() if k != "search"}


def test_the_three_errors_the_issue_names_each_at_its_line(tmp_path):
    path = _write(
        tmp_path,
        """\
search:
  sampler: annealing
  params:
    layers.h2.units: {type: int, low: 4, high: 64}
    hidden: {type: int, low: 64, high: 4}
""",
    )
    assert _problems(path) == [
        f"{path}:15:12: error: unknown sampler 'annealing' | hint: known: tpe, random, grid, qmc, cmaes",
        f"{path}:17:5: error: search param 'layers.h2.units' points at nothing in the spec"
        " | hint: did you mean 'h'?",
        f"{path}:18:30: error: search param 'hidden': low 64 is above high 4",
    ]


def test_paths_are_checked_as_set_would_apply_them(tmp_path):
    path = _write(
        tmp_path,
        """\
search:
  params:
    params.widht: {type: int, low: 4, high: 64}
    layers.h.unitz: {type: int, low: 4, high: 64}
    compile.optimizer.learning_rat: {type: float, low: 0.001, high: 0.1}
    train.batch_size: {type: float, low: 8, high: 64}
    train.epochs: {type: categorical, choices: [0, 5]}
    train.epoks: {type: int, low: 1, high: 5}
""",
    )
    assert _problems(path) == [
        f"{path}:16:5: error: search param 'params.widht' sets param 'widht', which the spec does not "
        "declare | hint: declared params: hidden",
        f"{path}:17:5: error: search param 'layers.h.unitz': Dense has no argument 'unitz'"
        " | hint: did you mean 'units'?",
        f"{path}:18:5: error: search param 'compile.optimizer.learning_rat': optimizer Adam has no argument "
        "'learning_rat' | hint: did you mean 'learning_rate'?",
        f"{path}:19:5: error: search param 'train.batch_size': train.batch_size takes whole numbers, and a "
        "float param gives fractions | hint: make the param type int, or categorical",
        f"{path}:20:5: error: search param 'train.epochs': value 0 does not fit train.epochs: should be "
        "greater than or equal to 1",
        f"{path}:21:5: error: search param 'train.epoks': train has no setting 'epoks'"
        " | hint: did you mean 'epochs'?",
    ]


def test_an_optimizer_given_by_name_has_no_arguments_to_search(tmp_path):
    path = _write(
        tmp_path,
        """\
search:
  params:
    compile.optimizer.learning_rate: {type: float, low: 0.001, high: 0.1}
""",
        BASE.replace("optimizer: {type: Adam, learning_rate: 0.001}", "optimizer: rmsprop"),
    )
    assert _problems(path) == [
        f"{path}:16:5: error: search param 'compile.optimizer.learning_rate' points at nothing in the spec"
        " | hint: write the optimizer as {type: NAME, ...} to search its arguments",
    ]


def test_ranges_methods_and_metric(tmp_path):
    path = _write(
        tmp_path,
        """\
search:
  metric: val_acuracy
  sampler: grid
  pruner: {type: median, n_warmup: 2}
  timeout: soon
  params:
    hidden: {type: int, low: 4.5, high: 64}
    compile.optimizer.learning_rate: {type: float, low: 0.0, high: 0.1, log: true}
    layers.h.activation: {type: categorical}
    layers.probs.use_bias: {type: categorical, choices: [true], low: 1}
    train.validation_split: {type: float, low: 0.1, high: 0.3}
""",
    )
    assert _problems(path) == [
        f"{path}:15:11: error: search.metric 'val_acuracy' is not a metric this model reports"
        " | hint: did you mean 'val_accuracy'?",
        f"{path}:17:26: error: pruner median has no argument 'n_warmup'"
        " | hint: did you mean 'n_warmup_steps'?",
        f"{path}:18:12: error: search.timeout: 'soon' is not a time budget: write seconds, or a number with "
        "s, m, h or d",
        f"{path}:20:30: error: search param 'hidden': low of an int param must be an integer, got 4.5"
        " | hint: make the param type float",
        f"{path}:21:5: error: search param 'compile.optimizer.learning_rate': the grid sampler needs a step "
        "for a float param | hint: give a step, or make it categorical",
        f"{path}:21:57: error: search param 'compile.optimizer.learning_rate': a log scale needs low above "
        "0, got 0.0",
        f"{path}:22:5: error: search param 'layers.h.activation' needs 'choices'",
        f"{path}:23:65: error: search param 'layers.probs.use_bias': a categorical param has choices, not "
        "'low'",
        f"{path}:24:5: error: search param 'train.validation_split': the grid sampler needs a step for a "
        "float param | hint: give a step, or make it categorical",
    ]


def test_unknown_keys_are_named_with_the_allowed_ones(tmp_path):
    path = _write(
        tmp_path,
        """\
search:
  direction: maximize
  params:
    hidden: {type: int, low: 4, high: 64, stepp: 2}
""",
    )
    assert _problems(path) == [
        f"{path}:15:3: error: unknown key 'direction' in search | hint: allowed keys: metric, goal, sampler, "
        "pruner, trials, timeout, storage, study, seed, params",
        f"{path}:17:43: error: unknown key 'stepp' in search.params.hidden | hint: did you mean 'step'?",
    ]


def test_metric_names_follow_keras_naming_for_several_outputs(tmp_path):
    two = BASE.replace(
        "  probs: {loss: categorical_crossentropy, metrics: [accuracy]}\n",
        "  probs: {loss: categorical_crossentropy, metrics: [accuracy, {type: AUC}]}\n  h: {loss: mse}\n",
    )
    for metric in ("val_loss", "probs_loss", "val_h_loss", "val_probs_accuracy", "probs_auc", "probs_auc_3"):
        loaded = graphspec.load(
            _write(
                tmp_path,
                f"search: {{metric: {metric}, goal: maximize, "
                "params: {hidden: {type: int, low: 4, high: 8}}}\n",
                two,
            )
        )
        assert loaded.spec.search.metric == metric
    text = "search: {metric: accuracy, params: {hidden: {type: int, low: 4, high: 8}}}\n"
    path = _write(tmp_path, text, two)
    assert _problems(path) == [
        f"{path}:15:18: error: search.metric 'accuracy' is not a metric this model reports"
        " | hint: did you mean 'probs_accuracy'?"
    ]


def test_minimizing_an_accuracy_is_a_warning(tmp_path):
    text = "search: {metric: val_accuracy, params: {hidden: {type: int, low: 4, high: 8}}}\n"
    path = _write(tmp_path, text)
    warnings = graphspec.load(path).diagnostics.warnings
    assert [(str(w.location), w.message, w.hint) for w in warnings] == [
        (
            f"{path}:14:18",
            "search.metric 'val_accuracy' is better when larger, and goal is minimize",
            "set goal: maximize",
        )
    ]


def test_graphspec_validate_reports_search_errors_with_exit_status_2(tmp_path):
    path = _write(tmp_path, "search: {sampler: anneal, params: {hidden: {type: int, low: 4, high: 8}}}\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[:4] == [
        f"{path}:14:19: error: unknown sampler 'anneal'",
        "  search: {sampler: anneal, params: {hidden: {type: int, low: 4, high: 8}}}",
        "                    ^~~~~~",
        "  hint: known: tpe, random, grid, qmc, cmaes",
    ]


def test_the_example_spec_validates_and_expands_without_its_search(tmp_path):
    loaded = graphspec.load("specs/mlp_search.yaml")
    assert set(loaded.spec.search.params) == {
        "params.hidden",
        "compile.optimizer.learning_rate",
        "train.batch_size",
    }
    expanded = loaded.expanded()
    assert "\nsearch:" not in expanded and "params.hidden" not in expanded
    (tmp_path / "expanded.yaml").write_text(expanded)
    assert graphspec.load(tmp_path / "expanded.yaml").resolved() == {
        k: v for k, v in loaded.resolved().items() if k not in ("search", "params")
    }


def test_a_trials_values_apply_as_overrides_of_the_same_paths():
    loaded = graphspec.load(
        "specs/mlp_search.yaml",
        ["params.hidden=48", "compile.optimizer.learning_rate=0.01", "train.batch_size=64"],
    )
    assert loaded.spec.layers["hidden1"].args["units"] == 48 == loaded.spec.layers["hidden2"].args["units"]
    assert loaded.spec.compile.optimizer.args["learning_rate"] == 0.01
    assert loaded.spec.train.batch_size == 64


def test_grid_lists_every_value():
    spec = search.SearchSpec.model_validate(
        {
            "params": {
                "a": {"type": "int", "low": 2, "high": 10, "step": 4},
                "b": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},
                "c": {"type": "categorical", "choices": ["x", "y"]},
            }
        }
    )
    values = search.grid(spec)
    assert values["a"] == [2, 6, 10] and values["c"] == ["x", "y"]
    assert values["b"] == pytest.approx([0.1, 0.2, 0.3])


def test_sampler_and_pruner_arguments_are_optunas_own():
    optuna = pytest.importorskip("optuna")
    for table, module in ((search.SAMPLERS, optuna.samplers), (search.PRUNERS, optuna.pruners)):
        for name, (cls, args) in table.items():
            accepted = inspect.signature(getattr(module, cls)).parameters
            assert set(args) <= set(accepted), (name, set(args) - set(accepted))


def test_validating_a_search_imports_neither_tensorflow_nor_optuna():
    code = (
        "import sys, graphspec; graphspec.load('specs/mlp_search.yaml'); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'optuna') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

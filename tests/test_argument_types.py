"""`validate` refuses an argument of the wrong type or range, without TensorFlow (issue 22).

The types come from the catalog (graphspec/keras/catalog_types.py, checked against Keras by
tests/test_catalog_types.py); graphspec/spec/types.py checks values against them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec.cli import app
from graphspec.spec import catalog, types

BOOK_QA = Path("specs/book_qa.yaml")

# The single edits of specs/book_qa.yaml from issue 22, and the start of what validate says.
EDITS = [
    ('units: "${answer_vocab}"', 'unitz: "${answer_vocab}"', "layer 'answer': Dense has no argument 'unitz'"),
    ('units: "${answer_vocab}"', "units: -3", "Dense's argument 'units' takes a positive integer, not -3"),
    ('units: "${answer_vocab}"', "units: 2.5", "Dense's argument 'units' takes a positive integer, not 2.5"),
    (
        'units: "${answer_vocab}"',
        'units: "abc"',
        "Dense's argument 'units' takes a positive integer, not 'abc'",
    ),
    ("axis: -1", 'axis: "left"', "Concatenate's argument 'axis' takes an integer, not 'left'"),
    (
        "output_dim: 64",
        "output_dim: [64]",
        "Embedding's argument 'output_dim' takes a positive integer, not [64]",
    ),
    ("activation: softmax", "activation: softmaxx", "Dense's argument 'activation' takes an activation name"),
    ("activation: softmax", "activation: 3", "Dense's argument 'activation' takes an activation name"),
]


def _validate(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    return result.exit_code, result.stderr.replace(str(path), "spec.yaml")


def _refused_by_both(tmp_path: Path, text: str, message: str) -> None:
    """validate refuses `text` with `message` as its first line, and build refuses it too."""
    from test_application_inputs import builds

    code, stderr = _validate(tmp_path, text)
    assert (code, stderr.splitlines()[0]) == (2, message)
    assert not builds(text)


def _build_refusal(path: Path) -> str:
    """What build says of the spec at `path` without validate's checks (Keras's own answer),
    where it refuses it."""
    import keras
    from fixtures import agreement

    import graphspec

    with agreement.without_validate_checks(), pytest.raises(graphspec.SpecErrors) as refused:
        graphspec.load(path).build()
    keras.backend.clear_session()
    return str(refused.value)


def _taken_by_both(tmp_path: Path, text: str) -> None:
    from test_application_inputs import builds

    assert _validate(tmp_path, text) == (0, "")
    assert builds(text)


@pytest.mark.parametrize(("old", "new", "message"), EDITS, ids=[e[1] for e in EDITS])
def test_each_single_edit_of_book_qa_is_refused(tmp_path, old, new, message):
    text = BOOK_QA.read_text()
    assert text.count(old) == 1
    code, stderr = _validate(tmp_path, text.replace(old, new))
    assert code == 2
    assert message in stderr
    assert stderr.endswith("1 error\n")


def test_a_misspelt_activation_is_told_the_right_spelling(tmp_path):
    code, stderr = _validate(
        tmp_path, BOOK_QA.read_text().replace("activation: softmax", "activation: softmaxx")
    )
    assert "hint: did you mean 'softmax'?" in stderr


def test_the_book_spec_itself_validates(tmp_path):
    assert _validate(tmp_path, BOOK_QA.read_text()) == (0, "")


def test_a_nested_activation_layer_and_null_are_taken(tmp_path):
    text = BOOK_QA.read_text().replace("activation: softmax", "activation: {type: Softmax}")
    assert _validate(tmp_path, text)[0] == 0
    text = BOOK_QA.read_text().replace("activation: softmax", "activation: null")
    assert _validate(tmp_path, text)[0] == 0


def test_an_expressions_result_is_checked_where_the_expression_is(tmp_path):
    text = BOOK_QA.read_text().replace("answer_vocab: 500", "answer_vocab: -5")
    code, stderr = _validate(tmp_path, text)
    assert code == 2
    assert stderr.startswith(
        "spec.yaml:22:36: error: layer 'answer': Dense's argument 'units' takes a positive integer, not -5\n"
        '    answer:     {type: Dense, units: "${answer_vocab}", activation: softmax, in: merged}\n'
        "                                     ^~~~~~~~~~~~~~~~~\n"
    )


def test_validating_a_wrong_type_imports_no_tensorflow():
    code = (
        "import sys, graphspec\n"
        "from graphspec import SpecErrors\n"
        f"text = open({str(BOOK_QA)!r}).read().replace('units: 32', 'units: -32')\n"
        "try:\n"
        "    graphspec.load(text)\n"
        "    raise SystemExit('accepted')\n"
        "except SpecErrors as e:\n"
        "    assert \"'units' takes a positive integer, not -32\" in e.diagnostics.render()\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_an_integer_is_never_a_boolean_and_null_only_where_keras_defaults_to_none():
    dense = catalog.layer("Dense")["types"]
    assert types.argument_mismatch({"types": dense}, "units", True) is not None
    assert types.argument_mismatch({"types": dense}, "activation", None) is None
    conv = catalog.layer("Conv2D")["types"]
    assert types.argument_mismatch({"types": conv}, "kernel_size", [3, 3]) is None
    assert types.argument_mismatch({"types": conv}, "kernel_size", None) is not None
    assert types.argument_mismatch({"types": conv}, "padding", "causal") is not None
    assert types.argument_mismatch({"types": catalog.layer("Conv1D")["types"]}, "padding", "causal") is None


def test_every_spec_in_specs_validates():
    specs = sorted(str(p) for p in Path("specs").glob("*.yaml"))
    result = CliRunner().invoke(app, ["validate", *specs])
    assert result.exit_code == 0, result.stderr


def test_every_typed_argument_is_an_argument_of_its_class():
    c = catalog.catalog()
    sections = [
        c["layers"],
        c["applications"],
        c["application_layers"],
        c["optimizers"],
        c["callbacks"],
        c["ops"],
    ]
    sections += [c["losses"]["classes"], c["metrics"]["classes"]]
    for entries in sections:
        for name, entry in entries.items():
            assert set(entry["types"]) <= set(entry["args"]), name


def _book_qa_with(optimizer: str, callback: str) -> str:
    """specs/book_qa.yaml with `optimizer` and one training `callback`, each as a flow mapping."""
    return BOOK_QA.read_text().replace(
        "  optimizer: rmsprop\n", f"  optimizer: {optimizer}\ntrain:\n  callbacks:\n    - {callback}\n"
    )


def test_a_callbacks_and_an_optimizers_argument_are_checked(tmp_path):
    text = _book_qa_with("{type: RMSprop, learning_rate: 1}", "{type: ReduceLROnPlateau, factor: 1.5}")
    code, stderr = _validate(tmp_path, text)
    assert code == 2
    assert (
        "error: optimizer RMSprop's argument 'learning_rate' takes a number with a decimal point "
        "(1.0, not 1), not 1\n" in stderr
    )
    assert "error: callback ReduceLROnPlateau's argument 'factor' takes a number below 1, not 1.5\n" in stderr


def test_a_tensorboard_frequency_is_a_number_as_keras_reads_it_at_each_epochs_end(tmp_path):
    text = _book_qa_with("rmsprop", "{type: TensorBoard, log_dir: logs, histogram_freq: [1]}")
    code, stderr = _validate(tmp_path, text)
    assert (code, stderr.splitlines()[0].split(": error: ")[1]) == (
        2,
        "callback TensorBoard's argument 'histogram_freq' takes a number or null, not [1]",
    )


@pytest.mark.parametrize(
    ("callback", "message"),
    [
        (
            "{type: ModelCheckpoint, filepath: ck.txt}",
            "callback ModelCheckpoint's argument 'filepath' takes a path ending in .keras (or .h5), "
            "not 'ck.txt'",
        ),
        (
            "{type: ModelCheckpoint, filepath: ck.keras, save_weights_only: true}",
            "callback ModelCheckpoint's argument 'filepath' takes a path ending in .weights.h5 where "
            "save_weights_only is true, not 'ck.keras'",
        ),
    ],
)
def test_a_checkpoints_path_ends_as_keras_requires_of_what_it_saves(tmp_path, callback, message):
    code, stderr = _validate(tmp_path, _book_qa_with("rmsprop", callback))
    assert (code, stderr.splitlines()[0].split(": error: ")[1]) == (2, message)


def test_a_checkpoints_formatted_path_to_a_weights_file_is_taken(tmp_path):
    callback = '{type: ModelCheckpoint, filepath: "ck/{epoch:02d}.weights.h5", save_weights_only: true}'
    assert _validate(tmp_path, _book_qa_with("rmsprop", callback)) == (0, "")


def test_a_csv_loggers_separator_is_one_character_as_the_csv_writer_takes_it(tmp_path):
    text = _book_qa_with("rmsprop", '{type: CSVLogger, filename: log.csv, separator: ", "}')
    code, stderr = _validate(tmp_path, text)
    assert (code, stderr.splitlines()[0].split(": error: ")[1]) == (
        2,
        "callback CSVLogger's argument 'separator' takes one character, not ', '",
    )


OPTIMIZER_SPEC = """\
graphspec: 1
name: optimizer
inputs:
  x: {{shape: [4]}}
layers:
  d: {{type: Dense, units: 2, in: x}}
outputs:
  d: {{loss: mse}}
compile:
  optimizer: {{type: Adam, {args}}}
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ('clipnorm: "1.0"', "optimizer Adam's argument 'clipnorm' takes a number or null, not '1.0'"),
        ("epsilon: null", "optimizer Adam's argument 'epsilon' takes a number, or a list of numbers"),
        ("beta_1: [0.9]", "optimizer Adam's argument 'beta_1' takes a number, not [0.9]"),
        ("weight_decay: abc", "optimizer Adam's argument 'weight_decay' takes a number, or a list of"),
    ],
)
def test_an_optimizers_numbers_are_checked_where_keras_takes_them_until_it_trains(tmp_path, args, message):
    """Keras constructs Adam with each of these and fails only at the first update: validate
    refuses them at their line, and so does build, which tries the optimizer on scratch weights."""
    from test_application_inputs import builds

    text = OPTIMIZER_SPEC.format(args=args)
    code, stderr = _validate(tmp_path, text)
    assert code == 2
    assert message in stderr.splitlines()[0]
    assert stderr.endswith("1 error\n")
    assert not builds(text)


def test_an_optimizers_numbers_keras_broadcasts_are_taken_by_validate_and_by_build(tmp_path):
    _taken_by_both(
        tmp_path,
        OPTIMIZER_SPEC.format(args="epsilon: [1.0e-7], clipnorm: 1, weight_decay: null, beta_1: 0.8"),
    )


def test_build_refuses_an_optimizer_at_its_line_when_keras_would_refuse_it_in_training(tmp_path):
    """What build says without validate's checks: the step on scratch weights fails as the first
    training step would, and the error points at the optimizer."""
    path = tmp_path / "spec.yaml"
    path.write_text(OPTIMIZER_SPEC.format(args='clipnorm: "1.0"'))
    refused = _build_refusal(path)
    assert refused.startswith(
        f"{path}:10:14: error: Keras refused optimizer Adam: '>' not supported between instances of "
        "'str' and 'int'"
    )


LOSS_SPEC = """\
graphspec: 1
name: losses
inputs:
  x: {{shape: [8]}}
layers:
  p: {{type: Dense, units: 3, activation: softmax, in: x}}
outputs:
  p:
    loss: {{type: CategoricalCrossentropy, {loss}}}
    metrics: [{{type: Precision, {metric}}}]
"""


@pytest.mark.parametrize(
    ("loss", "metric", "message"),
    [
        (
            "label_smoothing: abc",
            "class_id: 0",
            "spec.yaml:9:60: error: loss CategoricalCrossentropy's argument 'label_smoothing' takes a "
            "number or null, not 'abc'",
        ),
        (
            "axis: 1.5",
            "class_id: 0",
            "spec.yaml:9:49: error: loss CategoricalCrossentropy's argument 'axis' takes an integer or "
            "a list of integers, or null, not 1.5",
        ),
        (
            "axis: -1",
            "class_id: 1.5",
            "spec.yaml:10:43: error: metric Precision's argument 'class_id' takes an integer, not 1.5",
        ),
        (
            "axis: -1",
            "top_k: -1",
            "spec.yaml:10:40: error: metric Precision's argument 'top_k' takes a count from 0, not -1",
        ),
    ],
)
def test_a_loss_or_metrics_numbers_are_checked_where_keras_takes_them_until_it_computes(
    tmp_path, loss, metric, message
):
    """Keras constructs each of these and fails only when it computes the loss or the metric,
    in training: validate refuses them at their line, and so does build, which computes each
    on a scratch batch shaped like the output."""
    _refused_by_both(tmp_path, LOSS_SPEC.format(loss=loss, metric=metric), message)


def test_a_loss_or_metrics_numbers_keras_computes_with_are_taken_by_validate_and_by_build(tmp_path):
    _taken_by_both(
        tmp_path, LOSS_SPEC.format(loss="label_smoothing: 0.1, axis: -1", metric="class_id: 2, top_k: 1")
    )


def test_build_refuses_a_loss_at_the_argument_keras_would_refuse_in_training(tmp_path):
    """What build says without validate's checks: the loss computed on a scratch batch fails as
    the first training step would, and the error points at the argument to blame."""
    path = tmp_path / "spec.yaml"
    path.write_text(LOSS_SPEC.format(loss="label_smoothing: 0.1, axis: abc", metric="class_id: 0"))
    refused = _build_refusal(path)
    # Keras's own words, which name neither the argument nor the value, follow the location.
    assert refused.startswith(f"{path}:9:71: error: Keras refused loss CategoricalCrossentropy: ")


APPLICATION_SPEC = """\
graphspec: 1
name: application
inputs:
  x: {{shape: [224, 224, 3]}}
layers:
  net: {{type: applications.MobileNet, weights: null, alpha: 0.25, {args}, in: x}}
outputs:
  net: {{loss: mse}}
"""


def test_an_applications_classes_are_checked_when_it_has_its_top(tmp_path):
    code, stderr = _validate(tmp_path, APPLICATION_SPEC.format(args='classes: "10"'))
    assert code == 2
    assert stderr.splitlines()[0] == (
        "spec.yaml:6:76: error: layer 'net': applications.MobileNet's argument 'classes' takes a "
        "positive integer, not '10'"
    )


def test_an_applications_input_shape_is_three_sizes(tmp_path):
    text = APPLICATION_SPEC.format(args="include_top: false, input_shape: [224, 224]")
    _refused_by_both(
        tmp_path,
        text,
        "spec.yaml:6:100: error: layer 'net': applications.MobileNet's argument 'input_shape' takes the "
        "image's shape: three sizes (height, width, channels; null for any height or width), or null, "
        "not [224, 224]",
    )
    _taken_by_both(tmp_path, text.replace("[224, 224]", "[224, 224, 3]"))


def test_an_applications_classes_are_not_checked_without_its_top_as_keras_never_reads_them(tmp_path):
    _taken_by_both(
        tmp_path,
        APPLICATION_SPEC.format(args='include_top: false, classes: "10", classifier_activation: softmaxx'),
    )


SEED_SPEC = """\
graphspec: 1
name: seeded
inputs:
  x: {{shape: [4]}}
layers:
  d: {{type: Dropout, {args}, in: x}}
outputs:
  d: {{loss: mse}}
compile:
  optimizer: {{type: Adam, {optimizer}}}
"""


@pytest.mark.parametrize(
    ("args", "optimizer", "message"),
    [
        (
            "rate: 0.5, seed: abc",
            "use_ema: false",
            "spec.yaml:6:39: error: layer 'd': Dropout's argument 'seed' takes an integer or null, not 'abc'",
        ),
        (
            "rate: 0.5, seed: 1",
            "use_ema: true, ema_momentum: 2",
            "spec.yaml:10:56: error: optimizer Adam's argument 'ema_momentum' takes a number from 0 to 1, "
            "not 2",
        ),
    ],
)
def test_an_argument_keras_reads_only_when_another_is_true_is_checked_there(
    tmp_path, args, optimizer, message
):
    """A dropout makes its random generator from its seed only for a rate above 0; an optimizer
    reads its moving average's momentum only with use_ema: validate refuses a wrong one there,
    and so does build."""
    _refused_by_both(tmp_path, SEED_SPEC.format(args=args, optimizer=optimizer), message)


def test_an_argument_keras_never_reads_where_the_other_is_false_is_taken_by_validate_and_build(tmp_path):
    _taken_by_both(
        tmp_path, SEED_SPEC.format(args="rate: 0, seed: abc", optimizer="use_ema: false, ema_momentum: 2")
    )


CROSSING_SPEC = """\
graphspec: 1
name: crossed
inputs:
  a: {{shape: [1], dtype: string}}
  b: {{shape: [1], dtype: string}}
layers:
  c: {{type: HashedCrossing, {args}, in: [a, b]}}
outputs:
  c: {{loss: mse}}
"""


def test_an_argument_keras_refuses_only_where_another_is_one_word_is_checked_there(tmp_path):
    """HashedCrossing makes its one-hot output as wide as num_bins: there a fraction is refused
    by validate, and by build."""
    _refused_by_both(
        tmp_path,
        CROSSING_SPEC.format(args="num_bins: 2.5, output_mode: one_hot"),
        "spec.yaml:7:39: error: layer 'c': HashedCrossing's argument 'num_bins' takes a number of bins "
        "(an integer from 0) where output_mode is 'one_hot', not 2.5",
    )


def test_an_argument_keras_takes_where_the_other_is_another_word_is_taken_by_validate_and_build(tmp_path):
    _taken_by_both(tmp_path, CROSSING_SPEC.format(args="num_bins: 2.5, output_mode: int"))


def test_a_sparse_output_of_integer_indices_is_refused_and_of_counts_taken(tmp_path):
    text = LAYER_SPEC.replace("[9, 9, 3]", "[3]").format(
        layer="Hashing", arg="num_bins", value="4, sparse: true"
    )
    code, stderr = _validate(tmp_path, text)
    assert (code, stderr.splitlines()[0]) == (
        2,
        "spec.yaml:6:43: error: layer 'a': Hashing's argument 'sparse' takes false where output_mode is "
        "'int', not true",
    )
    assert _validate(tmp_path, text.replace("sparse: true", "sparse: true, output_mode: count")) == (0, "")


OBJECT_SPEC = """\
graphspec: 1
name: objects
inputs:
  x: {{shape: [8]}}
layers:
  d: {{type: Dense, units: 4, in: x, {arg}: {value}}}
outputs:
  d: {{loss: mse}}
"""
OBJECT_EDITS = [
    (
        "kernel_initializer",
        "{type: GlorotUniform, sed: 0}",
        "layer 'd': Dense's argument 'kernel_initializer': initializer GlorotUniform has no argument 'sed'",
    ),
    (
        "kernel_initializer",
        "{type: VarianceScaling, mode: fan_inn}",
        "layer 'd': Dense's argument 'kernel_initializer': initializer VarianceScaling's argument 'mode' "
        "takes one of 'fan_in', 'fan_out', 'fan_avg', not 'fan_inn'",
    ),
    (
        "kernel_regularizer",
        '{type: L2, l2: "abc"}',
        "layer 'd': Dense's argument 'kernel_regularizer': regularizer L2's argument 'l2' takes a number of "
        "at least 0 or null, not 'abc'",
    ),
    (
        "bias_constraint",
        "{type: MaxNorm, max_valu: 2}",
        "layer 'd': Dense's argument 'bias_constraint': constraint MaxNorm has no argument 'max_valu'",
    ),
    # Keras takes these when it makes the object and refuses them when it first applies the
    # constraint, after an update, or computes the penalty: build applies each to its weight.
    (
        "kernel_constraint",
        "{type: MaxNorm, max_value: abc}",
        "layer 'd': Dense's argument 'kernel_constraint': constraint MaxNorm's argument 'max_value' "
        "takes a number, or a list of numbers (broadcast over each weight), not 'abc'",
    ),
    (
        "kernel_constraint",
        "{type: UnitNorm, axis: 1.5}",
        "layer 'd': Dense's argument 'kernel_constraint': constraint UnitNorm's argument 'axis' takes an "
        "integer or a list of integers, or null, not 1.5",
    ),
    (
        "kernel_initializer",
        "{type: GlorotUniform, input_axes: 0, output_axes: [1]}",
        "layer 'd': Dense's argument 'kernel_initializer': initializer GlorotUniform's argument "
        "'input_axes' takes a list of axes, or null, not 0",
    ),
    (
        "kernel_regularizer",
        "{type: OrthogonalRegularizer, factor: 1}",
        "layer 'd': Dense's argument 'kernel_regularizer': regularizer OrthogonalRegularizer's argument "
        "'factor' takes a number with a decimal point, at least 0.0, not 1",
    ),
]


@pytest.mark.parametrize(("arg", "value", "message"), OBJECT_EDITS, ids=[e[1] for e in OBJECT_EDITS])
def test_an_objects_arguments_are_checked_and_keras_refuses_them_too(tmp_path, arg, value, message):
    from test_application_inputs import builds

    text = OBJECT_SPEC.format(arg=arg, value=value)
    code, stderr = _validate(tmp_path, text)
    assert code == 2
    assert stderr.splitlines()[0].endswith(f"error: {message}")
    assert stderr.endswith("1 error\n")
    assert not builds(text)


def test_an_objects_right_arguments_are_taken_by_validate_and_by_keras(tmp_path):
    value = "{type: VarianceScaling, mode: fan_out, seed: 3}"
    _taken_by_both(tmp_path, OBJECT_SPEC.format(arg="kernel_initializer", value=value))


def test_build_refuses_a_constraint_at_the_argument_keras_would_refuse_in_training(tmp_path):
    """What build says without validate's checks: the constraint applied to its weight fails as
    it would after the first update, and the error points at the argument to blame."""
    path = tmp_path / "spec.yaml"
    path.write_text(
        OBJECT_SPEC.format(arg="kernel_constraint", value="{type: MinMaxNorm, rate: 0.5, axis: 4}")
    )
    refused = _build_refusal(path)
    assert refused.splitlines()[0] == (
        f"{path}:6:92: error: Keras refused constraint MinMaxNorm: Invalid reduction dimension (4 for "
        "input with 2 dimension(s)"
    )


def test_a_constraints_right_arguments_are_taken_by_validate_and_by_build(tmp_path):
    value = "{type: MinMaxNorm, max_value: [1, 2, 3, 4], axis: 0}"
    _taken_by_both(tmp_path, OBJECT_SPEC.format(arg="kernel_constraint", value=value))


def test_an_object_whose_type_is_not_a_name_is_no_crash_where_the_argument_is_untyped(tmp_path):
    # KerasHub's layers have no types in the catalog: their initializers reach the object check
    # unchecked, `type: [1]` included.
    text = OBJECT_SPEC.format(arg="kernel_initializer", value="{type: [1]}")
    text = text.replace("type: Dense, units: 4", "type: keras_hub.layers.FNetEncoder, intermediate_dim: 4")
    code, stderr = _validate(tmp_path, text)
    assert (code, stderr) == (0, "")


OPERAND_SPEC = """\
graphspec: 1
name: operands
inputs:
  x: {{shape: [4]}}
layers:
  y: {{op: {op}, in: x, x2: {value}}}
outputs:
  y: {{loss: mse}}
"""


def test_a_binary_ops_written_operand_is_a_number_as_keras_promotes_it(tmp_path):
    code, stderr = _validate(tmp_path, OPERAND_SPEC.format(op="subtract", value='"abc"'))
    assert code == 2
    assert stderr.startswith(
        "spec.yaml:6:32: error: op node 'y': subtract's argument 'x2' takes a number, or true or "
        "false (a tensor comes by `in:`), not 'abc'\n"
    )
    assert _validate(tmp_path, OPERAND_SPEC.format(op="subtract", value="0.5"))[0] == 0
    # A comparison takes a string there when built, so validate takes it too.
    assert _validate(tmp_path, OPERAND_SPEC.format(op="equal", value='"abc"'))[0] == 0


LAYER_SPEC = """\
graphspec: 1
name: layers
inputs:
  x: {{shape: [9, 9, 3]}}
layers:
  a: {{type: {layer}, {arg}: {value}, in: x}}
outputs:
  a: {{loss: mse}}
"""


def test_an_image_factor_pair_past_its_bounds_is_refused_by_validate_and_build(tmp_path):
    _refused_by_both(
        tmp_path,
        LAYER_SPEC.format(layer="RandomBrightness", arg="factor", value="[2, 3]"),
        "spec.yaml:6:39: error: layer 'a': RandomBrightness's argument 'factor' takes a number from -1 "
        "to 1, or a list of two: [low, high], not [2, 3]",
    )


def test_an_image_factor_pair_keras_sorts_and_takes_is_taken_by_validate_and_build(tmp_path):
    """Keras checks only that a pair's low is at most the upper bound and its high at least the
    lower one: [-0.5, 0.5] is a contrast factor it takes."""
    _taken_by_both(tmp_path, LAYER_SPEC.format(layer="RandomContrast", arg="factor", value="[-0.5, 0.5]"))


def test_build_refuses_an_op_argument_keras_reads_only_when_it_computes(tmp_path):
    """A symbolic build of `elu` takes any alpha; build computes the op once on ones shaped like
    its input (two samples), as training would, and points at the argument (what it says
    without validate's checks: a list of two numbers, which validate takes as broadcast, does
    not fit an input of 4)."""
    path = tmp_path / "spec.yaml"
    path.write_text(OPERAND_SPEC.replace("x2: {value}", "alpha: {value}").format(op="elu", value="[1, 2]"))
    refused = _build_refusal(path)
    assert refused.splitlines()[0] == (
        f"{path}:6:30: error: op node 'y' (elu): Keras refused its alpha when computing: Incompatible "
        "shapes: [2] vs. [2,4]"
    )


COMPUTED_CASES = [
    # op and its other arguments, the argument, a value Keras refuses when it computes, a right one
    ("elu", "alpha", '"abc"', "0.5"),
    ("percentile, q: 50", "method", "middle", "midpoint"),
    ("top_k, k: 2", "sorted", "abc", "false"),
    # Required arguments, computed with a stand-in in their place.
    ("roll", "shift", "2.5", "1"),
    ("clip, x_max: 1", "x_min", '"abc"', "0"),
]


def _computed_by_both(tmp_path: Path, text: str, name: str, arg: str, wrong: str, right: str) -> None:
    """validate refuses `text` (which writes `arg: wrong`) at `name`'s argument, build refuses it
    too, and both take `right` in its place."""
    from test_application_inputs import builds

    code, stderr = _validate(tmp_path, text)
    assert code == 2
    assert f"{name}'s argument '{arg}' takes " in stderr.splitlines()[0]
    assert not builds(text)
    assert builds(text.replace(f"{arg}: {wrong}", f"{arg}: {right}"))


@pytest.mark.parametrize(("op", "arg", "wrong", "right"), COMPUTED_CASES)
def test_an_op_argument_keras_reads_only_when_it_computes_is_refused_by_validate_and_build(
    tmp_path, op, arg, wrong, right
):
    text = OPERAND_SPEC.replace("x2: {value}", f"{arg}: {{value}}").format(op=op, value=wrong)
    _computed_by_both(tmp_path, text, op.split(",")[0], arg, wrong, right)


def test_build_refuses_a_layer_argument_keras_reads_only_when_it_computes(tmp_path):
    """A functional build of LayerNormalization takes any epsilon; build calls a new layer of the
    same arguments once on ones shaped like its input, and points at the argument."""
    path = tmp_path / "spec.yaml"
    path.write_text(LAYER_SPEC.format(layer="LayerNormalization", arg="epsilon", value="abc"))
    refused = _build_refusal(path)
    assert refused.splitlines()[0].startswith(
        f"{path}:6:42: error: layer 'a' (LayerNormalization): Keras refused its epsilon when computing: "
    )


@pytest.mark.parametrize(
    ("layer", "arg", "wrong", "right"),
    [
        ("LayerNormalization", "epsilon", "abc", "0.001"),
        ("Softmax", "axis", "abc", "-1"),
        ("RandomRotation, factor: 0.1", "fill_value", "abc", "0.5"),
        ("Resizing, height: 4, width: 4", "interpolation", "cubic", "bicubic"),
        # A required argument: computed with [-1] in its place to tell it is to blame.
        ("Reshape", "target_shape", "abc", "[81, 3]"),
    ],
)
def test_a_layer_argument_keras_reads_only_when_it_computes_is_refused_by_validate_and_build(
    tmp_path, layer, arg, wrong, right
):
    text = LAYER_SPEC.format(layer=layer, arg=arg, value=wrong)
    _computed_by_both(tmp_path, text, layer.split(",")[0], arg, wrong, right)


def test_a_reshape_of_an_input_of_unknown_sizes_is_not_computed_with_sizes_guessed(tmp_path):
    """Ones of a guessed size would not fit a target shape that fits the real sizes: build leaves
    such a node to training rather than refuse what fits."""
    text = LAYER_SPEC.replace("[9, 9, 3]", "[null, 3]").format(
        layer="Reshape", arg="target_shape", value="[-1, 3, 3]"
    )
    _taken_by_both(tmp_path, text)

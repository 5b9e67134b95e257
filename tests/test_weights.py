"""Weights that follow edits: `build --weights --partial`, `train --init-from`, and the report.

The convincing case is GPT-2's own spec made tiny: a 2-block model's weights carried into a
3-block one, compared weight for weight with the file they came from, and the table's rows and
counts compared with what Keras counts itself.
"""

from __future__ import annotations

import gc
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.errors import SpecErrors
from graphspec.keras.save import save_model
from graphspec.keras.weights import (
    COPIED,
    MISMATCHED,
    NEW,
    UNUSED,
    LayerWeights,
    WeightShapes,
    copy_matching_weights,
    match_weights,
)

runner = CliRunner()
GPT2 = "specs/gpt2_small.yaml"
TINY = ["--set", "width=16", "--set", "heads=2", "--set", "vocab=50", "--set", "context=8"]
# Three tiny blocks: the third one's layers are new.
THREE_BLOCKS = ["--set", "layers=3", *TINY]
NEW_BLOCK = ["decoder.2.ln1", "decoder.2.attn", "decoder.2.ln2", "decoder.2.fc", "decoder.2.proj"]

MLP = """
graphspec: 1
name: mlp
params: {hidden: 8, classes: 4}
inputs:
  x: {shape: [6]}
layers:
  hidden: {type: Dense, units: "${hidden}", activation: relu, in: x}
  head:   {type: Dense, units: "${classes}", in: hidden}
outputs:
  head: {loss: mse}
"""


@pytest.fixture(autouse=True)
def _fresh_keras():
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()
    gc.collect()


@pytest.fixture(scope="module")
def two_blocks(tmp_path_factory) -> Path:
    """GPT-2's spec with 2 tiny blocks, built and saved (its weights as initialised)."""
    overrides = ["layers=2", *TINY[1::2]]
    path = tmp_path_factory.mktemp("two") / "two_blocks.keras"
    save_model(graphspec.load(GPT2, overrides).build(), path)
    keras.backend.clear_session()
    return path


def _overrides(args: list[str]) -> list[str]:
    return args[1::2]


def _weights_with_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def _table(stdout: str) -> list[str]:
    """The lines of the weights table in a command's output, its summary line last."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("weights from "))
    end = next(
        i for i in range(start, len(lines)) if lines[i].startswith("copied ") and "parameters" in lines[i]
    )
    return lines[start : end + 1]


def _groups(table: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Each group of the table: its header's last column (the parameters) and its rows' names."""
    groups: dict[str, tuple[str, list[str]]] = {}
    for line in table[2:-1]:
        if line.endswith(": none"):
            groups[line[: -len(": none")]] = ("", [])
        elif not line.startswith("  "):
            groups[line[: line.index(" (")]] = (line.split()[-1], [])
        else:
            groups[list(groups)[-1]][1].append(line.split()[0])
    return groups


# --- build --weights --partial ------------------------------------------------------------------


def test_partial_build_copies_the_two_blocks_into_a_three_block_model(tmp_path, two_blocks):
    out = tmp_path / "three.keras"
    result = runner.invoke(
        app, ["build", GPT2, *THREE_BLOCKS, "--weights", str(two_blocks), "--partial", "-o", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    source = _weights_with_weights(keras.saving.load_model(two_blocks))
    built = _weights_with_weights(keras.saving.load_model(out))
    assert sorted(built) == sorted([*source, *NEW_BLOCK])
    for name, weights in source.items():
        assert len(built[name]) == len(weights)
        assert all(np.array_equal(a, b) for a, b in zip(built[name], weights, strict=True)), name
    # The new block starts as built: its random kernels are not the last copied block's.
    for layer in ("attn", "fc", "proj"):
        assert not np.array_equal(built[f"decoder.2.{layer}"][0], source[f"decoder.1.{layer}"][0])


def test_partial_build_lists_each_layer_with_the_parameters_keras_counts(two_blocks):
    result = runner.invoke(app, ["build", GPT2, *THREE_BLOCKS, "--weights", str(two_blocks), "--partial"])
    assert result.exit_code == 0, result.stderr
    source = keras.saving.load_model(two_blocks)
    built = graphspec.load(GPT2, _overrides(THREE_BLOCKS)).build()
    keras_counts = {
        layer.name: (type(layer).__name__, f"{layer.count_params():,}")
        for layer in built.layers
        if layer.weights
    }
    table = _table(result.stdout)
    assert table[0] == f"weights from {two_blocks}, matched by layer name:"
    assert table[1].split() == ["layer", "class", "params", "in", "file"]
    rows = {line.split()[0]: tuple(line.split()[1:]) for line in table if line.startswith("  ")}
    assert rows == keras_counts
    new_params = sum(layer.count_params() for layer in built.layers if layer.name in NEW_BLOCK)
    assert _groups(table) == {
        "copied": (f"{source.count_params():,}", [layer.name for layer in source.layers if layer.weights]),
        "shape-mismatched": ("", []),
        "new in the spec": (f"{new_params:,}", NEW_BLOCK),
        "unused in the file": ("", []),
    }
    share = 100 * source.count_params() / built.count_params()
    assert table[-1] == (
        f"copied 13 of 18 layers, {source.count_params():,} of {built.count_params():,} parameters "
        f"({share:.1f}%); 0 shape-mismatched, 5 new in the spec, 0 unused in the file"
    )


def test_a_wider_head_is_a_shape_mismatch_with_both_shapes(tmp_path, write_spec):
    spec = write_spec(MLP)
    saved = tmp_path / "four.keras"
    save_model(graphspec.load(spec).build(), saved)
    model = graphspec.load(spec, ["classes=6"]).build()
    before = model.get_layer("head").get_weights()

    report = copy_matching_weights(model, saved)

    assert [layer.name for layer in report.copied] == ["hidden"]
    assert report.mismatched == [
        LayerWeights(
            "head",
            MISMATCHED,
            "Dense",
            8 * 6 + 6,
            8 * 4 + 4,
            "Dense",
            (WeightShapes("kernel", (8, 6), (8, 4)), WeightShapes("bias", (6,), (4,))),
        )
    ]
    assert all(
        np.array_equal(a, b) for a, b in zip(model.get_layer("head").get_weights(), before, strict=True)
    )
    row = next(line for line in report.table().splitlines() if line.startswith("  head"))
    assert row.split() == "head Dense 54 36 kernel (8, 6) vs (8, 4) in file, bias (6,) vs (4,)".split()


def test_a_layer_the_spec_dropped_is_unused_in_the_file(tmp_path, write_spec):
    saved = tmp_path / "deeper.keras"
    deeper = MLP.replace(
        'head:   {type: Dense, units: "${classes}", in: hidden}',
        "extra:  {type: Dense, units: 8, in: hidden}\n"
        '  head:   {type: Dense, units: "${classes}", in: extra}',
    )
    save_model(graphspec.load(write_spec(deeper, "deeper.yaml")).build(), saved)
    model = graphspec.load(write_spec(MLP)).build()

    report = copy_matching_weights(model, saved)

    assert [(layer.name, layer.status) for layer in report.layers] == [
        ("hidden", COPIED),
        ("head", COPIED),
        ("extra", UNUSED),
    ]
    assert report.unused[0].source_params == 8 * 8 + 8
    assert "  extra" in report.table()


def _with_encoder(widths: dict[str, int]) -> keras.Model:
    """A model that uses a model, 'encoder', as a layer: Dense layers of these widths, a head."""
    inner_in = keras.Input((4,), name="features")
    x = inner_in
    for name, units in widths.items():
        x = keras.layers.Dense(units, name=name)(x)
    encoder = keras.Model(inner_in, x, name="encoder")
    outer_in = keras.Input((4,), name="x")
    return keras.Model(outer_in, keras.layers.Dense(2, name="head")(encoder(outer_in)))


def test_the_layers_of_a_model_used_as_a_layer_are_matched_one_by_one():
    source = _with_encoder({"d1": 8, "d2": 8})
    model = _with_encoder({"d1": 8, "d2": 6, "d3": 8})

    report = copy_matching_weights(model, source)

    assert [(layer.name, layer.status) for layer in report.layers] == [
        ("encoder.d1", COPIED),
        ("encoder.d2", MISMATCHED),
        ("encoder.d3", NEW),
        ("head", COPIED),
    ]
    inner, theirs = model.get_layer("encoder").get_layer("d1"), source.get_layer("encoder").get_layer("d1")
    assert all(np.array_equal(a, b) for a, b in zip(inner.get_weights(), theirs.get_weights(), strict=True))


def test_partial_with_no_layer_in_common_is_an_error_and_writes_nothing(tmp_path, write_spec, two_blocks):
    out = tmp_path / "mlp.keras"
    result = runner.invoke(
        app, ["build", str(write_spec(MLP)), "--weights", str(two_blocks), "--partial", "-o", str(out)]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: no layer of {two_blocks} fits the model built from the spec: "
        "0 shape-mismatched, 2 new in the spec, 13 unused in the file\n"
        "  hint: layers are matched by name: the spec has 'hidden', 'head', the file 'embed', 'places', "
        "'decoder.0.ln1', 'decoder.0.attn' and 9 more\n"
    )
    assert not out.exists()


def test_partial_weights_from_a_file_that_is_not_a_keras_model_is_an_error(tmp_path, write_spec):
    text, no_config = tmp_path / "notes.keras", tmp_path / "empty.keras"
    text.write_text("not a model")
    with zipfile.ZipFile(no_config, "w") as archive:
        archive.writestr("readme.txt", "hello")
    out = tmp_path / "mlp.keras"
    for source, message in [
        (text, "it is not a zip archive"),
        (no_config, "it has no readable config.json"),
    ]:
        result = runner.invoke(
            app, ["build", str(write_spec(MLP)), "--weights", str(source), "--partial", "-o", str(out)]
        )
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: {source} is not a Keras model file (.keras): {message}")
        assert not out.exists()


def test_partial_needs_weights(write_spec):
    result = runner.invoke(app, ["build", str(write_spec(MLP)), "--partial"])
    assert result.exit_code == 2
    assert result.stderr == "error: --partial says how to load --weights, which is not given\n1 error\n"


def test_strict_weights_still_refuse_a_model_that_does_not_fit(tmp_path, write_spec):
    spec = write_spec(MLP)
    saved = tmp_path / "four.keras"
    save_model(graphspec.load(spec).build(), saved)
    model = graphspec.load(spec, ["classes=6"]).build()
    hidden = model.get_layer("hidden").get_weights()
    with pytest.raises(SpecErrors) as caught:
        copy_matching_weights(model, saved, partial=False)
    assert [d.message for d in caught.value.diagnostics.errors] == [
        f"layer 'head': weight 'kernel' has shape (8, 6), but in {saved} it has shape (8, 4)",
        f"layer 'head': weight 'bias' has shape (6,), but in {saved} it has shape (4,)",
    ]
    # The last error says how to carry over what fits.
    assert [d.hint for d in caught.value.diagnostics.errors] == [
        None,
        "--partial copies what fits (1 layer) and lists the rest",
    ]
    # Nothing copied, not even the layer that fits.
    assert all(
        np.array_equal(a, b) for a, b in zip(model.get_layer("hidden").get_weights(), hidden, strict=True)
    )


# --- train --init-from --------------------------------------------------------------------------

QUICK = [
    "--synthetic",
    "--samples",
    "4",
    "--batch-size",
    "2",
    "--epochs",
    "1",
    "--seed",
    "0",
    "--set",
    "compile.run_eagerly=true",
]
# A learning rate of 0: the run's model keeps the weights it started from.
FROZEN = ["--set", "compile.optimizer={type: SGD, learning_rate: 0.0}"]


def test_train_init_from_a_run_directory_starts_from_its_weights(tmp_path, two_blocks):
    run = tmp_path / "two_blocks_run"
    run.mkdir()
    (run / "model.keras").write_bytes(two_blocks.read_bytes())
    out = tmp_path / "three_blocks_run"
    result = runner.invoke(
        app, ["train", GPT2, *THREE_BLOCKS, *QUICK, *FROZEN, "--init-from", str(run), "--out", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    assert _table(result.stdout)[0] == f"weights from {run / 'model.keras'}, matched by layer name:"
    assert "new in the spec (5 layers)" in result.stdout
    source = _weights_with_weights(keras.saving.load_model(two_blocks))
    trained = _weights_with_weights(keras.saving.load_model(out / "model.keras"))
    for name, weights in source.items():
        assert all(np.array_equal(a, b) for a, b in zip(trained[name], weights, strict=True)), name


def test_quiet_train_init_from_prints_no_table(tmp_path, write_spec):
    spec = write_spec(MLP)
    saved = tmp_path / "mlp.keras"
    save_model(graphspec.load(spec).build(), saved)
    result = runner.invoke(
        app, ["train", str(spec), *QUICK, "-q", "--init-from", str(saved), "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 0, result.stderr
    assert "weights from" not in result.stdout
    assert result.stdout.splitlines()[-1] == f"run saved in {tmp_path / 'run'}"


def _missing(folder: Path) -> Path:
    return folder / "missing"


def _run_without_model(folder: Path) -> Path:
    (folder / "run").mkdir()
    return folder / "run"


def _text_file(folder: Path) -> Path:
    (folder / "t.keras").write_text("not a model")
    return folder / "t.keras"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_missing, "error: no such file or run directory: {path}\n"),
        (
            _run_without_model,
            "error: {path} has no model.keras: weights come from a .keras file or a finished run directory\n",
        ),
        (_text_file, "error: {path} is not a Keras model file (.keras): it is not a zip archive\n"),
    ],
    ids=["missing", "run-without-model", "not-keras"],
)
def test_train_init_from_a_bad_source_is_an_error_before_any_run_directory(
    tmp_path, write_spec, make, message
):
    path = make(tmp_path)
    runs = tmp_path / "runs"
    result = runner.invoke(
        app, ["train", str(write_spec(MLP)), *QUICK, "--init-from", str(path), "--runs-dir", str(runs)]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(message.format(path=path))
    assert not runs.exists()


def test_train_init_from_an_unfinished_run_says_to_resume_it(tmp_path, write_spec):
    run = tmp_path / "run"
    (tmp_path / ".run.partial").mkdir()
    run.mkdir()
    result = runner.invoke(app, ["train", str(write_spec(MLP)), *QUICK, "--init-from", str(run)])
    assert result.exit_code == 2
    assert f"  hint: the run did not finish: graphspec train --resume {run}\n" in result.stderr


def test_train_init_from_with_no_layer_in_common_writes_no_run(tmp_path, write_spec, two_blocks):
    runs = tmp_path / "runs"
    result = runner.invoke(
        app, ["train", str(write_spec(MLP)), *QUICK, "--init-from", str(two_blocks), "--runs-dir", str(runs)]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: no layer of {two_blocks} fits the model built from the spec")
    assert not runs.exists()


def test_init_from_is_not_for_resume(tmp_path, two_blocks):
    result = runner.invoke(app, ["train", "--resume", str(tmp_path), "--init-from", str(two_blocks)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --resume continues a run from its own weights")


def test_the_report_is_usable_from_a_notebook(write_spec):
    """A model from `graphspec.load(...).build()` and a source model in memory, nothing saved."""
    spec = write_spec(MLP)
    source = graphspec.load(spec).build()
    model = graphspec.load(spec, ["classes=6"]).build()
    report = copy_matching_weights(model, source)
    assert report.copied_weights
    assert [(layer.name, layer.status) for layer in report.layers] == [
        ("hidden", COPIED),
        ("head", MISMATCHED),
    ]
    assert report.copied_params == source.get_layer("hidden").count_params()
    assert str(report).splitlines()[0] == f"weights from model '{source.name}', matched by layer name:"
    assert np.array_equal(
        model.get_layer("hidden").get_weights()[0], source.get_layer("hidden").get_weights()[0]
    )


def test_match_weights_says_what_would_be_copied_and_copies_nothing(write_spec):
    spec = write_spec(MLP)
    source = graphspec.load(spec).build()
    model = graphspec.load(spec, ["classes=6"]).build()
    hidden = model.get_layer("hidden").get_weights()[0]
    report = match_weights(model, source)
    assert [layer.name for layer in report.copied] == ["hidden"]
    assert report.summary().startswith("would copy 1 of 2 layers")
    assert np.array_equal(model.get_layer("hidden").get_weights()[0], hidden)

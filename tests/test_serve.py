"""Serving formats (issue 23, item 4): `graphspec export-model RUN` and `graphspec build --format`
write through Keras's `model.export`; each format is loaded in its own runtime and compared with
Keras's `predict` on the same weights."""

from __future__ import annotations

import importlib.util

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from graphspec import atomic
from graphspec.cli import app
from graphspec.errors import SpecErrors

# Two named inputs, one through a Normalization with its own mean and variance (state the
# exported graph must carry), and two named outputs.
SPEC = """\
graphspec: 1
name: served
inputs:
  features: {shape: [4]}
  extra: {shape: [3]}
layers:
  scaled: {type: Normalization, mean: [1, 2, 3, 4], variance: [1, 4, 9, 16], in: features}
  joined: {type: Concatenate, in: [scaled, extra]}
  hidden: {type: Dense, units: 8, activation: relu, in: joined}
  score: {type: Dense, units: 1, in: hidden}
  probs: {type: Dense, units: 3, activation: softmax, in: hidden}
outputs:
  score: {loss: mse}
  probs: {loss: categorical_crossentropy}
train: {epochs: 1, batch_size: 8, samples: 16}
"""
BATCHES = (5, 2)  # two batch sizes: the batch dimension stays dynamic


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def inputs(batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    return {
        "features": rng.normal(2.0, 3.0, (batch, 4)).astype("float32"),
        "extra": rng.normal(size=(batch, 3)).astype("float32"),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished run of SPEC, and Keras's own predictions from its model.keras per batch size."""
    folder = tmp_path_factory.mktemp("serve")
    (folder / "served.yaml").write_text(SPEC)
    result = run("train", folder / "served.yaml", "--synthetic", "--out", folder / "run", "-q")
    assert result.exit_code == 0, result.output
    model = keras.saving.load_model(folder / "run" / "model.keras", compile=False)
    expected = {batch: model.predict(inputs(batch), verbose=0) for batch in BATCHES}
    return folder / "run", expected


def export(run_folder, format_name, output):
    result = run("export-model", run_folder, "--format", format_name, "-o", output)
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"saved {output}")


def assert_close(got: dict, expected: dict, tolerance: float = 1e-5) -> None:
    assert sorted(got) == ["probs", "score"]
    for name, value in got.items():
        np.testing.assert_allclose(np.asarray(value), expected[name], atol=tolerance, rtol=0)


def needs(package: str, what: str) -> None:
    if importlib.util.find_spec(package) is None:
        pytest.skip(
            f"{package} is not installed, so {what} cannot be checked (pip install 'graphspec[serve]')"
        )


def test_onnx_runs_in_onnxruntime_by_the_spec_names_as_keras_predicts(trained, tmp_path):
    needs("onnxruntime", "the ONNX file")
    import onnxruntime

    run_folder, expected = trained
    export(run_folder, "onnx", tmp_path / "served.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "served.onnx"))
    # Only the spec's inputs: the Normalization's mean and variance are in the graph.
    assert sorted(i.name for i in session.get_inputs()) == ["extra", "features"]
    assert all(isinstance(i.shape[0], str) for i in session.get_inputs())  # a symbolic batch
    names = [o.name for o in session.get_outputs()]
    for batch in BATCHES:
        assert_close(dict(zip(names, session.run(None, inputs(batch)), strict=True)), expected[batch])


def test_saved_model_serves_by_the_spec_names_as_keras_predicts(trained, tmp_path):
    import tensorflow as tf

    run_folder, expected = trained
    export(run_folder, "saved_model", tmp_path / "served")
    serve = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"]
    _, specs = serve.structured_input_signature
    assert {name: spec.shape.as_list() for name, spec in specs.items()} == {
        "features": [None, 4],
        "extra": [None, 3],
    }
    for batch in BATCHES:
        assert_close({k: v.numpy() for k, v in serve(**inputs(batch)).items()}, expected[batch])


def test_litert_runs_in_its_interpreter_by_the_spec_names_as_keras_predicts(trained, tmp_path):
    needs("ai_edge_litert", "the LiteRT file")
    from ai_edge_litert.interpreter import Interpreter

    run_folder, expected = trained
    export(run_folder, "litert", tmp_path / "served.tflite")
    interpreter = Interpreter(model_path=str(tmp_path / "served.tflite"))
    runner = interpreter.get_signature_runner("serving_default")
    assert sorted(runner.get_input_details()) == ["extra", "features"]
    for batch in BATCHES:
        assert_close(runner(**inputs(batch)), expected[batch])


def test_openvino_runs_in_its_runtime_by_the_spec_names_as_keras_predicts(trained, tmp_path):
    needs("openvino", "the OpenVINO model")
    import openvino

    run_folder, expected = trained
    export(run_folder, "openvino", tmp_path / "served")
    assert sorted(p.name for p in (tmp_path / "served").iterdir()) == ["model.bin", "model.xml"]
    # float32 throughout: OpenVINO's CPU plugin would otherwise compute in bfloat16 where the
    # processor has it, which is not the model Keras predicts with.
    compiled = openvino.Core().compile_model(
        str(tmp_path / "served" / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    assert sorted(i.get_any_name() for i in compiled.inputs) == ["extra", "features"]
    for batch in BATCHES:
        results = compiled(inputs(batch))
        assert_close({o.get_any_name(): results[o] for o in compiled.outputs}, expected[batch])


def test_build_format_exports_the_spec_with_the_weights_given(trained, tmp_path):
    needs("onnxruntime", "the ONNX file")
    import onnxruntime

    run_folder, expected = trained
    spec = run_folder.parent / "served.yaml"
    result = run("build", spec, "--weights", run_folder, "--format", "onnx", "-o", tmp_path / "b.onnx")
    assert result.exit_code == 0, result.output
    session = onnxruntime.InferenceSession(str(tmp_path / "b.onnx"))
    names = [o.name for o in session.get_outputs()]
    assert_close(dict(zip(names, session.run(None, inputs(5)), strict=True)), expected[5])


def test_an_op_without_an_onnx_mapping_is_refused_at_its_line_and_nothing_is_written(write_spec, tmp_path):
    needs("tf2onnx", "ONNX conversion")
    spec = write_spec(
        """
        graphspec: 1
        name: unmapped
        inputs:
          x: {shape: [4]}
        layers:
          hidden: {type: Dense, units: 4, activation: tanh, in: x}
          spread: {op: erfinv, in: hidden}
          y: {type: Dense, units: 2, in: spread}
        outputs:
          y: {loss: mse}
        """
    )
    output = tmp_path / "out" / "unmapped.onnx"
    result = run("build", spec, "--totals", "--format", "onnx", "-o", output)
    assert result.exit_code == 2
    assert result.stderr.endswith(
        f"{spec}:7:3: error: node 'spread' (op erfinv) uses TensorFlow's Erfinv, which has no ONNX "
        "mapping (tf2onnx); nothing was written\n"
        "    spread: {op: erfinv, in: hidden}\n"
        "    ^~~~~~\n"
        "  hint: export to saved_model, litert or openvino, which run TensorFlow's operations\n"
        "1 error\n"
    )
    assert not (tmp_path / "out").exists()  # not even the folder made for it


def test_a_folder_with_files_in_it_is_not_replaced(trained, tmp_path):
    run_folder, _ = trained
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "notes.txt").write_text("mine")
    result = run("export-model", run_folder, "--format", "saved_model", "-o", tmp_path / "served")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot write {tmp_path / 'served'}: it is a folder with files in it\n"
        "  hint: remove it or choose another folder\n1 error\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["served"]
    assert (tmp_path / "served" / "notes.txt").read_text() == "mine"


def test_an_empty_folder_is_written_into(trained, tmp_path):
    run_folder, _ = trained
    (tmp_path / "served").mkdir()
    export(run_folder, "saved_model", tmp_path / "served")
    assert (tmp_path / "served" / "saved_model.pb").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["served"]  # no temporary folder left


def test_the_output_must_have_the_format_ending(trained, tmp_path):
    run_folder, _ = trained
    result = run("export-model", run_folder, "--format", "litert", "-o", tmp_path / "served.onnx")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --format litert writes a .tflite file: --output is '{tmp_path / 'served.onnx'}'\n1 error\n"
    )


def test_an_unknown_format_names_the_known_ones(trained, tmp_path):
    run_folder, _ = trained
    result = run("export-model", run_folder, "--format", "tflite", "-o", tmp_path / "x.tflite")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: unknown --format 'tflite': choose one of saved_model, onnx, litert, openvino\n1 error\n"
    )


def test_a_missing_runtime_package_is_named_with_how_to_install_it(trained, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a)
    )
    result = run("export-model", trained[0], "--format", "onnx", "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --format onnx needs the package tf2onnx, which is not installed\n"
        "  hint: install with: pip install 'graphspec[serve]'\n1 error\n"
    )


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    result = run("export-model", tmp_path, "--format", "onnx", "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {tmp_path} is not a run directory: it has no model.keras\n")
    assert [p.name for p in tmp_path.iterdir()] == []


# The folder formats' writes (atomic.replacing_folder), without a model.


def test_a_failed_folder_write_leaves_nothing_not_even_the_folders_made_for_it(tmp_path):
    target = tmp_path / "new" / "served"
    with pytest.raises(RuntimeError), atomic.replacing_folder(target) as temporary:
        (temporary / "saved_model.pb").write_bytes(b"half")
        raise RuntimeError("the converter failed")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_a_killed_write_left_is_taken_over(tmp_path):
    left = tmp_path / ".served.partial"
    left.mkdir()
    (left / atomic.FOLDER_MARK).write_text("")
    (left / "stale.bin").write_bytes(b"old")
    with atomic.replacing_folder(tmp_path / "served") as temporary:
        (temporary / "model.xml").write_text("<net/>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]
    assert sorted(p.name for p in (tmp_path / "served").iterdir()) == ["model.xml"]


def test_a_hidden_folder_graphspec_did_not_make_is_not_deleted(tmp_path):
    theirs = tmp_path / ".served.partial"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(SpecErrors) as caught, atomic.replacing_folder(tmp_path / "served"):
        pass
    assert caught.value.diagnostics.errors[0].message == (
        f"cannot write {tmp_path / 'served'}: {theirs} is in the way, and graphspec did not make it"
    )
    assert (theirs / "notes.txt").read_text() == "mine"


def test_a_second_writer_of_the_same_folder_is_refused(tmp_path):
    with atomic.replacing_folder(tmp_path / "served") as temporary:
        (temporary / "model.xml").write_text("<net/>")
        with pytest.raises(SpecErrors) as caught, atomic.replacing_folder(tmp_path / "served"):
            pass
        assert caught.value.diagnostics.errors[0].message == (
            f"cannot write {tmp_path / 'served'}: another graphspec process is writing it"
        )
    assert sorted(p.name for p in (tmp_path / "served").iterdir()) == ["model.xml"]


def test_an_adapted_normalization_is_exported_with_the_statistics_it_learned(tmp_path):
    """A run's model.keras whose Normalization was adapted (its mean and variance are weights,
    not arguments): the exported graph normalises as the trained model does."""
    needs("onnxruntime", "the ONNX file")
    import onnxruntime

    import graphspec
    from graphspec.keras.save import save_model

    spec = SPEC.replace(
        "{type: Normalization, mean: [1, 2, 3, 4], variance: [1, 4, 9, 16], in: features}",
        "{type: Normalization, in: features}",
    )
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "spec.yaml").write_text(spec)
    loaded = graphspec.load(folder / "spec.yaml")
    model = loaded.build()
    scaled = model.get_layer("scaled")
    scaled.adapt(np.random.default_rng(1).normal(50.0, 10.0, (64, 4)).astype("float32"))
    assert np.all(np.asarray(scaled.mean) > 40)  # learned, not the initial zeros
    save_model(model, folder / "model.keras", loaded)
    expected = keras.saving.load_model(folder / "model.keras", compile=False).predict(inputs(5), verbose=0)

    export(folder, "onnx", tmp_path / "adapted.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "adapted.onnx"))
    names = [o.name for o in session.get_outputs()]
    assert_close(dict(zip(names, session.run(None, inputs(5)), strict=True)), expected)


def test_a_model_with_a_structure_and_a_fixed_batch_is_served_by_name_and_any_batch(write_spec, tmp_path):
    """`structure:` makes the Keras model take a list and give one tensor, and an input fixes its
    batch size; the served model still takes and gives the spec's names, at any batch size."""
    needs("onnxruntime", "the ONNX file")
    import onnxruntime

    import graphspec
    from graphspec.keras import serve

    loaded = graphspec.load(
        write_spec(
            """
            graphspec: 1
            name: listed
            structure: {inputs: [features, extra], outputs: probs}
            inputs:
              features: {shape: [4]}
              extra: {shape: [3], batch_size: 2}
            layers:
              joined: {type: Concatenate, in: [features, extra]}
              probs: {type: Dense, units: 3, activation: softmax, in: joined}
            outputs:
              probs: {loss: categorical_crossentropy}
            """
        )
    )
    model = loaded.build()
    serve.export(model, loaded, "onnx", tmp_path / "listed.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "listed.onnx"))
    assert [o.name for o in session.get_outputs()] == ["probs"]
    x = inputs(5)
    (got,) = session.run(None, x)
    np.testing.assert_allclose(got, model.predict([x["features"], x["extra"]], verbose=0), atol=1e-5, rtol=0)

"""`graphspec export` and `build --weights`: Keras models written as specs, and weights by name.

An export is proven by building the exported spec and comparing it with the original model:
the same parameter counts, the same layer classes, the same connections between the same-named
layers, and, with the original's weights loaded by name, the same outputs on random inputs.
This is done for the chapter's own Keras code of every book model, for every book spec built,
saved and exported again, and for keras.applications ResNet50 and MobileNetV2.
"""

from __future__ import annotations

import gc
import os
import textwrap
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import layers  # noqa: E402
from keras.src.ops.function import make_node_key  # noqa: E402
from test_book_models import CASES, Named  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import graphspec  # noqa: E402
from graphspec.cli import app  # noqa: E402
from graphspec.errors import SpecErrors  # noqa: E402
from graphspec.keras.export import Export, export_model, export_source  # noqa: E402
from graphspec.keras.save import save_model  # noqa: E402
from graphspec.keras.weights import _made_up, load_weights_by_name  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not pass an `input_shape`:UserWarning",
    "ignore:Skipping variable loading for optimizer:UserWarning",
    "ignore:.*does not support masking:UserWarning",
)
runner = CliRunner()
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _fresh_keras():
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()
    gc.collect()


# --- helpers ----------------------------------------------------------------------------------


def topology(model: keras.Model) -> tuple[Counter, set[tuple[str, str]]]:
    """Layer classes (nested models as 'Model') and layer-to-layer connections, nested included.

    keras.ops operations are left out: the only ones an exported spec may drop are the mask
    computations Keras adds by itself, and it adds them again to the rebuilt model.
    """
    classes: Counter = Counter()
    edges: set[tuple[str, str]] = set()

    def walk(m: keras.Model, prefix: str) -> None:
        graph = m._functional if isinstance(m, keras.Sequential) else m
        # Inside a model used as a layer, a name Keras made up (a keras.applications base's
        # `conv2d_7`) depends on what the session built before: such layers are known by their
        # class and place instead, as `build --weights` matches them.
        places: Counter = Counter()
        names: dict[int, str] = {}
        for op in graph.operations:
            if prefix and _made_up(op):
                names[id(op)] = f"{type(op).__name__}#{places[type(op)]}"
                places[type(op)] += 1

        def name(op: Any) -> str:
            return prefix + names.get(id(op), op.name)

        for op in graph.operations:
            if not isinstance(op, keras.layers.Layer) or isinstance(op, keras.layers.InputLayer):
                continue
            classes["Model" if isinstance(op, keras.Model) else type(op).__name__] += 1
            for index, node in enumerate(op._inbound_nodes):
                if make_node_key(op, index) not in graph._nodes:
                    continue
                for tensor in node.input_tensors:
                    producer = tensor._keras_history[0]
                    if isinstance(producer, keras.layers.Layer):
                        edges.add((name(producer), name(op)))
            if isinstance(op, keras.Model):
                walk(op, f"{prefix}{op.name}/")

    walk(model, "")
    return classes, edges


def random_inputs(model: keras.Model, length: int = 300, seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays for each input of `model`, by input name; unknown lengths are `length`."""
    rng = np.random.default_rng(seed)
    data = {}
    for tensor in model.inputs:
        shape = (2, *(d if d is not None else length for d in tensor.shape[1:]))
        name = tensor._keras_history[0].name
        if "int" in str(tensor.dtype):
            data[name] = rng.integers(0, 100, size=shape).astype(str(tensor.dtype))
        else:
            data[name] = rng.standard_normal(shape).astype(str(tensor.dtype))
    return data


def outputs_of(model: keras.Model, data: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """The model's outputs on `data`, named: a dict model's by key, a list model's by `names`."""
    graph = model._functional if isinstance(model, keras.Sequential) else model
    feed = keras.tree.map_structure(lambda t: data[t._keras_history[0].name], graph._inputs_struct)
    result = model.predict(feed, verbose=0)
    if isinstance(result, dict):
        return {k: np.asarray(v) for k, v in result.items()}
    result = result if isinstance(result, list) else [result]
    return dict(zip(names, (np.asarray(r) for r in result), strict=True))


def rebuild(exported: Export, tmp_path: Path, overrides: list[str] | None = None) -> keras.Model:
    """Write the export, check it validates, and build it."""
    path = tmp_path / "exported.yaml"
    exported.write(path)
    loaded = graphspec.load(path, overrides or [])
    assert loaded.diagnostics.errors == []
    return loaded.build()


def assert_same_model(
    original: keras.Model, rebuilt: keras.Model, exported: Export, length: int = 300
) -> None:
    """Same counts, classes and connections; the same outputs once weights are copied by name."""
    assert rebuilt.count_params() == original.count_params()
    assert topology(rebuilt) == topology(original)
    load_weights_by_name(rebuilt, original)
    data = random_inputs(original, length)
    names = list(exported.spec["outputs"])
    expected = outputs_of(original, data, names)
    actual = outputs_of(rebuilt, data, names)
    assert set(actual) == set(expected)
    for name in expected:
        assert actual[name].shape == expected[name].shape
        assert float(np.max(np.abs(actual[name] - expected[name]))) <= TOLERANCE


# --- the book's models --------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_the_chapters_keras_code_exports_to_an_equal_spec(case, tmp_path):
    """The chapter's own Sequential and functional models: auto-named layers, input_shape=..."""
    original = case.chapter(Named())
    exported = export_model(original, origin=case.spec)
    assert_same_model(original, rebuild(exported, tmp_path), exported)


@pytest.mark.parametrize("spec", sorted(p.name for p in Path("specs").glob("book_*.yaml")))
def test_each_book_spec_survives_build_save_export(spec, tmp_path):
    """spec -> Keras -> .keras -> export -> spec -> Keras, with the weights from the .keras."""
    overrides = ["size=71"] if spec == "book_twin_camera.yaml" else []  # Xception's smallest input
    loaded = graphspec.load(Path("specs") / spec, overrides)
    original = loaded.build()
    saved = tmp_path / "model.keras"
    save_model(original, saved)
    exported = export_source(str(saved))
    # Losses, loss weights, metrics and the optimizer come along from the compiled model.
    for name, output in loaded.spec.outputs.items():
        assert exported.spec["outputs"][name].get("loss") == output.loss
        assert exported.spec["outputs"][name].get("weight", 1.0) == output.weight
    rebuilt = rebuild(exported, tmp_path)
    assert rebuilt.count_params() == original.count_params()
    assert topology(rebuilt) == topology(original)
    load_weights_by_name(rebuilt, saved)
    length = next((i.seq_len for i in loaded.spec.inputs.values() if i.seq_len), 32)
    data = random_inputs(original, length)
    names = list(loaded.spec.outputs)
    expected, actual = outputs_of(original, data, names), outputs_of(rebuilt, data, names)
    for name in names:
        assert float(np.max(np.abs(actual[name] - expected[name]))) <= TOLERANCE


# --- keras.applications -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, args",
    [
        ("applications.ResNet50", ["include_top=false", "input_shape=[64, 64, 3]"]),
        ("applications.MobileNetV2", ["include_top=false", "input_shape=[96, 96, 3]"]),
    ],
)
def test_applications_export_to_equal_specs(name, args, tmp_path):
    exported = export_source(name, args)
    keras.backend.clear_session()
    from graphspec.keras.export import application, parse_arguments

    original = application(name, parse_arguments(args))
    assert_same_model(original, rebuild(exported, tmp_path), exported)


def test_resnet50_with_its_top_has_the_papers_parameter_count(tmp_path):
    exported = export_source("applications.ResNet50")
    rebuilt = rebuild(exported, tmp_path)
    assert rebuilt.count_params() == 25_636_712
    assert rebuilt.count_params() == graphspec.load("specs/resnet50.yaml").build(compile=False).count_params()
    text = exported.to_yaml()
    assert (
        "\n  conv1_conv:  " in text
        and "{type: Conv2D, filters: 64, kernel_size: 7, strides: 2, in: conv1_pad}" in text
    )


# --- what an export says ----------------------------------------------------------------------


def test_only_arguments_that_differ_from_the_defaults_are_written():
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    embedded = layers.Embedding(100, 8, mask_zero=True, name="embed")(tokens)
    seq = layers.LSTM(4, return_sequences=True, name="lstm")(embedded)  # reads the mask
    conv = layers.Conv1D(
        4,
        3,
        padding="same",
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(0.02),
        name="conv",
    )(embedded)
    pooled = layers.MaxPooling1D(3, name="pool")(conv)  # strides follow pool_size
    last = layers.LSTM(4, name="last")(seq)
    dropped = layers.Dropout(0.25, name="drop")(last, training=True)
    merged = layers.Concatenate(name="merged")([dropped, layers.GlobalAveragePooling1D(name="gap")(pooled)])
    out = layers.Dense(2, activation="softmax", name="out")(merged)
    model = keras.Model(tokens, out, name="masked")
    model.compile(optimizer=keras.optimizers.Adam(5e-4), loss="categorical_crossentropy", metrics=["acc"])
    assert export_model(model, origin="a test").to_yaml() == textwrap.dedent("""\
        # Exported from a test by `graphspec export`.
        graphspec: 1
        name: masked

        inputs:
          tokens: {shape: [null], dtype: int32}

        layers:
          embed:  {type: Embedding, input_dim: 100, output_dim: 8, mask_zero: true, in: tokens}
          conv:   {type: Conv1D, filters: 4, kernel_size: 3, padding: same, kernel_initializer: {type: HeNormal}, kernel_regularizer: {type: L2, l2: 0.02}, in: embed}
          lstm:   {type: LSTM, units: 4, return_sequences: true, in: embed}
          pool:   {type: MaxPooling1D, pool_size: 3, in: conv}
          last:   {type: LSTM, units: 4, in: lstm}
          drop:   {type: Dropout, rate: 0.25, in: last, call: {training: true}}
          gap:    {type: GlobalAveragePooling1D, in: pool}
          merged: {type: Concatenate, in: [drop, gap]}
          out:    {type: Dense, units: 2, activation: softmax, in: merged}

        outputs:
          out: {loss: categorical_crossentropy, metrics: [acc]}

        structure: {inputs: tokens, outputs: out}

        compile:
          optimizer: {type: Adam, learning_rate: 0.0005}
        """)  # noqa: E501


def test_the_mask_keras_computes_comes_back_when_the_spec_is_built(tmp_path):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    embedded = layers.Embedding(50, 4, mask_zero=True, name="embed")(tokens)
    out = layers.LSTM(3, name="lstm")(embedded)
    model = keras.Model(tokens, out)
    exported = export_model(model)
    rebuilt = rebuild(exported, tmp_path)
    load_weights_by_name(rebuilt, model)
    # Padding (zeros) at the end changes nothing only where the mask reaches the LSTM.
    data = np.array([[3, 5, 7, 0, 0], [3, 5, 7, 9, 0]], dtype="int32")
    short = np.array([[3, 5, 7], [3, 5, 7]], dtype="int32")
    result = np.asarray(rebuilt.predict(data, verbose=0))  # one tensor in and out, as the model
    np.testing.assert_allclose(result[0], np.asarray(model.predict(short, verbose=0))[0], atol=TOLERANCE)
    np.testing.assert_allclose(result, np.asarray(model.predict(data, verbose=0)), atol=TOLERANCE)


def test_shared_layers_and_nested_models_stay_what_they_are(tmp_path):
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    inner_in = keras.Input((4,), name="inner_in")
    encoder = keras.Model(inner_in, layers.Dense(3, name="inner")(inner_in), name="encoder")
    head = keras.Sequential(
        [keras.Input((3,), name="head_in"), layers.Dense(2, name="h1"), layers.ReLU(name="h2")], name="head"
    )
    shared = layers.Dense(3, name="shared")
    total = layers.Add(name="sum")([encoder(a), encoder(b), shared(a), shared(b)])
    model = keras.Model({"a": a, "b": b}, {"head": head(total)}, name="parent")
    exported = export_model(model)
    assert exported.spec["layers"] == {
        "encoder": {"spec": "parent.encoder.yaml", "in": "a"},
        "encoder_2": {"share": "encoder", "in": "b"},
        "shared": {"type": "Dense", "units": 3, "in": "a"},
        "shared_2": {"share": "shared", "in": "b"},
        "sum": {"type": "Add", "in": ["encoder", "encoder_2", "shared", "shared_2"]},
        "head": {"spec": "parent.head.yaml", "in": "sum"},
    }
    assert sorted(exported.files()) == ["parent.encoder.yaml", "parent.head.yaml"]
    assert exported.files()["parent.head.yaml"].endswith(
        textwrap.dedent("""\
        inputs:
          head_in: {shape: [3]}

        layers:
          h1: {type: Dense, units: 2, in: head_in}
          h2: {type: ReLU, in: h1}

        outputs:
          h2: {}

        structure: {inputs: head_in, outputs: h2}
        """)
    )
    assert_same_model(model, rebuild(exported, tmp_path), exported)


def test_a_keras_application_used_as_a_layer_comes_back_as_its_constructor(tmp_path):
    image = keras.Input((32, 32, 3), name="image")
    base = keras.applications.MobileNetV2(
        weights=None, include_top=False, pooling="avg", input_shape=(32, 32, 3)
    )
    model = keras.Model(image, layers.Dense(2, name="score")(base(image)), name="scorer")
    exported = export_model(model)
    # One readable node instead of the nested spec of its 150 layers; the weights still fit.
    assert exported.spec["layers"][base.name] == {
        "type": "applications.MobileNetV2",
        "input_shape": [32, 32, 3],
        "include_top": False,
        "pooling": "avg",
        "in": "image",
    }
    assert not exported.files()
    assert_same_model(model, rebuild(exported, tmp_path), exported)


def test_a_model_named_like_an_application_but_built_otherwise_stays_a_nested_spec():
    inner_in = keras.Input((8,), name="inner_in")
    look_alike = keras.Model(inner_in, layers.Dense(3, name="d")(inner_in), name="vgg16")
    x = keras.Input((8,), name="x")
    exported = export_model(keras.Model(x, look_alike(x), name="outer"))
    assert exported.spec["layers"]["vgg16"] == {"spec": "outer.vgg16.yaml", "in": "x"}


def test_a_nested_spec_with_named_inputs_and_outputs_comes_back(tmp_path):
    (tmp_path / "enc.yaml").write_text(
        textwrap.dedent("""
        graphspec: 1
        name: enc
        inputs: {a: {shape: [4]}, b: {shape: [3]}}
        layers:
          cat:   {type: Concatenate, in: [a, b]}
          left:  {type: Dense, units: 2, in: cat}
          right: {type: Dense, units: 5, in: cat}
        outputs: {left: {}, right: {}}
    """)
    )
    (tmp_path / "main.yaml").write_text(
        textwrap.dedent("""
        graphspec: 1
        name: main
        inputs: {x: {shape: [4]}, y: {shape: [3]}}
        layers:
          enc:  {spec: enc.yaml, in: {a: x, b: y}}
          enc2: {share: enc, in: [x, y]}
          both: {type: Concatenate, in: ["enc[left]", "enc[right]", "enc2[1]"]}
          out:  {type: Dense, units: 1, in: both}
        outputs: {out: {loss: mse}}
    """)
    )
    original = graphspec.load(tmp_path / "main.yaml").build()
    exported = export_model(original)
    assert exported.spec["layers"]["enc_2"] == {"share": "enc", "in": {"a": "x", "b": "y"}}
    assert exported.spec["layers"]["both"]["in"] == ["enc[left]", "enc[right]", "enc_2[right]"]
    out = tmp_path / "out"
    out.mkdir()
    assert_same_model(original, rebuild(exported, out), exported)


# --- what cannot be exported ------------------------------------------------------------------


def message(exc: pytest.ExceptionInfo) -> str:
    return exc.value.diagnostics.render()


def test_a_keras_ops_operation_the_catalog_does_not_list_is_refused_by_name():
    x = keras.Input((4, 4, 3), name="x")
    y = keras.ops.image.rgb_to_grayscale(layers.Dense(3, name="dense")(x))
    with pytest.raises(SpecErrors) as exc:
        export_model(keras.Model(x, y))
    op = keras.Model(x, y).operations[-1]
    assert message(exc) == (
        f"error: '{op.name}' is the keras.ops operation keras.ops.r_g_b_to_grayscale (RGBToGrayscale), "
        "which a spec cannot hold: it is not among the catalog's ops\n  hint: write it as a layer "
        "(keras.layers has one for most operations: Add, Multiply, Concatenate, Reshape, Activation, ...)"
    )


@pytest.mark.parametrize(
    "index, shown, kind",
    [
        (lambda t: t[:, None], "(slice(None, None, None), None)", "a slice"),
        (lambda t: t[:, 1], "(slice(None, None, None), 1)", "a slice"),
        (lambda t: t[..., 1:], "(Ellipsis, slice(1, None, None))", "an Ellipsis (...)"),
    ],
    ids=["newaxis", "index", "ellipsis"],
)
def test_indexing_with_a_slice_is_refused_by_name_not_a_traceback(tmp_path, index, shown, kind):
    x = keras.Input((4, 3), name="x")
    model = keras.Model(x, layers.Dense(2, name="dense")(index(x)))
    op = model.operations[1]
    path = tmp_path / "sliced.keras"
    model.save(path)
    result = runner.invoke(app, ["export", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: op '{op.name}' calls keras.ops.get_item with key=",
    )
    assert f"which a spec cannot write: it holds {kind}\n" in result.stderr
    with pytest.raises(SpecErrors) as exc:
        export_model(model)
    assert message(exc).startswith(f"error: op '{op.name}' calls keras.ops.get_item with key={shown}, ")


def test_a_lambda_layer_is_refused_for_what_it_does():
    model = keras.Sequential([keras.Input((3,)), layers.Lambda(lambda t: t * 2, name="double")])
    with pytest.raises(SpecErrors) as exc:
        export_model(model)
    assert message(exc) == (
        "error: layer 'double' is a Lambda layer, which graphspec refuses: its argument "
        "'function' runs code, and a spec cannot run code"
    )


@keras.saving.register_keras_serializable(package="graphspec_tests")
class Scale(layers.Layer):
    """A custom layer: not something a spec can name."""

    def call(self, inputs):
        return inputs * 2.0


def test_a_custom_layer_is_refused_by_name(tmp_path):
    model = keras.Sequential([keras.Input((3,), name="x"), Scale(name="scale")])
    with pytest.raises(SpecErrors) as exc:
        export_model(model)
    assert message(exc) == (
        f"error: layer 'scale' is of class '{__name__}.Scale', which is not a "
        "keras.layers class; a spec can only name Keras's own layers"
    )
    path = tmp_path / "custom.keras"
    model.save(path)
    result = runner.invoke(app, ["export", str(path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {path}: layer 'scale' is of class 'graphspec_tests>Scale', which is "
        "not Keras's own; a spec can only name keras.layers classes\n1 error\n"
    )


def test_a_file_that_is_not_a_keras_model_is_a_clear_error(tmp_path):
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    result = runner.invoke(app, ["export", str(text)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {text} is not a Keras model file (.keras): it is not a zip archive\n"
        "  hint: save the model with model.save('model.keras')\n1 error\n"
    )
    empty = tmp_path / "empty.keras"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("readme.txt", "hello")
    result = runner.invoke(app, ["export", str(empty)])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: {empty} is not a Keras model file (.keras): it has no readable config.json"
    )
    result = runner.invoke(app, ["build", "specs/book_mlp.yaml", "--weights", str(text)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {text} is not a Keras model file (.keras)")


def test_an_unknown_application_is_a_clear_error():
    result = runner.invoke(app, ["export", "applications.ResNet51"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: keras.applications has no model 'ResNet51'\n  hint: did you mean 'ResNet50'?\n1 error\n"
    )


# --- the commands ------------------------------------------------------------------------------


def test_export_then_build_with_weights_from_the_command_line(tmp_path):
    loaded = graphspec.load("specs/book_mlp.yaml")
    original = loaded.build()
    saved = tmp_path / "mlp.keras"
    save_model(original, saved)
    out = tmp_path / "mlp.yaml"
    result = runner.invoke(app, ["export", str(saved), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"wrote {out}\n"
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0
    result = runner.invoke(app, ["build", str(out), "--weights", str(saved), "-o", str(tmp_path / "b.keras")])
    assert result.exit_code == 0, result.stderr
    assert f"loaded weights of 3 layers from {saved}\n" in result.stdout
    again = keras.saving.load_model(tmp_path / "b.keras")
    x = np.random.default_rng(1).standard_normal((3, 64)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(again.predict({"x": x}, verbose=0)["probs"]),
        np.asarray(original.predict({"x": x}, verbose=0)["probs"]),
        atol=TOLERANCE,
    )


def test_weights_that_do_not_fit_are_each_reported(tmp_path, write_spec):
    saved = tmp_path / "mlp.keras"
    save_model(graphspec.load("specs/book_mlp.yaml").build(), saved)
    probs = 'probs:   {type: Dense, units: "${classes}", activation: softmax, in: hidden2}'
    other = write_spec(
        Path("specs/book_mlp.yaml")
        .read_text()
        .replace("hidden: 32", "hidden: 16")
        .replace(
            probs,
            "extra:   {type: Dense, units: 4, in: hidden2}\n  " + probs.replace("in: hidden2", "in: extra"),
        )
    )
    result = runner.invoke(app, ["build", str(other), "--weights", str(saved)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: layer 'hidden1': weight 'kernel' has shape (64, 16), but in {saved} it has shape (64, 32)\n"
        f"error: layer 'hidden1': weight 'bias' has shape (16,), but in {saved} it has shape (32,)\n"
        f"error: layer 'hidden2': weight 'kernel' has shape (16, 16), but in {saved} it has shape (32, 32)\n"
        f"error: layer 'hidden2': weight 'bias' has shape (16,), but in {saved} it has shape (32,)\n"
        f"error: layer 'extra' has weights, but {saved} has no layer 'extra'\n"
        f"error: layer 'probs': weight 'kernel' has shape (4, 10), but in {saved} it has shape (32, 10)\n"
        "6 errors\n"
    )


def test_export_prints_a_spec_and_needs_a_file_for_nested_models(tmp_path):
    result = runner.invoke(
        app,
        [
            "export",
            "applications.MobileNetV2",
            "--arg",
            "include_top=false",
            "--arg",
            "input_shape=[32, 32, 3]",
            "--arg",
            "alpha=0.35",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(
        "# Exported from keras.applications.MobileNetV2(weights=None, "
        "include_top=False, input_shape=(32, 32, 3), alpha=0.35) by "
        "`graphspec export`.\ngraphspec: 1\nname: mobilenetv2_0.35_32\n"
    )
    saved = tmp_path / "nested.keras"
    inner = keras.Sequential([keras.Input((3,)), layers.Dense(2, name="d")], name="inner")
    x = keras.Input((3,), name="x")
    save_model(keras.Model(x, inner(x), name="outer"), saved)
    result = runner.invoke(app, ["export", str(saved)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: '{saved}' uses models as layers, which become spec files of their "
        "own\n  hint: give --output FILE.yaml to write them beside it\n1 error\n"
    )
    result = runner.invoke(app, ["export", str(saved), "--arg", "alpha=1"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --arg sets arguments of a keras.applications constructor;")

"""keras.applications models, exported and rebuilt: a representative dozen, at the smallest input
each accepts, and the layers keras.applications defines for its own models.

Each model is built by Keras (`weights=None`, logits rather than softmax), its non-trainable
statistics set to values no initializer gives, exported, written, validated, built from the
spec, given the original's weights by layer name (`load_weights_by_name`, what `build
--weights` does) and run on the same random batch: the outputs must agree within 1e-5, with
the same parameter count. `python bench/run.py export` does this for every constructor.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from fixtures.applications import perturb_state  # noqa: E402
from keras.src.applications import convnext, inception_resnet_v2  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import graphspec  # noqa: E402
from graphspec.cli import app  # noqa: E402
from graphspec.errors import SpecErrors  # noqa: E402
from graphspec.keras.export import MAX_ARRAY_VALUES, application, export_model  # noqa: E402
from graphspec.keras.weights import load_weights_by_name  # noqa: E402
from graphspec.spec import catalog  # noqa: E402

TOLERANCE = 1e-5
runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_keras():
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()
    gc.collect()


def round_trip(original: keras.Model, tmp_path: Path) -> tuple[str, float]:
    """Export `original`, build the spec, copy the weights by name; the spec's text and the
    largest difference between the two models' outputs on one random batch."""
    perturb_state(original)
    exported = export_model(original, {})
    path = tmp_path / "exported.yaml"
    exported.write(path)
    loaded = graphspec.load(path)
    assert loaded.diagnostics.errors == []
    rebuilt = loaded.build(compile=False)
    assert rebuilt.count_params() == original.count_params()
    load_weights_by_name(rebuilt, original)
    shape = (2, *original.input_shape[1:])
    batch = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    expected = keras.tree.flatten(original(batch, training=False))
    actual = keras.tree.flatten(rebuilt(batch, training=False))
    assert len(actual) == len(expected)
    # Outputs that are all 0 would agree whatever was copied.
    assert max(float(np.max(np.abs(np.asarray(e)))) for e in expected) > 0
    difference = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(e)))) for a, e in zip(actual, expected, strict=True)
    )
    return exported.to_yaml() + "".join(nested.to_yaml() for nested in exported.nested.values()), difference


def small(size: int, **args) -> dict:
    # Logits, not softmax: a saturated softmax would hide a difference behind equal 0s and 1s.
    return {"input_shape": (size, size, 3), "classes": 10, "classifier_activation": None, **args}


# The three that failed before (keras.ops nodes, CustomScaleLayer, LayerScale with a
# Normalization given its mean and variance), and the small members of each other family.
MODELS = [
    pytest.param("MobileNetV3Small", small(32), id="MobileNetV3Small"),
    pytest.param("InceptionResNetV2", small(75, include_top=False), id="InceptionResNetV2"),
    pytest.param("ConvNeXtTiny", small(32), id="ConvNeXtTiny"),
    pytest.param("MobileNet", small(32, alpha=0.25), id="MobileNet"),
    pytest.param("MobileNetV2", small(32, alpha=0.35), id="MobileNetV2"),
    pytest.param("MobileNetV3Large", small(32, alpha=0.75, minimalistic=True), id="MobileNetV3Large"),
    pytest.param("EfficientNetB0", small(32), id="EfficientNetB0"),
    pytest.param("EfficientNetV2B0", small(32), id="EfficientNetV2B0"),
    pytest.param("DenseNet121", small(32, include_top=False), id="DenseNet121"),
    pytest.param("ResNet50V2", small(32, include_top=False), id="ResNet50V2"),
    pytest.param("VGG16", small(32, include_top=False), id="VGG16"),
    pytest.param("InceptionV3", small(75, include_top=False), id="InceptionV3"),
]


@pytest.mark.parametrize("name, args", MODELS)
def test_an_application_exports_and_rebuilds_to_the_same_outputs(name, args, tmp_path):
    original = application(f"applications.{name}", args)
    _, difference = round_trip(original, tmp_path)
    assert difference <= TOLERANCE


def test_inception_resnet_v2s_scale_layer_is_named_after_its_module(tmp_path):
    inputs = keras.Input((4,), name="x")
    branch = keras.layers.Dense(4, name="branch")(inputs)
    scaled = inception_resnet_v2.CustomScaleLayer(scale=0.17, name="scaled")([inputs, branch])
    text, difference = round_trip(keras.Model(inputs, scaled), tmp_path)
    assert difference <= TOLERANCE
    expected = "{type: applications.inception_resnet_v2.CustomScaleLayer, scale: 0.17, in: [x, branch]}"
    assert f"scaled: {expected}" in text


def test_convnext_stochastic_depth_and_layer_scale_round_trip(tmp_path):
    # No public constructor sets drop_path_rate, so ConvNeXt's StochasticDepth appears only when
    # the family's own builder is called with it.
    original = convnext.ConvNeXt(
        depths=[1, 1, 1, 1],
        projection_dims=[8, 8, 8, 8],
        drop_path_rate=0.5,
        input_shape=(32, 32, 3),
        classes=3,
    )
    text, difference = round_trip(original, tmp_path)
    assert difference <= TOLERANCE
    assert "type: applications.convnext.StochasticDepth, drop_path_rate: 0.16666" in text
    assert "type: applications.convnext.LayerScale, init_values: 1.0e-06, projection_dim: 8," in text


def test_a_saved_convnext_exports_and_builds_with_its_weights_from_the_command_line(tmp_path):
    original = convnext.ConvNeXt(
        depths=[1, 1, 1, 1],
        projection_dims=[8, 8, 8, 8],
        drop_path_rate=0.5,
        input_shape=(32, 32, 3),
        classes=3,
    )
    saved, spec, built = tmp_path / "convnext.keras", tmp_path / "convnext.yaml", tmp_path / "built.keras"
    original.save(saved)
    result = runner.invoke(app, ["export", str(saved), "-o", str(spec)])
    assert result.exit_code == 0, result.stderr
    result = runner.invoke(app, ["build", str(spec), "--weights", str(saved), "-o", str(built)])
    assert result.exit_code == 0, result.stderr
    batch = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    again = keras.saving.load_model(built)
    actual = keras.tree.flatten(again(batch))[0]
    np.testing.assert_allclose(np.asarray(actual), np.asarray(original(batch)), atol=TOLERANCE)


def test_the_catalog_lists_the_layers_keras_applications_defines_with_their_arguments():
    assert catalog.layer("applications.convnext.LayerScale")["required"] == ["init_values", "projection_dim"]
    assert catalog.layer("applications.convnext.StochasticDepth")["required"] == ["drop_path_rate"]
    assert catalog.layer("applications.inception_resnet_v2.CustomScaleLayer")["required"] == ["scale"]
    assert catalog.application_layer(inception_resnet_v2.CustomScaleLayer) == (
        "applications.inception_resnet_v2.CustomScaleLayer"
    )
    assert "applications.convnext.LayerScale" in catalog.layer_names()
    assert catalog.is_application("applications.ConvNeXtTiny")
    assert not catalog.is_application("applications.convnext.LayerScale")


SCALED = """
graphspec: 1
name: scaled
inputs:
  x: {shape: [4]}
layers:
  branch: {type: Dense, units: 4, in: x}
  scaled: {type: applications.inception_resnet_v2.CustomScaleLayer, %s, in: [x, branch]}
outputs:
  scaled: {}
"""


def test_a_spec_naming_an_application_layer_is_checked_without_tensorflow():
    code = textwrap.dedent(
        f"""
        import sys, graphspec
        try:
            graphspec.load({SCALED % "scael: 0.1"!r})
        except graphspec.SpecErrors as errors:
            print(errors)
        assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CustomScaleLayer has no argument 'scael'" in done.stdout
    assert "hint: did you mean 'scale'?" in done.stdout


def test_a_spec_naming_an_application_layer_builds_keras_own_class():
    model = graphspec.load(SCALED % "scale: 0.5").build(compile=False)
    layer = model.get_layer("scaled")
    assert type(layer) is inception_resnet_v2.CustomScaleLayer and layer.scale == 0.5
    x = np.ones((1, 4), "float32")
    branch = np.asarray(model.get_layer("branch")(x))
    result = model.predict({"x": x}, verbose=0)["scaled"]
    np.testing.assert_allclose(np.asarray(result), x + 0.5 * branch, atol=1e-6)


def test_a_normalization_given_its_mean_and_variance_keeps_them_as_arguments(tmp_path):
    inputs = keras.Input((3,), name="x")
    normalized = keras.layers.Normalization(
        mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
        variance=[(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2],
        name="norm",
    )(inputs)
    original = keras.Model(inputs, keras.layers.Dense(2, name="head")(normalized))
    text, difference = round_trip(original, tmp_path)
    assert difference <= TOLERANCE
    assert "norm: {type: Normalization, mean: [123.675, 116.28, 103.53], variance: [3409.9" in text


def test_a_normalization_given_a_large_array_is_refused_with_the_way_to_keep_it():
    width = MAX_ARRAY_VALUES + 1
    inputs = keras.Input((width,), name="x")
    normalized = keras.layers.Normalization(mean=np.zeros(width), variance=np.ones(width), name="norm")(
        inputs
    )
    with pytest.raises(SpecErrors) as raised:
        export_model(keras.Model(inputs, normalized), {})
    message = str(raised.value)
    assert (
        "layer 'norm' (Normalization) cannot be written as a spec: "
        f"its argument 'mean' is an array of {width:,} numbers"
    ) in message
    assert "adapt()" in message


def test_an_adapted_normalization_of_any_width_round_trips_through_its_weights(tmp_path):
    width = MAX_ARRAY_VALUES + 1
    layer = keras.layers.Normalization(name="norm")
    layer.adapt(np.random.default_rng(1).normal(3.0, 2.0, (64, width)).astype("float32"))
    inputs = keras.Input((width,), name="x")
    text, difference = round_trip(keras.Model(inputs, layer(inputs)), tmp_path)
    assert difference <= TOLERANCE
    assert "norm: {type: Normalization, in: x}" in text

"""KerasHub's layers (`type: keras_hub.layers.NAME`, the optional extra graphspec[hub]).

Validation needs neither TensorFlow nor keras_hub (graphspec/spec/catalog_hub.json); building,
saving and loading need keras_hub, which `make test` installs (see the README's dependencies):
those tests are skipped where it is not installed, saying why.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphspec
from graphspec import SpecErrors
from graphspec.spec import catalog

HUB = importlib.util.find_spec("keras_hub") is not None
needs_hub = pytest.mark.skipif(
    not HUB, reason="keras_hub is not installed (make hub, or pip install 'graphspec[hub]')"
)

SPEC = """
graphspec: 1
name: hub_encoder
inputs:
  tokens: {shape: [6], dtype: int32}
layers:
  embed: {type: keras_hub.layers.TokenAndPositionEmbedding, in: tokens,
          vocabulary_size: 20, sequence_length: 6, embedding_dim: 8}
  encode: {type: keras_hub.layers.TransformerEncoder, intermediate_dim: 16, num_heads: 2, in: embed}
  rope: {type: keras_hub.layers.RotaryEmbedding, in: encode}
  pool: {type: GlobalAveragePooling1D, in: rope}
  probs: {type: Dense, units: 3, activation: softmax, in: pool}
outputs:
  probs: {loss: sparse_categorical_crossentropy}
"""


def _render(text: str) -> str:
    with pytest.raises(SpecErrors) as info:
        graphspec.load(text)
    return info.value.diagnostics.render()


def test_hub_layers_validate_without_tensorflow_or_keras_hub(tmp_path):
    spec = tmp_path / "hub.yaml"
    spec.write_text(SPEC)
    code = textwrap.dedent(
        f"""
        import sys
        import graphspec
        loaded = graphspec.load({str(spec)!r})
        print(sorted(loaded.spec.layers))
        assert not {{'tensorflow', 'keras', 'keras_hub'}} & set(sys.modules), sorted(sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "'encode'" in result.stdout


def test_the_catalog_lists_keras_hubs_layers_with_their_arguments():
    layers = catalog.hub_catalog()["layers"]
    for name in ("TransformerEncoder", "TransformerDecoder", "PositionEmbedding", "RotaryEmbedding"):
        assert f"keras_hub.layers.{name}" in layers
    encoder = catalog.layer("keras_hub.layers.TransformerEncoder")
    assert encoder["required"] == ["intermediate_dim", "num_heads"]
    assert "padding_mask" in encoder["call"]
    assert "keras_hub.layers.ReversibleEmbedding" in catalog.layer_names()


def test_a_misspelt_argument_of_a_hub_layer_is_an_error_at_it():
    assert _render(SPEC.replace("num_heads: 2", "num_head: 2")).splitlines()[0] == (
        "<string>:9:77: error: layer 'encode': keras_hub.layers.TransformerEncoder has no argument 'num_head'"
    )


def test_a_hub_layer_that_cannot_be_loaded_back_is_refused_naming_keras_own():
    text = SPEC.replace(
        "rope: {type: keras_hub.layers.RotaryEmbedding, in: encode}",
        "rope: {type: keras_hub.layers.RMSNormalization, input_dim: 8, in: encode}",
    )
    assert _render(text).splitlines()[0] == (
        "<string>:10:16: error: layer 'rope' has type 'keras_hub.layers.RMSNormalization', which "
        "graphspec refuses: its constructor takes no name, trainable or dtype, so a saved model "
        "cannot load it back; keras.layers has its own where one exists (RMSNormalization: "
        "`type: RMSNormalization, epsilon: 1.0e-6` computes the same)"
    )


def test_a_hub_layers_code_argument_is_refused():
    text = SPEC.replace(
        "rope: {type: keras_hub.layers.RotaryEmbedding, in: encode}",
        "rope: {type: keras_hub.layers.RandomSwap, rate: 0.1, skip_py_fn: os.system, in: encode}",
    )
    assert "argument 'skip_py_fn'" in _render(text).splitlines()[0]


def test_building_without_keras_hub_is_an_error_at_the_type_naming_the_install(monkeypatch):
    monkeypatch.setattr("graphspec.keras.build.hub_installed", lambda: False)
    with pytest.raises(SpecErrors) as info:
        graphspec.load(SPEC).build()
    assert info.value.diagnostics.render() == (
        "<string>:7:17: error: layer 'embed' is KerasHub's TokenAndPositionEmbedding, and "
        "keras_hub is not installed\n"
        "    embed: {type: keras_hub.layers.TokenAndPositionEmbedding, in: tokens,\n"
        "                  ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n"
        f"  hint: install it: {catalog.HUB_INSTALL}"
    )


@needs_hub
def test_the_committed_hub_catalog_is_what_the_installed_keras_hub_generates():
    from graphspec.keras import hub_catalog_gen

    generated = hub_catalog_gen.generate()
    assert generated == json.loads(catalog.HUB_CATALOG_PATH.read_text()), (
        "graphspec/spec/catalog_hub.json is stale: run python -m graphspec.keras.hub_catalog_gen"
    )
    assert hub_catalog_gen.unclassified() == []


def _keras_twin():
    """The spec's model written in Keras with keras_hub."""
    import keras
    import keras_hub

    tokens = keras.Input((6,), dtype="int32", name="tokens")
    x = keras_hub.layers.TokenAndPositionEmbedding(20, 6, 8, name="embed")(tokens)
    x = keras_hub.layers.TransformerEncoder(16, 2, name="encode")(x)
    x = keras_hub.layers.RotaryEmbedding(name="rope")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model({"tokens": tokens}, {"probs": probs})


@needs_hub
def test_a_spec_of_hub_layers_builds_the_keras_model_saves_and_loads_in_stock_keras(tmp_path):
    from graphspec.keras.export import export_source
    from graphspec.keras.save import save_model

    loaded = graphspec.load(SPEC)
    model = loaded.build()
    twin = _keras_twin()
    assert model.count_params() == twin.count_params() == 835
    assert [type(layer) for layer in model.layers] == [type(layer) for layer in twin.layers]
    twin.set_weights(model.get_weights())
    tokens = np.arange(12, dtype="int32").reshape(2, 6) % 20
    expected = model.predict({"tokens": tokens}, verbose=0)["probs"]
    np.testing.assert_allclose(twin.predict({"tokens": tokens}, verbose=0)["probs"], expected, rtol=1e-5)

    path = tmp_path / "hub.keras"
    save_model(model, path, loaded)
    np.save(tmp_path / "tokens.npy", tokens)
    code = textwrap.dedent(
        f"""
        import keras, numpy as np
        model = keras.models.load_model({str(path)!r})
        out = model.predict({{'tokens': np.load({str(tmp_path / "tokens.npy")!r})}}, verbose=0)
        np.save({str(tmp_path / "out.npy")!r}, out['probs'])
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-5)

    # A file Keras itself saved (no spec inside): its hub layers pass the foreign-class check
    # and export by their spec names.
    plain = tmp_path / "plain.keras"
    twin.save(plain)
    exported = export_source(str(plain)).to_yaml()
    assert "type: keras_hub.layers.TransformerEncoder" in exported
    assert "type: keras_hub.layers.RotaryEmbedding" in exported

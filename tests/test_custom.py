"""`--allow-custom MODULE`: the user's own registered layers, allowed by the user, not the spec."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec import SpecErrors
from graphspec.cli import app
from graphspec.spec import catalog

SPEC = """
graphspec: 1
name: gated
inputs:
  x: {shape: [4]}
layers:
  g: {type: Gated, units: 3, in: x}
outputs:
  g: {loss: mse}
"""

MODULE = '''
import keras


@keras.saving.register_keras_serializable(package="graphspec_test")
class Gated(keras.layers.Layer):
    """A Dense layer times a sigmoid gate: a layer Keras does not have."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.value = keras.layers.Dense(units)
        self.gate = keras.layers.Dense(units, activation="sigmoid")

    def build(self, input_shape):
        self.value.build(input_shape)
        self.gate.build(input_shape)

    def call(self, inputs):
        return self.value(inputs) * self.gate(inputs)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
'''


@pytest.fixture
def module(tmp_path, monkeypatch):
    (tmp_path / "my_layers.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_layers"
    catalog.custom_layers().clear()


def test_a_custom_layer_is_unknown_unless_the_user_allows_it():
    with pytest.raises(SpecErrors) as info:
        graphspec.load(SPEC)
    (diagnostic,) = info.value.diagnostics.errors
    assert diagnostic.message == "layer 'g' has unknown type 'Gated'"
    assert diagnostic.hint == (
        "for a layer of your own, register it with "
        "@keras.saving.register_keras_serializable and pass --allow-custom MODULE"
    )


def test_an_allowed_module_makes_its_registered_layers_usable(module):
    from graphspec.keras.custom import allow_custom

    added = allow_custom([module])
    assert set(added) >= {"Gated", "graphspec_test>Gated"}
    model = graphspec.load(SPEC).build()
    assert model.count_params() == 2 * (4 * 3 + 3)
    assert model.predict({"x": np.ones((2, 4))}, verbose=0)["g"].shape == (2, 3)


def test_custom_layer_arguments_are_checked_like_keras_layers(module):
    from graphspec.keras.custom import allow_custom

    allow_custom([module])
    with pytest.raises(SpecErrors) as info:
        graphspec.load(SPEC.replace("units: 3", "unit: 3"))
    messages = [d.message for d in info.value.diagnostics.errors]
    assert messages == ["layer 'g': Gated has no argument 'unit'"]


def test_the_cli_flag_allows_a_module(module, write_spec):
    result = CliRunner().invoke(app, ["--allow-custom", module, "build", str(write_spec(SPEC))])
    assert result.exit_code == 0, result.output
    assert "g (Gated)" in result.stdout


def test_a_module_that_cannot_be_imported_is_a_clear_error(write_spec):
    result = CliRunner().invoke(
        app, ["--allow-custom", "no_such_module_xyz", "validate", str(write_spec(SPEC))]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: --allow-custom no_such_module_xyz: cannot import it: ModuleNotFoundError:"
    )

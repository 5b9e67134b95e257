"""Params (`${name}`) and command-line overrides (`--set`)."""

from __future__ import annotations

import pytest

import graphspec
from graphspec import SpecErrors

SPEC = """
graphspec: 1
name: params
params:
  width: 16
  act: relu
inputs:
  x: {shape: [8]}
layers:
  h: {type: Dense, units: ${width}, activation: ${act}, in: x}
  y: {type: Dense, units: 1, in: h}
outputs:
  y: {loss: mse}
compile:
  optimizer: {type: Adam, learning_rate: 0.001}
"""


def test_a_whole_value_placeholder_keeps_the_params_type():
    spec = graphspec.load(SPEC).spec
    assert spec.layers["h"].args == {"units": 16, "activation": "relu"}


def test_a_placeholder_inside_text_is_replaced_by_its_text():
    spec = graphspec.load(SPEC.replace("name: params", "name: net_${width}")).spec
    assert spec.name == "net_16"


def test_set_overrides_a_param_everywhere_it_is_used():
    spec = graphspec.load(SPEC, overrides=["width=64"]).spec
    assert spec.layers["h"].args["units"] == 64


def test_set_overrides_any_layer_argument_by_path():
    spec = graphspec.load(SPEC, overrides=["layers.y.units=3", "layers.h.use_bias=false"]).spec
    assert spec.layers["y"].args["units"] == 3
    assert spec.layers["h"].args["use_bias"] is False


def test_set_overrides_nested_compile_values():
    spec = graphspec.load(SPEC, overrides={"compile.optimizer.learning_rate": 0.01}).spec
    assert spec.compile.optimizer.args == {"learning_rate": 0.01}


def test_set_values_are_read_as_yaml():
    # A list read from --set is a list: Dense's units refuses it as one.
    assert "Dense's argument 'units' takes a positive integer, not [1, 2]" in _render(["width=[1, 2]"])


def test_yaml_1_2_exponents_are_floats():
    spec = graphspec.load(SPEC.replace("learning_rate: 0.001", "learning_rate: 1e-4")).spec
    assert spec.compile.optimizer.args["learning_rate"] == pytest.approx(1e-4)


def _render(overrides) -> str:
    with pytest.raises(SpecErrors) as info:
        graphspec.load(SPEC, overrides=overrides)
    return info.value.diagnostics.render()


def test_an_undeclared_param_override_is_an_error_at_the_override():
    assert _render(["widht=3"]) == (
        "--set:1:1: error: override sets param 'widht', which the spec does not declare\n"
        "  widht=3\n"
        "  ^~~~~\n"
        "  hint: did you mean 'width'?"
    )


def test_an_override_path_that_points_at_nothing_is_an_error():
    assert _render(["act=tanh", "layers.hh.units=3"]) == (
        "--set:2:1: error: override path 'layers.hh.units' points at nothing in the spec\n"
        "  layers.hh.units=3\n"
        "  ^~~~~~~~~~~~~~~\n"
        "  hint: did you mean 'h'?"
    )


def test_a_bad_value_from_an_override_points_at_the_override():
    assert _render(["layers.h.in=2.5"]) == (
        "--set:1:13: error: layers.h.in: should be a node name or a negative number counting back "
        "(-1 is the layer before), a list of them, or a mapping of call arguments to them\n"
        "  layers.h.in=2.5\n"
        "              ^~~"
    )


def test_two_overrides_in_one_set_are_an_error_saying_to_repeat_set():
    assert _render(["act=tanh", "width=3 act=relu"]) == (
        "--set:2:9: error: override 'width=3 act=relu' holds a second override, 'act=...', after a space\n"
        "  width=3 act=relu\n"
        "          ^~~~\n"
        "  hint: repeat --set for each value: --set width=3 --set act=relu"
    )


def test_a_quoted_value_with_an_equals_sign_after_a_space_is_a_plain_string():
    assert "Dense's argument 'activation' takes an activation name" in _render(["act='a b=c'"])
    assert "not 'a b=c'" in _render(["act='a b=c'"])


def test_a_placeholder_left_open_is_an_error_at_its_value():
    with pytest.raises(SpecErrors) as info:
        graphspec.load(SPEC.replace("units: 1,", 'units: "${",'))
    assert info.value.diagnostics.render() == (
        "<string>:11:27: error: '${' opens an expression that no '}' closes\n"
        '    y: {type: Dense, units: "${", in: h}\n'
        "                            ^~~~\n"
        "  hint: write it as ${name}"
    )

"""Op nodes: `keras.ops` functions in the graph, each compared with the same model written by hand."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

import graphspec
from graphspec import SpecErrors
from graphspec.fingerprint import fingerprint
from graphspec.keras.export import export_model
from graphspec.spec.write import spec_yaml

POSITIONS = """
graphspec: 1
name: positions
inputs:
  tokens: {shape: [null], dtype: int32}
layers:
  words:     {type: Embedding, input_dim: 50, output_dim: 8, in: tokens}
  ones:      {op: ones_like, in: tokens}
  positions: {op: cumsum, axis: 1, in: ones}
  places:    {type: Embedding, input_dim: 17, output_dim: 8, in: positions}
  embedded:  {op: add, in: [words, places]}
outputs:
  embedded: {loss: mse}
"""
TOKENS = np.random.default_rng(0).integers(0, 50, (2, 16)).astype("int32")


def outputs(model: keras.Model, data: dict) -> np.ndarray:
    result = model.predict(data, verbose=0)
    return result[next(iter(result))] if isinstance(result, dict) else result


def errors(text: str) -> list[tuple[str, str]]:
    with pytest.raises(SpecErrors) as info:
        graphspec.load(text)
    return [(str(d.location), d.message) for d in info.value.diagnostics.errors]


def test_a_learned_position_embedding_equals_the_keras_ops_model_written_by_hand():
    model = graphspec.load(POSITIONS).build()
    tokens = keras.Input((None,), dtype="int32")
    words = keras.layers.Embedding(50, 8, name="words")(tokens)
    places = keras.layers.Embedding(17, 8, name="places")(
        keras.ops.cumsum(keras.ops.ones_like(tokens), axis=1)
    )
    by_hand = keras.Model(tokens, keras.ops.add(words, places))
    assert model.count_params() == by_hand.count_params() == 50 * 8 + 17 * 8
    for name in ("words", "places"):
        by_hand.get_layer(name).set_weights(model.get_layer(name).get_weights())
    np.testing.assert_allclose(
        outputs(model, {"tokens": TOKENS}), by_hand.predict(TOKENS, verbose=0), rtol=1e-6
    )
    # The positions are learned: the Embedding reading them is a layer of the model, with weights.
    assert [op.name for op in model.operations if not isinstance(op, keras.layers.Layer)] == [
        "ones",
        "positions",
        "embedded",
    ]


def test_einsum_takes_its_subscripts_as_an_argument_and_its_operands_from_in():
    model = graphspec.load("""
graphspec: 1
name: bilinear
inputs:
  a: {shape: [3, 4]}
  b: {shape: [5, 4]}
layers:
  scores: {op: einsum, subscripts: "bid,bjd->bij", in: [a, b]}
outputs:
  scores: {}
""").build(compile=False)
    a, b = np.ones((2, 3, 4), "float32"), np.arange(40, dtype="float32").reshape(2, 5, 4)
    np.testing.assert_allclose(outputs(model, {"a": a, "b": b}), np.einsum("bid,bjd->bij", a, b))


def test_a_parameter_that_takes_a_list_of_tensors_is_named_in_in():
    model = graphspec.load("""
graphspec: 1
name: joined
inputs:
  a: {shape: [2]}
  b: {shape: [3]}
layers:
  both: {op: concatenate, axis: -1, in: {xs: [a, b]}}
outputs:
  both: {}
""").build(compile=False)
    a, b = np.ones((1, 2), "float32"), np.zeros((1, 3), "float32")
    np.testing.assert_array_equal(outputs(model, {"a": a, "b": b}), [[1, 1, 0, 0, 0]])


def test_a_model_with_op_nodes_loads_in_stock_keras_without_graphspec(tmp_path):
    model = graphspec.load(POSITIONS).build()
    path, data, result = tmp_path / "model.keras", tmp_path / "tokens.npy", tmp_path / "out.npy"
    model.save(path)
    np.save(data, TOKENS)
    code = (
        "import sys, keras, numpy as np\n"
        f"model = keras.models.load_model({str(path)!r})\n"
        f"out = model.predict({{'tokens': np.load({str(data)!r})}}, verbose=0)\n"
        f"np.save({str(result)!r}, out['embedded'])\n"
        "assert not any(name.startswith('graphspec') for name in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(result), outputs(model, {"tokens": TOKENS}), rtol=1e-6)


def test_export_writes_op_nodes_that_rebuild_to_the_same_outputs():
    x = keras.Input((4, 3), name="x")
    hidden = keras.layers.Dense(3, name="dense")(x)
    shifted = keras.ops.add(hidden, 1.0)
    summed = keras.ops.cumsum(shifted, axis=1)
    gram = keras.ops.einsum("bij,bkj->bik", summed, hidden)
    joined = keras.ops.concatenate([gram, summed], axis=-1)
    original = keras.Model(x, joined)
    exported = export_model(original)
    ops = {name: node for name, node in exported.spec["layers"].items() if "op" in node}
    assert sorted(node["op"] for node in ops.values()) == ["add", "concatenate", "cumsum", "einsum"]
    names = {node["op"]: name for name, node in ops.items()}
    assert ops[names["add"]] == {"op": "add", "x2": 1.0, "in": "dense"}
    assert ops[names["cumsum"]] == {"op": "cumsum", "axis": 1, "in": names["add"]}
    assert ops[names["einsum"]] == {
        "op": "einsum",
        "subscripts": "bij,bkj->bik",
        "in": [names["cumsum"], "dense"],
    }
    assert ops[names["concatenate"]] == {
        "op": "concatenate",
        "axis": -1,
        "in": {"xs": [names["einsum"], names["cumsum"]]},
    }
    rebuilt = graphspec.load(spec_yaml(exported.spec, [])).build(compile=False)
    rebuilt.get_layer("dense").set_weights(original.get_layer("dense").get_weights())
    data = np.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32")
    np.testing.assert_allclose(outputs(rebuilt, {"x": data}), original.predict(data, verbose=0), rtol=1e-5)


def test_an_unknown_op_is_an_error_at_its_line_with_the_closest_name():
    with pytest.raises(SpecErrors) as info:
        graphspec.load(POSITIONS.replace("op: cumsum", "op: cumsun"))
    (diagnostic,) = info.value.diagnostics.errors
    assert (str(diagnostic.location), diagnostic.message) == (
        "<string>:9:19",
        "op node 'positions' names 'cumsun', which is not a keras.ops function a spec can use",
    )
    assert "did you mean 'cumsum'?" in str(diagnostic.hint)


def test_an_unknown_op_argument_is_an_error_at_its_key():
    with pytest.raises(SpecErrors) as info:
        graphspec.load(POSITIONS.replace("axis: 1", "axes: 1"))
    (diagnostic,) = info.value.diagnostics.errors
    assert (str(diagnostic.location), diagnostic.message) == (
        "<string>:9:27",
        "op node 'positions': cumsum has no argument 'axes'",
    )
    assert "did you mean 'axis'?" in str(diagnostic.hint)


def test_more_operands_than_the_op_takes_is_an_error_at_in():
    assert errors(POSITIONS.replace("in: [words, places]", "in: [words, places, words]")) == [
        ("<string>:11:28", "op node 'embedded': add takes 2 tensor operands here (x1, x2); 'in' gives 3")
    ]


def test_an_op_without_its_required_operand_is_an_error():
    assert errors(POSITIONS.replace("{op: add, in: [words, places]}", "{op: add, in: {x1: words}}")) == [
        ("<string>:11:3", "op node 'embedded': add needs 'x2'")
    ]


def test_an_op_that_makes_a_tensor_from_no_tensor_is_not_offered():
    # Keras's functional graph takes a node that reads no tensor for an input, so it cannot hold one.
    assert errors(POSITIONS.replace("{op: ones_like, in: tokens}", "{op: arange, stop: 16, in: tokens}"))[
        0
    ] == (
        "<string>:8:19",
        "op node 'ones' names 'arange', which is not a keras.ops function a spec can use",
    )


def test_an_op_node_cannot_be_shared():
    text = POSITIONS.replace("outputs:", "  again: {share: embedded, in: [words, places]}\noutputs:")
    assert errors(text) == [
        ("<string>:12:18", "layer 'again' shares 'embedded', which is an op: it has no layer to share")
    ]


def test_an_op_node_changes_the_architecture_fingerprint_with_its_arguments():
    before = fingerprint(graphspec.load(POSITIONS))
    after = fingerprint(graphspec.load(POSITIONS.replace("axis: 1", "axis: -1")))
    assert before.architecture != after.architecture
    assert before.training == after.training


def test_validating_op_nodes_imports_no_tensorflow():
    code = (
        "import sys, graphspec\n"
        f"graphspec.load({POSITIONS!r})\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_an_op_node_is_drawn_as_a_node_with_its_function_and_shapes():
    from graphspec.plot import PlotOptions, spec_to_dot

    dot = spec_to_dot(graphspec.load(POSITIONS), PlotOptions(show_shapes=True))
    label = dot.get_node('"positions"')[0].get("label")
    assert label.startswith('"positions\\nop cumsum\\n')
    assert "(None, None)" in label

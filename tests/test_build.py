"""The builder: each construct of the format becomes exactly the Keras model written by hand."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import graphspec
from graphspec import SpecErrors


def build(text: str, **kwargs) -> keras.Model:
    return graphspec.load(text, **kwargs).build()


def test_named_call_arguments_feed_multi_head_attention():
    model = build("""
graphspec: 1
name: attention
inputs:
  x: {shape: [10, 16]}
  ctx: {shape: [12, 16]}
layers:
  attn: {type: MultiHeadAttention, num_heads: 2, key_dim: 8, in: {query: x, value: ctx}}
outputs:
  attn: {loss: mse}
""")
    x, ctx = keras.Input((10, 16)), keras.Input((12, 16))
    reference = keras.Model([x, ctx], keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)(x, ctx))
    assert model.count_params() == reference.count_params()
    assert model.outputs[0].shape == (None, 10, 16)


def test_one_tensor_is_picked_out_of_a_node_with_several():
    model = build("""
graphspec: 1
name: states
inputs:
  x: {shape: [null, 4]}
layers:
  seq: {type: LSTM, units: 3, return_state: true, in: x}
  state: {type: Dense, units: 2, in: "seq[2]"}
outputs:
  state: {loss: mse}
""")
    dense = model.get_layer("state")
    lstm = model.get_layer("seq")
    # seq[2] is the cell state: the Dense reads the LSTM's third output.
    assert dense.input is lstm.output[2]


def test_call_arguments_are_passed_at_call_time():
    model = build("""
graphspec: 1
name: mc_dropout
inputs:
  x: {shape: [64]}
layers:
  drop: {type: Dropout, rate: 0.5, in: x, call: {training: true}}
outputs:
  drop: {loss: mse}
""")
    ones = np.ones((4, 64), "float32")
    out = keras.ops.convert_to_numpy(model({"x": ones})["drop"])
    # Dropout in training mode zeroes about half the units even at inference.
    assert 0.2 < (out == 0).mean() < 0.8


def test_a_shared_layer_is_one_instance_called_twice():
    model = build("""
graphspec: 1
name: siamese
inputs:
  left: {shape: [null, 8]}
  right: {shape: [null, 8]}
layers:
  left_vec: {type: LSTM, units: 4, in: left}
  right_vec: {share: left_vec, in: right}
  merged: {type: Concatenate, in: [left_vec, right_vec]}
  y: {type: Dense, units: 1, activation: sigmoid, in: merged}
outputs:
  y: {loss: binary_crossentropy}
""")
    names = [layer.name for layer in model.layers]
    assert "right_vec" not in names
    assert len(model.get_layer("left_vec")._inbound_nodes) == 2
    lstm = keras.layers.LSTM(4)
    lstm.build((None, None, 8))
    assert model.count_params() == lstm.count_params() + (8 + 1)


def test_a_spec_file_is_used_as_a_layer(write_spec):
    write_spec(
        """
        graphspec: 1
        name: encoder
        inputs:
          tokens: {shape: [6]}
        layers:
          hidden: {type: Dense, units: 5, in: tokens}
        outputs:
          hidden: {}
        """,
        "encoder.yaml",
    )
    main = write_spec(
        """
        graphspec: 1
        name: main
        inputs:
          x: {shape: [6]}
        layers:
          enc: {spec: encoder.yaml, in: x}
          y: {type: Dense, units: 1, in: enc}
        outputs:
          y: {loss: mse}
        """,
        "main.yaml",
    )
    model = graphspec.load(main).build()
    nested = model.get_layer("enc")
    assert isinstance(nested, keras.Model)
    assert nested.count_params() == 6 * 5 + 5
    assert model.count_params() == 35 + 6


def test_an_output_taken_from_another_node_keeps_its_own_name():
    model = build("""
graphspec: 1
name: named
inputs:
  x: {shape: [4]}
layers:
  h: {type: Dense, units: 3, in: x}
outputs:
  score: {from: h, loss: mse}
""")
    assert model.output_names == ["score"]
    assert model.get_compile_config()["loss"] == {"score": "mse"}


def test_losses_weights_and_metrics_are_compiled_per_output():
    model = build("""
graphspec: 1
name: heads
inputs:
  x: {shape: [4]}
layers:
  age: {type: Dense, units: 1, in: x}
  gender: {type: Dense, units: 1, activation: sigmoid, in: x}
outputs:
  age: {loss: mse, weight: 0.25}
  gender: {loss: binary_crossentropy, weight: 10.0, metrics: [accuracy]}
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
""")
    config = model.get_compile_config()
    assert config["loss"] == {"age": "mse", "gender": "binary_crossentropy"}
    assert config["loss_weights"] == {"age": 0.25, "gender": 10.0}
    assert config["metrics"] == {"gender": ["accuracy"]}
    assert model.optimizer.__class__.__name__ == "Adam"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)


def test_a_nested_layer_argument_builds_the_inner_layer():
    model = build("""
graphspec: 1
name: bidirectional
inputs:
  x: {shape: [null, 8]}
layers:
  rnn: {type: Bidirectional, layer: {type: LSTM, units: 4}, merge_mode: sum, in: x}
outputs:
  rnn: {loss: mse}
""")
    reference = keras.layers.Bidirectional(keras.layers.LSTM(4), merge_mode="sum")
    reference.build((None, None, 8))
    assert model.count_params() == reference.count_params()
    assert model.outputs[0].shape == (None, 4)


def test_initializer_and_regularizer_configs_are_keras_objects():
    model = build("""
graphspec: 1
name: regularized
inputs:
  x: {shape: [4]}
layers:
  y: {type: Dense, units: 2, kernel_regularizer: {type: L2, l2: 0.5},
      kernel_initializer: {type: Constant, value: 1.0}, in: x}
outputs:
  y: {loss: mse}
""")
    layer = model.get_layer("y")
    assert np.all(keras.ops.convert_to_numpy(layer.kernel) == 1.0)
    assert layer.kernel_regularizer.get_config() == {"l2": 0.5}


def test_a_node_that_leads_nowhere_is_a_warning_and_is_not_built():
    loaded = graphspec.load("""
graphspec: 1
name: dead
inputs:
  x: {shape: [4]}
layers:
  unused: {type: Dense, units: 3, in: x}
  y: {type: Dense, units: 1, in: x}
outputs:
  y: {loss: mse}
""")
    assert [w.message for w in loaded.warnings] == ["layer 'unused' leads to no output and will not be built"]
    assert "unused" not in [layer.name for layer in loaded.build().layers]


def test_a_keras_error_is_reported_at_the_node_that_caused_it():
    with pytest.raises(SpecErrors) as info:
        build("""
graphspec: 1
name: shapes
inputs:
  a: {shape: [4]}
  b: {shape: [5]}
layers:
  total: {type: Add, in: [a, b]}
outputs:
  total: {loss: mse}
""")
    (diagnostic,) = info.value.diagnostics.errors
    assert str(diagnostic.location) == "<string>:8:3"
    assert diagnostic.message.startswith("layer 'total' (Add): ")
    assert "Inputs have incompatible shapes" in diagnostic.message


def test_a_value_keras_refuses_is_reported_at_its_node():
    # validate cannot know shapes: a target shape that does not fit is Keras's error, placed here.
    with pytest.raises(SpecErrors) as info:
        build("""
graphspec: 1
name: values
inputs:
  x: {shape: [4]}
layers:
  y: {type: Reshape, target_shape: [3], in: x}
outputs:
  y: {loss: mse}
""")
    (diagnostic,) = info.value.diagnostics.errors
    assert str(diagnostic.location) == "<string>:7:3"
    assert diagnostic.message.startswith(
        "layer 'y' (Reshape): The total size of the tensor must be unchanged"
    )


def test_inputs_and_outputs_are_named_as_in_the_spec():
    model = build("""
graphspec: 1
name: names
inputs:
  text: {shape: [null], dtype: int32}
layers:
  embed: {type: Embedding, input_dim: 10, output_dim: 2, in: text}
  pooled: {type: GlobalAveragePooling1D, in: embed}
  answer: {type: Dense, units: 3, in: pooled}
outputs:
  answer: {loss: mse}
""")
    assert [t.name for t in model.inputs] == ["text"]
    assert model.inputs[0].dtype == "int32"
    assert model.output_names == ["answer"]
    assert model.name == "names"


def test_a_model_over_the_parameter_budget_fails_before_allocating_weights():
    # A Dense of 10^12 weights would need 4 TB: the budget check must come before allocation.
    with pytest.raises(SpecErrors) as info:
        build("""
graphspec: 1
name: huge
inputs:
  x: {shape: [1000000]}
layers:
  big: {type: Dense, units: 1000000, in: x}
outputs:
  big: {loss: mse}
""")
    (diagnostic,) = info.value.diagnostics.errors
    assert str(diagnostic.location) == "<string>:7:3"
    assert diagnostic.message == (
        "the model has 1,000,001,000,000 parameters, over the budget of 1,000,000,000; "
        "layer 'big' alone has 1,000,001,000,000"
    )


def test_the_parameter_budget_is_adjustable_and_the_next_build_is_unaffected():
    text = """
graphspec: 1
name: small
inputs:
  x: {shape: [10]}
layers:
  y: {type: Dense, units: 10, in: x}
outputs:
  y: {loss: mse}
"""
    with pytest.raises(SpecErrors):
        graphspec.load(text).build(max_params=100)
    model = graphspec.load(text).build(max_params=110)
    assert model.count_params() == 110
    assert all(v.value is not None for v in model.variables)


MC_DROPOUT = """
graphspec: 1
name: mc_dropout
inputs:
  x: {shape: [64]}
layers:
  drop: {type: Dropout, rate: 0.5, in: x, call: {training: true}}
outputs:
  drop: {loss: mse}
"""


def test_call_training_true_holds_in_predict_so_two_predicts_differ():
    model = build(MC_DROPOUT)
    ones = np.ones((4, 64), "float32")
    first, second = (model.predict({"x": ones}, verbose=0)["drop"] for _ in range(2))
    # Keras's predict passes training=False to every layer; the node's own true must win.
    assert 0.2 < (first == 0).mean() < 0.8
    assert not np.array_equal(first, second)


def test_call_training_true_holds_in_evaluate():
    model = build(MC_DROPOUT.replace("rate: 0.5", "rate: 0.9"))
    ones = np.ones((8, 64), "float32")
    # In inference mode Dropout is the identity and the loss is 0; dropping 90% of the units is not.
    assert model.evaluate({"x": ones}, {"drop": ones}, verbose=0) > 0.5


def test_call_training_false_keeps_a_layer_in_inference_mode_during_fit():
    model = build("""
graphspec: 1
name: frozen_bn
inputs:
  x: {shape: [3]}
layers:
  bn: {type: BatchNormalization, in: x, call: {training: false}}
  y: {type: Dense, units: 1, in: bn}
outputs:
  y: {loss: mse}
""")
    x = keras.Input((3,))
    reference = keras.Model(x, keras.layers.Dense(1)(keras.layers.BatchNormalization()(x, training=False)))
    assert model.count_params() == reference.count_params()
    data = np.full((16, 3), 5.0, "float32")
    model.fit({"x": data}, {"y": np.ones((16, 1))}, epochs=1, batch_size=8, verbose=0)
    bn = model.get_layer("bn")
    # In training mode the moving mean would move towards 5 and the batch would be normalised.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn.moving_mean), np.zeros(3))
    gamma, beta = (keras.ops.convert_to_numpy(w) for w in (bn.gamma, bn.beta))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in model.get_layer("y").weights)
    # Normalised with the moving statistics (mean 0, variance 1), not the batch's.
    expected = (data / np.sqrt(1 + bn.epsilon) * gamma + beta) @ kernel + bias
    out = keras.ops.convert_to_numpy(model({"x": data}, training=True)["y"])
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_call_training_does_not_leak_to_the_layers_after_it_in_a_plain_call():
    model = build("""
graphspec: 1
name: no_leak
inputs:
  x: {shape: [3]}
layers:
  drop: {type: Dropout, rate: 0.5, in: x, call: {training: true}}
  bn: {type: BatchNormalization, in: drop}
outputs:
  bn: {loss: mse}
""")
    model({"x": np.full((4, 3), 5.0, "float32")})
    # A plain call is in inference mode: the BatchNormalization after the dropout must not learn.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("bn").moving_mean), np.zeros(3))


def test_a_saved_mc_dropout_model_loads_and_honour_call_training_restores_it(tmp_path):
    from graphspec.keras.build import honour_call_training

    path = tmp_path / "mc.keras"
    build(MC_DROPOUT).save(path)
    loaded = honour_call_training(keras.models.load_model(path))
    ones = np.ones((4, 64), "float32")
    first, second = (loaded.predict({"x": ones}, verbose=0)["drop"] for _ in range(2))
    assert not np.array_equal(first, second)


def test_a_shared_layer_whose_calls_disagree_on_training_is_refused():
    with pytest.raises(SpecErrors) as info:
        graphspec.load("""
graphspec: 1
name: disagree
inputs:
  x: {shape: [4]}
layers:
  a: {type: Dropout, rate: 0.5, in: x, call: {training: true}}
  b: {share: a, in: a}
outputs:
  b: {loss: mse}
""")
    (diagnostic,) = info.value.diagnostics.errors
    assert str(diagnostic.location) == "<string>:8:3"
    assert diagnostic.message == (
        "layer 'b' calls the same layer as 'a', which fixes 'training' in its call; "
        "every call of a shared layer fixes it, or none does"
    )


def test_call_training_that_is_not_true_or_false_is_refused():
    with pytest.raises(SpecErrors) as info:
        graphspec.load(MC_DROPOUT.replace("training: true", "training: sometimes"))
    (diagnostic,) = info.value.diagnostics.errors
    assert str(diagnostic.location) == "<string>:7:60"
    assert diagnostic.message == "layer 'drop' has call argument 'training' 'sometimes'; it is true or false"


def test_building_prints_no_tensorflow_log_lines():
    """From a program (graphspec.keras sets the level before TensorFlow loads) and from the CLI."""
    import os
    import re
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    program = "import graphspec; graphspec.load('specs/book_mlp.yaml').build()"
    tf_log = re.compile(
        r"^[IWEF]\d{4} |absl::InitializeLog|cpu_feature_guard|oneDNN|rebuild TensorFlow", re.M
    )
    for command in (
        [sys.executable, "-c", program],
        [sys.executable, "-m", "graphspec", "build", "specs/book_mlp.yaml"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        assert not tf_log.search(result.stderr), result.stderr


def test_a_keras_error_reaches_the_spec_without_ansi_escapes_or_unfilled_arguments():
    from graphspec.keras.build import _keras_message

    text = """
graphspec: 1
name: reshape
inputs: {x: {shape: [8]}}
layers:
  r: {type: Reshape, target_shape: [7], in: x}
outputs:
  r: {loss: mse}
"""
    with pytest.raises(SpecErrors) as info:
        graphspec.load(text).build()
    first = info.value.diagnostics.render().splitlines()[0]
    assert first == (
        "<string>:6:3: error: layer 'r' (Reshape): The total size of the tensor must be unchanged. "
        "Received: input_shape=(8,), target_shape=(7,) Arguments received by Reshape.call(): "
        "• args=('<KerasTensor shape=(None, 8), dtype=float32, sparse=False, ragged=False, name=x>',)"
    )
    assert "\x1b" not in first and "[1m" not in first
    # As Keras words a call whose **kwargs were not filled.
    raised = ValueError(
        "Exception encountered when calling Foo.call().\n\n\x1b[1mbad shape\x1b[0m\n\n"
        "Arguments received by Foo.call():\n  • inputs=tf.Tensor(shape=(1, 8))\n"
        "  • kwargs=<class 'inspect._empty'>"
    )
    assert _keras_message(raised) == (
        "bad shape Arguments received by Foo.call(): • inputs=tf.Tensor(shape=(1, 8))"
    )


def test_an_output_named_after_a_block_use_is_an_identity_layer_and_one_named_after_its_layer_is_not():
    text = """
graphspec: 1
name: blk
inputs: {x: {shape: [4]}}
blocks:
  mlp:
    in: a
    layers:
      h: {type: Dense, units: 3, in: a}
      o: {type: Dense, units: 2, in: h}
    out: o
layers:
  head: {block: mlp, in: x}
outputs:
  head: {loss: mse}
"""
    named_after_use = graphspec.load(text).build(compile=False)
    assert [(layer.name, type(layer).__name__) for layer in named_after_use.layers][-2:] == [
        ("head.o", "Dense"),
        ("head", "Identity"),
    ]
    named_after_layer = graphspec.load(text.replace("  head: {loss", "  head.o: {loss")).build(compile=False)
    assert [type(layer).__name__ for layer in named_after_layer.layers] == ["InputLayer", "Dense", "Dense"]
    assert named_after_use.count_params() == named_after_layer.count_params() == 4 * 3 + 3 + 3 * 2 + 2

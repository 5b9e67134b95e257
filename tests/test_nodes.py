"""graphspec's own node kinds: `weight:`, `range:` and `random:` (docs/format.md, graphspec/spec/nodes.py).

Each is compared with what it replaces in hand-written Keras: a class token is a learnable
weight concatenated before the patches (ViT), positions are `arange` over the sequence, noise is
a seeded draw that only happens in training. Their arguments are checked without TensorFlow,
with located errors; a model holding them exports back to the same nodes, copies its weight by
name, and loads in stock Keras once `graphspec.keras.layers` is imported.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.diff import diff, render_text
from graphspec.fingerprint import fingerprint
from graphspec.plot import spec_to_dot
from graphspec.view import page_data

keras = pytest.importorskip("keras")

from graphspec.keras.export import export_model, load_keras_file  # noqa: E402
from graphspec.keras.save import save_model  # noqa: E402
from graphspec.keras.weights import copy_matching_weights  # noqa: E402

ops = keras.ops

VIT = """\
graphspec: 1
name: tiny_vit
inputs: {patches: {shape: [4, 6]}}
layers:
  embed: {type: Dense, units: 8, in: patches}
  cls: {weight: [1, 8], initializer: {type: RandomNormal, seed: 1}, in: embed}
  tokens: {type: Concatenate, axis: 1, in: [cls, embed]}
  pos: {range: 1, in: tokens}
  pos_embed: {type: Embedding, input_dim: 5, output_dim: 8, in: pos}
  encoded: {type: Add, in: [tokens, pos_embed]}
  first: {op: take, indices: 0, axis: 1, in: encoded}
  logits: {type: Dense, units: 3, in: first}
outputs: {logits: {loss: mse}}
"""


class ClassToken(keras.layers.Layer):
    """The class token as a ViT written in Keras has it: a weight, tiled over the batch."""

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), initializer="random_normal")

    def call(self, x):
        token = ops.broadcast_to(self.token, (ops.shape(x)[0], 1, x.shape[-1]))
        return ops.concatenate([token, x], axis=1)


class Positions(keras.layers.Layer):
    """The position embedding of a Keras ViT: an Embedding of arange(n), added to the tokens."""

    def __init__(self, n, width):
        super().__init__()
        self.n, self.embedding = n, keras.layers.Embedding(n, width)

    def call(self, x):
        return x + self.embedding(ops.arange(self.n))


def hand_written_vit() -> keras.Model:
    patches = keras.Input((4, 6))
    embedded = keras.layers.Dense(8)(patches)
    encoded = Positions(5, 8)(ClassToken()(embedded))
    return keras.Model(patches, keras.layers.Dense(3)(encoded[:, 0]))


def test_a_class_token_is_a_weight_concatenated_as_in_keras():
    ours, theirs = graphspec.load(VIT).build(), hand_written_vit()
    assert ours.count_params() == theirs.count_params() == 6 * 8 + 8 + 8 + 5 * 8 + 8 * 3 + 3
    by_name = {layer.name: layer for layer in ours.layers}
    assert [v.path for v in by_name["cls"].weights] == ["cls/weight"]
    dense_in, token, positions, dense_out = [layer for layer in theirs.layers if layer.weights]
    dense_in.set_weights(by_name["embed"].get_weights())
    token.set_weights([by_name["cls"].get_weights()[0][None]])
    positions.set_weights(by_name["pos_embed"].get_weights())
    dense_out.set_weights(by_name["logits"].get_weights())
    x = np.random.default_rng(0).normal(size=(3, 4, 6)).astype("float32")
    np.testing.assert_allclose(ours.predict({"patches": x}, verbose=0)["logits"], theirs(x), rtol=1e-5)


RANGE = """\
graphspec: 1
name: positions
inputs: {tokens: {shape: [null, 3]}}
layers:
  pos: {range: 1, in: tokens}
  odd: {range: -2, start: 1, step: 2, dtype: float32, in: tokens}
outputs: {pos: {}, odd: {}}
"""


def test_range_gives_the_positions_of_a_variable_length_input():
    model = graphspec.load(RANGE).build(compile=False)
    assert model.output["pos"].shape == (None, None)
    for length in (2, 7):
        got = model.predict({"tokens": np.zeros((2, length, 3), "float32")}, verbose=0)
        np.testing.assert_array_equal(got["pos"], np.tile(np.arange(length), (2, 1)))
        assert got["pos"].dtype == np.int32
        np.testing.assert_array_equal(got["odd"], np.tile(np.arange(1, 2 * length, 2), (2, 1)))
        assert got["odd"].dtype == np.float32


RANDOM = """\
graphspec: 1
name: noisy
inputs: {z: {shape: [5]}}
layers:
  eps: {random: normal, mean: 2.0, stddev: 0.5, seed: 1, in: z}
  always: {random: uniform, minval: -1, maxval: 1, seed: 1, in: z, call: {training: true}}
  never: {random: normal, seed: 1, in: z, call: {training: false}}
outputs: {eps: {}, always: {}, never: {}}
"""


def test_random_is_seeded_gives_its_mean_at_inference_and_obeys_call_training():
    z = np.zeros((64, 5), "float32")
    first, second = (graphspec.load(RANDOM).build(compile=False) for _ in range(2))
    drawn = first({"z": z}, training=True)
    np.testing.assert_array_equal(drawn["eps"], second({"z": z}, training=True)["eps"])  # the seed
    assert abs(float(np.mean(drawn["eps"])) - 2.0) < 0.2 and abs(float(np.std(drawn["eps"])) - 0.5) < 0.1
    np.testing.assert_array_equal(drawn["never"], np.zeros((64, 5)))  # training: false holds in training
    inferred = first.predict({"z": z}, verbose=0)
    np.testing.assert_array_equal(inferred["eps"], np.full((64, 5), 2.0))  # the mean, not a draw
    np.testing.assert_array_equal(inferred["never"], np.zeros((64, 5)))
    always = inferred["always"]  # training: true samples in predict too
    assert always.std() > 0.3 and always.min() >= -1 and always.max() < 1


def test_a_model_with_them_exports_back_to_the_same_nodes(tmp_path):
    loaded = graphspec.load(VIT.replace("outputs: {logits: {loss: mse}}\n", RANDOM_EXTRA))
    save_model(loaded.build(), tmp_path / "m.keras")
    model, compile_config = load_keras_file(tmp_path / "m.keras")
    exported = export_model(model, compile_config, origin="m.keras")
    layers = re.sub(r": +\{", ": {", exported.to_yaml())  # without the columns' alignment
    assert "cls: {weight: [1, 8], initializer: {type: RandomNormal, seed: 1}, in: embed}" in layers
    assert "pos: {range: 1, in: tokens}" in layers
    assert (
        "noise: {random: uniform, minval: -0.5, maxval: 0.5, seed: 7, in: embed, call: {training: true}}"
        in layers
    )
    exported.write(tmp_path / "exported.yaml")
    assert fingerprint(graphspec.load(tmp_path / "exported.yaml")) == fingerprint(loaded)


RANDOM_EXTRA = """\
  noise: {random: uniform, minval: -0.5, maxval: 0.5, seed: 7, in: embed, call: {training: true}}
  noisy: {type: Add, in: [embed, noise]}
  other: {type: Dense, units: 2, in: noisy}
outputs: {logits: {loss: mse}, other: {loss: mse}}
"""


LOAD_IN_KERAS = """\
import sys
import numpy as np
import keras
import graphspec.keras.layers
model = keras.saving.load_model(sys.argv[1])
print(model.predict({"patches": np.ones((1, 4, 6), "float32")}, verbose=0)["logits"].tolist())
"""


def test_a_saved_model_loads_in_stock_keras_after_importing_the_layers(tmp_path):
    model = graphspec.load(VIT).build()
    model.save(tmp_path / "vit.keras")
    result = subprocess.run(
        [sys.executable, "-c", LOAD_IN_KERAS, str(tmp_path / "vit.keras")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    expected = model.predict({"patches": np.ones((1, 4, 6), "float32")}, verbose=0)["logits"]
    np.testing.assert_allclose(eval(result.stdout.splitlines()[-1]), expected, rtol=1e-5)


def test_partial_loading_copies_the_weight_by_name(tmp_path):
    old = graphspec.load(VIT).build()
    old.save(tmp_path / "old.keras")
    new = graphspec.load(VIT, ["layers.logits.units=4"]).build()
    report = copy_matching_weights(new, tmp_path / "old.keras", partial=True)
    assert "cls" in [layer.name for layer in report.copied]
    np.testing.assert_array_equal(
        new.get_layer("cls").get_weights()[0], old.get_layer("cls").get_weights()[0]
    )


BAD = """\
graphspec: 1
name: bad
inputs: {x: {shape: [4, 8]}}
layers:
  cls: {weight: [1, 0], initialiser: zeros, in: x}
  pos: {range: 1, stop: 3, in: x}
  eps: {random: gaussian, seed: 1, in: x}
  eps2: {random: normal, minval: 1, in: [x, x]}
outputs: {cls: {}, pos: {}, eps: {}, eps2: {}}
"""


def test_their_arguments_are_checked_with_positions(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr == textwrap.dedent(
        f"""\
        {path}:5:21: error: weight node 'cls': dimension 0 of its shape is not positive
            cls: {{weight: [1, 0], initialiser: zeros, in: x}}
                              ^
        {path}:5:25: error: weight node 'cls' has no argument 'initialiser'
            cls: {{weight: [1, 0], initialiser: zeros, in: x}}
                                  ^~~~~~~~~~~
          hint: did you mean 'initializer'?
        {path}:6:19: error: range node 'pos' has no argument 'stop'
            pos: {{range: 1, stop: 3, in: x}}
                            ^~~~
          hint: did you mean 'step'?
        {path}:7:17: error: random node 'eps' draws from 'gaussian'; it is normal or uniform
            eps: {{random: gaussian, seed: 1, in: x}}
                          ^~~~~~~~
        {path}:8:26: error: random node 'eps2': 'minval' is an argument of a uniform draw, not a normal one
            eps2: {{random: normal, minval: 1, in: [x, x]}}
                                   ^~~~~~
          hint: normal takes mean and stddev; uniform takes minval and maxval
        {path}:8:41: error: random node 'eps2' reads one tensor; 'in' names one node
            eps2: {{random: normal, minval: 1, in: [x, x]}}
                                                  ^~~~~~
          hint: its output takes the batch (and, for range and random, the shape) of that tensor
        6 errors
        """
    )


def test_validating_and_fingerprinting_them_needs_no_tensorflow(tmp_path):
    path = tmp_path / "vit.yaml"
    path.write_text(VIT)
    code = (
        "import sys, graphspec\n"
        "from graphspec.fingerprint import fingerprint\n"
        f"fingerprint(graphspec.load({str(path)!r}))\n"
        "print('keras' in sys.modules, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_diff_plot_and_view_show_them_by_kind_and_value():
    old = graphspec.load(VIT)
    new = graphspec.load(VIT, ["layers.cls.initializer=ones", "layers.pos.start=1", "layers.pos.step=1"])
    assert render_text(diff(old, new)).splitlines()[2:] == [
        "layers changed (2):",
        "  ~ cls: initializer {type: RandomNormal, seed: 1} -> ones",
        "  ~ pos: start (unset) -> 1",  # step: 1 is the default: no change
    ]
    dot = spec_to_dot(old).to_string()
    assert '"cls" [label="cls\\nweight [1, 8]"];' in dot and '"pos" [label="pos\\nrange 1"];' in dot
    types = {node["id"]: node["type"] for node in page_data(graphspec.load(RANDOM))["nodes"]}
    assert types["eps"] == types["never"] == "random normal" and types["always"] == "random uniform"


MASKED = """\
graphspec: 1
name: masked
inputs: {tok: {shape: [null], dtype: int32}}
layers:
  emb: {type: Embedding, input_dim: 10, output_dim: 4, mask_zero: true, in: tok}
  cls: {weight: [1, 4], in: emb}
  pos: {range: 1, in: emb}
  cat: {type: Concatenate, axis: 1, in: [cls, emb]}
  pool: {type: GlobalAveragePooling1D, in: cat}
outputs: {pool: {}, pos: {}}
"""


def test_a_masked_input_is_read_for_its_batch_and_length_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when a layer drops a mask it cannot take
        model = graphspec.load(MASKED).build(compile=False)
    assert model.get_layer("cls").compute_mask(None, mask=np.ones((1, 3), bool)) is None
    got = model.predict({"tok": np.array([[1, 2, 0]])}, verbose=0)
    np.testing.assert_array_equal(got["pos"], [[0, 1, 2]])


# An initializer argument with a number as default, and what Keras does with each value when the
# weight is made: a string, null or mapping is refused (validate refuses it too), a list is
# broadcast and an integer taken (validate takes them).
INITIALIZER_ARGS = [("RandomNormal", "stddev"), ("RandomUniform", "maxval"), ("Orthogonal", "gain")]


@pytest.mark.parametrize(("cls", "arg"), INITIALIZER_ARGS)
@pytest.mark.parametrize("value", ["abc", None, {"a": 1}, [0.1, 0.2, 0.3], 2])
def test_a_weight_initializers_numbers_are_refused_where_keras_refuses_them(tmp_path, cls, arg, value):
    try:
        getattr(keras.initializers, cls)(**{arg: value})((3, 3))
        keras_refuses = False
    except Exception:
        keras_refuses = True
    assert keras_refuses == (value is None or isinstance(value, (str, dict)))
    written = {"type": cls, arg: value}
    path = tmp_path / "spec.yaml"
    path.write_text(
        "graphspec: 1\nname: w\ninputs: {x: {shape: [3]}}\n"
        f"layers:\n  w: {{weight: [3, 3], initializer: {json.dumps(written)}, in: x}}\n"
        "  y: {math: 'x @ w'}\n"
        "outputs: {y: {loss: mse}}\n"
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    if keras_refuses:
        assert result.exit_code == 2
        message = f"weight node 'w': initializer {cls}'s argument '{arg}' is a number, not {value!r}"
        assert message in result.stderr
        assert f"{path}:5:" in result.stderr
    else:
        assert result.exit_code == 0, result.stderr

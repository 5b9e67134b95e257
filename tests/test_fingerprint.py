"""`graphspec fingerprint`: what changes the architecture and training hashes, and what does not."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.fingerprint import Fingerprint, fingerprint
from graphspec.spec.load import load_text

runner = CliRunner()

BASE = """
graphspec: 1
name: small
doc: A small model.
params: {width: 8}
inputs:
  x: {shape: [4]}
  y: {shape: [3], range: [0, 1]}
layers:
  h:   {type: Dense, units: ${width}, activation: relu, in: x}
  cat: {type: Concatenate, in: [h, y]}
  out: {type: Dense, units: 1, in: cat}
outputs:
  out: {loss: mse}
compile:
  optimizer: rmsprop
train:
  epochs: 2
"""

# The same spec: other key order, flow and block style mixed, comments, docs, another name,
# a param instead of a literal, and a Keras-less reformatting of every section.
SAME = """
# A comment that changes nothing.
name: renamed
graphspec: 1
outputs:
  out:
    loss: mse
    doc: outputs may have docs too
inputs:
  y: {range: [0, 1], shape: [3]}     # reordered keys
  x:
    shape: [4]
layers:
  out: {in: cat, units: 1, type: Dense}
  h:
    type: Dense
    in: x
    activation: relu
    units: 8
    doc: no longer a param, the same value
  cat: {type: Concatenate, in: [h, y]}
train: {epochs: 2}
compile: {optimizer: rmsprop}
"""


def hashes(text: str, overrides: list[str] | None = None) -> Fingerprint:
    return fingerprint(load_text(textwrap.dedent(text), "<test>", overrides))


def test_key_order_formatting_comments_docs_and_name_change_nothing():
    assert hashes(SAME) == hashes(BASE)


@pytest.mark.parametrize(
    "old, new",
    [
        ("units: ${width}, activation: relu", "units: ${width}, activation: tanh"),  # an argument
        ("units: 1, in: cat", "units: 1, use_bias: false, in: cat"),  # an added argument
        (
            "out: {type: Dense, units: 1, in: cat}",  # a layer more
            "mid: {type: ReLU, in: cat}\n  out: {type: Dense, units: 1, in: mid}",
        ),
        ("in: [h, y]}", "in: [y, h]}"),  # the order of inputs
        ("x: {shape: [4]}", "x: {shape: [5]}"),  # an input's shape
        ("x: {shape: [4]}", "x: {shape: [4], dtype: float16}"),  # an input's dtype
        ("out: {loss: mse}", "out: {loss: mae}"),  # an output's loss
        ("out: {loss: mse}", "out: {loss: mse, weight: 0.5}"),  # its weight
        ("out: {loss: mse}", "out: {loss: mse}\n  joined: {from: cat}"),  # an output more
        ("Concatenate, in", "Concatenate, axis: 1, in"),  # explicit default
    ],
)
def test_a_change_to_the_model_changes_only_the_architecture_hash(old, new):
    assert old in BASE
    before, after = hashes(BASE), hashes(BASE.replace(old, new))
    assert after.architecture != before.architecture
    assert after.training == before.training


def test_params_and_overrides_count_by_their_values():
    assert hashes(BASE, ["width=8"]) == hashes(BASE)
    assert hashes(BASE, ["width=16"]).architecture != hashes(BASE).architecture
    assert hashes(BASE, ["width=16"]) == hashes(BASE.replace("width: 8", "width: 16"))
    assert hashes(BASE, ["layers.h.units=16"]) == hashes(BASE, ["width=16"])


@pytest.mark.parametrize(
    "old, new",
    [
        ("epochs: 2", "epochs: 3"),
        ("optimizer: rmsprop", "optimizer: {type: Adam, learning_rate: 0.01}"),
        ("range: [0, 1]", "range: [0, 2]"),  # synthetic data, not the model
    ],
)
def test_a_change_to_training_changes_only_the_training_hash(old, new):
    assert old in BASE
    before, after = hashes(BASE), hashes(BASE.replace(old, new))
    assert after.architecture == before.architecture
    assert after.training != before.training


BLOCKS = """
graphspec: 1
name: blocks
inputs: {x: {shape: [8]}}
blocks:
  mlp:
    params: {units}
    in: x
    layers:
      dense: {type: Dense, units: ${units}, in: x}
      act:   {type: ReLU, in: dense}
    out: act
layers:
  stem:  {block: mlp, units: 16, in: x}
  stack: {block: mlp, repeat: 2, units: 4, in: stem}
  out:   {type: Dense, units: 1, in: stack}
outputs: {out: {loss: mse}}
"""

INLINE = """
graphspec: 1
name: inline
inputs: {x: {shape: [8]}}
layers:
  stem.dense:    {type: Dense, units: 16, in: x}
  stem.act:      {type: ReLU, in: stem.dense}
  stack.0.dense: {type: Dense, units: 4, in: stem.act}
  stack.0.act:   {type: ReLU, in: stack.0.dense}
  stack.1.dense: {type: Dense, units: 4, in: stack.0.act}
  stack.1.act:   {type: ReLU, in: stack.1.dense}
  out:           {type: Dense, units: 1, in: stack.1.act}
outputs: {out: {loss: mse}}
"""


def test_layers_written_through_a_block_or_inline_hash_the_same():
    assert hashes(BLOCKS) == hashes(INLINE)
    # ...but not when the expansion gives other arguments.
    assert hashes(BLOCKS.replace("units: 4", "units: 5")).architecture != hashes(INLINE).architecture


def test_resnet50_and_its_expansion_hash_the_same():
    loaded = graphspec.load("specs/resnet50.yaml")
    assert fingerprint(load_text(loaded.expanded(), "<expanded>")) == fingerprint(loaded)


def test_a_nested_spec_counts_by_its_contents(tmp_path):
    (tmp_path / "enc.yaml").write_text(
        textwrap.dedent("""
        graphspec: 1
        name: enc
        inputs: {a: {shape: [4]}}
        layers: {z: {type: Dense, units: 2, in: a}}
        outputs: {z: {}}
    """)
    )
    main = tmp_path / "main.yaml"
    main.write_text(
        textwrap.dedent("""
        graphspec: 1
        name: main
        inputs: {x: {shape: [4]}}
        layers:
          enc: {spec: enc.yaml, in: x}
          out: {type: Dense, units: 1, in: enc}
        outputs: {out: {loss: mse}}
    """)
    )
    before = fingerprint(graphspec.load(main))
    (tmp_path / "enc.yaml").write_text((tmp_path / "enc.yaml").read_text().replace("units: 2", "units: 3"))
    after = fingerprint(graphspec.load(main))
    assert after.architecture != before.architecture
    assert after.training == before.training


def test_the_cli_prints_both_hashes(write_spec):
    path = write_spec(BASE)
    expected = hashes(BASE)
    result = runner.invoke(app, ["fingerprint", str(path)])
    assert result.exit_code == 0
    assert result.stdout == f"architecture {expected.architecture}\ntraining     {expected.training}\n"
    result = runner.invoke(app, ["fingerprint", str(path), "--json", "--set", "width=16"])
    assert json.loads(result.stdout) == {"spec": str(path), **hashes(BASE, ["width=16"]).as_dict()}
    assert expected.architecture.startswith("sha256:") and len(expected.architecture) == 7 + 64


def test_the_cli_fails_with_exit_2_on_an_invalid_spec(write_spec):
    path = write_spec(BASE.replace("units: 1,", "unitz: 1,"))
    result = runner.invoke(app, ["fingerprint", str(path)])
    assert result.exit_code == 2
    assert f"{path}:11:22: error: layer 'out': Dense has no argument 'unitz'\n" in result.stderr


def test_fingerprint_does_not_import_tensorflow():
    code = (
        "import sys, graphspec; from graphspec.fingerprint import fingerprint; "
        "fingerprint(graphspec.load('specs/resnet50.yaml')); "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"


def test_a_training_run_records_the_fingerprint(tmp_path):
    pytest.importorskip("keras")
    from graphspec.keras.train import DataSource, train

    loaded = load_text(textwrap.dedent(BASE), "<test>", ["train.epochs=1", "train.samples=8"])
    result = train(loaded, DataSource(synthetic=True), out=tmp_path / "run", verbose=0)
    recorded = json.loads((result.run_dir / "fingerprint.json").read_text())
    assert recorded == fingerprint(loaded).as_dict()
    # The resolved spec the run keeps is the same architecture.
    kept = graphspec.load(result.run_dir / "spec.yaml")
    assert fingerprint(kept).architecture == recorded["architecture"]


# --- Keras's defaults ------------------------------------------------------------------------

ONE_LAYER = """
graphspec: 1
name: one
inputs: {x: {shape: SHAPE}}
layers:
  y: LAYER
outputs: {y: {loss: mse}}
"""

# (input shape, a layer as one spec writes it, the same layer as another writes it): each pair
# builds the same Keras layer, so both must hash the same.
SAME_LAYER = [
    ([4], "{type: Dense, units: 2, in: x}", "{type: Dense, units: 2, use_bias: true, in: x}"),
    ([4], "{type: Dense, units: 2, in: x}", "{type: Dense, units: 2, activation: linear, in: x}"),
    ([4], "{type: Dense, units: 2, in: x}", "{type: Dense, units: 2, activation: null, in: x}"),
    (
        [4],
        "{type: Dense, units: 2, in: x}",
        "{type: Dense, units: 2, kernel_initializer: GlorotUniform, in: x}",
    ),
    (
        [4],
        "{type: Dense, units: 2, kernel_initializer: glorot_uniform, in: x}",
        "{type: Dense, units: 2, kernel_initializer: {type: GlorotUniform, seed: null}, in: x}",
    ),
    (
        [4],
        "{type: Dense, units: 2, kernel_regularizer: l2, in: x}",
        "{type: Dense, units: 2, kernel_regularizer: {type: L2, l2: 0.01}, in: x}",
    ),
    (
        [4],
        "{type: Dense, units: 2, activation: swish, in: x}",
        "{type: Dense, units: 2, activation: silu, in: x}",
    ),
    (
        [4],
        "{type: Dropout, rate: 0.5, in: x}",
        "{type: Dropout, rate: 0.5, seed: null, noise_shape: null, in: x}",
    ),
    (
        [8, 8, 3],
        "{type: Conv2D, filters: 2, kernel_size: 3, in: x}",
        "{type: Conv2D, filters: 2, kernel_size: [3, 3], in: x}",
    ),
    (
        [8, 8, 3],
        "{type: Conv2D, filters: 2, kernel_size: 3, in: x}",
        "{type: Conv2D, filters: 2, kernel_size: 3, strides: 1, dilation_rate: [1, 1], padding: valid,"
        " in: x}",
    ),
    (
        [8, 3],
        "{type: Conv1D, filters: 2, kernel_size: 3, in: x}",
        "{type: Conv1D, filters: 2, kernel_size: [3], in: x}",
    ),
    ([8, 8, 3], "{type: MaxPooling2D, in: x}", "{type: MaxPooling2D, pool_size: 2, strides: 2, in: x}"),
    ([8, 8, 3], "{type: ZeroPadding2D, in: x}", "{type: ZeroPadding2D, padding: [[1, 1], [1, 1]], in: x}"),
    (
        [8, 8, 3],
        "{type: ZeroPadding2D, padding: [1, 2], in: x}",
        "{type: ZeroPadding2D, padding: [[1, 1], [2, 2]], in: x}",
    ),
    ([5, 4], "{type: LayerNormalization, in: x}", "{type: LayerNormalization, axis: [-1], in: x}"),
    ([5, 4], "{type: LayerNormalization, in: x}", "{type: LayerNormalization, epsilon: 1.0e-3, in: x}"),
    ([4], "{type: ReLU, in: x}", "{type: ReLU, threshold: 0, in: x}"),  # 0 is the default 0.0
]


def one_layer(shape: list[int], layer: str) -> str:
    return ONE_LAYER.replace("SHAPE", str(shape)).replace("LAYER", layer)


@pytest.mark.parametrize("shape, written, other", SAME_LAYER)
def test_an_argument_at_its_keras_default_or_spelled_otherwise_changes_nothing(shape, written, other):
    assert hashes(one_layer(shape, written)) == hashes(one_layer(shape, other))


@pytest.mark.parametrize("shape, written, other", SAME_LAYER)
def test_what_the_fingerprint_calls_the_same_keras_builds_the_same(shape, written, other):
    # The table of defaults and spellings, checked against Keras: both layers, built on the same
    # input, have the same config.
    keras = pytest.importorskip("keras")
    configs = []
    for text in (written, other):
        model = load_text(textwrap.dedent(one_layer(shape, text)), "<test>").build(compile=False)
        layer = model.get_layer("y")
        configs.append(keras.saving.serialize_keras_object(layer)["config"])
    assert configs[0] == configs[1]


@pytest.mark.parametrize(
    "shape, written, other",
    [
        ([4], "{type: Dense, units: 2, in: x}", "{type: Dense, units: 2, use_bias: false, in: x}"),
        ([4], "{type: Dense, units: 2, in: x}", "{type: Dense, units: 2, activation: relu, in: x}"),
        (
            [4],
            "{type: Dense, units: 2, in: x}",
            "{type: Dense, units: 2, kernel_initializer: he_normal, in: x}",
        ),
        (
            [4],
            "{type: Dense, units: 2, kernel_initializer: glorot_uniform, in: x}",
            "{type: Dense, units: 2, kernel_initializer: {type: GlorotUniform, seed: 1}, in: x}",
        ),
        ([4], "{type: Dense, units: 2, in: x}", "{type: Dense, units: 2, kernel_regularizer: l1, in: x}"),
        (
            [8, 8, 3],
            "{type: Conv2D, filters: 2, kernel_size: 3, in: x}",
            "{type: Conv2D, filters: 2, kernel_size: [3, 1], in: x}",
        ),
        (
            [8, 8, 3],
            "{type: Conv2D, filters: 2, kernel_size: 3, in: x}",
            "{type: Conv2D, filters: 2, kernel_size: 3, strides: 2, in: x}",
        ),
        ([8, 8, 3], "{type: MaxPooling2D, in: x}", "{type: MaxPooling2D, pool_size: 2, strides: 1, in: x}"),
        (
            [8, 8, 3],
            "{type: ZeroPadding2D, in: x}",
            "{type: ZeroPadding2D, padding: [[1, 0], [1, 1]], in: x}",
        ),
        ([5, 4], "{type: LayerNormalization, in: x}", "{type: LayerNormalization, axis: [-2, -1], in: x}"),
        ([5, 4], "{type: LayerNormalization, in: x}", "{type: LayerNormalization, epsilon: 1.0e-5, in: x}"),
        # What Keras derives from the input's shape is not a default: written, it counts.
        (
            [5, 4],
            "{type: MultiHeadAttention, num_heads: 2, key_dim: 2, in: {query: x, value: x}}",
            "{type: MultiHeadAttention, num_heads: 2, key_dim: 2, attention_axes: [1],"
            " in: {query: x, value: x}}",
        ),
    ],
)
def test_an_argument_other_than_its_default_changes_the_architecture(shape, written, other):
    assert hashes(one_layer(shape, written)).architecture != hashes(one_layer(shape, other)).architecture


def test_an_op_argument_at_its_default_changes_nothing():
    base = """
    graphspec: 1
    name: ops
    inputs: {x: {shape: [4]}}
    layers:
      total: {op: cumsum, in: x}
    outputs: {total: {loss: mse}}
    """
    assert hashes(base) == hashes(base.replace("{op: cumsum, in: x}", "{op: cumsum, axis: null, in: {x: x}}"))
    assert (
        hashes(base).architecture
        != hashes(base.replace("{op: cumsum, in: x}", "{op: cumsum, axis: 1, in: x}")).architecture
    )


def test_a_call_argument_at_its_calls_default_changes_nothing():
    base = """
    graphspec: 1
    name: calls
    inputs: {x: {shape: [3, 4]}}
    layers:
      attn: {type: MultiHeadAttention, num_heads: 2, key_dim: 2, in: {query: x, value: x}}
    outputs: {attn: {loss: mse}}
    """
    written = base.replace("value: x}}", "value: x}, call: {use_causal_mask: false}}")
    causal = base.replace("value: x}}", "value: x}, call: {use_causal_mask: true}}")
    assert hashes(written) == hashes(base)
    assert hashes(causal).architecture != hashes(base).architecture


def test_an_optimizer_at_its_defaults_changes_nothing():
    assert hashes(BASE) == hashes(
        BASE.replace("optimizer: rmsprop", "optimizer: {type: RMSprop, learning_rate: 0.001}")
    )
    assert (
        hashes(BASE).training
        != hashes(
            BASE.replace("optimizer: rmsprop", "optimizer: {type: RMSprop, learning_rate: 0.01}")
        ).training
    )


SHARED = """
graphspec: 1
name: shared
inputs: {a: {shape: [4]}, b: {shape: [4]}}
layers:
  left:  {type: Dense, units: 3, in: a}
  right: {share: left, in: b}
  both:  {type: Concatenate, in: [left, right]}
outputs:
  both: {loss: mse}
"""


def test_a_share_node_counts_by_the_call_it_is_not_by_its_name():
    # Keras gives a layer's second call no name: an exported model calls it `left_2`.
    renamed = SHARED.replace("right: {share", "left_2: {share").replace("[left, right]", "[left, left_2]")
    assert hashes(renamed) == hashes(SHARED)
    # What it reads is what it is.
    swapped = SHARED.replace("{type: Dense, units: 3, in: a}", "{type: Dense, units: 3, in: b}")
    swapped = swapped.replace("{share: left, in: b}", "{share: left, in: a}")
    assert hashes(swapped).architecture != hashes(SHARED).architecture


def test_an_output_read_with_from_is_the_identity_layer_the_build_adds():
    # `out: {from: h}` builds an Identity layer named `out`: written out, it is the same model.
    written = BASE.replace("out: {loss: mse}", "out: {loss: mse}\n  joined: {from: cat}")
    explicit = BASE.replace("out: {loss: mse}", "out: {loss: mse}\n  joined: {}")
    explicit = explicit.replace(
        "  out: {type: Dense", "  joined: {type: Identity, in: cat}\n  out: {type: Dense"
    )
    assert hashes(written) == hashes(explicit)
    # Not an Identity layer: another model.
    other = explicit.replace("joined: {type: Identity", "joined: {type: ReLU")
    assert hashes(other).architecture != hashes(written).architecture


def test_the_scheme_is_in_every_hash():
    from graphspec import fingerprint as module

    assert module.SCHEME == "graphspec-fingerprint/2"
    form = module.architecture_form(load_text(textwrap.dedent(BASE), "<test>"))
    text = module.SCHEME + "\n" + module.canonical_json(form)
    assert hashes(BASE).architecture == "sha256:" + __import__("hashlib").sha256(text.encode()).hexdigest()


def test_an_argument_whose_default_the_catalog_does_not_record_always_counts(monkeypatch):
    # catalog_gen leaves out a default that is not plain data: such an argument is never
    # taken for its default, whatever its value.
    from graphspec.spec import catalog

    entry = catalog.layer("Dense")
    without = {**entry, "defaults": {k: v for k, v in entry["defaults"].items() if k != "use_bias"}}
    monkeypatch.setattr(catalog, "layer", lambda name: without if name == "Dense" else None)
    written = one_layer([4], "{type: Dense, units: 2, use_bias: true, in: x}")
    assert (
        hashes(written).architecture != hashes(one_layer([4], "{type: Dense, units: 2, in: x}")).architecture
    )

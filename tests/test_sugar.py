"""Expansion-time sugar: `${copy}` in a repeated use's inputs (U-shaped networks), implicit
`in`, chains of unnamed layers, and a block's `out` left implicit.

Each is checked on the expanded spec, on the model it builds against the same model written in
Keras, and each bad input for its exact `file:line:col`, message and hint.
"""

from __future__ import annotations

import textwrap

import pytest
from fixtures.located import errors

import graphspec
from graphspec.diff import diff
from graphspec.fingerprint import fingerprint

ADD = """
blocks:
  add:
    in: [x, skip]
    layers:
      sum: {type: Add, in: [x, skip]}
    out: sum
"""


def spec(layers: str, blocks: str = ADD, head: str = "", outputs: str = "out: {loss: mse}") -> str:
    """A spec with one input `v` of shape (8,), the given blocks and layers."""
    return (
        f"graphspec: 1\nname: t\n{head}inputs:\n  v: {{shape: [8]}}\n"
        + textwrap.dedent(blocks).strip("\n")
        + "\nlayers:\n"
        + textwrap.indent(textwrap.dedent(layers).strip("\n"), "  ")
        + "\noutputs:\n  "
        + outputs
        + "\n"
    )


# -- ${copy} in a repeated use's inputs ----------------------------------------------------------


def test_each_copy_computes_its_inputs_with_its_copy_index():
    layers = graphspec.load(
        spec(
            """
        enc: {block: add, repeat: 3, in: [v, v]}
        dec: {block: add, repeat: "${n}", in: {x: enc, skip: "enc.${n - 1 - copy}"}}
        out: {type: Dense, units: 1, in: dec}
    """,
            head="params: {n: 3}\n",
        )
    ).spec.layers
    # Copy 0 reads the first input as written, later copies the copy before; the skip is
    # computed for each copy.
    assert layers["dec.0.sum"].inbound == ["enc.2.sum", "enc.2.sum"]
    assert layers["dec.1.sum"].inbound == ["dec.0.sum", "enc.1.sum"]
    assert layers["dec.2.sum"].inbound == ["dec.1.sum", "enc.0.sum"]


BAD_COPIES = {
    "a copy reading its own use": (
        'dec: {block: add, repeat: 2, in: {x: v, skip: "dec.${1 - copy}"}}',
        (
            "12:49",
            "cycle: layer 'dec' reads 'dec.1' in copy 0, an output of the same use",
            "copies are chained: each copy reads the one before through the block's first input",
        ),
    ),
    "an unknown name": (
        'dec: {block: add, repeat: 2, in: [v, "v${cpy}"]}',
        ("12:42", "'${cpy}' names no param", "did you mean 'copy'?"),
    ),
    "a copy that does not exist": (
        "enc: {block: add, repeat: 2, in: [v, v]}\n"
        'dec: {block: add, repeat: 2, in: [enc, "enc.${copy + 1}"]}',
        ("13:42", "layer 'dec' reads 'enc.2', but 'enc' has no copy 2", "it has copies 0 to 1"),
    ),
}


@pytest.mark.parametrize("case", list(BAD_COPIES))
def test_a_bad_per_copy_input_is_an_error_at_its_column(case, write_spec):
    layers, expected = BAD_COPIES[case]
    assert errors(spec(layers + "\nout: {type: Dense, units: 1, in: dec}"), write_spec) == [expected]


# -- implicit `in`, chains, a block's implicit `out` ---------------------------------------------

IMPLICIT = """
graphspec: 1
name: t
inputs:
  image: {shape: [8, 8, 3]}
blocks:
  cbr:
    params: {filters}
    in: x
    layers:
      body: [{type: Conv2D, filters: "${filters}", kernel_size: 3, padding: same},
             {type: BatchNormalization}, {type: ReLU}, {type: Conv2D, filters: "${filters}", kernel_size: 1}]
      act:  {type: ReLU}
layers:
  stem:  [{type: Conv2D, filters: 4, kernel_size: 3}, {type: BatchNormalization}, {type: ReLU}]
  stage: {block: cbr, repeat: 2, filters: 8}
  pool:  {type: GlobalAveragePooling2D}
  out:   {type: Dense, units: 2}
outputs:
  out:  {loss: mse}
  stem: {}
"""

EXPLICIT = """
graphspec: 1
name: t
inputs:
  image: {shape: [8, 8, 3]}
layers:
  stem.conv2d:              {type: Conv2D, filters: 4, kernel_size: 3, in: image}
  stem.batch_normalization: {type: BatchNormalization, in: stem.conv2d}
  stem.re_lu:               {type: ReLU, in: stem.batch_normalization}
  pool:                     {type: GlobalAveragePooling2D, in: stem.re_lu}
  out:                      {type: Dense, units: 2, in: pool}
outputs:
  out: {loss: mse}
"""


def test_chains_and_implicit_in_are_the_explicit_spelling():
    implicit = graphspec.load(IMPLICIT)
    layers = implicit.spec.layers
    assert list(layers)[:4] == [
        "stem.conv2d",
        "stem.batch_normalization",
        "stem.re_lu",
        "stage.0.body.conv2d",
    ]
    # Keras's auto-naming: a type met again in a chain gets `_1`.
    assert layers["stage.1.body.conv2d_1"].inbound == "stage.1.body.re_lu"
    # No `in`: the node before (a chain is its last element, a use its output); the first
    # node of a block reads the block's first input, and copies chain.
    assert layers["stage.0.body.conv2d"].inbound == "stem.re_lu"
    assert layers["stage.1.body.conv2d"].inbound == "stage.0.act"
    assert layers["pool"].inbound == "stage.1.act"
    assert implicit.spec.outputs["stem"].source == "stem.re_lu"
    # `graphspec expand` prints every `in`, and loads back to the same spec.
    expanded = implicit.expanded()
    nodes = expanded.split("layers:\n")[1].split("\n\n")[0].splitlines()
    assert len(nodes) == 15 and all(", in: " in line for line in nodes)
    again = graphspec.load(expanded)
    assert again.spec.layers == layers
    assert not diff(implicit, again).differ
    assert fingerprint(implicit) == fingerprint(again)


def test_the_implicit_and_the_explicit_spelling_have_one_fingerprint():
    implicit = """
graphspec: 1
name: t
inputs:
  image: {shape: [8, 8, 3]}
layers:
  stem: [{type: Conv2D, filters: 4, kernel_size: 3}, {type: BatchNormalization}, {type: ReLU}]
  pool: {type: GlobalAveragePooling2D}
  out:  {type: Dense, units: 2}
outputs:
  out: {loss: mse}
"""
    ours, theirs = graphspec.load(implicit), graphspec.load(EXPLICIT)
    assert fingerprint(ours) == fingerprint(theirs)
    assert not diff(ours, theirs).differ


def test_a_chain_builds_the_layers_keras_would():
    import keras

    model = graphspec.load(IMPLICIT).build(compile=False)
    layers = keras.layers
    image = keras.Input((8, 8, 3))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(4, 3)(image)))
    stem = x
    for _ in range(2):
        x = layers.Conv2D(8, 3, padding="same")(x)
        x = layers.Conv2D(8, 1)(layers.ReLU()(layers.BatchNormalization()(x)))
        x = layers.ReLU()(x)
    reference = keras.Model(image, [layers.Dense(2)(layers.GlobalAveragePooling2D()(x)), stem])
    assert model.count_params() == reference.count_params()
    assert model.get_layer("stage.1.body.conv2d_1").output.shape == (None, 6, 6, 8)


def test_a_later_chain_element_may_read_what_it_names_and_minus_one_is_the_one_before():
    layers = graphspec.load(
        spec(
            """
        c: [{type: Dense, units: 8}, {type: Add, in: [v, -1]}, {type: Dense, units: 8}]
        d: {type: Concatenate, in: [-1, -2, c.dense]}
        out: {type: Dense, units: 1, in: {inputs: -1}}
    """,
            blocks="",
        )
    ).spec.layers
    # In a chain a layer with `in` reads what it names; the ones after it read it as before.
    assert layers["c.add"].inbound == ["v", "c.dense"]
    assert layers["c.dense_1"].inbound == "c.add"
    # Counting back goes through chain elements one by one, and works outside chains too.
    assert layers["d"].inbound == ["c.dense_1", "c.add", "c.dense"]
    assert layers["out"].inbound == {"inputs": "d"}


def test_the_first_layers_minus_one_is_what_it_reads_without_in():
    layers = graphspec.load(spec("out: {type: Add, in: [-1, v]}", blocks="")).spec.layers
    assert layers["out"].inbound == ["v", "v"]


TWO_INPUTS = "graphspec: 1\nname: t\ninputs:\n  a: {shape: [8]}\n  b: {shape: [8]}\nlayers:\n"
BAD_CHAINS = {
    "a first layer without in, and two inputs": (
        "  first: {type: Dense, units: 2}",
        (
            "7:3",
            "layer 'first' has no 'in' and no layer before it to read: the first layer reads the "
            "spec's input only when there is exactly one, and there are 2 (a, b)",
            "say what it reads with 'in'",
        ),
    ),
    "an empty chain": ("  c: []", ("7:6", "chain 'c' has no layers", None)),
    "an element that is not a mapping": (
        "  c: [{type: Dense, units: 2, in: a}, 3]",
        ("7:39", "each layer of chain 'c' is a mapping, as a layer is", None),
    ),
    "a count that is not negative": (
        "  c: [{type: Dense, units: 2, in: a}, {type: Add, in: [b, 1]}]",
        (
            "7:59",
            "layer 'c.add' reads 1: a number in 'in' counts back through the layers written before "
            "this one, and is negative",
            "-1 is the layer just before, -2 the one before that",
        ),
    ),
    "a count back past the first layer": (
        "  c: [{type: Dense, units: 2, in: a}, {type: Add, in: [b, -2]}]",
        (
            "7:59",
            "layer 'c.add' reads -2, but only 1 layer or input comes before it",
            "-1 is the layer just before; the first layer's -1 is what it reads without 'in'",
        ),
    ),
    "an error inside an element": (
        "  c: [{type: Dense, units: 2, in: a}, {type: Dense, unit: 3}]",
        ("7:53", "layer 'c.dense_1': Dense has no argument 'unit'", "did you mean 'units'?"),
    ),
}


@pytest.mark.parametrize("case", list(BAD_CHAINS))
def test_a_bad_chain_is_an_error_at_its_column(case, write_spec):
    layers, expected = BAD_CHAINS[case]
    text = TWO_INPUTS + layers + "\n  out: {type: Dense, units: 1, in: a}\noutputs:\n  out: {loss: mse}\n"
    assert errors(text, write_spec) == [expected]


def test_a_block_without_out_outputs_its_last_layer():
    layers = graphspec.load(
        spec(
            """
        two: {block: dense, in: v}
        out: {type: Dense, units: 1}
    """,
            blocks="""
blocks:
  dense:
    in: x
    layers:
      hidden: {type: Dense, units: 4}
      tail:   [{type: Dense, units: 4}, {type: ReLU}]
""",
        )
    ).spec.layers
    assert layers["two.hidden"].inbound == "v"
    assert layers["two.tail.dense"].inbound == "two.hidden"
    assert layers["out"].inbound == "two.tail.re_lu"


def test_a_u_net_too_deep_is_refused_before_it_is_expanded(write_spec):
    # `repeat: "${n}"` is computed before expansion, so the node count is estimated first.
    text = spec(
        """
        enc: {block: add, repeat: "${n}", in: [v, v]}
        dec: {block: add, repeat: "${n}", in: {x: enc, skip: "enc.${n - 1 - copy}"}}
        out: {type: Dense, units: 1, in: dec}
    """,
        head="params: {n: 200000}\n",
    )
    assert errors(text, write_spec) == [
        (
            "13:3",
            "layer 'enc' expands to about 200,000 nodes; a spec may have at most 100,000",
            "check the repeat counts; raise the limit with: graphspec --limit nodes=N COMMAND ...",
        )
    ]


def test_a_chain_layer_named_as_another_layer_is_an_error(write_spec):
    text = TWO_INPUTS + (
        "  c: [{type: Dense, units: 2, in: a}, {type: ReLU}]\n"
        "  c.re_lu: {type: Dense, units: 1, in: a}\n"
        "outputs:\n  c.re_lu: {loss: mse}\n"
    )
    assert errors(text, write_spec) == [
        (
            "7:39",
            "chain 'c' names its layer 1 'c.re_lu', which is also the name of another layer",
            "rename that layer, or the chain",
        )
    ]

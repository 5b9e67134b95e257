"""Compact block definitions (graphspec/spec/compact.py): a block without `in` (one input `x`),
without `params` (the names it reads), a list block (a chain), and a use's missing params taken
from where the use is written.

Each is compared with the explicit spelling (same expanded spec, same fingerprint), and each bad
input is checked for its exact `file:line:col`, message and hint.
"""

from __future__ import annotations

import pytest

import graphspec
from graphspec import SpecErrors
from graphspec.diff import diff
from graphspec.fingerprint import fingerprint

COMPACT = """
graphspec: 1
name: t
params: {dim: 8, heads: 2, hidden: 16}
blocks:
  mlp: [{type: Dense, units: "${hidden}", activation: gelu}, {type: Dense, units: "${dim}"}]
  encoder:
    layers:
      attn: {type: MultiHeadAttention, num_heads: "${heads}", key_dim: "${dim // heads}",
             in: {query: x, value: x}}
      res: {type: Add, in: [x, attn]}
      ffn: {block: mlp}
      out: {type: Add, in: [res, ffn]}
inputs: {seq: {shape: [4, 8]}}
layers:
  enc: {block: encoder, repeat: 2}
  wide: {block: encoder, dim: 8, hidden: 32}
  out: {type: Dense, units: 1}
outputs: {out: {loss: mse}}
"""

EXPLICIT = """
graphspec: 1
name: t
params: {dim: 8, heads: 2, hidden: 16}
blocks:
  mlp:
    params: {hidden, dim}
    in: x
    layers:
      dense: {type: Dense, units: "${hidden}", activation: gelu, in: x}
      dense_1: {type: Dense, units: "${dim}", in: dense}
    out: dense_1
  encoder:
    params: {heads, dim, hidden}
    in: x
    layers:
      attn: {type: MultiHeadAttention, num_heads: "${heads}", key_dim: "${dim // heads}",
             in: {query: x, value: x}}
      res: {type: Add, in: [x, attn]}
      ffn: {block: mlp, hidden: "${hidden}", dim: "${dim}", in: res}
      out: {type: Add, in: [res, ffn]}
    out: out
inputs: {seq: {shape: [4, 8]}}
layers:
  enc: {block: encoder, repeat: 2, heads: "${heads}", dim: "${dim}", hidden: "${hidden}", in: seq}
  wide: {block: encoder, heads: "${heads}", dim: 8, hidden: 32, in: enc}
  out: {type: Dense, units: 1, in: wide}
outputs: {out: {loss: mse}}
"""


def errors(text: str, write_spec) -> list[tuple[str, str, str | None]]:
    path = write_spec(text)
    with pytest.raises(SpecErrors) as caught:
        graphspec.load(path)
    return [
        (str(d.location).removeprefix(f"{path}:"), d.message, (d.hint or "").replace(str(path), "SPEC"))
        for d in caught.value.diagnostics.errors
    ]


def test_the_compact_and_the_explicit_spelling_are_one_model():
    compact, explicit = graphspec.load(COMPACT), graphspec.load(EXPLICIT)
    assert compact.spec.layers == explicit.spec.layers
    assert fingerprint(compact) == fingerprint(explicit)
    assert not diff(compact, explicit).differ
    layers = compact.spec.layers
    # A list block's elements are named after their types; its first reads the input `x`.
    assert layers["enc.0.ffn.dense"].inbound == "enc.0.res"
    assert layers["enc.1.attn"].inbound == {"query": "enc.0.out", "value": "enc.0.out"}
    # A param the use leaves out is the spec's param of that name; one it gives wins.
    assert layers["enc.0.ffn.dense"].model_extra["units"] == 16
    assert layers["wide.ffn.dense"].model_extra["units"] == 32


def test_expand_shows_the_values_a_use_took_from_the_spec():
    expanded = graphspec.load(COMPACT).expanded()
    assert "  wide.ffn.dense:    {type: Dense, units: 32, activation: gelu, in: wide.res}" in expanded
    assert "  enc.1.ffn.dense:   {type: Dense, units: 16, activation: gelu, in: enc.1.res}" in expanded


def test_a_param_read_from_the_spec_is_not_reported_unused(write_spec):
    loaded = graphspec.load(write_spec(COMPACT))
    assert [w.message for w in loaded.diagnostics.warnings] == []


def test_a_written_params_stays_authoritative(write_spec):
    text = COMPACT.replace("  encoder:\n    layers:", "  encoder:\n    params: {dim, hidden}\n    layers:")
    assert errors(text, write_spec) == [
        ("9:52", "'${heads}' names no param", "declared params: dim, hidden, copy"),
        ("9:82", "'heads' names no param", "declared params: dim, hidden, copy"),
    ]


def test_a_param_neither_given_nor_found_names_both_places(write_spec):
    text = COMPACT.replace("params: {dim: 8, heads: 2, hidden: 16}", "params: {dim: 8, heads: 2}")
    assert errors(text, write_spec) == [
        (
            "15:3",
            "layer 'enc' uses block 'encoder' without its param 'hidden'",
            "block 'encoder' needs 'hidden' (at SPEC:11:7), and the spec has no param 'hidden' to give "
            "it: give it in the use",
        )
    ]


def test_a_use_in_a_block_looks_in_the_block(write_spec):
    text = (
        COMPACT.replace("encoder:\n    layers:", "encoder:\n    params: {dim, heads, hidden}\n    layers:")
        .replace("  mlp: [", "  mlp:\n    params: {hidden, dim, act}\n    layers:\n      only: [")
        .replace("activation: gelu}", 'activation: "${act}"}')
    )
    assert errors(text, write_spec) == [
        (
            "15:7",
            "layer 'ffn' of block 'encoder' uses block 'mlp' without its param 'act'",
            "'act' has no default (at SPEC:6:27), and block 'encoder' has no param 'act' to give it: "
            "give it in the use",
        )
    ]


def test_a_chain_blocks_element_may_read_the_blocks_input():
    dense = '{type: Dense, units: "${dim}"}'
    text = COMPACT.replace(dense, dense + ", {type: Add, in: [x, -1]}")
    layers = graphspec.load(text).spec.layers
    assert layers["enc.0.ffn.add"].inbound == ["enc.0.res", "enc.0.ffn.dense_1"]


BARE = """
graphspec: 1
name: t
params: {dim: 8}
blocks:
  up:
    in: [x, skip]
    layers: [{type: Dense, units: "${dim}"}, {type: Concatenate, in: [skip, -1]}]
  residual:  # no block keys: the mapping is the block's layers
    dense: {type: Dense, units: "${dim}"}
    add: {type: Add, in: [x, dense]}
inputs: {a: {shape: [8]}, b: {shape: [8]}}
layers:
  res: {block: residual, in: a}
  up: {block: up, in: {x: res, skip: b}}
outputs: {up: {loss: mse}}
"""

SPELLED_OUT = """
graphspec: 1
name: t
params: {dim: 8}
blocks:
  up:
    params: {dim}
    in: [x, skip]
    layers:
      dense: {type: Dense, units: "${dim}", in: x}
      concatenate: {type: Concatenate, in: [skip, dense]}
    out: concatenate
  residual:
    params: {dim}
    in: x
    layers:
      dense: {type: Dense, units: "${dim}", in: x}
      add: {type: Add, in: [x, dense]}
    out: add
inputs: {a: {shape: [8]}, b: {shape: [8]}}
layers:
  res: {block: residual, in: a}
  up: {block: up, in: {x: res, skip: b}}
outputs: {up: {loss: mse}}
"""


def test_a_list_of_layers_and_a_bare_mapping_are_blocks_spelled_out():
    bare, spelled = graphspec.load(BARE), graphspec.load(SPELLED_OUT)
    assert bare.spec.layers == spelled.spec.layers
    assert bare.spec.layers["up.concatenate"].inbound == ["b", "up.dense"]
    assert fingerprint(bare) == fingerprint(spelled)
    assert not diff(bare, spelled).differ


def test_a_use_inside_a_use_is_read_by_its_name():
    text = """
graphspec: 1
name: t
params: {filters: 4}
blocks:
  conv: [{type: Dense, units: "${filters}"}, {type: ReLU}]
  down: [{block: conv, repeat: 2}, {type: Dense, units: 2}]
inputs: {v: {shape: [8]}}
layers:
  encoder: {block: down, repeat: 2}
  skip: {type: Add, in: [encoder, "encoder.0.conv"]}
outputs: {skip: {loss: mse}}
"""
    layers = graphspec.load(text).spec.layers
    assert layers["skip"].inbound == ["encoder.1.dense", "encoder.0.conv.1.re_lu"]


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        ("[]", ("5:8", "chain block 'mlp' has no layers", "")),
        ("[Dense]", ("5:9", "each layer of chain block 'mlp' is a mapping, as a layer is", "")),
    ],
)
def test_a_bad_chain_block_is_an_error_at_its_line(chain, expected, write_spec):
    text = COMPACT.replace(
        '[{type: Dense, units: "${hidden}", activation: gelu}, {type: Dense, units: "${dim}"}]', chain
    )
    assert errors(text, write_spec) == [expected]


def test_a_set_of_the_spec_param_reaches_the_uses_that_take_it():
    layers = graphspec.load(COMPACT, ["hidden=64"]).spec.layers
    assert layers["enc.1.ffn.dense"].model_extra["units"] == 64
    assert layers["wide.ffn.dense"].model_extra["units"] == 32  # given by the use

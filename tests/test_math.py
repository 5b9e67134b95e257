"""`math:` nodes: tensor expressions desugared into op nodes at expansion time.

The desugared nodes are checked in the expanded spec; the built model against the same
computation written with keras.ops on the same weights; each bad expression for its exact
`file:line:col` (the column inside the string), message and hint.
"""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.located import errors

import graphspec
from graphspec import budget

VAE = """
graphspec: 1
name: vae
params: {latent: 2}
inputs:
  x:   {shape: [8]}
  eps: {shape: ["${latent}"]}
layers:
  h:         {type: Dense, units: 16, activation: relu, in: x}
  z_mean:    {type: Dense, units: "${latent}", in: h}
  z_log_var: {type: Dense, units: "${latent}", in: h}
  z:  {math: "z_mean + exp(0.5 * z_log_var) * eps"}
  kl: {math: "-0.5 * sum(1 + lv - m ** 2 - exp(lv), axis=-1)", in: {m: z_mean, lv: z_log_var}}
  sq: {math: "${latent} * z @ transpose(z)"}
outputs:
  z:  {loss: mse}
  kl: {loss: mse}
  sq: {loss: mse}
"""


def test_math_becomes_op_nodes_named_after_the_node():
    layers = graphspec.load(VAE).spec.layers
    assert [n for n in layers if n.startswith("z.") or n == "z"] == ["z.1", "z.2", "z.3", "z"]
    assert layers["z.1"].op == "multiply" and layers["z.1"].args == {"x1": 0.5}
    assert layers["z.1"].inbound == "z_log_var"
    assert layers["z"].op == "add" and layers["z"].inbound == ["z_mean", "z.3"]
    # Aliases of `in:` read the nodes they name; constants fold; `-` of a number is a number.
    assert layers["kl.2"].op == "power" and layers["kl.2"].args == {"x2": 2}
    assert layers["kl.2"].inbound == "z_mean"
    assert layers["kl.6"].op == "sum" and layers["kl.6"].args == {"axis": -1}
    assert layers["kl"].args == {"x1": -0.5}
    assert layers["sq"].op == "matmul"


def test_expand_prints_the_op_nodes_and_they_are_the_same_model():
    from graphspec.fingerprint import fingerprint

    loaded = graphspec.load(VAE)
    expanded = loaded.expanded()
    assert "  z.1:       {op: multiply, x1: 0.5, in: z_log_var}" in expanded
    assert "math" not in expanded
    again = graphspec.load(expanded)
    assert again.spec.layers == loaded.spec.layers
    assert fingerprint(again) == fingerprint(loaded)


def test_math_computes_what_keras_ops_compute():
    import keras
    from keras import ops

    model = graphspec.load(VAE).build(compile=False)
    rng = np.random.default_rng(0)
    x, eps = rng.normal(size=(3, 8)).astype("float32"), rng.normal(size=(3, 2)).astype("float32")
    got = model({"x": x, "eps": eps})
    h = model.get_layer("h")(x)
    m, lv = model.get_layer("z_mean")(h), model.get_layer("z_log_var")(h)
    z = m + ops.exp(0.5 * lv) * eps
    kl = -0.5 * ops.sum(1 + lv - m**2 - ops.exp(lv), axis=-1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got["z"]), ops.convert_to_numpy(z), rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(got["kl"]), ops.convert_to_numpy(kl), rtol=1e-5)
    sq = ops.matmul(2 * z, ops.transpose(z))
    np.testing.assert_allclose(ops.convert_to_numpy(got["sq"]), ops.convert_to_numpy(sq), rtol=1e-5)


def test_math_in_a_block_reads_the_blocks_inputs_and_layers():
    text = """
graphspec: 1
name: t
inputs:
  v: {shape: [4]}
blocks:
  scaled:
    params: {scale: 2}
    in: x
    layers:
      d:   {type: Dense, units: 4}
      out: {math: "x + ${scale} * d"}
layers:
  s:   {block: scaled, repeat: 2, in: v}
outputs:
  s: {loss: mse}
"""
    layers = graphspec.load(text).spec.layers
    assert layers["s.0.out.1"].args == {"x1": 2} and layers["s.0.out.1"].inbound == "s.0.d"
    assert layers["s.1.out"].inbound == ["s.0.out", "s.1.out.1"]
    assert layers["s.1.d"].inbound == "s.0.out"


def test_a_boolean_is_a_functions_flag():
    node = 'm: {math: "dot_product_attention(a, b, b, is_causal=True)"}'
    text = HEAD.replace("[4]", "[3, 2, 4]") + f"  {node}\noutputs:\n  m: {{loss: mse}}\n"
    layers = graphspec.load(text).spec.layers
    assert layers["m"].op == "dot_product_attention" and layers["m"].args == {"is_causal": True}


HEAD = "graphspec: 1\nname: t\ninputs:\n  a: {shape: [4]}\n  b: {shape: [4]}\nlayers:\n"
BAD_MATH = {
    "an attribute": (
        'm: {math: "a + b.shape"}',
        (
            "7:18",
            "an attribute ('.') cannot be used in a math expression",
            "names, numbers, + - * / ** @, unary -, and keras.ops functions with keyword arguments",
        ),
    ),
    "a subscript": (
        'm: {math: "a[0] * 2"}',
        (
            "7:14",
            "a subscript ('[...]') cannot be used in a math expression",
            "names, numbers, + - * / ** @, unary -, and keras.ops functions with keyword arguments",
        ),
    ),
    "an unknown function": (
        'm: {math: "a + expp(b)"}',
        ("7:18", "'expp' is not a keras.ops function a spec can use", "did you mean 'exp'?"),
    ),
    "an unknown argument": (
        'm: {math: "sum(a, axs=-1)"}',
        ("7:21", "sum() has no argument 'axs'", "did you mean 'axis'?"),
    ),
    "an unknown name": (
        'm: {math: "a + c"}',
        ("7:18", "layer 'm' reads 'c', which is not defined", None),
    ),
    "a boolean operand": (
        'm: {math: "a + True"}',
        ("7:18", "True cannot be used in a math expression", None),
    ),
    "a syntax error": ('m: {math: "a + * b"}', ("7:18", "invalid expression: invalid syntax", None)),
    "a name only": (
        'm: {math: "a"}',
        (
            "7:14",
            "a math expression computes something: this one only names a node",
            "read the node itself where this one is used",
        ),
    ),
    "a step named as another layer": (
        'm: {math: "exp(a) + b"}\n  m.1: {type: Dense, units: 4, in: a}',
        (
            "7:3",
            "math node 'm' names a step 'm.1', which is also the name of another layer",
            "rename that layer, or this node",
        ),
    ),
    "a list in place of the expression": (
        "m: {math: [a, b]}",
        ("7:13", "'math' is an expression in a string", None),
    ),
    "a list in place of the expression, in a chain": (
        "m: [{math: {a: b}}]",
        ("7:14", "'math' is an expression in a string", None),
    ),
    "an in that is not a mapping": (
        'm: {math: "a * x", in: b}',
        (
            "7:26",
            "a math node's 'in' is a mapping of the names its expression uses to references",
            "write in: {x: node} and use x in the expression; or name nodes in it directly",
        ),
    ),
}


@pytest.mark.parametrize("case", list(BAD_MATH))
def test_a_bad_expression_is_an_error_at_its_column(case, write_spec):
    layer, expected = BAD_MATH[case]
    text = HEAD + "  " + layer + "\noutputs:\n  m: {loss: mse}\n"
    assert errors(text, write_spec) == [expected]


def test_math_nodes_that_expand_past_the_node_limit_are_refused(write_spec):
    # 510 copies of a 199-operation expression: each math node counts once before expansion.
    expression = "+".join(["(" + "+".join(["x"] * 10) + ")"] * 20)
    text = f"""
graphspec: 1
name: t
inputs:
  v: {{shape: [4]}}
blocks:
  sum:
    in: x
    layers:
      s: {{math: "{expression}"}}
layers:
  many: {{block: sum, repeat: 510, in: v}}
outputs:
  many: {{loss: mse}}
"""
    assert errors(text, write_spec) == [
        (
            "9:7",
            "math nodes expand to about 102,000 nodes; a spec may have at most 100,000",
            "check the repeat counts of the blocks that hold them; "
            "raise the limit with: graphspec --limit nodes=N COMMAND ...",
        )
    ]


def test_a_math_expression_nested_too_deep_is_refused(write_spec):
    text = HEAD + '  m: {math: "' + "+".join(["a"] * 120) + '"}\noutputs:\n  m: {loss: mse}\n'
    ((where, message, hint),) = errors(text, write_spec)
    assert (where[:2], message, hint) == ("7:", "an expression nests at most 100 deep", None)


def test_math_nodes_are_counted_against_the_commands_own_node_limit(write_spec):
    # `--limit nodes=N` bounds the math nodes' estimate as it bounds the blocks' nodes.
    text = HEAD + '  m: {math: "a + b * a - b"}\noutputs:\n  m: {loss: mse}\n'
    budget.activate(budget.Budget({"nodes": 3}))
    try:
        assert (
            errors(text, write_spec)[0][1] == "math nodes expand to about 4 nodes; a spec may have at most 3"
        )
    finally:
        budget.activate(None)

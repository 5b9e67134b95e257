"""Expansion-time sugar: `${copy}` in a repeated use's inputs (U-shaped networks), implicit
`in`, chains of unnamed layers, and a block's `out` left implicit.

Each is checked on the expanded spec, on the model it builds against the same model written in
Keras, and each bad input for its exact `file:line:col`, message and hint.
"""

from __future__ import annotations

import textwrap

import pytest

import graphspec
from graphspec import SpecErrors

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


def errors(text: str, write_spec) -> list[tuple[str, str, str | None]]:
    path = write_spec(text)
    with pytest.raises(SpecErrors) as caught:
        graphspec.load(path)
    return [
        (str(d.location).removeprefix(f"{path}:"), d.message, d.hint) for d in caught.value.diagnostics.errors
    ]


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

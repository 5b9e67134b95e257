"""Blocks: uses, repeats, per-copy params, nested blocks, includes, names, `graphspec expand`.

Each behaviour is checked on the expanded spec (names, arguments, what each node reads); the
built model is compared with the same network written by hand in Keras. Every bad input is
checked for its exact `file:line:col`, message and hint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from fixtures.located import errors
from typer.testing import CliRunner

import graphspec
from graphspec import SpecErrors
from graphspec.cli import app

CONV = """
blocks:
  conv:
    params: {filters, strides: 1}
    in: x
    layers:
      conv: {type: Conv2D, filters: ${filters}, kernel_size: 3, strides: ${strides}, padding: same, in: x}
      act:  {type: ReLU, in: conv}
    out: act
"""


def spec(layers: str, outputs: str = "out: {loss: mse}", blocks: str = CONV, head: str = "") -> str:
    """A spec with one 8x8x3 image input, the `conv` block, and the given layers."""
    return (
        f"graphspec: 1\nname: t\n{head}inputs:\n  image: {{shape: [8, 8, 3]}}\n"
        + textwrap.dedent(blocks).strip("\n")
        + "\nlayers:\n"
        + textwrap.indent(textwrap.dedent(layers).strip("\n"), "  ")
        + "\noutputs:\n  "
        + outputs
        + "\n"
    )


def layers_of(text: str, **kwargs) -> dict:
    return graphspec.load(text, **kwargs).spec.layers


def test_a_use_becomes_the_blocks_layers_named_under_it():
    layers = layers_of(
        spec(
            """
        stem: {block: conv, filters: ${width}, strides: 2, in: image}
        pool: {type: GlobalAveragePooling2D, in: stem}
        out:  {type: Dense, units: 2, in: pool}
    """,
            head="params: {width: 4}\n",
        )
    )
    assert list(layers) == ["stem.conv", "stem.act", "pool", "out"]
    # Top-level ${params} reach the use; the block's params reach its layers.
    assert layers["stem.conv"].args == {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}
    assert layers["stem.conv"].inbound == "image"
    assert layers["stem.act"].inbound == "stem.conv"
    # A reference to the use is a reference to the block's output.
    assert layers["pool"].inbound == "stem.act"


def test_repeat_chains_copies_and_first_sets_the_first_copy():
    layers = layers_of(
        spec("""
        stage: {block: conv, repeat: 3, filters: 4, first: {strides: 2}, in: image}
        pool:  {type: GlobalAveragePooling2D, in: stage}
        out:   {type: Dense, units: 2, in: pool}
    """)
    )
    assert [n for n in layers if n.startswith("stage.")] == [
        "stage.0.conv",
        "stage.0.act",
        "stage.1.conv",
        "stage.1.act",
        "stage.2.conv",
        "stage.2.act",
    ]
    assert [layers[f"stage.{i}.conv"].args["strides"] for i in range(3)] == [2, 1, 1]
    assert [layers[f"stage.{i}.conv"].inbound for i in range(3)] == ["image", "stage.0.act", "stage.1.act"]
    assert layers["pool"].inbound == "stage.2.act"


def test_per_copy_gives_each_copy_its_value_and_a_copy_can_be_referenced():
    layers = layers_of(
        spec("""
        stage: {block: conv, repeat: 3, per_copy: {filters: [4, 8, 16]}, in: image}
        pool:  {type: GlobalAveragePooling2D, in: stage.1}
        out:   {type: Dense, units: 2, in: pool}
    """)
    )
    assert [layers[f"stage.{i}.conv"].args["filters"] for i in range(3)] == [4, 8, 16]
    assert layers["pool"].inbound == "stage.1.act"


PAIR = (
    CONV
    + """
  pair:
    params: {filters}
    in: x
    layers:
      a:   {block: conv, filters: ${filters}, in: x}
      b:   {block: conv, filters: ${filters}, in: a}
      add: {type: Add, in: [x, b]}
    out: add
"""
)


def test_blocks_use_blocks_and_names_reach_the_built_model():
    import keras

    loaded = graphspec.load(
        spec(
            """
        stem:  {block: conv, filters: 4, in: image}
        stage: {block: pair, repeat: 2, filters: 4, in: stem}
        pool:  {type: GlobalAveragePooling2D, in: stage}
        out:   {type: Dense, units: 2, in: pool}
    """,
            blocks=PAIR,
        )
    )
    layers = loaded.spec.layers
    assert layers["stage.1.a.conv"].inbound == "stage.0.add"
    assert layers["stage.1.add"].inbound == ["stage.0.add", "stage.1.b.act"]
    first, inner = loaded.origin("stage.1.b.conv")
    assert (first.name, first.block, first.copy, first.repeat) == ("stage", "pair", 1, 2)
    assert (inner.name, inner.block, inner.copy, inner.prefix) == ("stage.1.b", "conv", None, "stage.1.b.")
    assert loaded.origin("pool") == ()
    assert set(loaded.expansion.uses()) >= {"stage.0", "stage.1", "stage.1.b", "stem"}

    model = loaded.build()
    assert isinstance(model.get_layer("stage.1.b.conv"), keras.layers.Conv2D)
    # The same network written by hand.
    x = image = keras.Input((8, 8, 3))
    x = keras.layers.ReLU()(keras.layers.Conv2D(4, 3, padding="same")(x))
    for _ in range(2):
        y = keras.layers.ReLU()(keras.layers.Conv2D(4, 3, padding="same")(x))
        y = keras.layers.ReLU()(keras.layers.Conv2D(4, 3, padding="same")(y))
        x = keras.layers.Add()([x, y])
    reference = keras.Model(image, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    assert model.count_params() == reference.count_params()
    assert len(model.layers) == len(reference.layers)


SPLIT_JOIN = """
blocks:
  split:
    in: x
    layers:
      a: {type: Dense, units: 3, in: x}
      b: {type: Dense, units: 5, in: x}
    out: {small: a, large: b}
  join:
    in: [x, y]
    layers:
      cat: {type: Concatenate, in: [x, y]}
      d:   {type: Dense, units: 3, in: cat}
    out: d
"""


def test_several_inputs_and_outputs():
    text = (
        """graphspec: 1
name: t
inputs:
  x: {shape: [3]}
  z: {shape: [3]}
"""
        + SPLIT_JOIN.strip("\n")
        + """
layers:
  s: {block: split, repeat: 2, in: x}
  j: {block: join, in: {x: "s[small]", y: "s.0[large]"}}
  k: {block: join, in: ["s[1]", j]}
  r: {block: join, repeat: 2, in: [k, z]}
outputs:
  r: {loss: mse}
"""
    )
    loaded = graphspec.load(text)
    layers = loaded.spec.layers
    assert layers["s.1.a"].inbound == "s.0.a"  # copies chain on the first output
    assert layers["j.cat"].inbound == ["s.1.a", "s.0.b"]  # by name, of the last copy or of copy 0
    assert layers["k.cat"].inbound == ["s.1.b", "j.d"]  # by index
    assert layers["r.1.cat"].inbound == ["r.0.d", "z"]  # other inputs stay the same in each copy
    # An output named after a use outputs the use's output, under the use's name.
    assert loaded.spec.outputs["r"].source == "r.1.d"
    assert loaded.build().output_names == ["r"]


def test_includes_are_relative_to_the_including_file(write_spec, tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "conv.yaml").write_text("graphspec: 1\n" + CONV)
    (tmp_path / "lib" / "pair.yaml").write_text("include: conv.yaml\n" + PAIR.replace(CONV, "blocks:"))
    path = write_spec(
        spec(
            """
        stage: {block: pair, filters: 4, in: image}
        pool:  {type: GlobalAveragePooling2D, in: stage}
        out:   {type: Dense, units: 2, in: pool}
    """,
            blocks="include: [lib/pair.yaml, lib/conv.yaml]",
        )
    )  # conv.yaml twice: once is kept
    loaded = graphspec.load(path)
    assert "stage.b.conv" in loaded.spec.layers
    assert set(loaded.spec.blocks) == {"conv", "pair"}


def test_expand_prints_a_spec_that_builds_to_the_same_model(write_spec):
    path = write_spec(
        spec(
            """
        stem:  {block: conv, filters: 4, in: image}
        stage: {block: pair, repeat: 2, filters: 4, in: stem}
        pool:  {type: GlobalAveragePooling2D, in: stage}
        out:   {type: Dense, units: ${classes}, in: pool}
    """,
            blocks=PAIR,
            head="params: {classes: 2}\n",
        )
    )
    result = CliRunner().invoke(app, ["expand", str(path), "--set", "classes=3"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "blocks:" not in text and "params:" not in text and "${" not in text
    assert (
        "  stage.1.b.conv: {type: Conv2D, filters: 4, kernel_size: 3, strides: 1, padding: same, "
        "in: stage.1.a.act}" in text
    )
    expanded = write_spec(text, "expanded.yaml")
    original, again = graphspec.load(path, ["classes=3"]), graphspec.load(expanded)
    drop = {"params", "blocks", "include"}
    assert again.spec.model_dump(exclude=drop) == original.spec.model_dump(exclude=drop)
    assert again.build().count_params() == original.build().count_params()


def test_overrides_reach_uses_and_block_defaults():
    text = spec("""
        stage: {block: conv, repeat: 2, filters: 4, in: image}
        out:   {type: Dense, units: 1, in: stage}
    """)
    layers = layers_of(
        text, overrides=["layers.stage.repeat=3", "layers.stage.filters=8", "blocks.conv.params.strides=2"]
    )
    assert [layers[f"stage.{i}.conv"].args["filters"] for i in range(3)] == [8, 8, 8]
    assert layers["stage.2.conv"].args["strides"] == 2
    assert layers["out"].inbound == "stage.2.act"


def test_a_huge_expansion_is_refused_before_it_is_made(write_spec):
    path = write_spec(
        spec(
            """
        deep: {block: many, repeat: 300, in: image}
        out:  {type: Dense, units: 1, in: deep}
    """,
            blocks=CONV
            + """
  many:
    in: x
    layers: {m: {block: conv, repeat: 400, filters: 1, in: x}}
    out: m
""",
        )
    )
    assert errors(path.read_text(), write_spec) == [
        (
            "19:3",
            "layer 'deep' expands to about 240,000 nodes; a spec may have at most 100,000",
            "check the repeat counts; raise the limit with: graphspec --limit nodes=N COMMAND ...",
        )
    ]


def test_expand_never_imports_tensorflow(tmp_path):
    for name in ("tensorflow", "keras"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} was imported')")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-m", "graphspec", "expand", "specs/resnet50.yaml"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "  conv5.blocks.1.branch.conv3:" in result.stdout


# -- bad input: each error at its line and column --------------------------------------------


BAD_USES = {
    "missing param": (
        "stem: {block: conv, strides: 2, in: image}",
        (
            "14:3",
            "layer 'stem' uses block 'conv' without its param 'filters'",
            "'filters' has no default (at {path}:7:14), and the spec has no param 'filters' to give it: "
            "give it in the use",
        ),
    ),
    "unknown param": (
        "stem: {block: conv, filters: 4, stride: 2, in: image}",
        ("14:35", "block 'conv' has no param 'stride'", "did you mean 'strides'?"),
    ),
    "repeat zero": (
        "stem: {block: conv, repeat: 0, filters: 4, in: image}",
        ("14:31", "repeat must be a positive integer, got 0", None),
    ),
    "repeat not an integer": (
        "stem: {block: conv, repeat: '2', filters: 4, in: image}",
        ("14:31", "repeat must be a positive integer, got '2'", None),
    ),
    "unknown block": (
        "stem: {block: cnov, filters: 4, in: image}",
        ("14:17", "layer 'stem' uses block 'cnov', which is not defined", "did you mean 'conv'?"),
    ),
    "per_copy of the wrong length": (
        "stem: {block: conv, repeat: 2, per_copy: {filters: [4]}, in: image}",
        ("14:54", "per_copy 'filters' needs one value for each of the 2 copies, got 1 values", None),
    ),
    "first without repeat": (
        "stem: {block: conv, filters: 4, first: {strides: 2}, in: image}",
        ("14:35", "'first' applies to the copies of a use with 'repeat'", None),
    ),
    "too many inputs": (
        "stem: {block: conv, filters: 4, in: [image, image]}",
        ("14:39", "layer 'stem' gives 2 inputs to block 'conv', which reads 1: x", None),
    ),
    "a copy that does not exist": (
        "stem: {block: conv, repeat: 2, filters: 4, in: image}\nout: {type: Dense, units: 1, in: stem.2}",
        ("15:36", "layer 'out' reads 'stem.2', but 'stem' has no copy 2", "it has copies 0 to 1"),
    ),
}


@pytest.mark.parametrize("case", list(BAD_USES))
def test_a_bad_use_is_an_error_at_its_line(case, write_spec):
    use, (where, message, hint) = BAD_USES[case]
    if "\n" not in use:
        use += "\nout: {type: Dense, units: 1, in: stem}"
    text = spec(use)
    path = write_spec(text)
    assert errors(text, write_spec) == [(where, message, hint.format(path=path) if hint else None)]


def test_an_error_inside_a_block_names_the_line_and_the_use(write_spec):
    path = write_spec(
        spec(
            """
        stem:  {block: conv, filters: 4, in: image}
        stage: {block: conv, repeat: 3, filters: 4, in: stem}
        out:   {type: Dense, units: 1, in: stage}
    """,
            blocks=CONV.replace("kernel_size: 3", "kernel_size: 9").replace(
                "padding: same", "padding: valid"
            ),
        )
    )
    with pytest.raises(SpecErrors) as caught:
        graphspec.load(path).build()
    # Keras refuses a 9x9 kernel on the 8x8 image at the first expansion; the error is at the
    # block's line.
    (only,) = caught.value.diagnostics.errors
    assert str(only.location) == f"{path}:10:7"
    assert only.message.startswith("layer 'stem.conv' (Conv2D): ")
    assert f"note: in 'stem', a use of block 'conv', at {path}:14:3" in caught.value.diagnostics.render()


def test_a_wrong_value_given_to_a_block_is_refused_by_validate_at_its_use(write_spec):
    # filters: -1 reaches Conv2D through ${filters}: checked after expansion, shown at the
    # block's line with the use it came through.
    path = write_spec(
        spec(
            """
        stem:  {block: conv, filters: 4, in: image}
        stage: {block: conv, repeat: 3, filters: -1, in: stem}
        out:   {type: Dense, units: 1, in: stage}
    """
        )
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.replace(str(path), "spec.yaml") == (
        "spec.yaml:10:37: error: layer 'stage.0.conv': Conv2D's argument 'filters' takes a positive "
        "integer, not -1\n"
        "        conv: {type: Conv2D, filters: ${filters}, kernel_size: 3, strides: ${strides}, "
        "padding: same, in: x}\n"
        "                                      ^~~~~~~~~~\n"
        "  note: in copy 0 of 'stage' (block 'conv', repeat 3), at spec.yaml:15:3\n"
        "  note: and 2 more times where this block line is expanded\n"
        "1 error\n"
    )


def test_a_block_error_is_reported_once_with_the_number_of_expansions(write_spec):
    path = write_spec(
        spec(
            """
        stage: {block: conv, repeat: 3, filters: 4, in: image}
        out:   {type: Dense, units: 1, in: stage}
    """,
            blocks=CONV.replace("kernel_size: 3", "kernel: 3"),
        )
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"""\
{path}:10:49: error: layer 'stage.0.conv': Conv2D has no argument 'kernel'
        conv: {{type: Conv2D, filters: ${{filters}}, kernel: 3, strides: ${{strides}}, padding: same, in: x}}
                                                  ^~~~~~
  hint: did you mean 'kernel_size'?
  note: in copy 0 of 'stage' (block 'conv', repeat 3), at {path}:14:3
  note: and 2 more times where this block line is expanded
1 error
"""
    )


BAD_BLOCKS = {
    "an unknown name inside": (
        "act:  {type: ReLU, in: conv}",
        "act:  {type: ReLU, in: cnov}",
        (
            "11:30",
            "layer 'act' of block 'conv' reads 'cnov', which is neither an input of block 'conv' "
            "nor one of its layers",
            "did you mean 'conv'?",
        ),
    ),
    "an undeclared param": (
        "strides: ${strides}",
        "strides: ${stride}",
        ("10:74", "'${stride}' names no param", "did you mean 'strides'?"),
    ),
    "a use of itself": (
        "act:  {type: ReLU, in: conv}",
        "act:  {block: conv, filters: 1, in: conv}",
        ("11:21", "block 'conv' uses itself: conv -> conv", None),
    ),
    # Without `out`, a block outputs its last layer (test_sugar.py); without `in` its one input
    # is `x` (test_compact.py).
}


@pytest.mark.parametrize("case", list(BAD_BLOCKS))
def test_a_bad_block_is_an_error_at_its_line(case, write_spec):
    old, new, expected = BAD_BLOCKS[case]
    text = spec(
        "stem: {block: conv, filters: 4, in: image}\nout: {type: Dense, units: 1, in: stem}",
        blocks=CONV.replace(old, new),
    )
    assert errors(text, write_spec) == [expected]


def test_an_include_that_does_not_exist(write_spec):
    text = spec("stem: {block: conv, filters: 4, in: image}", blocks="include: [lib/convs.yaml]")
    assert errors(text, write_spec) == [
        (
            "5:11",
            "include 'lib/convs.yaml' does not exist",
            f"paths are relative to the including file's folder ({write_spec('').parent})",
        )
    ]


def test_an_include_of_itself_and_a_cycle_of_includes(write_spec, tmp_path):
    text = spec(
        "stem: {block: conv, filters: 4, in: image}\nout: {type: Dense, units: 1, in: stem}",
        blocks="include: [spec.yaml]\n" + CONV,
    )
    assert errors(text, write_spec) == [("5:11", "include 'spec.yaml' is this file itself", None)]

    (tmp_path / "a.yaml").write_text("include: b.yaml\n" + CONV)
    (tmp_path / "b.yaml").write_text("doc: the second\ninclude: [a.yaml]\n")
    path = write_spec(spec("stem: {block: conv, filters: 4, in: image}", blocks="include: a.yaml"))
    with pytest.raises(SpecErrors) as caught:
        graphspec.load(path)
    (only,) = caught.value.diagnostics.errors
    assert (str(only.location), only.message) == (
        f"{tmp_path / 'b.yaml'}:2:11",
        "include 'a.yaml' includes itself: a.yaml -> b.yaml -> a.yaml",
    )


def test_a_bad_input_exits_with_status_2(write_spec):
    path = write_spec(spec("stem: {block: conv, repeat: -1, filters: 4, in: image}"))
    result = CliRunner().invoke(app, ["expand", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}:14:31: error: repeat must be a positive integer, got -1\n")
    assert result.stdout == ""


def test_a_block_use_beside_inputs_that_are_not_a_mapping_is_an_error_at_inputs(write_spec):
    # Found by tests/test_fuzz.py: the expander looked names up in `inputs` before validation.
    path = write_spec(
        """
        graphspec: 1
        name: fz
        blocks:
          b: {in: x, layers: {d: {type: Dense, units: 4, in: x}}, out: d}
        inputs: true
        layers:
          r: {block: b, in: x}
        outputs: {r: {loss: mse}}
        """
    )
    with pytest.raises(SpecErrors) as exc:
        graphspec.load(path)
    assert str(exc.value).splitlines()[0] == f"{path}:5:9: error: inputs: should be a dictionary"

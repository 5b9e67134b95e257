"""Expressions in `${...}`, params that use params, `${copy}`, the quoting rule and its tools."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.errors import Diagnostics
from graphspec.spec import params as params_module
from graphspec.spec.expr import make_divisible, make_divisible_up
from graphspec.spec.source import Positions

HEAD = """\
graphspec: 1
name: expr
params:
  width: 64
  heads: 4
  depth: 1.4
inputs:
  x: {shape: [8]}
"""


def spec(layers: str, params: str = "", head: str = HEAD) -> str:
    """A spec: HEAD (line 1 to 8), extra params inserted after `depth` (line 6), then layers."""
    text = head.replace("  depth: 1.4\n", "  depth: 1.4\n" + params) if params else head
    return text + "layers:\n" + layers + "outputs:\n  y: {loss: mse}\n"


def validate(tmp_path: Path, text: str, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path), *args])
    return result.exit_code, result.stdout, result.stderr.replace(str(path), "spec.yaml")


def layer_args(text: str, node: str = "y", overrides: list[str] | None = None) -> dict:
    loaded = graphspec.load(text, overrides=overrides)
    return {**loaded.spec.layers[node].args, "in": loaded.spec.layers[node].inbound}


# -- values -------------------------------------------------------------------------------------


def test_arithmetic_over_params_takes_the_type_of_its_result():
    text = spec(
        '  h: {type: Dense, units: "${width * 4}", in: x}\n'
        '  y: {type: Dropout, rate: "${width / 256}", in: h}\n'
    )
    loaded = graphspec.load(text)
    assert loaded.spec.layers["h"].args["units"] == 256
    assert loaded.spec.layers["y"].args["rate"] == 0.25


def test_floor_division_of_params_is_an_int():
    text = spec('  y: {type: Dense, units: "${width // heads}", in: x}\n')
    assert layer_args(text)["units"] == 16


def test_ceil_of_a_product_sets_a_repeat_count():
    text = spec(
        '  y: {block: dense, repeat: "${ceil(3 * depth)}", in: x}\n',
        head=HEAD
        + "blocks:\n  dense:\n    in: a\n    layers: {d: {type: Dense, units: 4, in: a}}\n    out: d\n",
    )
    loaded = graphspec.load(text)
    assert [n for n in loaded.spec.layers] == [f"y.{i}.d" for i in range(5)]


def test_a_conditional_over_a_comparison_picks_a_branch():
    text = spec('  y: {type: Dense, units: "${512 if width > 32 and heads != 3 else 256}", in: x}\n')
    assert layer_args(text)["units"] == 512


def test_named_functions_compute_as_in_python():
    text = spec(
        '  y: {type: Dense, units: "${min(width, 9) + max(1, 2) + round(2.6) + floor(1.5) + int(2.9)}",'
        " in: x}\n"
    )
    assert layer_args(text)["units"] == 9 + 2 + 3 + 1 + 2


@pytest.mark.parametrize(
    ("args", "expected"), [((32 * 1.4,), 48), ((17,), 16), ((3, 8, 16), 16), ((91, 8), 88), ((90, 16), 96)]
)
def test_make_divisible_rounds_as_mobilenet_does(args, expected):
    assert make_divisible(*args) == expected


def test_make_divisible_takes_named_arguments_in_an_expression():
    text = spec(
        '  y: {type: Dense, units: "${make_divisible(width * depth, divisor=16, min_value=8)}", in: x}\n'
    )
    assert layer_args(text)["units"] == 96


@pytest.mark.parametrize(
    ("args", "expected"), [((512 * 0.3,), 160), ((1024 * 0.25, 8), 256), ((3, 8, 16), 16), ((33, 16), 48)]
)
def test_make_divisible_up_rounds_up_as_yolo_does(args, expected):
    assert make_divisible_up(*args) == expected


def test_make_divisible_up_in_an_expression_rounds_up_where_make_divisible_rounds_to_nearest():
    up = spec('  y: {type: Dense, units: "${make_divisible_up(512 * 0.3, divisor=8)}", in: x}\n')
    nearest = spec('  y: {type: Dense, units: "${make_divisible(512 * 0.3, divisor=8)}", in: x}\n')
    assert (layer_args(up)["units"], layer_args(nearest)["units"]) == (160, 152)


def test_an_expression_inside_a_longer_string_is_formatted():
    text = spec("  y: {type: Dense, units: 2, in: x}\n").replace("name: expr", 'name: "net_${width * 2}"')
    assert graphspec.load(text).spec.name == "net_128"


def test_a_param_may_use_params_declared_after_it():
    text = spec(
        '  y: {type: Dense, units: "${hidden}", in: x}\n',
        params="  hidden: ${key * 2}\n  key: ${width // heads}\n",
    )
    assert layer_args(text)["units"] == 32


def test_an_override_of_a_param_reaches_the_params_that_use_it():
    text = spec('  y: {type: Dense, units: "${hidden}", in: x}\n', params="  hidden: ${width * 2}\n")
    assert layer_args(text, overrides=["width=8"])["units"] == 16


def test_an_override_may_be_an_expression():
    text = spec("  y: {type: Dense, units: 3, in: x}\n")
    assert layer_args(text, overrides=["layers.y.units=${heads * 3}"])["units"] == 12


def test_a_quoted_placeholder_in_an_integer_list_is_a_number():
    text = spec("  y: {type: Dense, units: 2, in: x}\n").replace("{shape: [8]}", '{shape: ["${heads}", 2]}')
    assert graphspec.load(text).spec.inputs["x"].shape == [4, 2]


def test_expand_prints_the_computed_values(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(spec('  y: {type: Dense, units: "${width // heads}", in: x}\n'))
    result = CliRunner().invoke(app, ["expand", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "  y: {type: Dense, units: 16, in: x}\n" in result.stdout


# -- errors, each at its column ---------------------------------------------------------------------


def test_a_cycle_of_params_is_an_error_naming_it(tmp_path):
    text = spec('  y: {type: Dense, units: "${a}", in: x}\n', params="  a: ${b + 1}\n  b: ${a * 2}\n")
    code, _, stderr = validate(tmp_path, text)
    assert code == 2
    assert stderr.splitlines()[0] == "spec.yaml:7:6: error: params form a cycle: a -> b -> a"


def test_an_unknown_name_points_at_its_column(tmp_path):
    code, _, stderr = validate(tmp_path, spec('  y: {type: Dense, units: "${2 * widht}", in: x}\n'))
    assert code == 2
    assert stderr == (
        "spec.yaml:10:34: error: 'widht' names no param\n"
        '    y: {type: Dense, units: "${2 * widht}", in: x}\n'
        "                                   ^~~~~\n"
        "  hint: did you mean 'width'?\n"
        "1 error\n"
    )


def test_a_syntax_error_points_at_its_column(tmp_path):
    code, _, stderr = validate(tmp_path, spec('  y: {type: Dense, units: "${width * }", in: x}\n'))
    assert code == 2
    assert stderr.splitlines()[0] == "spec.yaml:10:37: error: invalid expression: it ends too early"


@pytest.mark.parametrize(
    ("expression", "column", "message"),
    [
        ("width.real", 30, "an attribute ('.') cannot be used in an expression"),
        ("[width][0]", 30, "a subscript ('[...]') cannot be used in an expression"),
        ("(lambda: 1)()", 31, "a lambda cannot be used in an expression"),
        ("max([w for w in [1]])", 34, "a comprehension cannot be used in an expression"),
        ("__import__('os')", 30, "'__import__' is not a function an expression can call"),
        ("width ~ 1", 36, "invalid expression: invalid syntax"),
    ],
)
def test_syntax_outside_the_whitelist_is_refused_where_it_is_written(tmp_path, expression, column, message):
    code, _, stderr = validate(tmp_path, spec(f'  y: {{type: Dense, units: "${{{expression}}}", in: x}}\n'))
    assert code == 2
    assert stderr.splitlines()[0] == f"spec.yaml:10:{column}: error: {message}"


def test_a_huge_power_is_refused_before_it_is_computed(tmp_path):
    started = time.monotonic()
    code, _, stderr = validate(tmp_path, spec('  y: {type: Dense, units: "${10 ** 10 ** 10}", in: x}\n'))
    assert time.monotonic() - started < 5
    assert code == 2
    assert stderr.splitlines()[0] == (
        "spec.yaml:10:30: error: the result is past 2**63 in magnitude: 10 ** 10000000000"
    )


def test_a_product_past_2_63_is_refused(tmp_path):
    code, _, stderr = validate(tmp_path, spec('  y: {type: Dense, units: "${2 ** 62 * 4}", in: x}\n'))
    assert code == 2
    assert stderr.splitlines()[0] == (
        "spec.yaml:10:30: error: the result is past 2**63 in magnitude: 18446744073709551616"
    )


def test_a_division_by_zero_points_at_the_division(tmp_path):
    code, _, stderr = validate(
        tmp_path, spec('  y: {type: Dense, units: "${1 + width // (heads - 4)}", in: x}\n')
    )
    assert code == 2
    assert stderr.splitlines()[:3] == [
        "spec.yaml:10:34: error: division by zero",
        '    y: {type: Dense, units: "${1 + width // (heads - 4)}", in: x}',
        "                                   ^" + "~" * 19,
    ]


def test_arithmetic_on_a_string_is_refused(tmp_path):
    code, _, stderr = validate(tmp_path, spec("  y: {type: Dense, units: \"${'ab' * 1000000000}\", in: x}\n"))
    assert code == 2
    assert stderr.splitlines()[0] == "spec.yaml:10:30: error: '*' takes numbers, got the string 'ab'"


def test_a_long_expression_is_refused(tmp_path):
    long = " + ".join(["width"] * 100)
    code, _, stderr = validate(tmp_path, spec(f'  y: {{type: Dense, units: "${{{long}}}", in: x}}\n'))
    assert code == 2
    assert stderr.splitlines()[0] == (
        "spec.yaml:10:30: error: an expression is at most 500 characters; this one has 797"
    )


def test_expression_results_count_against_the_budget():
    diagnostics = Diagnostics()
    budget = params_module.Budget(diagnostics, limit=10)
    big = list(range(8))
    data = {"a": "${big if flag else 0}", "b": "${big if flag else 0}"}
    with pytest.raises(graphspec.SpecErrors, match="params may add at most 10 values"):
        params_module.substitute(data, {"big": big, "flag": True}, Positions("x"), diagnostics, budget=budget)


# -- blocks: ${copy}, per_copy, defaults --------------------------------------------------------------

BLOCKS = """\
blocks:
  dense:
    params: {units, rate: "${0.1 * copy}", wide: "${units * 2}"}
    in: a
    layers:
      d:    {type: Dense, units: "${wide + copy}", in: a}
      drop: {type: Dropout, rate: "${rate}", in: d}
    out: drop
"""


def test_copy_is_the_index_of_each_copy_of_a_repeated_block():
    loaded = graphspec.load(spec("  y: {block: dense, repeat: 3, units: 4, in: x}\n", head=HEAD + BLOCKS))
    assert [loaded.spec.layers[f"y.{i}.d"].args["units"] for i in range(3)] == [8, 9, 10]
    assert [loaded.spec.layers[f"y.{i}.drop"].args["rate"] for i in range(3)] == [0.0, 0.1, 0.2]


def test_per_copy_may_be_one_expression_of_copy():
    text = spec(
        '  y: {block: dense, repeat: 3, per_copy: {units: "${heads * 2 ** copy}"}, in: x}\n',
        head=HEAD + BLOCKS,
    )
    loaded = graphspec.load(text)
    assert [loaded.spec.layers[f"y.{i}.d"].args["units"] for i in range(3)] == [8, 17, 34]


def test_an_error_that_depends_on_a_use_points_at_the_block_line_and_the_use(tmp_path):
    blocks = BLOCKS.replace('"${units * 2}"', '"${64 // units}"')
    code, _, stderr = validate(tmp_path, spec("  y: {block: dense, units: 0, in: x}\n", head=HEAD + blocks))
    assert code == 2
    assert stderr.splitlines()[0] == "spec.yaml:11:53: error: division by zero"
    assert "  note: in 'y', a use of block 'dense', at spec.yaml:18:3" in stderr


def test_a_block_cannot_have_a_param_named_copy(tmp_path):
    blocks = BLOCKS.replace("{units,", "{copy: 1, units,")
    code, _, stderr = validate(tmp_path, spec("  y: {block: dense, units: 2, in: x}\n", head=HEAD + blocks))
    assert code == 2
    assert stderr.splitlines()[0] == (
        "spec.yaml:11:14: error: block 'dense' cannot have a param named 'copy': "
        "${copy} is the index of the copy"
    )


# -- warnings ---------------------------------------------------------------------------------------


def test_an_unused_param_gets_a_warning_at_its_key(tmp_path):
    code, _, stderr = validate(
        tmp_path, spec('  y: {type: Dense, units: "${width}", in: x}\n'), "--set", "heads=2"
    )
    assert code == 0
    assert stderr.splitlines()[:4] == [
        "spec.yaml:5:3: warning: param 'heads' is declared but never used",
        "    heads: 4",
        "    ^~~~~",
        "  hint: use it as ${heads}, or remove it",
    ]
    assert "param 'width'" not in stderr


def test_a_param_used_only_by_another_param_is_used(tmp_path):
    text = spec(
        '  y: {type: Dense, units: "${hidden}", in: x}\n',
        params="  hidden: ${round(width * heads * depth)}\n",
    )
    code, _, stderr = validate(tmp_path, text)
    assert (code, stderr) == (0, "")


def test_an_unquoted_placeholder_in_a_flow_mapping_warns_with_the_quoted_spelling(tmp_path):
    text = "graphspec: 1\nname: old\nparams: {width: 4}\ninputs: {x: {shape: [8]}}\n"
    text += "layers: {y: {type: Dense, units: ${width}, in: x}}\noutputs: {y: {loss: mse}}\n"
    code, _, stderr = validate(tmp_path, text)
    assert code == 0
    assert stderr == (
        "spec.yaml:5:34: warning: '${width}' unquoted inside {...} or [...] is not standard YAML: other "
        "tools cannot read this file\n"
        "  layers: {y: {type: Dense, units: ${width}, in: x}}\n"
        "                                   ^~~~~~~~\n"
        '  hint: quote it: "${width}" (graphspec fmt FILE quotes every one)\n'
    )


def test_fmt_quotes_old_placeholders_in_place_keeping_comments(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("x: {shape: [${size}, 3]}  # the image\ny: ${size}\nz: {a: '${b}'}\n")
    result = CliRunner().invoke(app, ["fmt", str(path)])
    assert result.exit_code == 0
    assert result.stdout == f"{path}: quoted 1 value\n"
    assert path.read_text() == "x: {shape: [\"${size}\", 3]}  # the image\ny: ${size}\nz: {a: '${b}'}\n"


def test_fmt_check_changes_nothing_and_fails_when_a_file_would_change(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("x: {units: ${size}}\n")
    result = CliRunner().invoke(app, ["fmt", "--check", str(path)])
    assert (result.exit_code, result.stdout) == (1, f"{path}: would quote 1 value\n")
    assert path.read_text() == "x: {units: ${size}}\n"


# -- YAML errors with a fix ---------------------------------------------------------------------------


def test_an_unquoted_expression_in_a_flow_mapping_hints_the_quotes(tmp_path):
    code, _, stderr = validate(tmp_path, spec("  y: {type: Dense, units: ${width * 4}, in: x}\n"))
    assert code == 2
    assert stderr == (
        "spec.yaml:10:28: error: invalid YAML: did not find expected ',' or '}'\n"
        "    y: {type: Dense, units: ${width * 4}, in: x}\n"
        "                             ^\n"
        '  hint: inside {...} or [...], quote a value with ${...}: "${width * 4}"\n'
        "1 error\n"
    )


def test_an_unquoted_indexed_reference_in_a_flow_list_hints_the_quotes(tmp_path):
    code, _, stderr = validate(tmp_path, spec("  y: {type: Concatenate, in: [enc[1], enc[2]]}\n"))
    assert code == 2
    assert stderr.splitlines()[0] == "spec.yaml:10:34: error: invalid YAML: did not find expected ',' or ']'"
    assert (
        stderr.splitlines()[3] == '  hint: quote each reference, as \'[\' starts a list: ["enc[1]", "enc[2]"]'
    )


def test_a_call_argument_written_as_a_constructor_argument_points_at_call(tmp_path):
    text = spec(
        "  y: {type: MultiHeadAttention, num_heads: 2, key_dim: 4, use_causal_mask: true,\n"
        "      in: {query: x, value: x}}\n"
    ).replace("{shape: [8]}", "{shape: [3, 8]}")
    code, _, stderr = validate(tmp_path, text)
    assert code == 2
    assert stderr.splitlines()[0] == (
        "spec.yaml:10:59: error: layer 'y': MultiHeadAttention has no argument 'use_causal_mask'"
    )
    assert stderr.splitlines()[3] == (
        "  hint: 'use_causal_mask' is an argument of the layer's call: "
        "write it under call: {use_causal_mask: true}"
    )


# -- every spec and example is YAML that other tools read --------------------------------------------

SPECS = sorted(Path("specs").glob("**/*.yaml"))
DOCS = [Path("README.md"), *sorted(Path("docs").glob("*.md"))]


def yaml_blocks() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in re.finditer(r"```yaml\n(.*?)```", text, re.S):
            found.append((f"{doc}:{text[: match.start()].count(chr(10)) + 1}", match.group(1)))
    return found


@pytest.mark.parametrize("path", SPECS, ids=str)
def test_every_spec_parses_with_yaml_safe_load(path):
    assert isinstance(yaml.safe_load(path.read_text()), dict)


@pytest.mark.parametrize(("where", "block"), yaml_blocks(), ids=[w for w, _ in yaml_blocks()])
def test_every_yaml_example_in_the_docs_parses_with_yaml_safe_load(where, block):
    yaml.safe_load(block)


@functools.cache
def _schema_validator() -> jsonschema.Draft202012Validator:
    # Built once: jsonschema.validate checks the schema itself on every call, seconds for a schema
    # of every argument of every class (check-jsonschema checks it, in tests/test_yaml_ls.py).
    return jsonschema.Draft202012Validator(json.loads(Path("schemas/graphspec.schema.json").read_text()))


@pytest.mark.parametrize("path", SPECS, ids=str)
def test_every_spec_validates_against_the_committed_schema(path):
    _schema_validator().validate(yaml.safe_load(path.read_text()))


def test_the_schema_takes_an_expression_where_a_number_goes_and_refuses_other_strings():
    document = {
        "graphspec": 1,
        "name": "s",
        "inputs": {"x": {"shape": ["${size * 2}"]}},
        "outputs": {"x": {}},
        "train": {"epochs": "${epochs}"},
    }
    _schema_validator().validate(document)
    document["train"]["epochs"] = "ten"
    with pytest.raises(jsonschema.ValidationError):
        _schema_validator().validate(document)


def test_expressions_never_import_tensorflow(tmp_path):
    for name in ("tensorflow", "keras"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} was imported')")
    path = tmp_path / "spec.yaml"
    path.write_text(spec('  y: {type: Dense, units: "${make_divisible(width * depth)}", in: x}\n'))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-m", "graphspec", "expand", str(path)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "units: 88" in result.stdout


def test_a_deeply_nested_expression_is_refused(tmp_path):
    nested = "-" * 120 + "width"
    code, _, stderr = validate(tmp_path, spec(f'  y: {{type: Dense, units: "${{{nested}}}", in: x}}\n'))
    assert code == 2
    assert stderr.splitlines()[0] == "spec.yaml:10:130: error: an expression nests at most 100 deep"


def test_a_long_chain_of_params_is_computed_without_recursion():
    chain = "".join(f"  p{i}: ${{p{i - 1} + 1}}\n" for i in range(1, 3000))
    text = spec('  y: {type: Dense, units: "${p2999}", in: x}\n', params="  p0: ${width}\n" + chain)
    assert layer_args(text)["units"] == 64 + 2999


def test_a_param_whose_name_is_not_a_python_name_is_still_read_whole():
    text = spec('  y: {type: Dense, units: "${my-width}", in: x}\n', params="  my-width: 3\n")
    assert layer_args(text)["units"] == 3

"""Hostile input: files written to make graphspec run code, read what it should not, or exhaust
memory or the stack. Each fails fast with one clear message, and nothing runs.

Small cases are files in tests/fixtures/hostile/ with their expected message beside them
(`NAME.expected`, as `graphspec validate` prints it); large ones are generated here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec.cli import app

FIXTURES = Path("tests/fixtures/hostile")
CASES = sorted(p.stem for p in (Path(__file__).parent / "fixtures" / "hostile").glob("*.yaml"))
PWNED = Path("/tmp/pwned")


def validate(path: Path):
    return CliRunner().invoke(app, ["validate", str(path)])


@pytest.mark.parametrize("case", CASES)
def test_hostile_spec_is_refused_with_its_message(case):
    PWNED.unlink(missing_ok=True)
    result = validate(FIXTURES / f"{case}.yaml")
    assert result.exit_code == 2
    assert result.stderr == (FIXTURES / f"{case}.expected").read_text()
    assert not PWNED.exists()


def test_a_billion_laughs_alias_bomb_is_refused(tmp_path):
    lines = ["graphspec: 1", "name: lol", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    result = validate(path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].endswith(
        "error: document expands to more than 1,000,000 values (aliases included)"
    )


def test_flow_nesting_deep_enough_to_exhaust_the_stack_is_refused_before_parsing(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("graphspec: 1\nname: deep\ninputs: " + "[" * 100_000 + "]" * 100_000 + "\n")
    result = validate(path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"{path}:1:1: error: values nest 100000 deep; a spec may nest at most 64"
    )


def test_block_nesting_is_limited(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(
        "graphspec: 1\nname: deep\ninputs:\n"
        + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(200))
        + "  " * 201
        + "x: 1\n"
    )
    result = validate(path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"{path}:68:131: error: values nest more than 64 deep"


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text('graphspec: 1\nname: huge\ndoc: "' + "x" * 6_000_000 + '"\n')
    result = validate(path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"{path}:1:1: error: file is 6,000,032 bytes; a spec may have at most 5,000,000"
    )

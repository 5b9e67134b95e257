"""Every invalid spec in tests/fixtures/invalid/ fails with exactly the message beside it.

Each `NAME.yaml` has a `NAME.expected`: what `graphspec validate NAME.yaml` prints on stderr,
word for word, with `file:line:col`, the source line, the caret and the hint. To add a case,
write the YAML, run `graphspec validate` on it, read the output, and save it as `.expected`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec.cli import app

FIXTURES = Path("tests/fixtures/invalid")
CASES = sorted(p.stem for p in (Path(__file__).parent / "fixtures" / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("case", CASES)
def test_invalid_spec_reports_exact_message(case):
    result = CliRunner().invoke(app, ["validate", str(FIXTURES / f"{case}.yaml")])
    assert result.exit_code == 2
    assert result.stderr == (FIXTURES / f"{case}.expected").read_text()
    assert result.stdout == ""


def test_every_problem_of_a_file_is_reported_in_one_run():
    result = CliRunner().invoke(app, ["validate", str(FIXTURES / "unknown_loss.yaml")])
    assert result.stderr.count(": error: ") == 3
    assert result.stderr.endswith("3 errors\n")


def test_no_traceback_reaches_the_user():
    for case in CASES:
        result = CliRunner().invoke(app, ["validate", str(FIXTURES / f"{case}.yaml")])
        assert "Traceback" not in result.output, case

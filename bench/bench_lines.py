"""Lines of each modern model's spec against the same model hand-written in Keras 3
(bench/keras_reference/NAME.py): the spec must be at most 0.75x the reference's lines.

Both sides are counted the same way, after their formatters: the spec as `graphspec fmt`
writes it, the reference as `ruff format --line-length 110` writes it. A line counts when it
holds something other than a comment; documentation does not count on either side (Python
docstrings, a spec's `doc:` values). A line wider than 110 columns counts as as many lines as
it takes 110-column lines to hold it, so that packing a spec onto long lines gains nothing.

Run alone: `python bench/run.py lines`, or `python bench/bench_lines.py [SPEC_DIR]` to count
the specs of another folder (drafts) against the same references.
"""

from __future__ import annotations

import ast
import io
import math
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import ROOT, Row, not_measured  # noqa: E402

MODELS = ["vit", "llama", "unet", "vae", "clip", "yolov8"]
REFERENCES = ROOT / "bench" / "keras_reference"
WIDTH = 110
TARGET = 0.75
COMMAND = "python bench/run.py lines"
_DOC_KEY = re.compile(r"^(\s*)(-\s+)?doc\s*:")


def _width_lines(line: str) -> int:
    return max(1, math.ceil(len(line.rstrip()) / WIDTH))


def spec_lines(text: str) -> int:
    """Counted lines of a spec's YAML `text` after `graphspec fmt`."""
    from graphspec.spec.source import requote

    count = 0
    doc_indent: int | None = None  # inside a `doc:` value: the indentation of its key
    for line in requote(text).splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if doc_indent is not None:
            if not stripped or indent > doc_indent:
                continue  # a continuation of the documentation
            doc_indent = None
        if not stripped or stripped.startswith("#"):
            continue
        match = _DOC_KEY.match(line)
        if match:
            doc_indent = len(match.group(1))
            continue
        count += _width_lines(line)
    return count


def python_lines(source: str) -> int:
    """Counted lines of Python `source` (already formatted): lines holding a token other
    than a comment, outside docstrings."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    code: set[int] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in skip or token.type == tokenize.ENDMARKER:
            continue
        code.update(range(token.start[0], token.end[0] + 1))
    lines = source.splitlines()
    return sum(_width_lines(lines[n - 1]) for n in sorted(code - docstrings))


def ruff() -> str:
    """The ruff next to this Python (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "ruff"
    found = str(beside) if beside.exists() else shutil.which("ruff")
    if not found:
        raise RuntimeError("ruff is not installed")
    return found


def formatted_python(path: Path) -> str:
    """`path` as `ruff format --line-length 110` would write it (the file is left as it is)."""
    result = subprocess.run(
        [ruff(), "format", "--line-length", str(WIDTH), "--stdin-filename", path.name, "-"],
        input=path.read_text(),
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def count(name: str, specs: Path) -> tuple[int | None, int]:
    """(spec lines or None when there is no spec yet, reference lines) of model `name`."""
    reference = python_lines(formatted_python(REFERENCES / f"{name}.py"))
    spec = specs / f"{name}.yaml"
    return (spec_lines(spec.read_text()) if spec.exists() else None), reference


def run(specs: Path = ROOT / "specs") -> list[Row]:
    rows = []
    for name in MODELS:
        spec, reference = count(name, specs)
        row_name = f"lines: {name}"
        baseline = f"{reference} lines of Keras (bench/keras_reference/{name}.py)"
        if spec is None:
            rows.append(not_measured(row_name, f"<= {TARGET}x", COMMAND, "missing"))
            rows[-1].baseline = baseline
            continue
        ratio = spec / reference
        rows.append(
            Row(row_name, f"{spec} lines of spec", baseline, ratio, f"<= {TARGET}x", ratio <= TARGET, COMMAND)
        )
    return rows


def main(argv: list[str]) -> int:
    specs = Path(argv[0]) if argv else ROOT / "specs"
    print(f"{'model':8} {'spec':>6} {'keras':>6} {'ratio':>6}")
    for name in MODELS:
        spec, reference = count(name, specs)
        if spec is None:
            print(f"{name:8} {'-':>6} {reference:>6} missing")
        else:
            verdict = "met" if spec / reference <= TARGET else "MISSED"
            print(f"{name:8} {spec:>6} {reference:>6} {spec / reference:6.2f} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

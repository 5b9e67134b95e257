"""`graphspec validate` as a whole process imports neither the command-line framework nor the
numeric and model libraries (issue 22: validate runs per save, in editors and pre-commit hooks).
Behaviour, not time: the modules a process imported, as `python -X importtime` lists them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What validate must never import: typer with click (and rich, which typer may bring), the
# numeric stack, the graph library, the model libraries, and the other commands' libraries.
HEAVY = (
    "typer",
    "click",
    "rich",
    "numpy",
    "networkx",
    "scipy",
    "tensorflow",
    "keras",
    "jax",
    "torch",
    "optuna",
    "matplotlib",
    "pydot",
    "graphspec.cli",
)


def imported(*args: str, cwd: Path = ROOT) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `python -X importtime -m graphspec ARGS`: the result, and every module it imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "graphspec", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return result, modules


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


def test_validate_of_every_spec_imports_no_heavy_module():
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
    result, modules = imported("validate", *specs)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count(": ok (") == len(specs)
    assert "graphspec.spec.load" in modules  # the list is the real one
    assert heavy(modules) == []


def test_validate_of_an_invalid_spec_reports_it_without_heavy_modules(tmp_path):
    spec = tmp_path / "loop.yaml"
    spec.write_text((ROOT / "tests/fixtures/invalid/cycle.yaml").read_text())
    result, modules = imported("validate", str(spec))
    assert result.returncode == 2
    assert f"{spec}:6:3: error: cycle: s -> a -> b -> c -> s" in result.stderr
    assert heavy(modules) == []


def test_any_other_command_line_goes_to_the_typer_app(tmp_path):
    # An option, even validate's own, is parsed by typer: the fast path takes only plain files.
    spec = ROOT / "specs/book_mlp.yaml"
    result, modules = imported("validate", "--no-warnings", str(spec))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "typer" in modules and "graphspec.cli" in modules
    result, modules = imported("validate")
    assert result.returncode == 2 and "Missing argument" in result.stderr
    assert "typer" in modules


def test_both_paths_print_the_same_for_valid_invalid_and_missing_specs(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text((ROOT / "specs/book_mlp.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "specs/book_mlp.yaml").read_text().replace("units:", "unitz:", 1))
    files = [str(good), str(bad), str(tmp_path / "missing.yaml")]
    fast, fast_modules = imported("validate", *files)
    # `--warnings` is the default: the same command, parsed by typer.
    typed, typed_modules = imported("validate", "--warnings", *files)
    assert "typer" not in fast_modules and "typer" in typed_modules
    assert fast.returncode == typed.returncode == 2
    assert fast.stdout == typed.stdout == f"{good}: ok (1 inputs, 3 layers, 1 outputs)\n"

    def diagnostics(stderr: str) -> list[str]:
        return [line for line in stderr.splitlines() if not line.startswith("import time:")]

    assert diagnostics(fast.stderr) == diagnostics(typed.stderr)
    assert any("has no argument 'unitz'" in line for line in diagnostics(fast.stderr))
    assert f"error: no such file: {tmp_path / 'missing.yaml'}" in diagnostics(fast.stderr)


def test_a_reader_that_goes_away_ends_validate_quietly():
    # `graphspec validate specs/*.yaml | head -1`: the pipe's reader is gone before validate
    # writes; exit status 1, as the typer app ends then, and no traceback.
    process = subprocess.Popen(
        [sys.executable, "-m", "graphspec", "validate", "specs/book_mlp.yaml", "specs/resnet50.yaml"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(60) == 1
    assert "Traceback" not in stderr and stderr == ""


def test_validate_loads_no_pydantic_plugins_and_no_package_metadata():
    # pydantic's plugin loader imports importlib.metadata and reads every installed package's
    # entry points: a seventh of validate's time (graphspec.main._without_pydantic_plugins).
    result, modules = imported("validate", "specs/book_mlp.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "graphspec.spec.model" in modules
    assert "importlib.metadata" not in modules and "pydantic.plugin._loader" not in modules


def test_the_plugin_loader_stand_in_answers_none_and_hands_any_other_name_to_the_real_one():
    code = (
        "import sys\n"
        "from graphspec.main import _without_pydantic_plugins\n"
        "_without_pydantic_plugins()\n"
        "from pydantic import BaseModel\n"
        "class A(BaseModel):\n"
        "    x: int\n"
        "assert A(x='3').x == 3\n"
        "from pydantic.plugin._loader import get_plugins\n"
        "assert tuple(get_plugins()) == ()\n"
        "assert 'importlib.metadata' not in sys.modules\n"
        # A name the stand-in lacks: the real loader, which reads the installed packages.
        "from pydantic.plugin._loader import entry_points\n"
        "import pydantic.plugin._loader as loader\n"
        "assert loader.__file__.endswith('_loader.py') and 'importlib.metadata' in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "ok\n"


SPEC_MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "graphspec/spec").glob("[!_]*.py")
)


def test_each_module_of_the_spec_library_imports_first():
    # A notebook may begin with any of them (`from graphspec.spec import schema`): none may need
    # another imported before it, as a cycle between them would.
    failed = {}
    for module in SPEC_MODULES:
        result = subprocess.run(
            [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, cwd=ROOT
        )
        if result.returncode != 0:
            failed[module] = result.stderr.strip().splitlines()[-1]
    assert "graphspec.spec.schema" in SPEC_MODULES
    assert failed == {}

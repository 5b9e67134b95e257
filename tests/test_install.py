"""What an install brings: every backend extra brings Keras, and a Python without Keras (or
without the backend KERAS_BACKEND names) gets exit status 2 naming the install command, not a
ModuleNotFoundError traceback, from every command that builds or trains.

Keras is made unimportable by a `keras` package put first on PYTHONPATH whose import fails,
as it fails where it is not installed (the tests of tensorflow's absence do the same).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KERAS_MISSING = (
    "error: Keras is not installed (importing it failed: No module named 'keras'); graphspec "
    "builds and trains models with Keras 3\n"
    "  hint: install it with a backend: pip install -e '.[jax]' (or '.[tensorflow]', '.[torch]')\n"
    "1 error\n"
)


def test_every_backend_extra_brings_keras_bounded_alike():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    keras = [r for r in extras["tensorflow"] if r.startswith("keras")]
    assert keras == ["keras>=3.15.1,<3.16"]
    for extra in ("tensorflow-cpu", "jax", "torch"):
        assert [r for r in extras[extra] if r.startswith("keras")] == keras, extra


def _without(
    tmp_path: Path, module: str, *args: str, backend: str = "tensorflow"
) -> subprocess.CompletedProcess:
    """`graphspec ARGS` where `import MODULE` fails as it does when MODULE is not installed."""
    poisoned = tmp_path / "poisoned"
    (poisoned / module).mkdir(parents=True, exist_ok=True)
    (poisoned / module / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{module}'\", name='{module}')\n"
    )
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(poisoned), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "graphspec", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["build", "specs/book_mlp.yaml"],
        [
            "train",
            "specs/book_mlp.yaml",
            "--synthetic",
            "--samples",
            "8",
            "--epochs",
            "1",
            "--out",
            "{tmp}/run",
        ],
        ["tune", "specs/mlp_search.yaml", "--synthetic", "--out", "{tmp}/tune"],
        ["plot", "specs/book_mlp.yaml", "--show-shapes", "-o", "{tmp}/plot.dot"],
        ["--allow-custom", "somewhere", "validate", "specs/book_mlp.yaml"],
    ],
    ids=["build", "train", "tune", "plot-shapes", "allow-custom"],
)
def test_a_missing_keras_is_exit_2_naming_the_install_command(tmp_path, command):
    result = _without(tmp_path, "keras", *[a.format(tmp=tmp_path) for a in command])
    assert result.returncode == 2, result.stderr
    assert result.stderr.endswith(KERAS_MISSING)
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poisoned"]  # nothing written


def test_validating_needs_no_keras(tmp_path):
    result = _without(tmp_path, "keras", "validate", "specs/book_mlp.yaml")
    assert result.returncode == 0, result.stderr


def test_a_missing_backend_is_exit_2_naming_it(tmp_path):
    # Keras imports its backend when it is imported: here TensorFlow, which is missing.
    result = _without(tmp_path, "tensorflow", "build", "specs/book_mlp.yaml")
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "error: Keras cannot load its backend: tensorflow is not installed (KERAS_BACKEND: tensorflow)\n"
        "  hint: set KERAS_BACKEND to an installed backend (jax, tensorflow, torch), or install it: "
        "pip install -e '.[tensorflow]'\n"
        "1 error\n"
    )

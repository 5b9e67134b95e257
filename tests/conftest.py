"""Shared test set-up: run from the repository root, keep TensorFlow quiet, free Keras state."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As graphspec.keras does: TensorFlow 2.21's oneDNN kernels crash on strided 1x1 convolutions
# (see graphspec/keras/__init__.py); a test module may import keras before graphspec.keras.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move everything alive after collection (TensorFlow's, Keras's and JAX's modules, the
    collected tests) out of the garbage collector's reach: they live until the end anyway, and
    otherwise every full collection, and every gc.collect() that keras.backend.clear_session()
    runs, walks them all again. Objects the tests create are still collected as before."""
    gc.freeze()


@pytest.fixture(autouse=True)
def _repository_root(monkeypatch):
    """Relative paths in specs and expected messages are relative to the repository root."""
    monkeypatch.chdir(ROOT)


@pytest.fixture
def write_spec(tmp_path):
    """Write dedented YAML to a file in a temporary folder and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


# `python -c _PEAK_CHILD ARGS...` runs `graphspec ARGS...` and prints its peak resident memory
# last: VmHWM, the process's own (ru_maxrss would carry the forking pytest's across exec).
_PEAK_CHILD = """
import runpy, sys
sys.argv = ["graphspec", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("graphspec", run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(f"PEAK_RSS_KB={peak}", file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture
def graphspec_peak_mb():
    """Run `graphspec ARGS...` as a process of its own, assert it succeeds, and return its peak
    resident memory in MiB."""

    def run(*args: object) -> float:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
        result = subprocess.run(
            [sys.executable, "-c", _PEAK_CHILD, *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        peak = [line for line in result.stderr.splitlines() if line.startswith("PEAK_RSS_KB=")]
        return int(peak[0].split("=")[1]) / 1024

    return run

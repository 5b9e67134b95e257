"""Shared test set-up: run from the repository root, keep TensorFlow quiet, free Keras state."""

from __future__ import annotations

import gc
import os
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


@pytest.fixture
def graphspec_peak_mb():
    """Run `graphspec ARGS...` as a process of its own and return its peak resident memory in
    MiB; raise if it fails. It is bench/harness.py's, which the benchmarks measure with."""
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    from harness import graphspec_with_peak

    return lambda *args: graphspec_with_peak(*args)[1]

"""`graphspec train --devices N`: data parallel training gives the single-device run's loss.

Each run is a subprocess, since the backend and the number of virtual CPU devices are fixed
when the process starts: JAX gets four host devices from XLA_FLAGS, TensorFlow four logical
CPUs from `tf.config.set_logical_device_configuration` before anything else touches it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec.cli import app

SPEC = """\
graphspec: 1
name: tiny
inputs:
  x: {shape: [8]}
layers:
  hidden: {type: Dense, units: 16, activation: relu, in: x}
  y: {type: Dense, units: 1, in: hidden}
outputs:
  y: {loss: mse}
compile:
  optimizer: {type: SGD, learning_rate: 0.05}
"""
# 256 samples in batches of 32, shuffled each epoch: every batch splits over 4 devices.
ARGS = ["--synthetic", "--kind", "teacher", "--epochs", "2", "--samples", "256", "--batch-size", "32"]
ARGS += ["--validation-split", "0", "--seed", "1", "--quiet"]

# TensorFlow's logical CPUs must be configured before TensorFlow initialises, so the command
# runs through this launcher rather than `python -m graphspec`.
TF_LAUNCHER = """\
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)
from graphspec.cli import main
sys.argv = ["graphspec", *sys.argv[1:]]
main()
"""

needs_jax = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="JAX is not installed: make test-backends installs it"
)


def _run(backend: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    launcher = ["-c", TF_LAUNCHER] if backend == "tensorflow" else ["-m", "graphspec"]
    return subprocess.run(
        [sys.executable, *launcher, "train", *args], env=env, capture_output=True, text=True, timeout=600
    )


def _final_loss(run: Path) -> float:
    return json.loads((run / "history.json").read_text())["loss"][-1]


@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=needs_jax)])
def test_four_devices_reach_the_single_device_loss(tmp_path, backend):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    single = _run(backend, str(spec), *ARGS, "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr
    replicated = _run(backend, str(spec), *ARGS, "--devices", "4", "--out", str(tmp_path / "four"))
    assert replicated.returncode == 0, replicated.stderr
    one, four = _final_loss(tmp_path / "one"), _final_loss(tmp_path / "four")
    assert four == pytest.approx(one, rel=1e-3)


@needs_jax
def test_more_devices_than_there_are_is_refused_and_writes_nothing(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    result = _run("jax", str(spec), *ARGS, "--devices", "8", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr == (
        "error: --devices 8: there are 4 devices here (cpu:0, cpu:1, cpu:2, cpu:3)\n"
        "  hint: give --devices all, or fewer\n"
        "1 error\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


@needs_jax
def test_a_batch_the_devices_cannot_split_is_refused(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    result = _run(
        "jax", str(spec), *ARGS, "--batch-size", "30", "--devices", "4", "--out", str(tmp_path / "r")
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: --devices 4: a batch of 30 does not split evenly over 4 devices\n"
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed: make test-backends installs it"
)
def test_torch_refuses_more_than_one_device(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    result = _run("torch", str(spec), *ARGS, "--devices", "2", "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr == (
        "error: --devices 2: Keras has no data parallel training on the torch backend\n"
        "  hint: train with KERAS_BACKEND=jax or KERAS_BACKEND=tensorflow, or on one device\n"
        "1 error\n"
    )
    assert not (tmp_path / "r").exists()


def test_devices_here_are_counted_in_process(tmp_path):
    # The test process runs TensorFlow with its one CPU device.
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    result = CliRunner().invoke(
        app, ["train", str(spec), *ARGS, "--devices", "2", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --devices 2: there is 1 device here (cpu:0)\n")
    assert not (tmp_path / "r").exists()


def test_devices_takes_a_number_or_all(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    result = CliRunner().invoke(app, ["train", str(spec), *ARGS, "--devices", "two"])
    assert result.exit_code == 2
    assert result.stderr == "error: --devices takes a positive number or 'all'; got 'two'\n1 error\n"

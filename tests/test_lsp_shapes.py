"""The worker behind hover's output shapes (graphspec.lsp_shapes), driven as the language server
drives it: a spec Keras refuses, a build past the timeout, a worker killed under it, the
worker's memory cap and priority, the debounce. Each answer is what hover then says, word for
word."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graphspec.lsp_shape_worker import NICENESS
from graphspec.lsp_shapes import COMPUTING, MEMORY_BYTES, Shapes, ShapeService, content_key, hover_lines
from graphspec.spec.load import load_text

SPEC = """\
graphspec: 1
name: t
inputs:
  x: {shape: [4]}
layers:
  h: {type: Dense, units: 64, in: x}
  y: {type: Dense, units: 1, in: h}
outputs:
  y: {loss: mse}
"""


def chain(nodes: int) -> str:
    """A spec of `nodes` Dense layers in a row, its last one `out`: about a second to build."""
    lines = ["graphspec: 1", "name: chain", "inputs: {x: {shape: [8]}}", "layers:"]
    lines += [f"  n{i}: {{type: Dense, units: 8, in: {f'n{i - 1}' if i else 'x'}}}" for i in range(nodes - 1)]
    lines += [f"  out: {{type: Dense, units: 1, in: n{nodes - 2}}}", "outputs: {out: {loss: mse}}"]
    return "\n".join(lines) + "\n"


def ask(service: ShapeService, text: str) -> str:
    """Request the shapes of `text` as the server does after a valid analysis; its key."""
    key = content_key(load_text(text, "t.yaml"))
    service.request("file:///t.yaml", key, text, "t.yaml", None, None)
    return key


def answer(service: ShapeService, key: str) -> Shapes:
    deadline = time.monotonic() + 120
    while service.state(key) in (COMPUTING, None) and time.monotonic() < deadline:
        time.sleep(0.05)
    state = service.state(key)
    assert isinstance(state, Shapes)
    return state


@pytest.fixture
def service():
    made = ShapeService({}, debounce_s=0.0)
    yield made
    made.close()


@pytest.fixture(scope="module")
def shared():
    """One service (one import of Keras) for the tests that leave its worker running."""
    made = ShapeService({}, debounce_s=0.0)
    yield made
    made.close()


def test_a_model_keras_refuses_says_why_and_the_same_worker_answers_the_next(shared):
    # validate accepts it: only Keras knows that 4 and 64 features cannot be added.
    refused = SPEC.replace("{type: Dense, units: 1, in: h}", "{type: Add, in: [x, h]}")
    said = hover_lines(answer(shared, ask(shared, refused)), "h")
    worker = shared.worker_pid
    assert said == [
        "shape: not known (layer 'y' (Add): Inputs have incompatible shapes. Received shapes (4,) and (64,))"
    ]
    assert hover_lines(answer(shared, ask(shared, SPEC)), "h") == ["shape: `(None, 64)` float32"]
    assert shared.worker_pid == worker


def test_a_build_past_the_timeout_is_killed_and_the_next_request_gets_a_new_worker(service):
    service.timeout_s = 0.2  # a 1,000-layer spec takes about a second
    key = ask(service, chain(1_000))
    while service.worker_pid is None:
        time.sleep(0.05)
    worker = service.worker_pid
    assert hover_lines(answer(service, key), "out") == [
        "shape: not known (working them out took longer than 0.2 s)"
    ]
    assert not os.path.exists(f"/proc/{worker}")
    service.timeout_s = 30
    assert hover_lines(answer(service, ask(service, SPEC)), "y") == ["shape: `(None, 1)` float32"]
    assert service.workers_started == 2


def test_a_worker_killed_while_working_is_reported_not_fatal(service):
    key = ask(service, chain(1_000))
    while service.worker_pid is None:
        time.sleep(0.05)
    os.kill(service.worker_pid, signal.SIGKILL)
    assert hover_lines(answer(service, key), "out") == [
        "shape: not known (the shape worker stopped (killed by signal 9))"
    ]
    assert service.worker_pid is None


def test_the_worker_runs_with_its_data_capped_and_below_the_servers_priority(shared):
    assert hover_lines(answer(shared, ask(shared, SPEC.replace("64", "16"))), "h") == [
        "shape: `(None, 16)` float32"
    ]
    worker = shared.worker_pid
    limits = Path(f"/proc/{worker}/limits").read_text().splitlines()
    (data,) = [line.split()[3:5] for line in limits if line.startswith("Max data size")]
    # Soft and hard: past it, an allocation fails (MemoryError, or a crash the server reports).
    assert data == [str(MEMORY_BYTES), str(MEMORY_BYTES)] and MEMORY_BYTES == 4 * 1024**3
    assert niceness(worker) == os.nice(0) + NICENESS


def test_edits_closer_than_the_debounce_are_worked_out_once_for_the_last():
    debounced = ShapeService({}, debounce_s=60.0)
    try:
        first = ask(debounced, SPEC)
        last = ask(debounced, SPEC.replace("units: 64", "units: 32"))
        # The first edit's request was replaced by the last one; neither is due yet.
        assert debounced.state(first) is None and debounced.state(last) == COMPUTING
        assert debounced.workers_started == 0
    finally:
        debounced.close()


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is not None, reason="torch is installed: Keras can load that backend"
)
def test_a_worker_that_cannot_load_keras_says_why_once_and_is_not_started_again(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # the worker inherits it; torch is not installed
    missing = ShapeService({}, debounce_s=0.0)
    try:
        first = answer(missing, ask(missing, SPEC))
        again = answer(missing, ask(missing, SPEC.replace("64", "16")))
    finally:
        missing.close()
    assert hover_lines(first, "h") == [
        "shape: not known (Keras could not be loaded: No module named 'torch')"
    ]
    assert again == first and missing.workers_started == 1


def test_the_worker_loads_each_spec_under_the_servers_limits(shared):
    # `graphspec --limit values=5 lsp`: the server would refuse this spec before asking, but
    # the worker parses it again (and the files it includes) and must hold to the same limit.
    limits, shared.limits = shared.limits, {"values": 5}
    try:
        (said,) = hover_lines(answer(shared, ask(shared, SPEC.replace("64", "8"))), "h")
    finally:
        shared.limits = limits
    assert said == (
        "shape: not known (this value, with the values read before it, would go over the limit "
        "of 5 values read from spec files in all)"
    )


@pytest.mark.skipif(
    sys.platform != "linux", reason="the worker asks Linux (prctl) to kill it with its parent"
)
def test_the_worker_dies_with_the_process_that_started_it_however_that_ends():
    # A parent that starts a worker and is then killed outright (SIGKILL: no cleanup of its own).
    start = (
        "import subprocess, sys, time\n"
        "worker = subprocess.Popen([sys.executable, '-m', 'graphspec.lsp_shape_worker', '4294967296'],"
        " stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n"
        "print(worker.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", start], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    deadline = time.monotonic() + 60
    # Its priority is lowered last when it confines itself: then it has asked to die with its parent.
    while niceness(worker) == os.nice(0) and time.monotonic() < deadline:
        time.sleep(0.02)
    parent.kill()
    parent.wait()
    # At once, not when it next reads or writes a pipe (after importing Keras: seconds).
    deadline = time.monotonic() + 1.0
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(worker)


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead and not yet reaped by whoever adopted it, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

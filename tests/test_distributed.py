"""`graphspec train --devices N` and multi-process runs: data parallel training gives the
single-device run's loss.

Each run is a subprocess, since the backend and the number of virtual CPU devices are fixed
when the process starts: JAX gets four host devices from XLA_FLAGS (two per process in a
multi-process run), TensorFlow four logical CPUs from `tf.config.set_logical_device_configuration`
before anything else touches it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    importlib.util.find_spec("jax") is None, reason="JAX is not installed: make test installs it"
)


def _command(backend: str, *args: str, devices: int = 4) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    launcher = ["-c", TF_LAUNCHER] if backend == "tensorflow" else ["-m", "graphspec"]
    return {"args": [sys.executable, *launcher, "train", *args], "env": env, "text": True}


def _run(backend: str, *args: str, devices: int = 4) -> subprocess.CompletedProcess:
    return subprocess.run(**_command(backend, *args, devices=devices), capture_output=True, timeout=600)


def _run_together(*commands: list[str], devices: int = 2) -> list[subprocess.CompletedProcess]:
    """Each of `commands` (train's arguments) as a JAX process of its own, all at once, as
    the processes of a multi-process run are started."""
    processes = [
        subprocess.Popen(
            **_command("jax", *args, devices=devices), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for args in commands
    ]
    try:
        outputs = [process.communicate(timeout=600) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return [
        subprocess.CompletedProcess(process.args, process.returncode, out, err)
        for process, (out, err) in zip(processes, outputs, strict=True)
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _final_loss(run: Path) -> float:
    return json.loads((run / "history.json").read_text())["loss"][-1]


@pytest.fixture(scope="module")
def single_device_loss(tmp_path_factory) -> Callable[[str], float]:
    """The final loss of the run on one device, per backend, trained when first asked for."""
    losses: dict[str, float] = {}

    def loss(backend: str) -> float:
        if backend not in losses:
            folder = tmp_path_factory.mktemp(f"single-{backend}")
            (folder / "tiny.yaml").write_text(SPEC)
            result = _run(backend, str(folder / "tiny.yaml"), *ARGS, "--out", str(folder / "one"))
            assert result.returncode == 0, result.stderr
            losses[backend] = _final_loss(folder / "one")
        return losses[backend]

    return loss


@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=needs_jax)])
def test_four_devices_reach_the_single_device_loss(tmp_path, backend, single_device_loss):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    replicated = _run(backend, str(spec), *ARGS, "--devices", "4", "--out", str(tmp_path / "four"))
    assert replicated.returncode == 0, replicated.stderr
    assert _final_loss(tmp_path / "four") == pytest.approx(single_device_loss(backend), rel=1e-3)


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
    importlib.util.find_spec("torch") is None, reason="torch is not installed: make test-torch installs it"
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


# --- More than one process: 2 processes x 2 virtual CPU devices on 127.0.0.1 --------------------


def _cluster(port: int, process_id: int, processes: int = 2) -> list[str]:
    return [
        "--coordinator",
        f"127.0.0.1:{port}",
        "--num-processes",
        str(processes),
        "--process-id",
        str(process_id),
    ]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> tuple[Path, list[subprocess.CompletedProcess]]:
    """A run of the tiny spec by two processes, each asked to write its own run directory: the
    folder they ran in, and how each ended."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed: make test installs it")
    folder = tmp_path_factory.mktemp("two-processes")
    (folder / "tiny.yaml").write_text(SPEC)
    # The processes authenticate to process 0 with a shared token (outside the folder checked).
    token = tmp_path_factory.mktemp("token") / "join-token"
    token.write_text("s3cret\n")
    port = _free_port()
    results = _run_together(
        *[
            [
                str(folder / "tiny.yaml"),
                *ARGS,
                *_cluster(port, i),
                "--join-token-file",
                str(token),
                "--out",
                str(folder / f"run{i}"),
            ]
            for i in (0, 1)
        ]
    )
    for result in results:
        assert result.returncode == 0, result.stderr
    return folder, results


@needs_jax
def test_two_processes_reach_the_single_device_loss(two_processes, single_device_loss):
    folder, _ = two_processes
    assert _final_loss(folder / "run0") == pytest.approx(single_device_loss("jax"), rel=1e-3)


@needs_jax
def test_only_process_0_writes_a_run_directory(two_processes):
    folder, results = two_processes
    assert sorted(p.name for p in folder.iterdir()) == ["run0", "tiny.yaml"]
    assert results[0].stdout.splitlines()[-1] == f"run saved in {folder / 'run0'}"
    assert results[1].stdout.splitlines()[-1] == "trained with the other processes; process 0 saves the run"


@needs_jax
def test_a_batch_the_processes_devices_cannot_split_is_refused_by_each(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    port = _free_port()
    results = _run_together(
        *[
            [str(spec), *ARGS, "--batch-size", "30", *_cluster(port, i), "--out", str(tmp_path / f"r{i}")]
            for i in (0, 1)
        ]
    )
    for result in results:
        assert result.returncode == 2
        assert result.stderr.endswith(
            "error: 2 processes with 4 devices in all: a batch of 30 does not split evenly over 4 devices\n"
            "  hint: use a batch size that is a multiple of 4\n"
            "1 error\n"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


@needs_jax
def test_a_coordinator_that_cannot_be_reached_is_an_error_after_the_timeout(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    port = _free_port()  # nothing listens there
    result = _run(
        "jax",
        str(spec),
        *ARGS,
        *_cluster(port, 1),
        "--join-timeout",
        "2",
        "--out",
        str(tmp_path / "r"),
        devices=2,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"error: --coordinator 127.0.0.1:{port}: process 0 could not be reached within 2 s "
        "(Connection refused)\n"
        "  hint: start process 0 there (it listens on that port), or give more time with --join-timeout\n"
        "1 error\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


# Checked before the backend is: these run in the test process, on TensorFlow.
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (_cluster(1234, 2), "--process-id 2 is out of range: 2 processes are numbered 0 to 1"),
        (_cluster(1234, -1), "--process-id -1 is out of range: 2 processes are numbered 0 to 1"),
        (_cluster(1234, 0, processes=0), "--num-processes takes a number of at least 1; got 0"),
        (
            ["--coordinator", "10.0.0.1", "--num-processes", "2", "--process-id", "0"],
            "--coordinator takes HOST:PORT, process 0's address and a free port; got '10.0.0.1'",
        ),
        (
            ["--coordinator", "10.0.0.1:99999", "--num-processes", "2", "--process-id", "0"],
            "--coordinator takes HOST:PORT, process 0's address and a free port; got '10.0.0.1:99999'",
        ),
        (
            ["--coordinator", "127.0.0.1:¹²", "--num-processes", "2", "--process-id", "0"],
            "--coordinator takes HOST:PORT, process 0's address and a free port; got '127.0.0.1:¹²'",
        ),
        (
            [*_cluster(1234, 0), "--join-token-file", "missing-token"],
            "--join-token-file missing-token: No such file or directory",
        ),
        (
            ["--join-token-file", "missing-token"],
            "--join-token-file authenticates the processes of a run started with --coordinator, "
            "--num-processes and --process-id",
        ),
        (
            ["--process-id", "1"],
            "a multi-process run needs --coordinator, --num-processes and --process-id together; "
            "--coordinator and --num-processes are missing",
        ),
        (
            ["--distributed", "--num-processes", "2"],
            "--distributed finds the coordinator and the processes in the cluster environment; "
            "--num-processes would name them again",
        ),
    ],
    ids=[
        "id-past-the-end",
        "negative-id",
        "no-processes",
        "no-port",
        "port-too-high",
        "port-in-superscript-digits",
        "token-file-missing",
        "token-file-alone",
        "partial",
        "both-ways",
    ],
)
def test_bad_cluster_options_are_refused_before_connecting(tmp_path, options, message):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    result = CliRunner().invoke(app, ["train", str(spec), *ARGS, *options, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_a_multi_process_run_needs_the_jax_backend(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    result = CliRunner().invoke(
        app, ["train", str(spec), *ARGS, *_cluster(1234, 0), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: a multi-process run uses JAX's distributed runtime; the Keras backend here is tensorflow\n"
        "  hint: run every process with KERAS_BACKEND=jax (pip install -e '.[jax]')\n"
        "1 error\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


# Each process of a multi-process run feeds its part of every batch: together, the parts are
# the batch a single process trains on (in the test process: no JAX needed).


@pytest.mark.parametrize("kind", ["random", "teacher"])
def test_the_processes_parts_of_a_synthetic_batch_make_the_whole_batch(tmp_path, kind):
    import keras
    import numpy as np

    from graphspec.keras.data import synthetic_datasets
    from graphspec.keras.distribute import Processes
    from graphspec.spec.load import load

    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    loaded = load(spec, [])
    model = loaded.build()
    settings = {"kind": kind, "samples": 72, "batch_size": 32, "validation_split": 0, "seed": 4}

    def datasets(processes: Processes | None) -> Any:
        keras.utils.set_random_seed(4)  # as `train` seeds every process: the teachers are alike
        return synthetic_datasets(loaded, model, **settings, processes=processes)[0]

    whole, parts = datasets(None), [datasets(Processes(i, 2, 4)) for i in (0, 1)]
    for index in range(len(whole)):  # 32, 32, then the last batch of 8
        x, y = whole[index]
        (x0, y0), (x1, y1) = parts[0][index], parts[1][index]
        assert len(x0["x"]) == len(x["x"]) // 2
        np.testing.assert_array_equal(np.concatenate([x0["x"], x1["x"]]), x["x"])
        np.testing.assert_allclose(np.concatenate([y0["y"], y1["y"]]), y["y"], rtol=1e-6)


def test_the_processes_parts_of_an_array_batch_make_the_whole_batch():
    import numpy as np

    from graphspec.keras.distribute import ProcessBatches, Processes

    x, y = {"x": np.arange(40).reshape(20, 2)}, {"y": np.arange(20)}
    parts = [ProcessBatches(x, y, 8, Processes(i, 2, 4)) for i in (0, 1)]
    assert len(parts[0]) == 3  # 8, 8, then the last batch of 4
    fed = [np.concatenate([parts[0][i][1]["y"], parts[1][i][1]["y"]]) for i in range(3)]
    assert [batch.tolist() for batch in fed] == [list(range(0, 8)), list(range(8, 16)), list(range(16, 20))]
    assert parts[1][2][0]["x"].tolist() == [[36, 37], [38, 39]]


@pytest.mark.parametrize(
    ("greeting", "problem"),
    [
        ("{hello} 3 5", "process id 5 is not one of 1..2"),
        ("{hello} 3 0", "process id 0 is not one of 1..2"),
        ("{hello} 4 2", "process 0 was started with --num-processes 3, not 4"),
        ("{hello} 3 1", "process 1 has already joined: each process needs an id of its own"),
        ("GET / HTTP/1.1", "not a graphspec process"),
    ],
)
def test_process_0_refuses_a_greeting_that_does_not_fit(greeting, problem):
    from graphspec.handshake import HELLO, Meeting, check_greeting

    meeting = Meeting("127.0.0.1:8476", 3, 0, 60)
    line = greeting.format(hello=HELLO).encode()
    assert check_greeting(line, meeting, "00" * 16, {1: None}) == (problem, -1)


# --- Folders and tables: each process reads its own share of every batch ----------------------

FOLDER_SPEC = """\
graphspec: 1
name: pictures
inputs:
  image: {shape: [8, 8, 1]}
layers:
  flat: {type: Flatten, in: image}
  hidden: {type: Dense, units: 8, activation: relu, in: flat}
  label: {type: Dense, units: 2, activation: softmax, in: hidden}
outputs:
  label: {loss: sparse_categorical_crossentropy}
compile:
  optimizer: {type: SGD, learning_rate: 0.1}
data:
  inputs:
    image: {image: {convert: true}}
"""
TABLE_SPEC = """\
graphspec: 1
name: table
inputs:
  age: {shape: [1]}
  pixels: {shape: [3]}
layers:
  joined: {type: Concatenate, in: [age, pixels]}
  hidden: {type: Dense, units: 8, activation: relu, in: joined}
  kind: {type: Dense, units: 2, activation: softmax, in: hidden}
outputs:
  kind: {loss: sparse_categorical_crossentropy}
compile:
  optimizer: {type: SGD, learning_rate: 0.05}
data:
  inputs:
    pixels: {columns: "p*"}
"""
SHARE_ARGS = ["--epochs", "2", "--batch-size", "8", "--seed", "1", "--quiet"]
# 40 images: 32 to train on (4 batches of 8) and 8 to validate on.
FOLDER_ARGS = [*SHARE_ARGS, "--validation-split", "0.2"]
# 48 rows: 36 to train on (4 batches of 8, then one of 4) and 12 to validate on (8, then 4).
TABLE_ARGS = [*SHARE_ARGS, "--validation-split", "0.25"]
TABLE_ROWS = 48


def _png_folder(root: Path, per_class: int = 20) -> Path:
    """Two class folders of 8x8 greyscale PNGs: bright pictures and dark ones, with noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, level in (("bright", 180), ("dark", 60)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(level, 40, (8, 8)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(root / label / f"{i:02d}.png")
    return root


def _csv_table(path: Path, rows: int = TABLE_ROWS) -> Path:
    """A table whose `age` column is each row's number (so a batch says which rows it holds)."""
    lines = ["age,p0,p1,p2,kind"]
    lines += [f"{i},{i / 10},{i % 7},{(i * 3) % 5},{'cat' if i % 3 else 'dog'}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _losses(run: Path) -> tuple[float, float]:
    history = json.loads((run / "history.json").read_text())
    return history["loss"][-1], history["val_loss"][-1]


def _one_and_two_processes(folder: Path, spec: str, data: Path, args: list[str]) -> tuple[Path, Path]:
    """The run of `spec` on `data` by one JAX process on one device, and by two processes of
    two devices each: the run directories each wrote (process 0's, for the two)."""
    (folder / "spec.yaml").write_text(spec)
    command = [str(folder / "spec.yaml"), "--data", str(data), *args]
    single = _run("jax", *command, "--out", str(folder / "one"))
    assert single.returncode == 0, single.stderr
    port = _free_port()
    results = _run_together(*[[*command, *_cluster(port, i), "--out", str(folder / "two")] for i in (0, 1)])
    for result in results:
        assert result.returncode == 0, result.stderr
    return folder / "one", folder / "two"


@needs_jax
def test_two_processes_reading_their_shares_of_a_folder_reach_the_single_process_loss(tmp_path):
    pictures = _png_folder(tmp_path / "pictures")
    one, two = _one_and_two_processes(tmp_path, FOLDER_SPEC, pictures, FOLDER_ARGS)
    assert _losses(two) == pytest.approx(_losses(one), rel=1e-3)


@needs_jax
def test_two_processes_reading_their_shares_of_a_table_reach_the_single_process_loss(tmp_path):
    table = _csv_table(tmp_path / "table.csv")
    one, two = _one_and_two_processes(tmp_path, TABLE_SPEC, table, TABLE_ARGS)
    assert _losses(two) == pytest.approx(_losses(one), rel=1e-3)


def test_each_process_decodes_only_its_share_of_every_folder_batch(tmp_path):
    import numpy as np

    from graphspec.data.examples import bind
    from graphspec.keras.distribute import Processes
    from graphspec.keras.files import FileBatches
    from graphspec.spec.load import load

    (tmp_path / "spec.yaml").write_text(FOLDER_SPEC)
    loaded = load(tmp_path / "spec.yaml", [])
    pictures = _png_folder(tmp_path / "pictures", per_class=18)  # 36: 4 batches of 8, one of 4

    def batches(processes: Processes | None) -> tuple[FileBatches, list[str]]:
        """The batches of 2 shuffled epochs, and the files they decode, in the order decoded."""
        examples = bind(loaded, pictures, stream=True)
        ((name, (paths, read)),) = examples.files.items()
        decoded: list[str] = []

        def reading(path: Path) -> Any:
            decoded.append(f"{path.parent.name}/{path.name}")
            return read(path)

        examples.files[name] = (paths, reading)
        return FileBatches(examples, 8, seed=3, shuffle=True, epochs=2, processes=processes), decoded

    (whole, whole_read), parts = batches(None), [batches(Processes(i, 2, 4)) for i in (0, 1)]
    assert len(whole) == len(parts[0][0]) == 10
    for index in range(len(whole)):
        x, y = whole[index]
        (x0, y0), (x1, y1) = parts[0][0][index], parts[1][0][index]
        assert len(x0["image"]) == len(x1["image"]) == len(x["image"]) // 2
        np.testing.assert_array_equal(np.concatenate([x0["image"], x1["image"]]), x["image"])
        np.testing.assert_array_equal(np.concatenate([y0["label"], y1["label"]]), y["label"])
    # Each process decoded its half of each batch and nothing else: the halves are disjoint
    # and together are what one process decodes.
    first, second = parts[0][1], parts[1][1]
    assert len(first) == len(second) == len(whole_read) // 2 == 36
    assert sorted(first + second) == sorted(whole_read)
    for epoch in (0, 1):
        assert not set(first[36 // 2 * epoch : 36 // 2 * (epoch + 1)]) & set(
            second[36 // 2 * epoch : 36 // 2 * (epoch + 1)]
        )


@pytest.mark.parametrize("windows", ["one-window", "many-windows"])
@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_each_process_assembles_only_its_share_of_every_table_batch(tmp_path, monkeypatch, kind, windows):
    import numpy as np

    from graphspec.data import stream as stream_module
    from graphspec.data import tables
    from graphspec.data.examples import bind
    from graphspec.keras.distribute import Processes
    from graphspec.keras.streams import StreamBatches
    from graphspec.spec.load import load

    if windows == "many-windows":  # chunks of 5 rows, windows of at least 12 rows
        monkeypatch.setattr(tables, "CHUNK_ROWS", 5)
        monkeypatch.setattr(stream_module, "WINDOW_BYTES", 12 * (8 * 4 + 64 + 16))
    (tmp_path / "spec.yaml").write_text(TABLE_SPEC)
    loaded = load(tmp_path / "spec.yaml", [])
    table = _csv_table(tmp_path / "table.csv", rows=44)  # 5 batches of 8, then one of 4
    if kind == "parquet":
        pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (a dependency) is not installed")
        import pyarrow.csv

        pq.write_table(pyarrow.csv.read_csv(table), tmp_path / "table.parquet", row_group_size=5)
        table = tmp_path / "table.parquet"

    def batches(processes: Processes | None) -> tuple[StreamBatches, list[int]]:
        """The batches of 2 shuffled epochs, and the rows made into inputs and targets."""
        stream = bind(loaded, table, stream=True)
        assembled: list[int] = []
        assemble = stream.assemble

        def counting(values: dict, ids: Any) -> Any:
            assembled.extend(int(a) for a in values["age"])
            return assemble(values, ids)

        stream.assemble = counting
        return StreamBatches(stream, 8, seed=3, shuffle=True, epochs=2, processes=processes), assembled

    (whole, _), parts = batches(None), [batches(Processes(i, 2, 4)) for i in (0, 1)]
    assert len(whole) == 12
    fed: list[list[int]] = [[], []]
    for index in range(len(whole)):
        x, y = whole[index]
        for i, (part, _) in enumerate(parts):
            fed[i] += [int(a) for a in part[index][0]["age"][:, 0]]
        (x0, y0), (x1, y1) = parts[0][0][index], parts[1][0][index]
        assert len(x0["age"]) == len(x1["age"]) == len(x["age"]) // 2
        for name in ("age", "pixels"):
            np.testing.assert_array_equal(np.concatenate([x0[name], x1[name]]), x[name])
        np.testing.assert_array_equal(np.concatenate([y0["kind"], y1["kind"]]), y["kind"])
    # Each process made inputs of the rows it fed, and of no other row.
    for i, (_, assembled) in enumerate(parts):
        assert sorted(assembled) == sorted(fed[i])
        assert len(assembled) == 44  # half of each of 2 epochs
    assert not set(fed[0][:22]) & set(fed[1][:22])


def test_skip_bad_is_refused_in_a_multi_process_run(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(FOLDER_SPEC)
    pictures = _png_folder(tmp_path / "pictures", per_class=4)
    result = CliRunner().invoke(
        app,
        ["train", str(spec), "--data", str(pictures), "--skip-bad", "2", *_cluster(1234, 0)]
        + ["--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --skip-bad skips bad files in a run in one process; in a multi-process run each "
        "process reads its part of every batch, which must stay whole\n"
        "  hint: leave --skip-bad out (the run stops at a bad file, naming it), or train in one process\n"
        "1 error\n"
    )
    assert not (tmp_path / "r").exists()


def test_test_data_is_refused_in_a_multi_process_run(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(FOLDER_SPEC)
    pictures = _png_folder(tmp_path / "pictures", per_class=4)
    result = CliRunner().invoke(
        app,
        ["train", str(spec), "--data", str(pictures), "--test-data", str(pictures), *_cluster(1234, 0)]
        + ["--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --test-data is scored by a run in one process; a multi-process run's model is "
        "spread over every process\n"
        "  hint: leave --test-data out, then score the run with `graphspec evaluate RUN --data TEST`\n"
        "1 error\n"
    )
    assert not (tmp_path / "r").exists()

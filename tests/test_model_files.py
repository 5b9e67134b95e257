"""Hostile model files (.keras) are refused by graphspec's reader before Keras sees them:
exit status 2, a message naming the limit (and the option that raises it: a meter of the
command's budget, `graphspec --limit NAME=N`, or `--max-params`), and memory that stays flat.
Each file is made here, small, at test time.

Every case runs in one child process (TensorFlow is imported once), each command with the
process's peak resident memory reset before it (`/proc/self/clear_refs`), so each case's growth
is its own. The hostile files take 1 to 3 GB when read unbounded; the bound here is 300 MB
over what the process held before the command.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

pytest.importorskip("keras")

MAX_GROWTH_MB = 300
GIB = 1 << 30

# A functional model x(width) -> Dense d(units), as Keras 3 writes its config.json.
ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


def model_config(units: int = 3, activation: object = "linear", width: int = 4) -> dict:
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": "functional",
            "trainable": True,
            "layers": [
                {
                    "module": "keras.layers",
                    "class_name": "InputLayer",
                    "config": {
                        "batch_shape": [None, width],
                        "dtype": "float32",
                        "sparse": False,
                        "name": "x",
                    },
                    "registered_name": None,
                    "name": "x",
                    "inbound_nodes": [],
                },
                {
                    "module": "keras.layers",
                    "class_name": "Dense",
                    "config": {
                        "name": "d",
                        "trainable": True,
                        "units": units,
                        "activation": activation,
                        "use_bias": True,
                        "kernel_initializer": ZEROS,
                        "bias_initializer": ZEROS,
                    },
                    "registered_name": None,
                    "build_config": {"input_shape": [None, width]},
                    "name": "d",
                    "inbound_nodes": [
                        {
                            "args": [
                                {
                                    "class_name": "__keras_tensor__",
                                    "config": {
                                        "shape": [None, width],
                                        "dtype": "float32",
                                        "keras_history": ["x", 0, 0],
                                    },
                                }
                            ],
                            "kwargs": {},
                        }
                    ],
                },
            ],
            "input_layers": [["x", 0, 0]],
            "output_layers": [["d", 0, 0]],
        },
        "registered_name": "Functional",
        "build_config": {"input_shape": None},
    }


def write_keras(path: Path, config: bytes | dict, weights: bytes | None = None) -> Path:
    """A .keras archive holding `config` (JSON or raw bytes) and, if given, model.weights.h5."""
    data = config if isinstance(config, bytes) else json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.0.0"}')
        archive.writestr("config.json", data)
        if weights is not None:
            archive.writestr("model.weights.h5", weights)
    return path


# The CRC-32 of 256 MiB, 1 GiB and 2 GiB of zeros (by MiB), which the bombs declare: computing
# them takes seconds.
ZEROS_CRC32 = {256: 0x2A0E7DBB, 1024: 0x5B64C2B0, 2048: 0x4DBDF21C}


def write_bomb_zip(path: Path, members: dict[str, bytes], bomb: str, inflated: int) -> Path:
    """A zip archive of stored `members` and one deflated member `bomb` of `inflated` zero bytes
    (a few MB on disk). Written by hand: zipfile cannot write a member it is not given whole."""
    chunk = 1 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH) == block
    blocks = inflated // chunk
    crc = ZEROS_CRC32.get(blocks)
    if crc is None:
        crc, zeros = 0, bytes(chunk)
        for _ in range(blocks):
            crc = zlib.crc32(zeros, crc)
    entries = [(name, data, 0, zlib.crc32(data), len(data), len(data)) for name, data in members.items()]
    # After a full flush the compressor starts afresh: the same megabyte gives the same bytes,
    # and the last one closes the stream.
    compressed = first + block * (blocks - 2) + compressor.compress(bytes(chunk)) + compressor.flush()
    entries.append((bomb, compressed, 8, crc, len(compressed), blocks * chunk))
    out, central = bytearray(), bytearray()
    for name, data, method, checksum, size, full in entries:
        raw = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, checksum, size, full, len(raw), 0)
        out += raw + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            method,
            0,
            0,
            checksum,
            size,
            full,
            len(raw),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += raw
    start = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), start, 0)
    path.write_bytes(bytes(out))
    return path


def weights_bomb(path: Path) -> Path:
    """An HDF5 file of a few KB whose one gzip dataset declares 1 GiB (16384 x 16384 float32)."""
    import h5py

    with h5py.File(path, "w") as weights:
        weights.create_dataset(
            "layers/dense/vars/0", shape=(16384, 16384), dtype="f4", chunks=(1024, 1024), compression="gzip"
        )
    return path


SPEC = """\
graphspec: 1
name: tiny
inputs:
  x: {shape: [4]}
layers:
  d: {type: Dense, units: 3, in: x}
outputs:
  d: {loss: mse}
"""

# In the child: each case run through the CLI in this process, its peak memory its own.
CHILD = """\
import json, re, sys
from typer.testing import CliRunner
from graphspec.cli import app
import keras  # noqa: F401  (imported before any case, so no case pays for it)

def kb(key):
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))

runner = CliRunner()
results = {}
for name, args in json.load(open(sys.argv[1])).items():
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # the peak (VmHWM) starts again from what is held now
    before = kb("VmRSS")
    result = runner.invoke(app, args)
    results[name] = {
        "exit": result.exit_code,
        "stderr": result.stderr,
        "growth_mb": (kb("VmHWM") - before) / 1024,
        "exception": None if isinstance(result.exception, (SystemExit, type(None)))
        else repr(result.exception),
    }
json.dump(results, open(sys.argv[2], "w"))
"""


def _cases(folder: Path) -> dict[str, list[str]]:
    """Every hostile file, and the command that reads it."""
    folder.mkdir(exist_ok=True)
    spec = folder / "spec.yaml"
    spec.write_text(SPEC)
    small = json.dumps(model_config()).encode()
    meta = {"metadata.json": b'{"keras_version": "3.0.0"}'}
    files = {
        "config_bomb": write_bomb_zip(folder / "config_bomb.keras", meta, "config.json", 2 * GIB),
        "config_liar": folder / "config_liar.keras",
        "deep": write_keras(folder / "deep.keras", b"[" * 100_000 + b"]" * 100_000),
        "function": write_keras(
            folder / "function.keras",
            model_config(
                activation={
                    "module": "os",
                    "class_name": "function",
                    "config": "system",
                    "registered_name": "function",
                }
            ),
        ),
        "objects": write_keras(
            folder / "objects.keras", b"[" + b",".join([b'{"class_name": 0}'] * 150_000) + b"]"
        ),
        "params_default": write_keras(
            folder / "params_default.keras", model_config(units=400_000_000, width=5)
        ),
        "params_option": write_keras(
            folder / "params_option.keras", model_config(units=100_000_000, width=4)
        ),
        "weights_zip_bomb": write_bomb_zip(
            folder / "weights_zip_bomb.keras", {**meta, "config.json": small}, "model.weights.h5", GIB
        ),
        "weights_h5_bomb": write_keras(
            folder / "weights_h5_bomb.keras", model_config(), weights_bomb(folder / "bomb.h5").read_bytes()
        ),
    }
    # A header that says 1 KB for a member that inflates to 256 MB: read no further than it says.
    write_bomb_zip(files["config_liar"], meta, "config.json", 256 << 20)
    data = bytearray(files["config_liar"].read_bytes())
    for signature in (b"PK\x03\x04", b"PK\x01\x02"):
        at = data.rfind(signature)
        field = at + (22 if signature == b"PK\x03\x04" else 24)
        data[field : field + 4] = struct.pack("<I", 1000)
    files["config_liar"].write_bytes(bytes(data))

    runs = []
    for i in range(2):
        run = folder / f"run{i}"
        run.mkdir()
        (run / "spec.yaml").write_text(SPEC)
        (run / "model.keras").write_bytes(files["deep"].read_bytes())
        runs.append(str(run))
    # Each class grown tenfold twice, to show the memory stays flat once the limit refuses.
    for depth in (1_000, 10_000):
        files[f"deep_{depth}"] = write_keras(folder / f"deep_{depth}.keras", b"[" * depth + b"]" * depth)
    for mib in (256, 1024):
        files[f"config_bomb_{mib}"] = write_bomb_zip(
            folder / f"config_bomb_{mib}.keras", meta, "config.json", mib << 20
        )
    for units in (4_000_000_000, 40_000_000_000):
        config = model_config(units=units, width=5)
        files[f"params_{units}"] = write_keras(folder / f"params_{units}.keras", config)
    cases = {name: ["export", str(path)] for name, path in files.items()}
    cases["params_option"] += ["--max-params", "1000000"]
    # A model Keras saved, within every default: refused once a meter is lowered below it.
    import keras

    x = keras.Input((4,), name="x")
    small = folder / "small.keras"
    keras.Model(x, keras.layers.Dense(3, name="d")(x)).save(small)
    cases["small"] = ["export", str(small)]
    cases["lowered_objects"] = ["--limit", "model-objects=5", "export", str(small)]
    cases["lowered_weights"] = ["--limit", "model-weights=1000", "export", str(small)]
    cases["lowered_bytes"] = ["--limit", "model-bytes=100", "export", str(small)]
    # Two members of an ensemble spend one budget: the second passes what the first left.
    objects = zipfile.ZipFile(small).read("config.json").count(b'"class_name"')
    members = []
    for i in range(2):
        member = folder / f"member{i}"
        member.mkdir()
        (member / "spec.yaml").write_text(SPEC)
        (member / "model.keras").write_bytes(small.read_bytes())
        members.append(str(member))
    cases["ensemble_spends_one_budget"] = [
        "--limit",
        f"model-objects={objects + objects // 2}",
        "ensemble",
        *members,
        "--data",
        str(folder / "none.npz"),
        "--out",
        str(folder / "ens2"),
    ]
    # The other commands that read a model file, each with one hostile file.
    cases["build_weights"] = ["build", str(spec), "--weights", str(files["config_bomb"]), "--partial"]
    cases["train_init_from"] = [
        "train",
        str(spec),
        "--synthetic",
        "--init-from",
        str(files["weights_h5_bomb"]),
        "--runs-dir",
        str(folder / "out"),
    ]
    cases["ensemble"] = ["ensemble", *runs, "--data", str(folder / "none.npz"), "--out", str(folder / "ens")]
    return cases


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> dict[str, dict]:
    """Each case's exit status, stderr and memory growth (MB), from one child process."""
    folder = tmp_path_factory.mktemp("model_files")
    cases = _cases(folder / "files")
    (folder / "cases.json").write_text(json.dumps(cases))
    (folder / "child.py").write_text(CHILD)
    subprocess.run(
        [sys.executable, str(folder / "child.py"), str(folder / "cases.json"), str(folder / "results.json")],
        check=True,
        timeout=900,
    )
    results = json.loads((folder / "results.json").read_text())
    for result in results.values():
        result["stderr"] = result["stderr"].replace(str(folder / "files") + "/", "")
    return results


def check(result: dict, message: str) -> None:
    assert result["exception"] is None
    assert result["exit"] == 2, result["stderr"]
    assert message in result["stderr"], result["stderr"]
    assert "Traceback" not in result["stderr"]
    assert result["growth_mb"] < MAX_GROWTH_MB


HINT = "  hint: a model file is untrusted input; graphspec reads nothing more from this one\n1 error\n"


def raise_with(limit: str) -> str:
    return f"  hint: raise the limit with: graphspec --limit {limit}=N COMMAND ...\n1 error\n"


def test_the_bombs_declare_the_crc_of_what_they_inflate_to():
    zeros, crc = bytes(1 << 20), 0
    for _ in range(256):
        crc = zlib.crc32(zeros, crc)
    assert crc == ZEROS_CRC32[256]


def test_a_config_that_inflates_to_2_gib_is_refused_by_its_declared_size(refused):
    check(
        refused["config_bomb"],
        f"error: config_bomb.keras: config.json's {2 * GIB:,} bytes would go over the limit of 200,000,000 "
        "bytes of model files read, weights aside (config.json, metadata.json, assets)\n"
        + raise_with("model-bytes"),
    )


def test_a_config_that_inflates_past_its_declared_size_is_read_no_further(refused):
    check(refused["config_liar"], "error: config_liar.keras: member 'config.json' cannot be read (")


def test_a_config_nested_100000_deep_is_refused_before_parsing(refused):
    check(
        refused["deep"],
        "error: deep.keras: config.json's 100,000 levels would go over the limit of 256 levels of nesting "
        "in a model file's config.json\n" + raise_with("model-depth"),
    )


def test_a_config_of_150000_serialized_objects_is_refused_before_keras_makes_them(refused):
    check(
        refused["objects"],
        "error: objects.keras: config.json's 150,000 serialized objects would go over the limit of 100,000 "
        "serialized Keras objects in model files (about five a layer)\n" + raise_with("model-objects"),
    )


def test_a_serialized_function_is_refused_without_a_traceback(refused):
    check(
        refused["function"],
        "error: function.keras: it holds a serialized function 'os.system', which is not Keras's own; "
        "graphspec loads no code from a model file\n" + HINT,
    )


def test_declared_parameters_over_the_default_budget_are_refused_before_any_is_allocated(refused):
    check(
        refused["params_default"],
        "error: params_default.keras: its config.json declares a model of 2,400,000,000 parameters, "
        "over the budget of 1,000,000,000; layer 'd' alone has 2,400,000,000\n"
        "  hint: raise the budget with --max-params if this model is meant\n1 error\n",
    )


def test_max_params_applies_to_a_model_file(refused):
    check(
        refused["params_option"],
        "error: params_option.keras: its config.json declares a model of 500,000,000 parameters, "
        "over the budget of 1,000,000; layer 'd' alone has 500,000,000\n",
    )


def test_a_weights_member_that_inflates_to_1_gib_is_refused_by_its_declared_size(refused):
    check(
        refused["weights_zip_bomb"],
        f"error: weights_zip_bomb.keras: model.weights.h5 declares {GIB:,} bytes, but the model its "
        "config.json declares has 15 parameters (60 bytes): at most 16,000,360\n" + HINT,
    )


def test_a_weights_dataset_that_declares_1_gib_is_refused_before_it_is_read(refused):
    check(
        refused["weights_h5_bomb"],
        "error: weights_h5_bomb.keras: model.weights.h5: its datasets declare over 16,000,360 bytes "
        "(at 'layers/dense/vars/0'), but the model its config.json declares has 15 parameters (60 bytes)\n"
        + HINT,
    )


@pytest.mark.parametrize(
    "grown",
    [
        ["deep_1000", "deep_10000", "deep"],
        ["config_bomb_256", "config_bomb_1024", "config_bomb"],
        ["params_default", "params_4000000000", "params_40000000000"],
    ],
    ids=["nesting", "config-size", "parameters"],
)
def test_memory_stays_flat_as_a_refused_input_grows(refused, grown):
    results = [refused[name] for name in grown]
    assert [r["exit"] for r in results] == [2, 2, 2]
    growth = [r["growth_mb"] for r in results]
    assert max(growth) < MAX_GROWTH_MB
    # Ten and a hundred times the input: no more memory than the smallest takes, give or take
    # what the allocator keeps (a refusal reads nothing past the limit).
    assert max(growth) - min(growth) < 64, growth


def test_build_weights_reads_through_the_same_reader(refused):
    check(
        refused["build_weights"], "config.json's 2,147,483,648 bytes would go over the limit of 200,000,000"
    )


def test_train_init_from_reads_through_the_same_reader(refused):
    check(refused["train_init_from"], "model.weights.h5: its datasets declare over 16,000,360 bytes")


def test_ensemble_reads_its_members_through_the_same_reader(refused):
    check(refused["ensemble"], "model.keras: config.json's 100,000 levels would go over the limit of 256")


def test_a_model_within_the_defaults_is_read(refused):
    assert refused["small"]["exit"] == 0, refused["small"]["stderr"]


@pytest.mark.parametrize(
    ("case", "message", "limit"),
    [
        (
            "lowered_objects",
            "serialized objects would go over the limit of 5 serialized Keras objects",
            "model-objects",
        ),
        ("lowered_weights", "model.weights.h5's", "model-weights"),
        ("lowered_bytes", "would go over the limit of 100 bytes of model files read", "model-bytes"),
    ],
)
def test_each_model_file_meter_is_set_with_limit(refused, case, message, limit):
    check(refused[case], message)
    assert refused[case]["stderr"].endswith(raise_with(limit)), refused[case]["stderr"]


def test_the_members_of_an_ensemble_spend_one_budget(refused):
    result = refused["ensemble_spends_one_budget"]
    check(result, "member1/model.keras: config.json's ")
    assert "serialized objects would go over the limit of" in result["stderr"]

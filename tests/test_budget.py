"""The command's budget (graphspec/budget.py): each class of small input that asks for large
work is refused before the work, with a located error (exit status 2) naming the limit and the
`--limit NAME=N` that raises it, in a process whose peak memory stays bounded.

Each case runs `graphspec` in a child process that reports its own peak RSS (VmHWM, or
`resource` where there is no /proc), so a regression that reads, builds or allocates what the
budget should refuse fails here. Times are rows of bench/bench_limits.py, never assertions.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphspec import budget

PEAK_RSS_MB = 600  # a validate of a tiny spec takes about 60 MB
_CHILD = textwrap.dedent(
    """
    import os, resource, runpy, sys
    sys.argv = ["graphspec", *sys.argv[1:]]
    # validate's fast path ends with os._exit (no teardown): here it must come back to report.
    os._exit = sys.exit
    code = 0
    try:
        runpy.run_module("graphspec", run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    # Linux keeps ru_maxrss across exec: a child forked from a pytest that imported TensorFlow
    # would report the parent's peak. VmHWM is this process's own (its memory map is new).
    try:
        peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"PEAK_RSS_KB={peak}", file=sys.stderr)
    sys.exit(code)
    """
)


def graphspec(*args: object, cwd: Path | None = None, timeout: float = 120) -> tuple[int, str, float]:
    """Run the CLI in a child process: (exit status, stderr, peak RSS in MB)."""
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    lines = result.stderr.splitlines()
    peak = [line for line in lines if line.startswith("PEAK_RSS_KB=")]
    assert peak, result.stderr
    text = "\n".join(line for line in lines if not line.startswith("PEAK_RSS_KB="))
    return result.returncode, text + result.stdout, int(peak[0].split("=")[1]) / 1024


def refused(
    code: int, output: str, peak: float, message: str, limit: str | None, located: bool = True
) -> None:
    """Exit status 2, `message` in the first line (at a file:line:col), the option that
    raises `limit` in the hint, and a bounded peak memory."""
    assert code == 2, output
    first = output.splitlines()[0]
    assert message in first, output
    assert not located or re.match(r"\S+:\d+:\d+: error: ", first), output
    if limit is not None:
        assert f"raise the limit with: graphspec --limit {limit}=N COMMAND ..." in output
    assert peak < PEAK_RSS_MB, f"peak RSS {peak:.0f} MB"


def spec(body: str, **head: str) -> str:
    header = "graphspec: 1\nname: t\n" + "".join(f"{key}: {value}\n" for key, value in head.items())
    return header + textwrap.dedent(body).lstrip("\n")


OUTPUT = "outputs: {y: {loss: mse}}\n"
DENSE = "layers: {y: {type: Dense, units: 2, in: x}}\noutputs: {y: {loss: mse}}\n"


def doubling(levels: int) -> str:
    """Params whose strings double at each level: s0 holds 2^levels characters."""
    params = "".join(f'  s{i}: "${{s{i + 1}}}${{s{i + 1}}}"\n' for i in range(levels))
    return spec(
        f"params:\n{params}  s{levels}: ab\ninputs: {{x: {{shape: [4]}}}}\n"
        'layers: {y: {type: Dense, units: 2, in: x, dtype: "${s0}"}}\noutputs: {y: {loss: mse}}\n'
    )


# --- values made ---------------------------------------------------------------------------


def test_strings_that_double_at_each_param_are_refused_from_their_length(tmp_path):
    (tmp_path / "s.yaml").write_text(doubling(40))
    code, output, peak = graphspec("validate", tmp_path / "s.yaml")
    first = output.splitlines()[0]
    assert first.endswith(
        "s.yaml:22:9: error: this string of 8,388,608 characters, after 8,388,604 made before it, "
        "would go over the limit of 10,000,000 characters of strings made by params"
    ), output
    refused(code, output, peak, "would go over the limit of 10,000,000 characters", "text")


def test_the_text_limit_is_raised_from_the_command_line(tmp_path):
    (tmp_path / "s.yaml").write_text(doubling(20))  # 2 MB of text
    code, output, _ = graphspec("--limit", "text=1000000", "validate", tmp_path / "s.yaml")
    assert code == 2 and "over the limit of 1,000,000 characters" in output
    code, output, _ = graphspec("--limit", "text=10000000", "validate", tmp_path / "s.yaml")
    assert code != 2 or "characters of strings" not in output


def test_strings_that_double_inside_a_model_file_are_refused_from_their_length(tmp_path):
    # A model file is untrusted input: the spec it records is loaded under the same budget.
    import hashlib
    import json
    import zipfile

    from graphspec import archive

    text = doubling(40).encode()
    manifest = {
        "format": archive.FORMAT,
        "graphspec": "0.2.0",
        "spec": "s.yaml",
        "files": {"s.yaml": {"bytes": len(text), "sha256": hashlib.sha256(text).hexdigest()}},
    }
    model = tmp_path / "m.keras"
    with zipfile.ZipFile(model, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", '{"keras_version": "3.0.0"}')
        zf.writestr("config.json", "{}")
        zf.writestr(archive.MANIFEST, json.dumps(manifest))
        zf.writestr(archive.FILES + "s.yaml", text)
    assert model.stat().st_size < 4_000
    code, output, peak = graphspec("fingerprint", model)
    assert output.splitlines()[0] == (
        f"{model}:s.yaml:22:9: error: this string of 8,388,608 characters, after 8,388,604 made before "
        "it, would go over the limit of 10,000,000 characters of strings made by params"
    ), output
    refused(code, output, peak, "would go over the limit of 10,000,000 characters", "text")


# --- bytes read, across files ---------------------------------------------------------------


def _includes(folder: Path, count: int, size: int) -> Path:
    """A spec including `count` block files of about `size` bytes each (comments, cheap to parse)."""
    names = []
    for i in range(count):
        name = f"lib{i}.yaml"
        line = "# " + "x" * 98 + "\n"
        (folder / name).write_text(
            line * (size // len(line))
            + f"blocks:\n  b{i}: {{in: x, out: y, layers: {{y: {{type: ReLU, in: x}}}}}}\n"
        )
        names.append(name)
    top = folder / "top.yaml"
    top.write_text(spec(f"inputs: {{x: {{shape: [4]}}}}\n{DENSE}", include=f"[{', '.join(names)}]"))
    return top


def test_includes_each_under_the_file_limit_are_refused_together(tmp_path):
    top = _includes(tmp_path, 5, 4_900_000)  # each under 5 MB, 24.5 MB in all
    code, output, peak = graphspec("validate", top)
    refused(code, output, peak, "would go over the limit of 20,000,000 bytes of spec text read", "bytes")
    assert output.startswith(f"{tmp_path}/lib4.yaml:1:1: error: this file's 4,899,"), output


def test_values_read_count_across_files(tmp_path):
    block = "{in: x, out: y, layers: {y: {type: ReLU, in: x}}, doc: [1, 2, 3, 4]}"
    values = "blocks:\n" + "".join(f"  b{i}: {block}\n" for i in range(200))
    for i in range(3):
        (tmp_path / f"lib{i}.yaml").write_text(values.replace("  b", f"  l{i}b"))
    top = tmp_path / "top.yaml"
    top.write_text(
        spec(f"inputs: {{x: {{shape: [4]}}}}\n{DENSE}", include="[lib0.yaml, lib1.yaml, lib2.yaml]")
    )
    code, output, peak = graphspec("--limit", "values=3000", "validate", top)
    refused(code, output, peak, "would go over the limit of 3,000 values read from spec files", "values")


# --- git blobs ------------------------------------------------------------------------------


@pytest.fixture
def repository(tmp_path):
    def git(*args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, **kwargs)

    git("init", "-q")
    git("config", "user.email", "a@example.com")
    git("config", "user.name", "a")
    return tmp_path, git


def test_a_huge_git_blob_is_refused_from_its_size_unread(repository):
    folder, git = repository
    # 64 MB of one repeated line compresses to little in .git; read whole (and decoded), it
    # would take the child past the bound below on its own.
    line = b"# " + b"x" * 1021 + b"\n"
    writer = subprocess.Popen(
        ["git", "-C", str(folder), "hash-object", "-w", "--stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    chunk = line * 1024
    for _ in range(64):
        writer.stdin.write(chunk)
    blob = writer.communicate()[0].decode().strip()
    git("update-index", "--add", "--cacheinfo", f"100644,{blob},big.yaml")
    git("commit", "-qm", "big")
    code, output, peak = graphspec("fingerprint", "HEAD:big.yaml", cwd=folder)
    refused(code, output, peak, "file is 67,108,864 bytes; a spec may have at most 5,000,000", None)
    assert peak < 100, f"peak RSS {peak:.0f} MB"
    assert output.startswith("HEAD:big.yaml:1:1: error:")


def test_git_blobs_are_charged_to_the_bytes_budget(repository):
    folder, git = repository
    (folder / "a.yaml").write_text(spec(f"inputs: {{x: {{shape: [4]}}}}\n{DENSE}"))
    git("add", "a.yaml")
    git("commit", "-qm", "a")
    code, output, peak = graphspec("--limit", "bytes=50", "diff", "HEAD:a.yaml", "a.yaml", cwd=folder)
    refused(code, output, peak, "HEAD:a.yaml:1:1: error: this file's", "bytes")


# --- regular files only ---------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "fmt"])
def test_a_fifo_is_refused_without_hanging(tmp_path, command):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    code, output, peak = graphspec(command, fifo, timeout=60)
    refused(code, output, peak, "pipe.yaml is not a regular file; a spec is read only from a file", None)


def test_a_link_to_dev_zero_is_refused_unread(tmp_path):
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    code, output, peak = graphspec("fmt", link, timeout=60)
    refused(code, output, peak, "zero.yaml is not a regular file", None)
    # validate refuses it before that: once the link is followed it is not a .yaml file
    code, output, peak = graphspec("validate", link, "--root", "/", timeout=60)
    refused(code, output, peak, "is a link to /dev/zero, which is not a spec", None, located=False)


def test_fmt_refuses_a_file_over_5_mb_from_its_size(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 6_000_000 + "\n")
    code, output, peak = graphspec("fmt", big)
    refused(code, output, peak, "file is 6,000,003 bytes; a spec may have at most 5,000,000", None)
    assert big.stat().st_size == 6_000_003


def test_fmt_still_quotes(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("layers: {a: {units: ${w}}, b: {units: ${w}}}\n")
    code, output, _ = graphspec("fmt", path)
    assert code == 0, output
    assert path.read_text() == 'layers: {a: {units: "${w}"}, b: {units: "${w}"}}\n'


# --- sizes known at validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "shown"),
    [("[30000000]", "30,000,000"), ("[100000000000000000000000000]", "100,000,000,000,000,000,000,000,000")],
)
def test_an_input_too_large_per_sample_is_refused(tmp_path, shape, shown):
    (tmp_path / "s.yaml").write_text(spec(f"inputs: {{x: {{shape: {shape}}}}}\n{DENSE}"))
    code, output, peak = graphspec("validate", tmp_path / "s.yaml")
    refused(
        code,
        output,
        peak,
        f"input 'x' has {shown} elements per sample, over the limit of 10,000,000",
        "elements",
    )
    assert output.startswith(str(tmp_path / "s.yaml") + ":3:21: error:")


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ("{op: tile, repeats: [1000000000], in: x}", "tile with this repeats makes at least 1,000,000,000"),
        ("{op: broadcast_to, shape: [1000, 1000000], in: x}", "broadcast_to with this shape makes at least"),
        ("{op: one_hot, num_classes: 1000000000, in: x}", "one_hot with this num_classes makes at least"),
        ("{op: pad, pad_width: [[0, 0], [0, 1000000000]], in: x}", "pad with this pad_width makes at least"),
        ("{op: repeat, repeats: 1000000000, in: x}", "repeat with this repeats makes at least"),
        ("{op: reshape, newshape: [-1, 100000, 100000], in: x}", "reshape with this newshape makes at least"),
    ],
)
def test_an_op_whose_arguments_imply_a_huge_output_is_refused(tmp_path, node, message):
    (tmp_path / "s.yaml").write_text(
        spec(f"inputs: {{x: {{shape: [4], dtype: int32}}}}\nlayers:\n  y: {node}\n" + OUTPUT)
    )
    code, output, peak = graphspec("validate", tmp_path / "s.yaml")
    refused(code, output, peak, f"op node 'y': {message}", "elements")
    assert ":5:" in output.splitlines()[0]


def test_the_elements_limit_is_raised_from_the_command_line(tmp_path):
    (tmp_path / "s.yaml").write_text(spec(f"inputs: {{x: {{shape: [30000000]}}}}\n{DENSE}"))
    code, output, _ = graphspec("--limit", "elements=40000000", "validate", tmp_path / "s.yaml")
    assert code == 0, output


def test_a_grid_too_large_is_refused_at_validation(tmp_path):
    (tmp_path / "s.yaml").write_text(
        spec(
            """
            inputs: {x: {shape: [4]}}
            layers: {y: {type: Dense, units: "${w}", in: x}}
            outputs: {y: {loss: mse}}
            search:
              metric: loss
              sampler: grid
              params:
                lr: {type: categorical, choices: [0.1, 0.01]}
                w: {type: int, low: 1, high: 10000000000}
            """,
            params="{w: 4, lr: 0.1}",
        )
    )
    code, output, peak = graphspec("validate", tmp_path / "s.yaml")
    refused(code, output, peak, "search param 'w' takes the grid to 20,000,000,000 points", "grid")


@pytest.mark.parametrize(
    ("filepath", "message", "limit"),
    [
        ("ck/{epoch:1000000000d}.keras", "is 1,000,000,000 characters wide, over the limit of 100", "width"),
        ("ck/{epoch:>1000000000}.keras", "the field {epoch:>1000000000} is not one a path may hold", None),
        ("ck/{epoch.__class__.__mro__}.keras", "the field {epoch.__class__.__mro__} is not one", None),
        ("ck/{epoch!r}.keras", "the field {epoch!r} is not one a path may hold", None),
    ],
)
def test_path_formats_hold_only_plain_epoch_and_metric_fields(tmp_path, filepath, message, limit):
    (tmp_path / "s.yaml").write_text(
        spec(
            f"inputs: {{x: {{shape: [4]}}}}\n{DENSE}train:\n  callbacks:\n"
            f'    - {{type: ModelCheckpoint, filepath: "{filepath}"}}\n'
        )
    )
    code, output, peak = graphspec("validate", tmp_path / "s.yaml")
    refused(code, output, peak, message, limit)
    assert ":8:41: error: callback ModelCheckpoint: argument 'filepath'" in output.splitlines()[0]


def test_documented_path_fields_validate(tmp_path):
    (tmp_path / "s.yaml").write_text(
        spec(
            f"inputs: {{x: {{shape: [4]}}}}\n{DENSE}train:\n  callbacks:\n"
            '    - {type: ModelCheckpoint, filepath: "ck/{epoch:02d}-{val_loss:.4f}.keras"}\n'
        )
    )
    code, output, _ = graphspec("validate", tmp_path / "s.yaml")
    assert code == 0, output


# --- what build computes ----------------------------------------------------------------------

BUILD_PEAK_RSS_MB = 1200  # a build of a small spec takes about 800 MB, TensorFlow's own


def test_build_leaves_a_layer_too_large_to_compute_uncomputed(tmp_path):
    """build computes a node written with an argument Keras reads only when it computes
    (Resizing's interpolation) on ones shaped like its input and output: 6,000 by 6,000 pixels
    (864 MB for two images; computed, the peak is 1.6 GB) are over MAX_SCRATCH_VALUES, so the
    node is left to training, and build's memory stays TensorFlow's own."""
    node = "{type: Resizing, height: 6000, width: 6000, interpolation: bicubic, in: x}"
    (tmp_path / "s.yaml").write_text(
        spec(f"inputs: {{x: {{shape: [8, 8, 3]}}}}\nlayers:\n  y: {node}\n" + OUTPUT)
    )
    code, output, peak = graphspec("build", tmp_path / "s.yaml", timeout=300)
    assert code == 0, output
    assert "6000, 6000" in output
    assert peak < BUILD_PEAK_RSS_MB, f"peak RSS {peak:.0f} MB"


# --- code arguments of ops --------------------------------------------------------------------


def test_an_op_with_a_code_argument_is_refused_at_its_line(tmp_path):
    (tmp_path / "s.yaml").write_text(
        spec("inputs: {x: {shape: [4]}}\nlayers:\n  y: {op: jvp, fun: print, in: [x, x]}\n" + OUTPUT)
    )
    code, output, peak = graphspec("validate", tmp_path / "s.yaml")
    refused(code, output, peak, "op node 'y' names 'jvp', which", None)
    assert ":5:" in output.splitlines()[0]


def test_op_refusal_names_the_code_argument():
    from graphspec import policy

    entry = {"args": ["fun", "primals", "tangents", "has_aux"]}
    argument, why = policy.op_refusal("jvp", entry)
    assert argument == "fun"
    assert why.message == "its argument 'fun' runs code, and a spec cannot run code"
    assert policy.op_refusal("tile", {"args": ["x", "repeats"]}) is None


# --- the option itself --------------------------------------------------------------------------


def test_an_unknown_or_bad_limit_is_refused(tmp_path):
    (tmp_path / "s.yaml").write_text(spec(f"inputs: {{x: {{shape: [4]}}}}\n{DENSE}"))
    code, output, _ = graphspec("--limit", "files=5", "validate", tmp_path / "s.yaml")
    assert code == 2 and "unknown limit 'files'" in output
    assert (
        "limits: bytes, values, nodes, text, elements, grid, width, model-bytes, model-weights, "
        "model-depth, model-containers, model-objects" in output
    )
    code, output, _ = graphspec("--limit", "bytes=²", "validate", tmp_path / "s.yaml")
    assert code == 2 and "the limit must be a positive integer" in output


def test_one_budget_spans_a_library_load_and_not_the_next():
    import graphspec as library

    text = spec(f"inputs: {{x: {{shape: [4]}}}}\n{DENSE}")
    budget.activate(budget.Budget({"bytes": 10**9}))
    try:
        library.load(text)
        library.load(text)
        assert budget.current().spent["values"] > 0
    finally:
        budget.activate(None)
    with budget.ensure() as first:
        library.load(text)
    with budget.ensure() as second:
        assert second is not first and second.spent["values"] == 0


# --- memory stays flat once the limit refuses ---------------------------------------------------


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(levels=st.integers(min_value=24, max_value=60))
def test_memory_stays_flat_as_doubling_grows(tmp_path, levels):
    # Past 2^23 characters every size is refused at the same point, so the peak is the same
    # whether the strings would reach 16 MB or 2^60 bytes.
    path = tmp_path / f"d{levels}.yaml"
    path.write_text(doubling(levels))
    code, output, peak = graphspec("validate", path)
    refused(code, output, peak, "characters of strings made by params", "text")
    assert peak < 150, f"peak RSS {peak:.0f} MB at {levels} levels"


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(exponent=st.integers(min_value=8, max_value=30))
def test_memory_stays_flat_as_a_tile_grows(tmp_path, exponent):
    path = tmp_path / f"t{exponent}.yaml"
    path.write_text(
        spec(
            f"inputs: {{x: {{shape: [4]}}}}\nlayers:\n  y: {{op: tile, repeats: [{10**exponent}], in: x}}\n"
            "outputs: {y: {loss: mse}}\n"
        )
    )
    code, output, peak = graphspec("validate", path)
    refused(code, output, peak, "tile with this repeats makes at least", "elements")
    assert peak < 150, f"peak RSS {peak:.0f} MB at 10^{exponent}"


def test_each_tune_trial_loads_with_a_fresh_budget_under_the_command_limits():
    import threading

    import graphspec as library

    text = spec(f"inputs: {{x: {{shape: [4]}}}}\n{DENSE}")
    command = budget.Budget({"values": 100})
    budget.activate(command)
    try:
        for _ in range(20):  # 20 loads of about 30 values: over 100 if they added up
            with budget.fresh() as trial:
                library.load(text)
                assert trial.limits["values"] == 100 and 0 < trial.spent["values"] <= 100
        assert command.spent["values"] == 0
        seen = []
        thread = threading.Thread(target=lambda: seen.append(budget.current()))
        thread.start()
        thread.join()
        assert seen == [command]  # optuna's threads charge the command's budget
    finally:
        budget.activate(None)


def test_the_nodes_limit_is_the_blocks_limit_and_is_raised_from_the_command_line(tmp_path):
    (tmp_path / "s.yaml").write_text(
        spec(
            """
            inputs: {x: {shape: [4]}}
            blocks:
              b: {in: x, layers: {d: {type: ReLU, in: x}}, out: d}
            layers:
              r: {block: b, repeat: 150000, in: x}
            outputs: {r: {loss: mse}}
            """
        )
    )
    code, output, peak = graphspec("validate", tmp_path / "s.yaml")
    refused(
        code,
        output,
        peak,
        "layer 'r' expands to about 150,000 nodes; a spec may have at most 100,000",
        "nodes",
    )
    code, output, _ = graphspec("--limit", "nodes=50", "validate", tmp_path / "s.yaml")
    assert "a spec may have at most 50" in output

"""Every limit is checked before the work it bounds, in time linear in the input: each hostile
input below ends in one located error (exit status 2) or a fast success. No test here times
anything (bench/bench_limits.py does); where a regression would exhaust memory rather than
fail, the test runs under a memory cap so that it fails instead.
"""

from __future__ import annotations

import contextlib
import io
import resource
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec.arrays import load_arrays
from graphspec.cli import app
from graphspec.errors import SpecErrors
from graphspec.spec import files as files_module

runner = CliRunner()

MLP = "specs/book_mlp.yaml"  # declares the params features, hidden and classes
TINY = """
graphspec: 1
name: tiny
inputs: {x: {shape: [4]}}
layers: {y: {type: Dense, units: 1, in: x}}
outputs: {y: {loss: mse}}
"""


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def first_line(result) -> str:
    assert result.exit_code == 2, result.output
    return result.stderr.splitlines()[0]


@contextlib.contextmanager
def memory_cap(extra_bytes: int = 2 << 30):
    """Address space capped at what the process has now plus `extra_bytes`: a regression that
    builds what a limit should refuse fails with MemoryError instead of filling the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * resource.getpagesize()
    cap = used + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def laughs(levels: int, width: int = 9) -> list[str]:
    """YAML lines `l0: &l0 [...]`, `l1: &l1 [*l0, *l0, ...]`, ...: `width ** levels` strings in all."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(['"lol"'] * width) + "]"]
    for previous, name in zip(names, names[1:], strict=False):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * width) + "]")
    return lines


# --- aliases, size, long lines ------------------------------------------------------------------


def test_an_alias_bomb_of_10_to_the_30_values_is_refused_from_its_text(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text("graphspec: 1\nname: bomb\n" + "\n".join(laughs(30, width=10)) + "\n")
    assert first_line(run("validate", path)) == (
        f"{path}:8:5: error: document expands to more than 1,000,000 values (aliases included)"
    )


def test_a_recursive_anchor_is_refused_at_the_anchor(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("graphspec: 1\nname: loop\ninputs: &a {x: [*a]}\n")
    assert first_line(run("validate", path)) == (
        f"{path}:3:9: error: this value contains an alias to itself; a spec's values cannot be recursive"
    )


def test_a_250_mb_file_is_refused_without_being_read(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as handle:
        handle.truncate(250_000_000)  # sparse: no disk is used
    tracemalloc.start()
    try:
        result = run("validate", path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first_line(result) == (
        f"{path}:1:1: error: file is 250,000,000 bytes; a spec may have at most 5,000,000"
    )
    assert peak < 20_000_000


def test_a_long_source_line_is_quoted_by_its_first_200_characters(tmp_path):
    path = tmp_path / "long.yaml"
    line = "layers: {y: {type: Dense, units: 1, in: x, doc: " + "p" * 300 + ", bogus: 1}}"
    path.write_text(
        f"graphspec: 1\nname: long\ninputs: {{x: {{shape: [4]}}}}\n{line}\noutputs: {{y: {{}}}}\n"
    )
    result = run("validate", path)
    lines = result.stderr.splitlines()
    assert first_line(result) == f"{path}:4:351: error: layer 'y': Dense has no argument 'bogus'"
    assert lines[1] == "  " + line[:200] + "\u2026"
    assert lines[2] == "  " + " " * 200 + "^"


# --- --set values -------------------------------------------------------------------------------


def test_a_recursive_alias_in_a_set_value_is_refused_at_the_set_line():
    assert first_line(run("fingerprint", MLP, "--set", "hidden=&a [*a]")) == (
        "--set:1:8: error: this value contains an alias to itself; a spec's values cannot be recursive"
    )


def test_a_recursive_alias_in_a_set_mapping_is_refused_at_its_column():
    result = run("validate", MLP, "--set", "classes=3", "--set", "layers.hidden1.activation={a: &a [*a]}")
    assert first_line(result) == (
        "--set:2:31: error: this value contains an alias to itself; a spec's values cannot be recursive"
    )


def test_an_alias_bomb_in_a_set_value_is_refused_at_the_set_line():
    # Seven levels of ten: ten million strings, written in 300 characters.
    bomb = "&a [" + ", ".join(["lol"] * 10) + "]"
    for previous, name in zip("abcdef", "bcdefg", strict=True):
        bomb = f"&{name} [{bomb}, " + ", ".join([f"*{previous}"] * 9) + "]"
    assert first_line(run("fingerprint", MLP, "--set", f"hidden={bomb}")) == (
        "--set:1:12: error: document expands to more than 1,000,000 values (aliases included)"
    )


def test_a_python_tag_in_a_set_value_is_refused_at_the_set_line():
    assert first_line(run("validate", MLP, "--set", "hidden={x: !!python/object:os.system 1}")) == (
        "--set:1:12: error: YAML tag 'tag:yaml.org,2002:python/object:os.system' is not allowed: "
        "a spec is data and cannot construct objects"
    )


# --- params ---------------------------------------------------------------------------------------


def test_a_large_param_used_in_many_places_is_refused_at_the_use_that_passes_the_limit(tmp_path):
    path = tmp_path / "params.yaml"
    params = ["  " + line for line in laughs(5)]  # l4 holds 66,430 values
    layers = [f"  d{i}: {{type: Dense, units: 1, in: x, kernel_initializer: ${{l4}}}}" for i in range(20)]
    path.write_text(
        "\n".join(
            ["graphspec: 1", "name: params", "params:", *params, "inputs: {x: {shape: [4]}}", "layers:"]
            + layers
            + ["outputs: {d0: {loss: mse}}"]
        )
        + "\n"
    )
    assert first_line(run("fingerprint", path)) == (
        f"{path}:26:59: error: params may add at most 1,000,000 values to a spec; '${{l4}}' holds "
        "66,430 and this use takes the total past that"
    )


def test_a_large_param_in_a_repeated_block_is_refused_at_the_block_line(tmp_path):
    path = tmp_path / "block.yaml"
    params = ["  " + line for line in laughs(5)]
    path.write_text(
        "\n".join(
            ["graphspec: 1", "name: block", "params:", *params, "inputs: {x: {shape: [4]}}"]
            + [
                "blocks:",
                "  b:",
                "    params: {init}",
                "    in: x",
                "    layers: {d: {type: Dense, units: 1, in: x, kernel_initializer: ${init}}}",
                "    out: d",
                "layers: {r: {block: b, repeat: 40, init: ${l4}, in: x}}",
                "outputs: {r: {loss: mse}}",
            ]
        )
        + "\n"
    )
    result = run("fingerprint", path)
    assert first_line(result) == (
        f"{path}:14:68: error: params may add at most 1,000,000 values to a spec; '${{init}}' holds "
        "66,430 and this use takes the total past that"
    )
    assert f"  note: in copy 15 of 'r' (block 'b', repeat 40), at {path}:16:10" in result.stderr


# --- repeats and nested specs ----------------------------------------------------------------------


def test_a_repeat_of_a_billion_is_refused_from_its_estimate(write_spec):
    path = write_spec(
        """
        graphspec: 1
        name: big
        inputs: {x: {shape: [4]}}
        blocks:
          b: {in: x, layers: {d: {type: Dense, units: 1, in: x}}, out: d}
        layers:
          r: {block: b, repeat: 1000000000, in: x}
        outputs: {r: {loss: mse}}
        """
    )
    with memory_cap():
        result = run("validate", path)
    assert first_line(result) == (
        f"{path}:7:3: error: layer 'r' expands to about 1,000,000,000 nodes; a spec may have at most 100,000"
    )


def write_fan_out(folder: Path, levels: int, fan_out: int = 4) -> Path:
    """`top.yaml` uses `l1.yaml` `fan_out` times, which uses `l2.yaml` as often, and so on: the
    last level is one Dense layer, so the top stands for `fan_out ** levels` nodes."""
    for level in range(1, levels + 1):
        lines = ["graphspec: 1", f"name: l{level}", "inputs: {x: {shape: [4]}}", "layers:"]
        if level == levels:
            lines += ["  y: {type: Dense, units: 4, in: x}", "outputs: {y: {}}"]
        else:
            previous = "x"
            for use in range(fan_out):
                lines.append(f"  u{use}: {{spec: l{level + 1}.yaml, in: {previous}}}")
                previous = f"u{use}"
            lines.append(f"outputs: {{{previous}: {{}}}}")
        (folder / f"l{level}.yaml").write_text("\n".join(lines) + "\n")
    top = folder / "top.yaml"
    top.write_text(
        "\n".join(
            ["graphspec: 1", "name: top", "inputs: {x: {shape: [4]}}", "layers:"]
            + [f"  u{u}: {{spec: l1.yaml, in: {'x' if u == 0 else f'u{u - 1}'}}}" for u in range(fan_out)]
            + [f"outputs: {{u{fan_out - 1}: {{loss: mse}}}}"]
        )
        + "\n"
    )
    return top


def test_nested_specs_fanning_out_past_the_node_limit_are_refused_at_the_spec_line(tmp_path):
    top = write_fan_out(tmp_path, levels=9)  # l1: 4^8 = 65,536 nodes, under the limit; top: 4^9
    with memory_cap():
        result = run("validate", top)
    assert first_line(result) == (
        f"{top}:6:14: error: layer 'u1' uses spec 'l1.yaml' of 65,536 nodes, which brings this spec "
        "to 131,072; a spec may have at most 100,000 nodes, each nested spec's counted at each use"
    )


def test_a_nested_spec_used_many_times_is_read_once(tmp_path, monkeypatch):
    top = write_fan_out(tmp_path, levels=4)  # 4^4 = 256 nodes
    reads: list[str] = []
    read = files_module.Files.read

    def counted(self, path):
        reads.append(Path(path).name)
        return read(self, path)

    monkeypatch.setattr(files_module.Files, "read", counted)
    result = run("validate", top)
    assert result.exit_code == 0, result.output
    assert sorted(reads) == ["l1.yaml", "l2.yaml", "l3.yaml", "l4.yaml", "top.yaml"]


# --- hints, plots ------------------------------------------------------------------------------------


def test_two_thousand_dangling_references_get_hints_where_they_are_shown(tmp_path):
    path = tmp_path / "dangling.yaml"
    layers = [f"  layer_{i:04d}: {{type: Dense, units: 1, in: lauer_{i:04d}x}}" for i in range(2000)]
    path.write_text(
        "\n".join(["graphspec: 1", "name: dangling", "inputs: {x: {shape: [4]}}", "layers:", *layers])
        + "\noutputs: {layer_0000: {loss: mse}}\n"
    )
    result = run("validate", path)
    lines = result.stderr.splitlines()
    assert first_line(result) == (
        f"{path}:5:43: error: layer 'layer_0000' reads 'lauer_0000x', which is not defined"
    )
    assert lines[3] == "  hint: did you mean 'layer_0000'?"
    assert lines[-2:] == ["... and 1950 more", "2000 errors"]


def test_a_plot_of_2000_block_copies_groups_them_in_one_cluster(tmp_path, write_spec):
    path = write_spec(
        """
        graphspec: 1
        name: copies
        inputs: {x: {shape: [4]}}
        blocks:
          b: {in: x, layers: {d: {type: Dense, units: 4, in: x}}, out: d}
        layers:
          r: {block: b, repeat: 2000, in: x}
        outputs: {r: {loss: mse}}
        """
    )
    out = tmp_path / "copies.dot"
    result = run("plot", path, "-o", out, "--no-collapse")
    assert result.exit_code == 0, result.output
    dot = out.read_text()
    assert dot.count('label="r ×2000"') == 1
    assert '"r.1999.d"' in dot


# --- .npz data -------------------------------------------------------------------------------------


def npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def npy_header(shape: tuple, descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_an_array_whose_header_disagrees_with_the_archive_is_refused(tmp_path, write_spec):
    data = npz(tmp_path / "forged.npz", {"x.npy": npy_header((1_000_000, 4)) + bytes(16)})
    result = run("train", write_spec(TINY), "--data", data, "--runs-dir", tmp_path / "runs")
    assert first_line(result) == (
        f"error: array 'x' in {data} has a header for 16,000,000 bytes of float32 (1000000, 4), but "
        "the archive holds 16: the file is damaged, or was not written by NumPy"
    )


def test_an_array_of_python_objects_is_refused_from_its_header(tmp_path, write_spec):
    data = tmp_path / "objects.npz"
    np.savez(data, x=np.array([{"a": 1}], dtype=object), allow_pickle=True)
    result = run("train", write_spec(TINY), "--data", data, "--runs-dir", tmp_path / "runs")
    assert first_line(result) == (
        f"error: array 'x' in {data} has dtype object: arrays of Python objects are not read, since "
        "reading them would run pickle"
    )


def test_an_array_of_the_wrong_shape_is_refused_from_its_header_before_it_is_read(
    tmp_path, write_spec, monkeypatch
):
    # 40 MB of float32 zeros that compress to 40 KB, for an input of shape (N, 4).
    data = tmp_path / "bomb.npz"
    with zipfile.ZipFile(data, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w") as member:
            member.write(npy_header((10, 1000, 1000)))
            for _ in range(10):
                member.write(bytes(4_000_000))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("an array was read"))
    with pytest.raises(SpecErrors) as caught:
        load_arrays(data, graphspec.load(write_spec(TINY)))
    assert caught.value.diagnostics.render().splitlines()[0] == (
        f"error: array 'x' in {data} has shape (10, 1000, 1000); input 'x' takes (N, 4)"
    )

"""A model file knows its spec: a .keras written by graphspec carries the spec files it was built
from (graphspec/archive.py), which fingerprint, diff and export read, and Keras ignores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec import archive
from graphspec.cli import app
from graphspec.fingerprint import fingerprint
from graphspec.keras.save import save_model
from graphspec.spec.source import MAX_BYTES

runner = CliRunner()

# A spec with params, a comment, an included block file (CRLF line endings) and a nested spec.
OUTER = """\
# The outer model: its comments come back too.
graphspec: 1
name: outer
params: {width: 8}
include: lib/blocks.yaml
inputs: {x: {shape: [4]}}
layers:
  enc: {spec: parts/enc.yaml, in: x, params: {units: "${width}"}}   # nested
  head: {block: head, in: enc}
outputs: {head: {loss: mse}}
"""
ENC = """\
graphspec: 1
name: enc
params: {units: 3}
inputs: {x: {shape: [4]}}
layers: {h: {type: Dense, units: "${units}", activation: relu, in: x}}
outputs: {h: {}}
"""
BLOCKS = "blocks:\r\n  head:\r\n    in: x\r\n    layers: {out: {type: Dense, units: 1, in: x}}\r\n" + (
    "    out: out\r\n"
)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """outer.yaml with parts/enc.yaml and lib/blocks.yaml beside it, in their own folder."""
    folder = tmp_path / "src"
    (folder / "parts").mkdir(parents=True)
    (folder / "lib").mkdir()
    (folder / "outer.yaml").write_bytes(OUTER.encode())
    (folder / "parts" / "enc.yaml").write_bytes(ENC.encode())
    (folder / "lib" / "blocks.yaml").write_bytes(BLOCKS.encode())
    return folder / "outer.yaml"


def build(spec: Path, out: Path, *overrides: str) -> Path:
    sets = [arg for value in overrides for arg in ("--set", value)]
    result = runner.invoke(app, ["build", str(spec), "-o", str(out), *sets])
    assert result.exit_code == 0, result.output
    return out


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_a_built_model_has_the_fingerprint_of_its_spec_and_overrides(spec, tmp_path):
    model = build(spec, tmp_path / "m.keras", "width=5")
    from_model = run("fingerprint", model, "--json")
    from_spec = run("fingerprint", spec, "--set", "width=5", "--json")
    assert from_model.exit_code == 0, from_model.output
    assert json.loads(from_model.stdout)["architecture"] == json.loads(from_spec.stdout)["architecture"]
    assert json.loads(from_model.stdout)["training"] == json.loads(from_spec.stdout)["training"]
    assert json.loads(run("fingerprint", spec, "--json").stdout) != json.loads(from_spec.stdout)


def test_the_manifest_records_files_overrides_and_fingerprints(spec, tmp_path):
    model = build(spec, tmp_path / "m.keras", "width=5")
    with zipfile.ZipFile(model) as zf:
        manifest = json.loads(zf.read(archive.MANIFEST))
        names = zf.namelist()
    assert manifest["format"] == archive.FORMAT and manifest["graphspec"] == graphspec.__version__
    assert manifest["spec"] == "outer.yaml" and manifest["overrides"] == ["width=5"]
    assert sorted(manifest["files"]) == ["lib/blocks.yaml", "outer.yaml", "parts/enc.yaml"]
    assert manifest["exact"] is True
    expected = fingerprint(graphspec.load(spec, ["width=5"]))
    assert manifest["fingerprint"]["architecture"] == expected.architecture
    assert "graphspec/resolved/spec.yaml" in names and "graphspec/resolved/spec/enc.yaml" in names


def test_diff_of_a_model_and_its_spec_says_no_change(spec, tmp_path):
    model = build(spec, tmp_path / "m.keras")
    result = run("diff", model, spec)
    assert result.exit_code == 0, result.output
    assert run("diff", model, build(spec, tmp_path / "n.keras")).exit_code == 0


def test_diff_of_a_model_and_its_edited_spec_says_what_changed(spec, tmp_path):
    model = build(spec, tmp_path / "m.keras")
    enc = spec.parent / "parts" / "enc.yaml"
    enc.write_text(ENC.replace("relu", "tanh"))
    result = run("diff", model, spec)
    assert result.exit_code == 1
    assert "~ enc: spec parts/enc.yaml" in result.stdout
    spec.write_text(OUTER.replace("{width: 8}", "{width: 9}"))
    enc.write_text(ENC)
    assert run("diff", model, spec).exit_code == 1
    assert run("diff", model, spec, "--set", "width=8").exit_code == 0


def test_export_writes_the_original_files_back_byte_for_byte(spec, tmp_path):
    model = build(spec, tmp_path / "m.keras", "width=5")
    out = tmp_path / "out" / "again.yaml"
    result = run("export", model, "-o", out)
    assert result.exit_code == 0, result.output
    assert "note: the model was built from this spec with --set width=5" in result.stderr
    assert out.read_bytes() == spec.read_bytes()
    assert (out.parent / "parts" / "enc.yaml").read_bytes() == ENC.encode()
    assert (out.parent / "lib" / "blocks.yaml").read_bytes() == BLOCKS.encode()
    assert sorted(str(p.relative_to(out.parent)) for p in out.parent.rglob("*.yaml")) == [
        "again.yaml",
        "lib/blocks.yaml",
        "parts/enc.yaml",
    ]


def test_export_without_output_prints_a_single_file_spec_exactly(tmp_path, write_spec):
    text = "graphspec: 1   # tiny\nname: tiny\ninputs: {x: {shape: [4]}}\n\nlayers:\n" + (
        "  y: {type: Dense, units: 2, in: x}  # the only layer\noutputs: {y: {loss: mse}}\n"
    )
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    result = run("export", build(path, tmp_path / "t.keras"))
    assert result.exit_code == 0, result.output
    assert result.stdout == text


def test_stock_keras_loads_the_file_and_predicts_the_same(spec, tmp_path):
    loaded = graphspec.load(spec)
    model = loaded.build()
    path = tmp_path / "m.keras"
    save_model(model, path, loaded)
    assert archive.read(path) is not None
    restored = keras.models.load_model(path)
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    np.testing.assert_array_equal(
        np.asarray(restored.predict({"x": x}, verbose=0)["head"]),
        np.asarray(model.predict({"x": x}, verbose=0)["head"]),
    )


def test_a_spec_edited_after_loading_is_recorded_as_it_was_loaded(spec, tmp_path):
    loaded = graphspec.load(spec)
    spec.write_text(OUTER.replace("{width: 8}", "{width: 99}"))
    files = {
        name[len(archive.FILES) :]: data
        for name, data in archive.members(loaded).items()
        if name.startswith(archive.FILES)
    }
    assert files["outer.yaml"] == OUTER.encode()
    assert files["lib/blocks.yaml"] == BLOCKS.encode()  # unchanged on disk: its bytes, CRLF kept


def test_fingerprint_and_diff_of_a_model_file_never_import_tensorflow_or_keras(spec, tmp_path):
    model = build(spec, tmp_path / "m.keras")
    # Stand-in packages that fail on import: the commands must finish without touching them.
    for name in ("tensorflow", "keras"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} was imported')")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for args in (["fingerprint", model], ["diff", model, spec]):
        result = subprocess.run(
            [sys.executable, "-m", "graphspec", *map(str, args)], capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ untrusted archives


def hostile(good: Path, target: Path, files: dict[str, bytes], manifest: dict | None = None) -> Path:
    """A copy of `good`'s Keras members with graphspec members made of `files`."""
    manifest = manifest or {
        "format": archive.FORMAT,
        "graphspec": graphspec.__version__,
        "spec": next(iter(files)),
        "files": {n: {"bytes": len(d), "sha256": archive._sha256(d)} for n, d in files.items()},
    }
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in source.infolist():
            if not info.filename.startswith(archive.PREFIX):
                zf.writestr(info, source.read(info))
        zf.writestr(archive.MANIFEST, json.dumps(manifest))
        for name, data in files.items():
            zf.writestr(archive.FILES + name, data)
    return target


@pytest.mark.parametrize(
    "files",
    [
        {"top.yaml": b"graphspec: 1\n", "../evil.yaml": b"x: 1\n"},
        {"/tmp/evil.yaml": b"x: 1\n"},
        {"top.yaml": b"graphspec: 1\n", "a/./b.yaml": b"x: 1\n"},
        {"top.yaml": b"graphspec: 1\n", "run.sh": b"rm -rf ~\n"},
    ],
    ids=["dot-dot", "absolute", "dot", "not-a-spec"],
)
def test_an_archive_with_an_unsafe_name_is_refused_and_nothing_is_written(spec, tmp_path, files):
    bad = hostile(build(spec, tmp_path / "m.keras"), tmp_path / "bad.keras", files)
    out = tmp_path / "out"
    for args in (["export", bad, "-o", out / "s.yaml"], ["fingerprint", bad]):
        result = run(*args)
        assert result.exit_code == 2
        assert "the spec it records is damaged or unsafe" in result.stderr
    assert not out.exists() and not (tmp_path / "evil.yaml").exists()


def test_an_archive_member_declaring_too_many_bytes_is_refused_before_it_is_read(spec, tmp_path):
    large = b"#" * (MAX_BYTES + 1)  # deflates to a few kB
    bad = hostile(build(spec, tmp_path / "m.keras"), tmp_path / "bad.keras", {"top.yaml": large})
    result = run("export", bad, "-o", tmp_path / "out" / "s.yaml")
    assert result.exit_code == 2
    assert f"member 'graphspec/files/top.yaml' declares {len(large):,} bytes" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_archive_member_that_is_a_link_is_refused(spec, tmp_path):
    bad = tmp_path / "bad.keras"
    hostile(build(spec, tmp_path / "m.keras"), bad, {"top.yaml": b"graphspec: 1\n"})
    with zipfile.ZipFile(bad, "a") as zf:
        link = zipfile.ZipInfo(archive.FILES + "link.yaml")
        link.external_attr = (0o120777) << 16  # a symbolic link to /etc/passwd
        zf.writestr(link, "/etc/passwd")
    result = run("fingerprint", bad)
    assert result.exit_code == 2
    assert "'graphspec/files/link.yaml' is not a plain file" in result.stderr


def test_an_archive_whose_file_differs_from_its_manifest_is_refused(spec, tmp_path):
    good = build(spec, tmp_path / "m.keras")
    manifest = json.loads(zipfile.ZipFile(good).read(archive.MANIFEST))
    manifest["files"]["outer.yaml"]["sha256"] = "0" * 64
    files = {"outer.yaml": OUTER.encode()}
    manifest["files"] = {"outer.yaml": manifest["files"]["outer.yaml"]}
    result = run("fingerprint", hostile(good, tmp_path / "bad.keras", files, manifest))
    assert result.exit_code == 2
    assert "outer.yaml is not the file the manifest describes" in result.stderr


def test_a_spec_in_an_archive_cannot_read_files_outside_it(spec, tmp_path):
    (tmp_path / "secret.yaml").write_text("graphspec: 1\n")
    top = b"graphspec: 1\nname: t\ninputs: {x: {shape: [4]}}\nlayers: {h: {spec: ../secret.yaml, in: x}}\n"
    bad = hostile(
        build(spec, tmp_path / "m.keras"), tmp_path / "bad.keras", {"outer.yaml": top + b"outputs: {h: {}}\n"}
    )
    result = run("fingerprint", bad)
    assert result.exit_code == 2
    assert "is outside the root folder" in result.stderr


# ------------------------------------------------------------------ models made elsewhere


@pytest.fixture
def foreign(tmp_path) -> Path:
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, name="y")(inputs))
    model.save(tmp_path / "foreign.keras")
    return tmp_path / "foreign.keras"


def test_fingerprint_of_a_model_keras_saved_says_it_has_no_spec(foreign):
    result = run("fingerprint", foreign)
    assert result.exit_code == 2
    assert f"error: {foreign} was not written by graphspec" in result.stderr
    assert f"graphspec export {foreign} -o spec.yaml" in result.stderr


def test_export_of_a_model_keras_saved_reconstructs_a_spec(foreign):
    result = run("export", foreign)
    assert result.exit_code == 0, result.output
    exported = graphspec.load(result.stdout)
    assert exported.spec.layers["y"].type == "Dense"


def test_a_model_file_that_is_not_a_zip_is_a_clear_error(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"not a zip")
    result = run("fingerprint", path)
    assert result.exit_code == 2
    assert "is not a Keras model file (.keras)" in result.stderr


def test_a_training_run_and_its_checkpoints_carry_the_spec(spec, tmp_path):
    from graphspec.keras.train import DataSource, train

    text = OUTER.replace(
        "outputs:",
        "train:\n  epochs: 1\n  samples: 8\n  batch_size: 8\n  validation_split: 0.25\n"
        "  callbacks:\n    - {type: ModelCheckpoint, filepath: best.keras}\noutputs:",
    )
    spec.write_text(text)
    loaded = graphspec.load(spec)
    result = train(loaded, DataSource(synthetic=True), out=tmp_path / "run", verbose=0)
    expected = fingerprint(loaded)
    for name in ("model.keras", "best.keras"):
        assert fingerprint(archive.load_embedded(result.run_dir / name)) == expected
    assert archive.read(result.run_dir / "model.keras").files["outer.yaml"] == text.encode()


def test_export_reconstruct_exports_the_model_instead_of_the_recorded_spec(tmp_path):
    text = "graphspec: 1  # tiny\nname: tiny\ninputs: {x: {shape: [4]}}\n" + (
        "layers: {y: {type: Dense, units: 2, in: x}}\noutputs: {y: {loss: mse}}\n"
    )
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    result = run("export", build(path, tmp_path / "t.keras"), "--reconstruct")
    assert result.exit_code == 0, result.output
    assert "# tiny" not in result.stdout
    assert graphspec.load(result.stdout).spec.layers["y"].args["units"] == 2


def test_export_without_output_of_a_multi_file_spec_asks_for_one(spec, tmp_path):
    result = run("export", build(spec, tmp_path / "m.keras"))
    assert result.exit_code == 2
    assert "was built from a spec that reads other files" in result.stderr
    assert "hint: give --output FILE.yaml to write them beside it" in result.stderr


def test_export_through_a_link_leading_out_of_the_output_folder_is_refused(spec, tmp_path):
    model = build(spec, tmp_path / "m.keras")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "parts").symlink_to(elsewhere)
    result = run("export", model, "-o", out / "again.yaml")
    assert result.exit_code == 2
    assert "a link on its way leads out of" in result.stderr
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in out.iterdir()) == ["parts"]


def test_a_file_of_a_newer_archive_format_is_refused(spec, tmp_path):
    good = build(spec, tmp_path / "m.keras")
    manifest = json.loads(zipfile.ZipFile(good).read(archive.MANIFEST))
    manifest["format"] = "graphspec-archive/2"
    files = {"outer.yaml": OUTER.encode()}
    manifest["files"] = {"outer.yaml": manifest["files"]["outer.yaml"]}
    result = run("fingerprint", hostile(good, tmp_path / "new.keras", files, manifest))
    assert result.exit_code == 2
    assert "records its spec as 'graphspec-archive/2'; this graphspec reads 'graphspec-archive/1'" in (
        result.stderr
    )


def test_a_spec_given_as_text_is_recorded_under_a_name_of_its_own(tmp_path):
    text = "graphspec: 1\nname: t\ninputs: {x: {shape: [4]}}\nlayers: {y: {type: Dense, units: 2, in: x}}\n"
    loaded = graphspec.load(text + "outputs: {y: {loss: mse}}\n", ["layers.y.units=3"])
    path = tmp_path / "members.keras"  # the graphspec members alone: no Keras needed to read them
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in archive.members(loaded).items():
            zf.writestr(name, data)
    embedded = archive.read(path)
    assert embedded.spec == "spec.yaml" and embedded.overrides == ["layers.y.units=3"]
    assert fingerprint(embedded.load()) == fingerprint(loaded)


def test_a_spec_whose_files_cannot_be_recorded_as_they_are_is_recorded_resolved(spec, tmp_path):
    odd = spec.with_name("outer:v2.yaml")  # a colon is refused in an archive's names
    spec.rename(odd)
    loaded = graphspec.load(odd, ["width=5"])
    path = tmp_path / "members.keras"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in archive.members(loaded).items():
            zf.writestr(name, data)
    embedded = archive.read(path)
    assert not embedded.exact and embedded.overrides == [] and embedded.spec == "spec.yaml"
    assert sorted(embedded.files) == ["spec.yaml", "spec/enc.yaml"]
    assert fingerprint(embedded.load()) == fingerprint(loaded)
    assert "this is its resolved spec" in archive.SourceExport(embedded).notes[0]

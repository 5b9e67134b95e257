"""Grants: `--allow-download` and `--allow-read DIR` let a spec name pretrained weights and
KerasHub presets; nothing else can grant them (issue 23).

No network is reachable here: downloads are shown to reach Keras's and KerasHub's own download
functions with the right origin (replaced by a recorder that stops there); reading is tested
with files made here from random models of the same architecture.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec import SpecErrors, policy
from graphspec.cli import app
from graphspec.fingerprint import fingerprint

needs_hub = pytest.mark.skipif(
    importlib.util.find_spec("keras_hub") is None,
    reason="keras_hub is not installed (make hub, or pip install 'graphspec[hub]')",
)

APP = """
graphspec: 1
name: app
params: {weights: null}
inputs: {image: {shape: [32, 32, 3]}}
layers:
  net: {type: applications.MobileNet, include_top: false, alpha: 0.25, weights: '${weights}', in: image}
  pool: {type: GlobalAveragePooling2D, in: net}
outputs: {pool: {}}
"""

BERT = """
graphspec: 1
name: bert_tiny
params: {preset: null}
inputs:
  token_ids: {shape: [8], dtype: int32, range: [0, 20]}
  segment_ids: {shape: [8], dtype: int32, range: [0, 2]}
  padding_mask: {shape: [8], dtype: int32, range: [1, 2]}
layers:
  bert: {type: keras_hub.models.BertBackbone, preset: '${preset}',
         in: {token_ids: token_ids, segment_ids: segment_ids, padding_mask: padding_mask}}
  probs: {type: Dense, units: 2, activation: softmax, in: 'bert[pooled_output]'}
outputs: {probs: {loss: sparse_categorical_crossentropy}}
train: {epochs: 1, batch_size: 4, samples: 8}
"""
BERT_CONFIG = (
    "vocabulary_size: 20, num_layers: 1, num_heads: 2, hidden_dim: 8, intermediate_dim: 16, "
    "max_sequence_length: 8"
)


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def _errors(text: str, grants: policy.Grants | None = None, base=None) -> str:
    with pytest.raises(SpecErrors) as info:
        if base is not None:
            graphspec.load(base, grants=grants)
        else:
            graphspec.load(text, grants=grants)
    return info.value.diagnostics.render()


# --- what a spec cannot do ---------------------------------------------------------------------


def test_without_a_grant_the_refusal_is_at_its_line_and_names_the_flag(tmp_path):
    spec = tmp_path / "app.yaml"
    spec.write_text(APP)
    result = run("validate", str(spec), "--set", "weights=imagenet")
    assert result.exit_code == 2
    assert f"{spec}:7:" in result.output
    assert "--allow-download" in result.output
    (tmp_path / "w.weights.h5").write_bytes(b"")
    result = run("validate", str(spec), "--set", "weights=w.weights.h5")
    assert result.exit_code == 2
    assert "reads a file" in result.output and "--allow-read DIR" in result.output
    # The other grant does not stand in for the one needed.
    result = run("--allow-read", str(tmp_path), "validate", str(spec), "--set", "weights=imagenet")
    assert result.exit_code == 2 and "--allow-download" in result.output
    result = run("--allow-download", "validate", str(spec), "--set", "weights=w.weights.h5")
    assert result.exit_code == 2 and "--allow-read" in result.output
    result = run("--allow-download", "validate", str(spec), "--set", "weights=imagenet")
    assert result.exit_code == 0, result.output
    # A grant names a folder that is one.
    result = run("--allow-read", str(spec), "validate", str(spec))
    assert result.exit_code == 2 and "is not a folder" in result.output


@pytest.mark.parametrize("grant", ["grants: {download: true}", "allow-download: true", "allow_read: [/]"])
def test_a_spec_cannot_grant_itself_anything(tmp_path, grant):
    spec = tmp_path / "app.yaml"
    spec.write_text(APP + grant + "\n")
    result = run("validate", str(spec), "--set", "weights=imagenet")
    assert result.exit_code == 2
    assert f"app.yaml:10:1: error: unknown key '{grant.split(':')[0]}'" in result.output
    # Nor through its params, or a --set of a key no spec has.
    spec.write_text(
        APP.replace("params: {weights: null}", "params: {weights: imagenet, allow_download: true}")
    )
    result = run("validate", str(spec))
    assert result.exit_code == 2 and "reaches the network" in result.output
    result = run("validate", str(spec), "--set", "allow_download=true", "--set", "grants.download=true")
    assert result.exit_code == 2 and "--allow-download" in result.output


def test_an_include_or_a_nested_spec_cannot_grant_either(tmp_path):
    (tmp_path / "blocks.yaml").write_text("grants: {download: true}\nblocks: {}\n")
    (tmp_path / "inner.yaml").write_text(APP.replace("weights: '${weights}'", "weights: imagenet"))
    (tmp_path / "outer.yaml").write_text(
        textwrap.dedent(
            """
            graphspec: 1
            name: outer
            include: [blocks.yaml]
            inputs: {image: {shape: [32, 32, 3]}}
            layers:
              inner: {spec: inner.yaml, in: image}
            outputs: {inner: {}}
            """
        )
    )
    result = run("validate", str(tmp_path / "outer.yaml"))
    assert result.exit_code == 2 and "blocks.yaml:1:1: error:" in result.output
    (tmp_path / "blocks.yaml").write_text("blocks: {}\n")
    result = run("validate", str(tmp_path / "outer.yaml"))
    assert result.exit_code == 2
    assert "inner.yaml:7:" in result.output and "reaches the network" in result.output
    assert "--allow-download" in result.output


def test_downloads_are_only_keras_and_keras_hubs_own_even_with_the_grant(tmp_path):
    grants = policy.Grants(download=True)
    for value in ("file:///etc/passwd", "http://127.0.0.1/w.h5", "https://example.com/imagenet"):
        assert "downloads nothing else" in _errors(APP.replace("'${weights}'", repr(value)), grants)
    # Any other name is a file to read, which the download grant does not allow.
    assert "reads a file" in _errors(APP.replace("'${weights}'", "IMAGENET"), grants)
    for value in ("file:///etc", "http://example.com/p", "gs://bucket/p", "kaggle://../x"):
        text = BERT.replace("'${preset}'", repr(value))
        assert "argument 'preset'" in _errors(text, grants), value


def test_a_read_grant_follows_links_and_dot_dot_before_it_judges(tmp_path):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (outside / "secret.weights.h5").write_bytes(b"")
    (allowed / "ok.weights.h5").write_bytes(b"")
    (allowed / "link.weights.h5").symlink_to(outside / "secret.weights.h5")
    (allowed / "sub").mkdir()
    (allowed / "sub" / "escape").symlink_to(outside)
    spec = allowed / "app.yaml"
    spec.write_text(APP)
    grants = policy.make_grants(read=[allowed])
    cases = {
        "../outside/secret.weights.h5": "outside the folders --allow-read grants",
        str(outside / "secret.weights.h5"): "outside the folders --allow-read grants",
        "link.weights.h5": f"which leads to {outside / 'secret.weights.h5'}",
        "sub/escape/secret.weights.h5": "outside the folders --allow-read grants",
        "sub/../../outside/secret.weights.h5": "outside the folders --allow-read grants",
        "~/x.weights.h5": "starts with '~'",
        ".": "is not a weights file",
    }
    (allowed / "model.keras").write_bytes(b"")
    cases["model.keras"] = "is not a weights file"
    for value, expected in cases.items():
        with pytest.raises(SpecErrors) as info:
            graphspec.load(spec, {"weights": value}, grants=grants)
        assert expected in info.value.diagnostics.render(), value
    graphspec.load(spec, {"weights": "ok.weights.h5"}, grants=grants)
    graphspec.load(spec, {"weights": str(allowed / "ok.weights.h5")}, grants=grants)
    # A granted folder given through a link is the folder the link leads to.
    (tmp_path / "via").symlink_to(allowed)
    assert policy.make_grants(read=[tmp_path / "via"]).read == (allowed.resolve(),)


def test_a_link_inside_a_granted_preset_folder_cannot_lead_out(tmp_path, monkeypatch):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "preset").mkdir(parents=True)
    outside.mkdir()
    (outside / "id_rsa").write_text("secret")
    (allowed / "preset" / "config.json").write_text("{}")
    (allowed / "preset" / "model.weights.h5").symlink_to(outside / "id_rsa")
    spec = allowed / "bert.yaml"
    spec.write_text(BERT)
    grants = policy.make_grants(read=[allowed])
    with pytest.raises(SpecErrors) as info:
        graphspec.load(spec, {"preset": "./preset"}, grants=grants)
    assert "is a link to" in info.value.diagnostics.render()
    # A FIFO would block the read forever; a folder too big to judge whole is not read at all.
    (allowed / "preset" / "model.weights.h5").unlink()
    os.mkfifo(allowed / "preset" / "model.weights.h5")
    with pytest.raises(SpecErrors) as info:
        graphspec.load(spec, {"preset": "./preset"}, grants=grants)
    assert "is neither a file nor a folder" in info.value.diagnostics.render()
    (allowed / "preset" / "model.weights.h5").unlink()
    monkeypatch.setattr(policy, "_MAX_WALK", 3)
    for i in range(3):
        (allowed / "preset" / f"asset{i}").write_text("")
    with pytest.raises(SpecErrors) as info:
        graphspec.load(spec, {"preset": "./preset"}, grants=grants)
    assert "holds more than 3 files and folders" in info.value.diagnostics.render()
    for value, expected in (("./pre\0set", "NUL"), ("./missing", "does not exist")):
        with pytest.raises(SpecErrors) as info:
            graphspec.load(spec, {"preset": value}, grants=grants)
        assert expected in info.value.diagnostics.render()


def test_a_link_swapped_after_validation_is_refused_at_build(tmp_path):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "w.weights.h5").write_bytes(b"")
    spec = allowed / "app.yaml"
    spec.write_text(APP)
    loaded = graphspec.load(spec, {"weights": "w.weights.h5"}, grants=policy.make_grants(read=[allowed]))
    (allowed / "w.weights.h5").unlink()
    (allowed / "w.weights.h5").symlink_to(outside / "secret")
    with pytest.raises(SpecErrors) as info:
        loaded.build(compile=False)
    assert "outside the folders --allow-read grants" in info.value.diagnostics.render()


def test_grants_are_in_the_training_fingerprint_never_the_architecture(tmp_path):
    spec = tmp_path / "app.yaml"
    spec.write_text(APP)
    (tmp_path / "w.weights.h5").write_bytes(b"")
    one = fingerprint(
        graphspec.load(spec, {"weights": "w.weights.h5"}, grants=policy.make_grants(read=[tmp_path]))
    )
    other = tmp_path / "other"
    other.mkdir()
    two = fingerprint(
        graphspec.load(
            spec,
            {"weights": "w.weights.h5"},
            grants=policy.make_grants(download=True, read=[tmp_path, other]),
        )
    )
    assert one.architecture == two.architecture
    assert one.training != two.training
    # No grant, no change: a spec without any hashes as it always did.
    plain = graphspec.load(spec)
    assert fingerprint(plain) == fingerprint(graphspec.load(spec, grants=policy.Grants()))


# --- what a grant allows ------------------------------------------------------------------------


def test_an_applications_model_loads_a_weights_file_under_allow_read(tmp_path):
    import keras

    reference = keras.applications.MobileNet(
        include_top=False, alpha=0.25, weights=None, input_shape=(32, 32, 3)
    )
    folder = tmp_path / "weights"
    folder.mkdir()
    reference.save_weights(folder / "mobilenet.weights.h5")
    spec = tmp_path / "app.yaml"
    spec.write_text(APP)
    loaded = graphspec.load(
        spec, {"weights": "weights/mobilenet.weights.h5"}, grants=policy.make_grants(read=[folder])
    )
    model = loaded.build(compile=False)
    net = model.get_layer("net")
    assert len(net.weights) == len(reference.weights)
    for got, want in zip(net.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))


def test_allow_download_reaches_keras_download_with_its_origin_and_nothing_else(tmp_path, monkeypatch):
    import keras

    calls = []

    class Stopped(Exception):
        pass

    def recorder(*args, **kwargs):
        calls.append((args, kwargs))
        raise Stopped("no network here: stopped at Keras's download")

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", recorder)
    monkeypatch.setattr(keras.utils, "get_file", recorder)
    spec = tmp_path / "app.yaml"
    spec.write_text(APP)
    with pytest.raises(SpecErrors):
        graphspec.load(spec, {"weights": "imagenet"})  # no grant: refused before any build
    assert calls == []
    loaded = graphspec.load(spec, {"weights": "imagenet"}, grants=policy.Grants(download=True))
    with pytest.raises(SpecErrors) as info:
        loaded.build(compile=False)
    assert "stopped at Keras's download" in info.value.diagnostics.render()
    assert len(calls) == 1
    (name, origin), kwargs = calls[0][0][:2], calls[0][1]
    assert name == "mobilenet_2_5_224_tf_no_top.h5"
    assert origin == (
        "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/mobilenet_2_5_224_tf_no_top.h5"
    )
    assert kwargs.get("cache_subdir") == "models"


# --- KerasHub backbones -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bert_preset(tmp_path_factory):
    """A tiny randomly initialised BertBackbone saved with save_to_preset."""
    import keras_hub

    folder = tmp_path_factory.mktemp("hub")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=20,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=8,
    )
    backbone.save_to_preset(str(folder / "preset"))
    return folder, backbone


def test_a_backbone_validates_without_tensorflow_or_keras_hub(tmp_path):
    spec = tmp_path / "bert.yaml"
    spec.write_text(BERT.replace("preset: '${preset}'", BERT_CONFIG))
    code = textwrap.dedent(
        f"""
        import sys
        import graphspec
        graphspec.load({str(spec)!r})
        assert not {{'tensorflow', 'keras', 'keras_hub'}} & set(sys.modules), sorted(sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    errors = _errors(BERT.replace("preset: '${preset}'", BERT_CONFIG.replace("num_heads", "num_head")))
    assert "keras_hub.models.BertBackbone has no argument 'num_head'" in errors
    errors = _errors(BERT.replace("preset: '${preset}'", BERT_CONFIG.replace("num_layers: 1, ", "")))
    assert "keras_hub.models.BertBackbone needs argument 'num_layers'" in errors


@needs_hub
def test_a_backbone_from_its_config_has_keras_hubs_parameters(tmp_path, bert_preset):
    spec = tmp_path / "bert.yaml"
    spec.write_text(BERT.replace("preset: '${preset}'", BERT_CONFIG))
    model = graphspec.load(spec).build(compile=False)
    assert model.get_layer("bert").count_params() == bert_preset[1].count_params()
    # The same spec as a nested model of another.
    outer = tmp_path / "outer.yaml"
    outer.write_text(
        textwrap.dedent(
            """
            graphspec: 1
            name: outer
            inputs:
              t: {shape: [8], dtype: int32}
              s: {shape: [8], dtype: int32}
              m: {shape: [8], dtype: int32}
            layers:
              classifier: {spec: bert.yaml, in: {token_ids: t, segment_ids: s, padding_mask: m}}
            outputs: {classifier: {}}
            """
        )
    )
    nested = graphspec.load(outer).build(compile=False)
    assert nested.count_params() == model.count_params()


@needs_hub
def test_a_backbone_loads_a_preset_folder_under_allow_read(bert_preset, monkeypatch, tmp_path):
    import keras

    folder, saved = bert_preset
    spec = tmp_path / "bert.yaml"
    spec.write_text(BERT)
    # Without the grant the preset folder is not read.
    result = run("validate", str(spec), "--set", f"preset={folder / 'preset'}")
    assert result.exit_code == 2 and "--allow-read" in result.output
    monkeypatch.chdir(tmp_path)
    # Relative to the spec's folder; the run's own spec.yaml names it absolute, to be read from there.
    relative = os.path.relpath(folder / "preset", tmp_path)
    result = run(
        "--allow-read", str(folder), "train", str(spec), "--set", f"preset={relative}",
        "--synthetic", "--out", "run", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"preset: {folder / 'preset'}" in (tmp_path / "run" / "spec.yaml").read_text()
    recorded = json.loads((tmp_path / "run" / "overrides.json").read_text())
    assert recorded["grants"] == {"download": False, "read": [str(folder.resolve())]}
    loaded = graphspec.load(
        spec, {"preset": str(folder / "preset")}, grants=policy.make_grants(read=[folder])
    )
    model = loaded.build(compile=False)
    bert = model.get_layer("bert")
    for got, want in zip(bert.weights, saved.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))
    assert json.loads((tmp_path / "run" / "fingerprint.json").read_text()) == fingerprint(loaded).as_dict()
    # The model card names the grant; without it the run's spec does not even load.
    assert run("card", str(tmp_path / "run")).exit_code == 2
    result = run("--allow-read", str(folder), "card", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    card = (tmp_path / "run" / "MODEL_CARD.md").read_text()
    assert f"**Grants used:** `--allow-read` <code>{folder.resolve()}</code>" in card
    assert f"**Parameters:** {model.count_params():,} " in card


@needs_hub
def test_a_preset_name_reaches_keras_hubs_download_under_allow_download(tmp_path, monkeypatch):
    calls = []

    class Stopped(Exception):
        pass

    def recorder(preset, path):
        calls.append((preset, path))
        raise Stopped("no network here: stopped at KerasHub's download")

    monkeypatch.setattr("keras_hub.src.utils.preset_utils.get_file", recorder)
    spec = tmp_path / "bert.yaml"
    spec.write_text(BERT)
    loaded = graphspec.load(spec, {"preset": "bert_tiny_en_uncased"}, grants=policy.Grants(download=True))
    with pytest.raises(SpecErrors) as info:
        loaded.build(compile=False)
    assert "stopped at KerasHub's download" in info.value.diagnostics.render()
    assert calls and {preset for preset, _ in calls} == {"bert_tiny_en_uncased"}
    assert calls[0][1] == "config.json"


def test_the_schema_asks_a_backbone_for_a_preset_or_its_configuration():
    import jsonschema
    import yaml

    schema = json.loads(Path("schemas/graphspec.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    with_preset = yaml.safe_load(BERT.replace("'${preset}'", "./preset"))
    assert not list(validator.iter_errors(with_preset))
    with_config = yaml.safe_load(BERT.replace("preset: '${preset}'", BERT_CONFIG))
    assert not list(validator.iter_errors(with_config))
    neither = yaml.safe_load(BERT.replace("preset: '${preset}'", "num_layers: 1"))
    assert list(validator.iter_errors(neither))


def test_a_saved_model_does_not_grant_what_its_spec_asked(tmp_path):
    import keras

    folder = tmp_path / "weights"
    folder.mkdir()
    keras.applications.MobileNet(
        include_top=False, alpha=0.25, weights=None, input_shape=(32, 32, 3)
    ).save_weights(folder / "m.weights.h5")
    spec = tmp_path / "app.yaml"
    spec.write_text(APP)
    model = tmp_path / "app.keras"
    given = ["--set", "weights=weights/m.weights.h5"]
    result = run("--allow-read", str(folder), "build", str(spec), *given, "-o", str(model))
    assert result.exit_code == 0, result.output
    # The spec the .keras carries is read again under the command's grants, never its own.
    result = run("fingerprint", str(model))
    assert result.exit_code == 2 and "--allow-read DIR" in result.output
    result = run("--allow-read", str(folder), "fingerprint", str(model))
    assert result.exit_code == 0, result.output

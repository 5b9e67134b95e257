"""Fine-tuning stages (`train.stages`): frozen layers keep their weights (BatchNormalization its
moving statistics: Keras runs it in inference mode), unfrozen ones train, the history marks each
epoch's stage, `--resume` after a kill continues the stage it was killed in, and `validate`
finds a pattern that names nothing, without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from fixtures.killed import kill_after, train_process
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.keras.train import DataSource, train

BACKBONE = {
    "graphspec": 1,
    "name": "backbone",
    "inputs": {"x": {"shape": [4]}},
    "layers": {
        "b1": {"type": "Dense", "units": 8, "in": "x"},
        "bn": {"type": "BatchNormalization", "in": "b1"},
        "b2": {"type": "Dense", "units": 8, "in": "bn"},
    },
    "outputs": {"b2": {}},
}


def _spec(folder: Path, stages: list, **train) -> Path:
    (folder / "backbone.yaml").write_text(yaml.safe_dump(BACKBONE))
    spec = {
        "graphspec": 1,
        "name": "tuned",
        "blocks": {
            "mlp": {"layers": {"d": {"type": "Dense", "units": 8, "in": "x"}}, "out": "d"},
        },
        "inputs": {"x": {"shape": [4]}},
        "layers": {
            "backbone": {"spec": "backbone.yaml", "in": {"x": "x"}},
            "head": {"block": "mlp", "in": "backbone"},
            "twice": {"op": "multiply", "in": ["head", "head"]},
            "dense_out": {"type": "Dense", "units": 2, "in": "twice"},
        },
        "outputs": {"dense_out": {"loss": "mse"}},
        "compile": {"optimizer": {"type": "SGD", "learning_rate": 0.1}},
        "train": {"samples": 32, "batch_size": 8, "seed": 1, "stages": stages, **train},
    }
    path = folder / "tuned.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


class Snapshots(keras.callbacks.Callback):
    """Every layer's weights (trainable or not) at the start and end of each fit (stage)."""

    def __init__(self):
        super().__init__()
        self.fits: list[tuple[dict, dict]] = []

    def _weights(self) -> dict[str, list[np.ndarray]]:
        found = {}
        for layer in self.model._flatten_layers(include_self=False, recursive=True):
            if layer.weights and not isinstance(layer, keras.Model):  # a nested model: its layers
                found[layer.name] = [np.array(w) for w in layer.weights]
        return found

    def on_train_begin(self, logs=None):
        self.fits.append((self._weights(), {}))

    def on_train_end(self, logs=None):
        self.fits[-1][1].update(self._weights())


def _same(fit: tuple[dict, dict], name: str) -> bool:
    before, after = fit
    return all(np.array_equal(a, b) for a, b in zip(before[name], after[name], strict=True))


def test_frozen_layers_keep_their_weights_and_unfrozen_ones_train(tmp_path):
    stages = [
        {"epochs": 1, "freeze": ["backbone"]},
        {"epochs": 1, "freeze": ["backbone", "head"], "unfreeze": [{"backbone": {"top": 1}}]},
        {"epochs": 1, "freeze": "dense_*", "optimizer": {"type": "Adam", "learning_rate": 1e-3}},
    ]
    loaded = graphspec.load(_spec(tmp_path, stages))
    snapshots = Snapshots()
    result = train(
        loaded, DataSource(synthetic=True), out=tmp_path / "run", verbose=0, extra_callbacks=[snapshots]
    )
    first, second, third = snapshots.fits
    # Stage 1: the nested spec is frozen, BatchNormalization's moving statistics included.
    assert all(_same(first, n) for n in ("b1", "bn", "b2"))
    assert not _same(first, "head.d") and not _same(first, "dense_out")
    # Stage 2: only the backbone's top layer and the output layer train.
    assert all(_same(second, n) for n in ("b1", "bn", "head.d"))
    assert not _same(second, "b2") and not _same(second, "dense_out")
    # Stage 3 starts from the spec's model again: all but the glob's layers train, with Adam.
    assert _same(third, "dense_out")
    assert not any(_same(third, n) for n in ("b1", "bn", "b2", "head.d"))
    assert result.history["stage"] == [1, 2, 3]
    assert "stage" not in result.metrics
    history = json.loads((result.run_dir / "history.json").read_text())
    assert history["stage"] == [1, 2, 3] and history["epoch"] == [0, 1, 2]
    assert not (result.run_dir / "backup").exists()
    from graphspec.card import card_text, load_run

    card = card_text(result.run_dir, load_run(result.run_dir), "architecture.svg")
    assert "  1. 1 epoch; freeze backbone\n  2. 1 epoch; freeze backbone, head = head.d;" in card
    assert "  3. 1 epoch; freeze dense_\\* = dense_out; optimizer Adam(learning_rate=0.001)\n" in card
    assert "| training | <code>stage</code>" not in card


def test_a_callback_that_stops_training_ends_the_run_not_only_its_stage(tmp_path):
    stop = {"type": "EarlyStopping", "monitor": "loss", "min_delta": 100.0, "patience": 0}
    spec = _spec(tmp_path, [{"epochs": 3}, {"epochs": 2, "freeze": "backbone"}], callbacks=[stop])
    result = train(graphspec.load(spec), DataSource(synthetic=True), out=tmp_path / "run", verbose=0)
    assert result.history["stage"] == [1, 1]  # stopped at stage 1's second epoch
    assert not (result.run_dir / "backup").exists()


def test_keras_runs_a_frozen_batch_normalization_in_inference_mode():
    # What the stages rely on, checked against Keras itself: trainable=False means inference.
    layer = keras.layers.BatchNormalization()
    batch = np.random.default_rng(0).normal(3.0, 2.0, (16, 4)).astype("float32")
    layer.build(batch.shape)
    layer.trainable = False
    np.testing.assert_array_equal(
        np.array(layer(batch, training=True)), np.array(layer(batch, training=False))
    )
    layer.trainable = True
    assert not np.allclose(np.array(layer(batch, training=True)), np.array(layer(batch, training=False)))


def test_tensorboard_logs_each_epochs_stage(tmp_path):
    pytest.importorskip("tensorflow", reason="TensorBoard's event files are read with TensorFlow")
    import tensorflow as tf

    stages = [{"epochs": 1, "freeze": ["backbone"]}, {"epochs": 1}]
    spec = _spec(tmp_path, stages, callbacks=[{"type": "TensorBoard"}])
    result = train(graphspec.load(spec), DataSource(synthetic=True), out=tmp_path / "run", verbose=0)
    found = {}
    for path in (result.run_dir).rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == "epoch_stage":
                    found[event.step] = float(tf.make_ndarray(value.tensor))
    assert found == {0: 1.0, 1: 2.0}


def _validate(path: Path):
    return CliRunner().invoke(app, ["validate", str(path)])


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([{"epochs": 1, "freeze": ["backbon"]}], "did you mean 'backbone'?"),
        ([{"epochs": 1, "unfreeze": ["conv*"]}], "stage 1 unfreezes 'conv*', which names no layer"),
        ([{"epochs": 1, "freeze": [{"hed": {"top": 2}}]}], "did you mean 'head'?"),
        ([{"epochs": 1, "freeze": "twice"}], "names only ops (twice): they have no weights to freeze"),
    ],
)
def test_validate_locates_a_pattern_that_names_nothing(tmp_path, stages, message):
    result = _validate(_spec(tmp_path, stages))
    assert result.exit_code == 2
    assert message in result.stderr
    assert f"{tmp_path / 'tuned.yaml'}:" in result.stderr


def test_validate_refuses_epochs_beside_stages(tmp_path):
    result = _validate(_spec(tmp_path, [{"epochs": 1}], epochs=4))
    assert result.exit_code == 2
    assert "train.epochs is given beside train.stages" in result.stderr


def test_validate_accepts_stages_naming_a_node_a_block_use_and_a_glob(tmp_path):
    stages = [
        {"epochs": 1, "freeze": ["backbone", "head", "dense_*"], "unfreeze": [{"backbone": {"top": 1}}]}
    ]
    result = _validate(_spec(tmp_path, stages))
    assert result.exit_code == 0, result.stderr


def _backbone_weights(h5: Path) -> list[bytes]:
    import h5py

    found: list[bytes] = []
    with h5py.File(h5, "r") as file:
        # Keras writes a nested model's weights under its own group: the only one here.
        file["layers/functional"].visititems(
            lambda _, item: (
                found.append(np.asarray(item).tobytes()) if isinstance(item, h5py.Dataset) else None
            )
        )
    return sorted(found)


def test_resume_after_a_kill_in_stage_two_continues_stage_two(tmp_path):
    stages = [{"epochs": 1}, {"epochs": 3, "freeze": ["backbone"]}]
    spec = _spec(tmp_path, stages, samples=4000, batch_size=16)
    run, partial = tmp_path / "run", tmp_path / ".run.partial"
    process = train_process(str(spec), "--synthetic", "--out", str(run))
    before = kill_after(process, partial)
    completed = len(before["epoch"])
    assert 2 <= completed < 4 and before["stage"][:2] == [1, 2]
    # The backbone as stage 1 left it: stage 2 freezes it.
    stage_one = _backbone_weights(partial / "backup" / "stage-1" / "latest.weights.h5")

    resumed = train_process("--resume", str(run))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == list(range(4))
    assert history["stage"] == [1, 2, 2, 2]
    assert history["loss"][:completed] == before["loss"][:completed]
    assert not (run / "backup").exists()
    # Resumed in stage 2, so with its backbone still frozen: as stage 1 left it.
    model = keras.models.load_model(run / "model.keras")
    final = sorted(np.asarray(w).tobytes() for w in model.get_layer("backbone").weights)
    assert final == stage_one


def _no_tensorflow(code: str) -> str:
    """Run `code` in a fresh interpreter and return its output; fails if it imported TensorFlow."""
    check = code + "\nimport sys\nassert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_diff_and_view_show_what_each_stage_freezes_without_tensorflow(tmp_path):
    old = _spec(tmp_path, [{"epochs": 3, "freeze": ["backbone"]}, {"epochs": 5, "freeze": "head"}])
    document = yaml.safe_load(old.read_text())
    document["train"]["stages"][1] = {
        "epochs": 5,
        "unfreeze": [{"backbone": {"top": 1}}],
        "freeze": ["dense_*"],
    }
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(document, sort_keys=False))
    output = _no_tensorflow(
        "import json, graphspec\n"
        "from graphspec.diff import diff, render_text\n"
        "from graphspec.view import page_data\n"
        f"old, new = graphspec.load({str(old)!r}), graphspec.load({str(new)!r})\n"
        "print(render_text(diff(old, new)))\n"
        "data = page_data(new)\n"
        "print(json.dumps([data['stages'], {g['id']: g.get('stages') for g in data['groups']},"
        " {n['id']: n.get('stages') for n in data['nodes']}]))\n"
    )
    text, page = output.rsplit("\n", 2)[0], json.loads(output.rsplit("\n", 2)[1])
    assert (
        "~ train.stages[2] 5 epochs; freeze head = head.d -> "
        "5 epochs; freeze dense_* = dense_out; unfreeze backbone (top 1)"
    ) in text
    assert "train.stages[1]" not in text
    stages, groups, nodes = page
    assert stages == [
        "3 epochs; freeze backbone",
        "5 epochs; freeze dense_* = dense_out; unfreeze backbone (top 1)",
    ]
    assert groups["backbone"] == ["frozen", "top 1 trainable"]
    assert nodes["dense_out"] == ["as built", "frozen"] and nodes["head.d"] is None


def test_an_applications_models_top_layers_unfreeze_as_keras_guide_does(tmp_path):
    from graphspec.keras.build import build_model
    from graphspec.keras.stages import BuiltState, apply_stage

    spec = {
        "graphspec": 1,
        "name": "app",
        "inputs": {"image": {"shape": [32, 32, 3]}},
        "layers": {
            "base": {
                "type": "applications.MobileNetV3Small",
                "weights": None,
                "include_top": False,
                "in": "image",
            },
            "pool": {"type": "GlobalAveragePooling2D", "in": "base"},
            "out": {"type": "Dense", "units": 2, "in": "pool"},
        },
        "outputs": {"out": {"loss": "mse"}},
        "train": {
            "stages": [{"epochs": 1, "freeze": "base"}, {"epochs": 1, "unfreeze": [{"base": {"top": 3}}]}]
        },
    }
    (tmp_path / "app.yaml").write_text(yaml.safe_dump(spec))
    loaded = graphspec.load(tmp_path / "app.yaml")
    model = build_model(loaded)
    state, stages = BuiltState(model), loaded.spec.train.stages
    base = model.get_layer("base")
    own = [layer for layer in base.layers if not isinstance(layer, keras.layers.InputLayer)]
    apply_stage(state, loaded, stages[0], 0)
    assert not base.trainable and not base.trainable_weights
    assert {id(w) for w in model.trainable_weights} == {
        id(w) for w in model.get_layer("out").trainable_weights
    }
    apply_stage(state, loaded, stages[1], 1)
    # Keras's fine-tuning recipe: the base trainable, then all but its top layers frozen again.
    assert base.trainable
    assert [layer.trainable for layer in own] == [False] * (len(own) - 3) + [True] * 3
    top = {id(w) for layer in own[-3:] for w in layer.trainable_weights}
    assert top  # the top layers hold weights: the check below is not of two empty sets
    assert {id(w) for w in base.trainable_weights} == top


def test_stages_are_in_the_training_fingerprint_and_absent_stages_change_nothing(tmp_path):
    from graphspec.fingerprint import fingerprint, training_form

    staged = graphspec.load(_spec(tmp_path, [{"epochs": 1, "freeze": "backbone"}]))
    document = yaml.safe_load((tmp_path / "tuned.yaml").read_text())
    del document["train"]["stages"]
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(document))
    plain = graphspec.load(tmp_path / "plain.yaml")
    assert "stages" not in training_form(plain)["train"]  # a spec without stages hashes as before
    assert training_form(staged)["train"]["stages"] == [{"epochs": 1, "freeze": "backbone", "unfreeze": []}]
    before, after = fingerprint(plain).as_dict(), fingerprint(staged).as_dict()
    assert before["architecture"] == after["architecture"] and before["training"] != after["training"]


def test_each_stage_reads_a_tables_batches_of_its_own_epochs(tmp_path, monkeypatch):
    from graphspec.data.stream import TableStream

    served: list[list[int]] = [[]]  # the epochs of the rows read before fitting, then per fit
    blocks = TableStream.blocks

    def read(self, batch_size, seed=0, epoch=0, shuffle=False, share=(0, 1)):
        served[-1].append(epoch)
        return blocks(self, batch_size, seed, epoch, shuffle, share)

    monkeypatch.setattr(TableStream, "blocks", read)

    class Fits(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            served.append([])

    spec = {
        "graphspec": 1,
        "name": "table",
        "inputs": {"a": {"shape": [1]}},
        "layers": {"kind": {"type": "Dense", "units": 2, "activation": "softmax", "in": "a"}},
        "outputs": {"kind": {"loss": "sparse_categorical_crossentropy"}},
        "train": {"batch_size": 8, "seed": 5, "stages": [{"epochs": 1}, {"epochs": 2}]},
    }
    (tmp_path / "table.yaml").write_text(yaml.safe_dump(spec))
    table = tmp_path / "t.csv"
    table.write_text("a,kind\n" + "".join(f"{i},{'cat' if i % 2 else 'dog'}\n" for i in range(8)))
    loaded = graphspec.load(tmp_path / "table.yaml")
    result = train(loaded, DataSource(data=table), out=tmp_path / "run", verbose=0, extra_callbacks=[Fits()])
    assert result.history["stage"] == [1, 2, 2]
    # Stage 2's fit reads epochs 1 and 2 (in their orders), not stage 1's epoch 0 again.
    assert len(served) == 3 and 0 not in served[2] and {1, 2} <= set(served[2])

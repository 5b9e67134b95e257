"""`graphspec train`: synthetic data, .npz data, the run directory, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import graphspec
from graphspec import arrays
from graphspec.cli import app
from graphspec.keras.data import fit_arguments, synthetic_datasets
from graphspec.keras.train import DataSource, train

runner = CliRunner()
SPECS = sorted(Path("specs").glob("*.yaml"))
# Specs whose full size would not train in seconds on two cores: overrides that shrink them.
# Any other spec with an image `size` param is trained at 32x32.
SHRINK = {
    "book_twin_camera": ["size=71"],  # Xception's smallest input
    "transformer_classifier": ["seq_len=16", "vocab=100"],
    "gpt2_small": ["vocab=97", "context=16", "layers=2", "heads=2", "width=32"],
    "efficientnet": ["resolution=32"],
    "vit": ["image=32", "patch=8", "dim=32", "depth=2", "heads=2", "mlp=64", "classes=10"],
    "llama": ["vocab=101", "dim=32", "depth=2", "heads=4", "kv_heads=2", "hidden=64"],
    "clip": ["image_size=16", "patch=8", "image_width=32", "image_depth=1", "vocab=50", "context=8"]
    + ["text_width=24", "text_depth=1", "text_heads=2", "image_heads=2", "embed=16"],
    "unet": ["size=32", "filters=4"],
}
QUICK = [
    "train.samples=4",
    "train.batch_size=2",
    "train.epochs=1",
    "train.seq_len=8",
    "train.seed=0",
    "compile.run_eagerly=true",
]  # tracing a big train step takes longer than running two

QA_SMALL = ["text_vocab=50", "question_vocab=40", "answer_vocab=5"]


@pytest.fixture(autouse=True)
def _fresh_keras():
    yield
    keras.backend.clear_session()


def _run_files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}


# Specs that synthetic data cannot feed, with where they are trained instead.
NEEDS_DATA = {"tabular": "string inputs; trained on the wine table in test_adapt"}
SYNTHETIC = [p for p in SPECS if p.stem not in NEEDS_DATA]


@pytest.mark.parametrize("path", SYNTHETIC, ids=[p.stem for p in SYNTHETIC])
def test_every_spec_trains_one_short_epoch_on_synthetic_data(path, tmp_path):
    shrink = SHRINK.get(path.stem, ["size=32"] if "size" in graphspec.load(path).spec.params else [])
    overrides = shrink + QUICK
    loaded = graphspec.load(path, overrides)
    result = train(loaded, DataSource(synthetic=True), runs_root=tmp_path, verbose=0)

    assert result.run_dir.parent == tmp_path / loaded.name
    assert {"spec.yaml", "overrides.json", "model.keras", "history.csv", "history.json"} <= _run_files(
        result.run_dir
    )
    assert len(result.history["loss"]) == 1 and math.isfinite(result.history["loss"][0])
    # The resolved spec reproduces the model: the same architecture, every override applied.
    again = graphspec.load(result.run_dir / "spec.yaml")
    assert again.spec.train.seed == 0 and again.spec.train.samples == 4
    assert again.resolved() == loaded.resolved()
    recorded = json.loads((result.run_dir / "overrides.json").read_text())
    # The spec is in this repository: the run records its commit and path (for `graphspec card`).
    assert recorded.pop("revision")["path"] == f"specs/{path.name}"
    assert recorded == {
        "overrides": overrides,
        "synthetic": True,
        "kind": "random",
    }
    # Nothing but the finished run is left behind.
    assert [p.name for p in (tmp_path / loaded.name).iterdir()] == [result.run_dir.name]


def test_the_final_model_is_saved_with_its_trained_weights(tmp_path):
    loaded = graphspec.load("specs/book_qa.yaml", QA_SMALL + QUICK)
    result = train(loaded, DataSource(synthetic=True), runs_root=tmp_path, verbose=0)
    saved = keras.models.load_model(result.model_path)
    fresh = loaded.build()
    assert saved.count_params() == fresh.count_params()
    x = {"text": np.array([[1, 2, 3]]), "question": np.array([[4, 5]])}
    assert not np.allclose(saved.predict_on_batch(x)["answer"], fresh.predict_on_batch(x)["answer"])
    history = json.loads((result.run_dir / "history.json").read_text())
    assert history == {"epoch": [0], **result.history}
    rows = (result.run_dir / "history.csv").read_text().splitlines()
    assert rows[0] == "epoch," + ",".join(result.history)
    first = rows[1].split(",")
    assert first[0] == "0" and float(first[2]) == pytest.approx(result.history["loss"][0])


def test_a_run_directory_holds_nested_specs_so_its_spec_reruns(write_spec, tmp_path):
    write_spec(
        """
        graphspec: 1
        name: encoder
        params: {width: 4}
        inputs: {tokens: {shape: [null], dtype: int32}}
        layers:
          embed: {type: Embedding, input_dim: 20, output_dim: 3, in: tokens}
          features: {type: LSTM, units: ${width}, in: embed}
        outputs: {features: {}}
    """,
        "encoder.yaml",
    )
    path = write_spec(
        """
        graphspec: 1
        name: pair
        inputs: {a: {shape: [null], dtype: int32}}
        layers:
          enc: {spec: encoder.yaml, params: {width: 6}, in: a}
          y: {type: Dense, units: 1, in: enc}
        outputs: {y: {loss: mse}}
    """,
        "pair.yaml",
    )
    result = runner.invoke(
        app,
        [
            "train",
            str(path),
            "--synthetic",
            "--samples",
            "4",
            "--seq-len",
            "3",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load((tmp_path / "run" / "spec.yaml").read_text())["layers"]["enc"] == {
        "spec": "spec/enc.yaml",
        "in": "a",
    }
    nested = yaml.safe_load((tmp_path / "run" / "spec" / "enc.yaml").read_text())
    assert nested["layers"]["features"]["units"] == 6  # the params it was used with, applied
    again = graphspec.load(tmp_path / "run" / "spec.yaml")
    assert again.build().count_params() == graphspec.load(path).build().count_params()


def test_a_run_of_a_spec_with_included_blocks_keeps_a_spec_that_loads_on_its_own(write_spec, tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "dense.yaml").write_text(
        "blocks:\n  dense:\n    params: {units}\n    in: x\n"
        '    layers: {d: {type: Dense, units: "${units}", in: x}}\n    out: d\n'
    )
    path = write_spec(
        """
        graphspec: 1
        name: included
        include: lib/dense.yaml
        inputs: {x: {shape: [3]}}
        layers:
          h: {block: dense, units: 5, in: x}
          y: {type: Dense, units: 1, in: h}
        outputs: {y: {loss: mse}}
    """
    )
    run = tmp_path / "run"
    result = runner.invoke(
        app, ["train", str(path), "--synthetic", "--samples", "8", "--out", str(run), "-q"]
    )
    assert result.exit_code == 0, result.stderr
    # Blocks are expanded into the run's spec, which neither includes nor defines them again.
    written = yaml.safe_load((run / "spec.yaml").read_text())
    assert "include" not in written and "blocks" not in written
    assert (
        graphspec.load(run / "spec.yaml").build().count_params()
        == graphspec.load(path).build().count_params()
    )


# --- synthetic data ----------------------------------------------------------------------------


def _dataset(spec: str, overrides: list[str], kind: str = "random", samples: int = 10, batch: int = 4):
    loaded = graphspec.load(spec, overrides)
    model = loaded.build()
    return synthetic_datasets(
        loaded, model, kind=kind, samples=samples, batch_size=batch, validation_split=0.0, seed=3
    )[0]


def test_synthetic_data_is_a_pydataset_made_batch_by_batch_the_same_every_time():
    data = _dataset("specs/book_qa.yaml", QA_SMALL + ["train.seq_len=7"])
    assert isinstance(data, keras.utils.PyDataset)
    assert len(data) == 3
    first, again = data[0], data[0]
    for part in (0, 1):
        for name in first[part]:
            np.testing.assert_array_equal(first[part][name], again[part][name])
    assert data[2][0]["text"].shape == (2, 7)  # the last batch holds what is left
    with pytest.raises(IndexError):
        data[3]


def test_synthetic_data_as_arrays_holds_every_batch_in_order():
    data = _dataset("specs/book_qa.yaml", QA_SMALL + ["train.seq_len=7"])
    x, y = data.arrays()
    assert x["text"].shape == (10, 7) and y["answer"].shape == (10, 5)
    np.testing.assert_array_equal(x["question"][8:], data[2][0]["question"])
    np.testing.assert_array_equal(y["answer"][4:8], data[1][1]["answer"])


def _batches_of(dataset) -> list[tuple[dict, dict]]:
    return [tuple({k: np.asarray(v) for k, v in part.items()} for part in batch) for batch in dataset]


def test_tensorflow_gets_synthetic_batches_with_a_fixed_batch_dimension_when_all_are_full():
    # A batch dimension Keras would leave unknown makes TensorFlow's steps slower
    # (bench/probe_batch_shape.py); arrays that split into full batches get it fixed, so must we.
    overrides = QA_SMALL + ["train.seq_len=7"]
    full = fit_arguments(_dataset("specs/book_qa.yaml", overrides, samples=8, batch=4), None, False)
    partial = fit_arguments(_dataset("specs/book_qa.yaml", overrides, samples=10, batch=4), None, False)
    assert full["x"].element_spec[0]["text"].shape.as_list() == [4, 7]
    assert partial["x"].element_spec[0]["text"].shape.as_list() == [None, 7]
    assert len(full["x"]) == 2 and len(partial["x"]) == 3  # Keras knows each epoch's steps


def test_other_backends_get_the_pydataset_itself(monkeypatch):
    train, validation = (_dataset("specs/book_qa.yaml", QA_SMALL, samples=n) for n in (8, 4))
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert fit_arguments(train, validation, shuffle=True) == {
        "x": train,
        "validation_data": validation,
        "shuffle": True,
    }


def test_fit_gets_the_pydatasets_batches_in_order_or_shuffled_each_epoch():
    data = _dataset("specs/book_qa.yaml", QA_SMALL, samples=40, batch=4)
    expected = [data[i] for i in range(len(data))]
    in_order = _batches_of(fit_arguments(data, None, shuffle=False)["x"])
    for got, want in zip(in_order, expected, strict=True):
        np.testing.assert_array_equal(got[0]["text"], want[0]["text"])
        np.testing.assert_array_equal(got[1]["answer"], want[1]["answer"])
    shuffled = fit_arguments(data, None, shuffle=True)["x"]
    epochs = [[b[0]["text"].tobytes() for b in _batches_of(shuffled)] for _ in range(2)]
    originals = [b[0]["text"].tobytes() for b in expected]
    assert sorted(epochs[0]) == sorted(originals) and epochs[0] != originals
    assert epochs[0] != epochs[1]  # a new order each epoch


def test_integer_inputs_stay_inside_the_vocabulary_they_feed_or_their_range(write_spec):
    x, _ = _dataset("specs/book_qa.yaml", QA_SMALL, samples=400, batch=400)[0]
    assert x["text"].dtype == np.int32 and x["text"].min() == 0 and x["text"].max() == 49
    assert x["question"].max() == 39
    write_spec(
        """
        graphspec: 1
        name: inner
        inputs: {ids: {shape: [3], dtype: int32}}
        layers: {embed: {type: Embedding, input_dim: 7, output_dim: 2, in: ids}}
        outputs: {embed: {}}
    """,
        "inner.yaml",
    )
    path = write_spec(
        """
        graphspec: 1
        name: ranges
        inputs:
          shared_ids: {shape: [3], dtype: int32}
          nested_ids: {shape: [3], dtype: int32}
          ranged: {shape: [3], dtype: int64, range: [5, 9]}
          plain: {shape: [3], dtype: int32}
          real: {shape: [3], range: [-1, 1]}
        layers:
          embed: {type: Embedding, input_dim: 30, output_dim: 2, in: ranged}
          again: {share: embed, in: shared_ids}
          inner: {spec: inner.yaml, in: nested_ids}
          flat: {type: Flatten, in: again}
          flat2: {type: Flatten, in: inner}
          flat3: {type: Flatten, in: embed}
          cast: {type: Identity, in: plain}
          merged: {type: Concatenate, in: [flat, flat2, flat3, real]}
          y: {type: Dense, units: 1, in: merged}
          z: {type: Dense, units: 1, in: cast}
        outputs: {y: {loss: mse}, z: {loss: mse}}
    """,
        "ranges.yaml",
    )
    x, _ = _dataset(str(path), [], samples=500, batch=500)[0]
    assert (x["shared_ids"].min(), x["shared_ids"].max()) == (0, 29)  # through the layer it shares
    assert (x["nested_ids"].min(), x["nested_ids"].max()) == (0, 6)  # through the nested spec
    assert (x["ranged"].min(), x["ranged"].max()) == (5, 8) and x["ranged"].dtype == np.int64
    assert (x["plain"].min(), x["plain"].max()) == (0, arrays.DEFAULT_INT_RANGE[1] - 1)
    assert -1 <= x["real"].min() and x["real"].max() < 1 and x["real"].dtype == np.float32


def test_null_dimensions_take_the_inputs_seq_len_else_the_trainings():
    x, _ = _dataset("specs/book_siamese_lstm.yaml", ["train.seq_len=5"])[0]
    assert x["left"].shape == (4, 20, 128)  # the spec's own seq_len wins
    x, _ = _dataset("specs/book_qa.yaml", QA_SMALL + ["train.seq_len=5"])[0]
    assert x["text"].shape == (4, 5)
    x, _ = _dataset("specs/book_qa.yaml", QA_SMALL)[0]
    assert x["text"].shape == (4, arrays.DEFAULT_SEQ_LEN)


def test_random_targets_fit_each_loss():
    _, y = _dataset("specs/book_social_media.yaml", ["vocabulary_size=100"], samples=64, batch=64)[0]
    assert y["age"].shape == (64, 1) and y["age"].dtype == np.float32 and y["age"].std() > 0.5
    assert y["income"].shape == (64, 10) and set(np.unique(y["income"])) == {0.0, 1.0}
    np.testing.assert_array_equal(y["income"].sum(axis=1), np.ones(64))
    assert set(np.unique(y["gender"])) == {0.0, 1.0}
    sparse = "outputs.answer.loss=sparse_categorical_crossentropy"
    _, y = _dataset("specs/book_qa.yaml", QA_SMALL + [sparse])[0]
    assert y["answer"].shape == (4,) and y["answer"].dtype == np.int32 and y["answer"].max() < 5


def test_teacher_targets_are_the_teachers_classes_balanced_and_fixed():
    data = _dataset("specs/book_mlp.yaml", [], kind="teacher", samples=512, batch=512)
    x, y = data[0]
    ids = y["probs"].argmax(axis=1)
    counts = np.bincount(ids, minlength=10)
    assert (counts > 0).sum() >= 8  # not every input given the same class
    # The targets are a function of the inputs: the teacher's class after fixed per-class offsets.
    scores = np.log(np.clip(data.teacher.model.predict_on_batch(x)["probs"], 1e-7, 1))
    offset = data.teacher.calibration["probs"]["offset"]
    np.testing.assert_array_equal(ids, np.argmax(scores - offset, axis=1))
    np.testing.assert_array_equal(data[0][1]["probs"], y["probs"])


def _losses(spec: str, kind: str, overrides: list[str], tmp_path: Path) -> dict[str, list[float]]:
    loaded = graphspec.load(spec, [f"train.synthetic={kind}", "train.seed=1"] + overrides)
    return train(loaded, DataSource(synthetic=True), runs_root=tmp_path, verbose=0).history


def test_teacher_mode_lowers_the_loss_on_unseen_samples_where_noise_cannot(tmp_path):
    settings = ["train.epochs=8", "train.samples=2048", "train.batch_size=32", "train.validation_split=0.25"]
    teacher = _losses("specs/book_mlp.yaml", "teacher", settings, tmp_path)
    random = _losses("specs/book_mlp.yaml", "random", settings, tmp_path)
    assert teacher["val_loss"][-1] < 0.85 * teacher["val_loss"][0]
    assert teacher["loss"][-1] < 0.75 * teacher["loss"][0]
    assert random["val_loss"][-1] > 0.97 * random["val_loss"][0]  # noise does not generalise


def test_teacher_mode_lowers_the_loss_of_a_multi_output_model(tmp_path):
    narrow = [f"layers.conv{i}.filters=16" for i in range(1, 6)] + [
        "layers.embedded_posts.output_dim=16",
        "layers.hidden.units=32",
        "vocabulary_size=1000",
    ]
    history = _losses(
        "specs/book_social_media.yaml",
        "teacher",
        narrow + ["train.epochs=8", "train.samples=768", "train.batch_size=32"],
        tmp_path,
    )
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert history["gender_loss"][-1] < 0.7 * history["gender_loss"][0]


def test_synthetic_data_refuses_a_loss_whose_targets_it_cannot_make(write_spec):
    loaded = graphspec.load(
        write_spec("""
        graphspec: 1
        name: ctc
        inputs: {x: {shape: [6, 4]}}
        layers: {y: {type: Dense, units: 3, in: x}}
        outputs: {y: {loss: ctc}}
    """)
    )
    with pytest.raises(graphspec.SpecErrors) as error:
        synthetic_datasets(
            loaded, loaded.build(), kind="random", samples=4, batch_size=2, validation_split=0, seed=0
        )
    assert str(error.value) == (
        f"{loaded.path}:5:21: error: output 'y': synthetic data cannot make "
        "targets for loss 'ctc'\n"
        "  outputs: {y: {loss: ctc}}\n"
        "                      ^~~\n"
        "  hint: train it on arrays with --data FILE.npz"
    )


# --- .npz data ---------------------------------------------------------------------------------


def _qa_arrays(count: int, seq: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "text": rng.integers(0, 50, (count, seq)),
        "question": rng.integers(0, 40, (count, seq - 2)),
        "answer": np.eye(5, dtype="float32")[rng.integers(0, 5, count)],
    }


QA_SET = [a for item in QA_SMALL for a in ("--set", item)]


def test_training_on_npz_files_with_validation_data(tmp_path):
    np.savez(tmp_path / "train.npz", **_qa_arrays(12))
    np.savez(tmp_path / "val.npz", **_qa_arrays(4))
    data = str(tmp_path / "train.npz")
    result = runner.invoke(
        app,
        [
            "train",
            "specs/book_qa.yaml",
            *QA_SET,
            "--data",
            data,
            "--val-data",
            str(tmp_path / "val.npz"),
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.stderr
    # Quiet: no progress, but the final metrics and where the run went.
    metrics, saved = result.stdout.splitlines()
    assert "loss: " in metrics and saved == f"run saved in {tmp_path / 'run'}"
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["epoch"] == [0, 1] and len(history["val_loss"]) == 2
    recorded = json.loads((tmp_path / "run" / "overrides.json").read_text())
    assert recorded.pop("revision")["path"] == "specs/book_qa.yaml"
    assert recorded == {
        "overrides": QA_SMALL + ["train.epochs=2", "train.batch_size=4"],
        "data": str(tmp_path / "train.npz"),
        "val_data": str(tmp_path / "val.npz"),
    }


def test_training_on_an_npz_file_with_a_validation_split_prints_the_final_metrics(tmp_path):
    np.savez(tmp_path / "train.npz", **_qa_arrays(10))
    data = str(tmp_path / "train.npz")
    result = runner.invoke(
        app,
        [
            "train",
            "specs/book_qa.yaml",
            *QA_SET,
            "--data",
            data,
            "--validation-split",
            "0.2",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    run = next((tmp_path / "runs" / "question_answering").iterdir())
    history = json.loads((run / "history.json").read_text())
    last = result.stdout.splitlines()[-2:]
    assert last[0] == " - ".join(f"{k}: {history[k][-1]:.4g}" for k in ("acc", "loss", "val_acc", "val_loss"))
    assert last[1] == f"run saved in {run}"
    assert "/step - acc: " in result.stdout  # Keras's progress bar
    assert yaml.safe_load((run / "spec.yaml").read_text())["train"]["validation_split"] == 0.2


# --- bad input: a clear error naming the culprit, exit 2, no run directory ----------------------


def _bad(tmp_path: Path, *args: str, spec: str = "specs/book_qa.yaml") -> str:
    """Run a training that must fail; return its stderr, having checked nothing was left."""
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", spec, *QA_SET, *args, "--runs-dir", str(runs)])
    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert [p for p in runs.rglob("*") if not p.is_dir() or any(p.iterdir())] == [] if runs.exists() else True
    return result.stderr


def test_a_missing_data_file_is_named(tmp_path):
    assert (
        _bad(tmp_path, "--data", str(tmp_path / "nope.npz"))
        == f"error: no such data file or folder: {tmp_path / 'nope.npz'}\n1 error\n"
    )


def test_a_data_file_that_is_not_npz_is_named(tmp_path):
    (tmp_path / "d.npz").write_text("text,question\n")
    assert _bad(tmp_path, "--data", str(tmp_path / "d.npz")) == (
        f"error: cannot read data file {tmp_path / 'd.npz'}: it is not an .npz archive\n"
        "  hint: write it with numpy.savez(path, input_name=array, ...)\n1 error\n"
    )


def test_an_npz_without_a_needed_array_names_it(tmp_path):
    data = _qa_arrays(8)
    del data["question"]
    np.savez(tmp_path / "d.npz", **data, questoin=np.zeros((8, 4)))
    assert _bad(tmp_path, "--data", str(tmp_path / "d.npz")) == (
        f"error: data file {tmp_path / 'd.npz'} has no array 'question' for input 'question'\n"
        "  hint: did you mean 'questoin'?\n1 error\n"
    )
    del data["answer"]
    np.savez(tmp_path / "d.npz", **data, question=np.zeros((8, 4), dtype="int32"))
    assert _bad(tmp_path, "--data", str(tmp_path / "d.npz")) == (
        f"error: data file {tmp_path / 'd.npz'} has no array 'answer' for output 'answer'\n"
        "  hint: it holds: text, question\n1 error\n"
    )


def test_wrong_dtypes_sample_counts_and_indices_are_all_named_at_once(tmp_path):
    file = tmp_path / "d.npz"
    data = _qa_arrays(8)
    np.savez(file, **{**data, "question": data["question"].astype("float32"), "text": data["text"][:6]})
    assert _bad(tmp_path, "--data", str(file)) == (
        f"error: array 'question' in {file} has dtype float32; input 'question' is int32 and takes integers\n"
        f"error: array 'text' in {file} has 6 samples; the other arrays have 8\n"
        "2 errors\n"
    )
    text = data["text"].copy()
    text[0, 0] = 50
    np.savez(file, **{**data, "text": text, "question": data["question"][:5]})
    assert _bad(tmp_path, "--data", str(file)) == (
        f"error: array 'text' in {file} holds 50; layer 'text_embed' takes indices from 0 to 49\n"
        f"error: array 'question' in {file} has 5 samples; the other arrays have 8\n"
        "2 errors\n"
    )


def test_wrong_shapes_of_inputs_and_targets_are_named(tmp_path):
    file = tmp_path / "d.npz"
    data = _qa_arrays(8)
    np.savez(file, **{**data, "text": data["text"][:, :, None]})
    assert _bad(tmp_path, "--data", str(file)) == (
        f"error: array 'text' in {file} has shape (8, 6, 1); input 'text' takes (N, ?)\n1 error\n"
    )
    np.savez(file, **{**data, "answer": np.zeros((8, 7), dtype="float32")})
    assert _bad(tmp_path, "--data", str(file)) == (
        f"error: array 'answer' in {file} has shape (8, 7); output 'answer' (one-hot targets) takes (N, 5)\n"
        "1 error\n"
    )
    sparse = ["--set", "outputs.answer.loss=sparse_categorical_crossentropy"]
    np.savez(file, **{**data, "answer": data["answer"].argmax(axis=1).astype("float32")})
    assert _bad(tmp_path, "--data", str(file), *sparse) == (
        f"error: array 'answer' in {file} has dtype float32; output 'answer' (sparse class ids) takes "
        "integers\n1 error\n"
    )
    np.savez(file, **data)
    assert _bad(tmp_path, "--data", str(file), *sparse) == (
        f"error: array 'answer' in {file} has shape (8, 5); output 'answer' (sparse class ids) takes (N) "
        "or (N, 1)\n"
        "1 error\n"
    )


def test_what_to_train_on_must_be_said_once(tmp_path):
    assert (
        _bad(tmp_path)
        == "error: say what to train on: --synthetic, or --data PATH (.npz, folder or table)\n1 error\n"
    )
    np.savez(tmp_path / "d.npz", **_qa_arrays(8))
    assert (
        _bad(tmp_path, "--synthetic", "--data", str(tmp_path / "d.npz"))
        == "error: say what to train on: --synthetic, or --data PATH (.npz, folder or table)\n1 error\n"
    )
    assert (
        _bad(tmp_path, "--synthetic", "--val-data", str(tmp_path / "d.npz"))
        == "error: --val-data needs --data: synthetic runs make their own validation data\n1 error\n"
    )


def test_validation_data_and_a_validation_split_exclude_each_other(tmp_path):
    np.savez(tmp_path / "d.npz", **_qa_arrays(8))
    assert _bad(
        tmp_path,
        "--data",
        str(tmp_path / "d.npz"),
        "--val-data",
        str(tmp_path / "d.npz"),
        "--validation-split",
        "0.5",
    ) == (
        "--set:4:24: error: give either --val-data or a validation split, not both\n"
        "  train.validation_split=0.5\n"
        "                         ^~~\n"
        "  hint: add --validation-split 0 to validate on --val-data\n"
        "1 error\n"
    )


def test_a_bad_flag_value_points_at_the_override(tmp_path):
    assert _bad(tmp_path, "--synthetic", "--kind", "teachers") == (
        "--set:4:17: error: train.synthetic: should be 'random' or 'teacher'\n"
        "  train.synthetic=teachers\n"
        "                  ^~~~~~~~\n"
        "1 error\n"
    )


def test_an_existing_out_directory_is_not_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = runner.invoke(
        app, ["train", "specs/book_qa.yaml", *QA_SET, "--synthetic", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: run directory {tmp_path / 'out'} already exists and is not empty\n"
        "  hint: name a new folder with --out, or leave --out out\n1 error\n"
    )
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]

"""A large `.npz` streamed a batch at a time (graphspec/data/npz_stream.py): the same rows, the
same training as the arrays held whole, in a seeded order that a resumed run keeps, with its
memory bounded by a batch rather than the file."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.data import npz, npz_stream
from graphspec.errors import SpecErrors
from graphspec.keras.distribute import ProcessBatches, Processes
from graphspec.keras.train import DataSource, train

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

SPEC = """
graphspec: 1
name: streamed
inputs:
  x: {shape: [4]}
layers:
  y: {type: Dense, units: 1, in: x}
outputs:
  y: {loss: mse}
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
train: {epochs: 3, batch_size: 8, seed: 0, validation_split: 0.25}
"""


def _arrays(rows: int = 100) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4)).astype("float32")
    return {"x": x, "y": x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype="float32")}


@pytest.fixture
def streamed(monkeypatch):
    """Every .npz that training reads is streamed, however small."""
    monkeypatch.setattr(npz, "WHOLE_BYTES", 0)


# --- the reader -------------------------------------------------------------------------------


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_a_column_reads_the_rows_asked_for_in_their_order(tmp_path, save):
    rng = np.random.default_rng(1)
    arrays = {
        "images": rng.integers(0, 255, size=(50, 3, 5, 2)).astype("uint8"),
        "big_endian": rng.normal(size=(50, 7)).astype(">f8"),
        "flat": np.arange(50, dtype="int32"),
    }
    save(tmp_path / "a.npz", **arrays)
    found = npz_stream.members(tmp_path / "a.npz", list(arrays))
    columns = npz_stream.open_columns(tmp_path / "a.npz", found)
    for name, array in arrays.items():
        column = columns[name]
        assert column.shape == array.shape and column.dtype == array.dtype
        for rows in (rng.permutation(50)[:17], np.arange(10, 30), np.array([3, 3, 4, 49, 0])):
            np.testing.assert_array_equal(column[rows], array[rows])
        tail = column[40:]
        assert len(tail) == 10
        np.testing.assert_array_equal(tail[np.array([9, 0])], array[[49, 40]])
        np.testing.assert_array_equal(np.asarray(column[5:8]), array[5:8])


def test_a_deflated_array_is_inflated_to_a_temporary_file_removed_with_its_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    np.savez_compressed(tmp_path / "c.npz", **_arrays())
    columns = npz_stream.open_columns(tmp_path / "c.npz", npz_stream.members(tmp_path / "c.npz", ["x", "y"]))
    assert len(list((tmp_path / "tmp").iterdir())) == 1
    del columns
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_process_of_a_multi_process_run_reads_its_part_of_each_streamed_batch(tmp_path):
    arrays = _arrays(64)
    np.savez(tmp_path / "a.npz", **arrays)
    columns = npz_stream.open_columns(tmp_path / "a.npz", npz_stream.members(tmp_path / "a.npz", ["x", "y"]))
    streamed = ProcessBatches(
        npz_stream.range_reads({"x": columns["x"]}),
        npz_stream.range_reads({"y": columns["y"]}),
        16,
        Processes(count=2, index=1),
    )
    held = ProcessBatches({"x": arrays["x"]}, {"y": arrays["y"]}, 16, Processes(count=2, index=1))
    for index in range(len(held)):
        assert isinstance(streamed[index][0]["x"], np.ndarray)
        assert len(streamed[index][0]["x"]) == 8
        np.testing.assert_array_equal(streamed[index][0]["x"], held[index][0]["x"])
        np.testing.assert_array_equal(streamed[index][1]["y"], held[index][1]["y"])


# --- training ---------------------------------------------------------------------------------


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_a_streamed_npz_trains_as_the_arrays_held_whole(write_spec, tmp_path, monkeypatch, save):
    # In order (no shuffling), the streamed batches are those `fit(x, y)` cuts from the arrays
    # in memory, and the validation split is the same last rows, so the losses are Keras's own.
    spec = write_spec(SPEC.replace("seed: 0", "seed: 0, shuffle: false"))
    save(tmp_path / "d.npz", **_arrays())
    whole = train(graphspec.load(spec), DataSource(data=tmp_path / "d.npz"), out=tmp_path / "a", verbose=0)
    monkeypatch.setattr(npz, "WHOLE_BYTES", 0)
    assert npz.is_streamed(npz.load(tmp_path / "d.npz", graphspec.load(spec), stream=True))
    streamed = train(graphspec.load(spec), DataSource(data=tmp_path / "d.npz"), out=tmp_path / "b", verbose=0)
    np.testing.assert_allclose(streamed.history["loss"], whole.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(streamed.history["val_loss"], whole.history["val_loss"], rtol=1e-6)


def test_streamed_batches_come_in_the_order_drawn_from_seed_and_epoch(write_spec, tmp_path, streamed):
    arrays = _arrays(40)
    arrays["x"][:, 0] = np.arange(40)  # each row says which it is
    np.savez(tmp_path / "d.npz", **arrays)
    seen: list[list[int]] = []
    from graphspec.keras import files

    real = files.FileBatches.__getitem__

    def spy(self, index):
        x, y = real(self, index)
        if self.shuffle:
            seen.append(x["x"][:, 0].astype(int).tolist())
        return x, y

    files.FileBatches.__getitem__ = spy
    try:
        spec = write_spec(SPEC.replace("batch_size: 8", "batch_size: 10"))
        train(graphspec.load(spec), DataSource(data=tmp_path / "d.npz"), out=tmp_path / "a", verbose=0)
    finally:
        files.FileBatches.__getitem__ = real
    # 30 training rows (the last 10 validate), 3 batches an epoch, 3 epochs.
    epochs = [sum(seen[i : i + 3], []) for i in range(len(seen) - 9, len(seen), 3)]
    for epoch, rows in enumerate(epochs):
        assert rows == npz_stream.EpochOrder(30, 0, epoch)[0:30].tolist()
        assert sorted(rows) == list(range(30))
    assert epochs[0] != epochs[1]


@pytest.mark.parametrize("count", [1, 2, 3, 30, 1000, 4097])
def test_an_epoch_order_is_a_permutation_made_a_slice_at_a_time(count):
    for shuffle in (False, True):
        order = npz_stream.EpochOrder(count, seed=7, epoch=2, shuffle=shuffle)
        rows = np.concatenate([order[low : low + 10] for low in range(0, count, 10)])
        assert sorted(rows.tolist()) == list(range(count))
        if not shuffle:
            assert rows.tolist() == list(range(count))
    big = npz_stream.EpochOrder(10**9, seed=0, epoch=0)
    first = big[0:4096]
    assert len(set(first.tolist())) == 4096 and first.max() < 10**9
    # Spread over the rows, not runs of neighbours: a quarter of them land in each quarter.
    assert all(
        800 < np.sum((first >= q * 250_000_000) & (first < (q + 1) * 250_000_000)) < 1250 for q in range(4)
    )


def test_a_killed_streamed_run_resumes_in_the_same_order(write_spec, tmp_path, streamed):
    spec = write_spec(SPEC.replace("epochs: 3", "epochs: 4"))
    np.savez_compressed(tmp_path / "d.npz", **_arrays())
    whole = train(graphspec.load(spec), DataSource(data=tmp_path / "d.npz"), out=tmp_path / "a", verbose=0)

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt  # as a kill: the partial run stays

    with pytest.raises(KeyboardInterrupt):
        train(
            graphspec.load(spec),
            DataSource(data=tmp_path / "d.npz"),
            out=tmp_path / "b",
            verbose=0,
            extra_callbacks=[Kill()],
        )
    resumed = train(
        graphspec.load(spec), DataSource(data=tmp_path / "d.npz"), out=tmp_path / "b", verbose=0, resume=True
    )
    assert len(resumed.history["loss"]) == 4
    np.testing.assert_allclose(resumed.history["loss"], whole.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(resumed.history["val_loss"], whole.history["val_loss"], rtol=1e-5)


def test_a_streamed_index_past_the_vocabulary_is_refused_before_training(write_spec, tmp_path, streamed):
    spec = write_spec(
        """
        graphspec: 1
        name: tokens
        inputs:
          ids: {shape: [3], dtype: int32}
        layers:
          e: {type: Embedding, input_dim: 10, output_dim: 2, in: ids}
          f: {type: Flatten, in: e}
          y: {type: Dense, units: 1, in: f}
        outputs:
          y: {loss: mse}
        """
    )
    ids = np.zeros((50, 3), dtype="int32")
    ids[37, 1] = 12
    np.savez_compressed(tmp_path / "d.npz", ids=ids, y=np.zeros((50, 1), dtype="float32"))
    runs = tmp_path / "runs"
    result = runner.invoke(
        app, ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--runs-dir", str(runs)]
    )
    assert result.exit_code == 2, result.output
    assert (
        f"array 'ids' in {tmp_path / 'd.npz'} holds 12; layer 'e' takes indices from 0 to 9" in result.output
    )
    assert not runs.exists()


def test_a_batch_past_data_bytes_is_refused(write_spec, tmp_path, streamed):
    np.savez(tmp_path / "d.npz", **_arrays())
    result = runner.invoke(
        app,
        ["--limit", "data-bytes=100", "train", str(write_spec(SPEC)), "--data", str(tmp_path / "d.npz")],
    )
    assert result.exit_code == 2, result.output
    assert f"a batch of 8 rows of data file {tmp_path / 'd.npz'} would go over the limit of 100 bytes" in (
        result.output
    )


def test_arrays_inflating_past_data_disk_are_refused_before_any_is_written(tmp_path, streamed, write_spec):
    np.savez_compressed(tmp_path / "d.npz", **_arrays())
    runs = tmp_path / "runs"
    result = runner.invoke(
        app,
        [
            "--limit",
            "data-disk=1000",
            "train",
            str(write_spec(SPEC)),
            "--data",
            str(tmp_path / "d.npz"),
            "--runs-dir",
            str(runs),
        ],
    )
    assert result.exit_code == 2, result.output
    assert f"data file {tmp_path / 'd.npz'}, whose compressed arrays inflate to 2,000 bytes," in result.output
    assert "graphspec --limit data-disk=N" in result.output
    assert not runs.exists()


def test_a_small_npz_is_still_read_whole_and_charged_so(write_spec, tmp_path):
    np.savez(tmp_path / "d.npz", **_arrays())
    arrays = npz.load(tmp_path / "d.npz", graphspec.load(write_spec(SPEC)), stream=True)
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    with pytest.raises(SpecErrors):
        from graphspec import budget

        with budget.fresh() as limited:
            limited.limits["data-bytes"] = 100
            limited.limits["data-disk"] = 100
            npz.load(tmp_path / "d.npz", graphspec.load(write_spec(SPEC)), stream=False)


# --- scoring and predicting -------------------------------------------------------------------


def test_evaluate_and_predict_stream_an_npz_past_data_bytes_as_training_does(write_spec, tmp_path):
    # 2,000 rows of 4 float32 and a target: 40,000 bytes, more than the limit of 20,000 bytes,
    # which only a streamed file (a batch of 8 rows held) stays within.
    np.savez(tmp_path / "d.npz", **_arrays(2000))
    spec, run, data = write_spec(SPEC), tmp_path / "run", str(tmp_path / "d.npz")
    trained = runner.invoke(
        app, ["train", str(spec), "--data", data, "--out", str(run), "--epochs", "1", "-q"]
    )
    assert trained.exit_code == 0, trained.output
    limit = ["--limit", "data-bytes=20000"]
    whole = runner.invoke(app, ["evaluate", str(run), "--data", data, "--json"])
    streamed = runner.invoke(app, [*limit, "evaluate", str(run), "--data", data, "--json"])
    assert streamed.exit_code == 0, streamed.output
    expected, got = json.loads(whole.stdout), json.loads(streamed.stdout)
    assert got["examples"] == expected["examples"] == 2000
    assert got["metrics"] == pytest.approx(expected["metrics"], rel=1e-5)
    first, second = tmp_path / "whole.csv", tmp_path / "streamed.csv"
    assert runner.invoke(app, ["predict", str(run), "--data", data, "-o", str(first)]).exit_code == 0
    predicted = runner.invoke(app, [*limit, "predict", str(run), "--data", data, "-o", str(second)])
    assert predicted.exit_code == 0, predicted.output
    assert second.read_text() == first.read_text()
    assert second.read_text().splitlines()[2].startswith(f"{data}[1],")


# --- memory: an .npz larger than the memory it may take ----------------------------------------

WIDE = """
graphspec: 1
name: wide
inputs:
  x: {shape: [64]}
layers:
  y: {type: Dense, units: 1, in: x}
outputs:
  y: {loss: mse}
train: {epochs: 1, batch_size: 4096, seed: 0, validation_split: 0.1}
"""


def write_wide_npz(path: Path, rows: int, features: int = 64) -> int:
    """A compressed .npz of `rows` rows of `features` float32 values (each one of 16, so the
    file is small) and a target, written a block at a time; the bytes its arrays inflate to."""
    from numpy.lib import format as npy

    rng = np.random.default_rng(0)
    block = 65536
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, width in (("x", features), ("y", 1)):
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                header = io.BytesIO()
                npy.write_array_header_1_0(
                    header, {"descr": "<f4", "fortran_order": False, "shape": (rows, width)}
                )
                member.write(header.getvalue())
                for start in range(0, rows, block):
                    count = min(block, rows - start)
                    member.write(rng.integers(0, 16, size=(count, width)).astype("<f4").tobytes())
    return rows * (features + 1) * 4


def test_training_on_an_npz_4x_larger_than_its_memory_margin(write_spec, tmp_path, graphspec_peak_mb):
    spec = write_spec(WIDE)
    small, large = tmp_path / "small.npz", tmp_path / "large.npz"
    write_wide_npz(small, 32768)  # 8.5 MB: read whole
    held = write_wide_npz(large, 1_200_000)  # 312 MB as arrays: streamed
    base = graphspec_peak_mb("train", spec, "--data", small, "--out", tmp_path / "a", "-q")
    peak = graphspec_peak_mb("train", spec, "--data", large, "--out", tmp_path / "b", "-q")
    margin = held / 4 / 2**20
    print(f"peak {peak:.0f} MiB, small file's {base:.0f} MiB, margin {margin:.0f} MiB")
    # The cap is the small run's peak (TensorFlow, the model, its arrays) plus a quarter of the
    # arrays: reading them whole would pass it four times over.
    assert peak <= base + margin, f"peak {peak:.0f} MB, small file's {base:.0f} MB, margin {margin:.0f} MB"
    assert (tmp_path / "b" / "model.keras").is_file()

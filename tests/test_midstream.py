"""Bad data found while training, not before: the run stops and is kept to resume, or, with
`--skip-bad N`, at most N bad examples are skipped and recorded in the run."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.errors import SpecErrors
from graphspec.keras.image_stream import ImageStream
from graphspec.keras.train import DataSource, train

runner = CliRunner()

SPEC = """
graphspec: 1
name: pictures
inputs:
  image: {shape: [16, 16, 3]}
layers:
  flat: {type: Flatten, in: image}
  label: {type: Dense, units: 2, activation: softmax, in: flat}
outputs:
  label: {loss: sparse_categorical_crossentropy}
train: {epochs: 3, batch_size: 2, seed: 1, validation_split: 0}
"""


def _images(root: Path, per_class: int = 8) -> list[Path]:
    rng = np.random.default_rng(0)
    files = []
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            files.append(root / name / f"{i}.png")
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(files[-1])
    return files


def _truncate(path: Path) -> bytes:
    """Cut `path` to half its bytes (its header still reads, so only decoding finds it); its
    bytes before."""
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return whole


class TruncateAfterFirstEpoch(keras.callbacks.Callback):
    def __init__(self, path: Path):
        super().__init__()
        self.path, self.whole = path, None
        self.cut = threading.Event()

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.whole = _truncate(self.path)
            self.cut.set()


def test_an_image_truncated_mid_run_stops_it_kept_and_it_resumes_once_fixed(
    write_spec, tmp_path, monkeypatch
):
    spec = write_spec(SPEC)
    files = _images(tmp_path / "pics")
    run = tmp_path / "run"
    damage = TruncateAfterFirstEpoch(files[3])
    # tf.data reads ahead, across epochs: on a loaded machine it could have decoded every epoch
    # before the first one ends. Its reader thread takes the later epochs' orders only once the
    # file is cut, so that they read it cut.
    order_of = ImageStream.order_of

    def after_the_cut(stream: ImageStream, epoch: int) -> np.ndarray:
        if epoch > 0 and threading.current_thread() is not threading.main_thread():
            assert damage.cut.wait(120)
        return order_of(stream, epoch)

    monkeypatch.setattr(ImageStream, "order_of", after_the_cut)
    with pytest.raises(SpecErrors) as caught:
        train(
            graphspec.load(spec),
            DataSource(data=tmp_path / "pics"),
            out=run,
            extra_callbacks=[damage],
            verbose=0,
        )
    diagnostic = caught.value.diagnostics.errors[0]
    assert diagnostic.message.startswith(f"image {files[3]} is damaged or truncated")
    assert diagnostic.message.endswith("(training stopped; the run is kept)")
    assert (
        diagnostic.hint
        == f"remove or replace the file; then continue the run: graphspec train --resume {run}"
    )
    partial = tmp_path / ".run.partial"
    done = json.loads((partial / "history.json").read_text())["epoch"]
    assert 1 <= len(done) < 3
    assert not run.exists()

    files[3].write_bytes(damage.whole)
    result = runner.invoke(app, ["train", "--resume", str(run), "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "history.json").read_text())["epoch"] == [0, 1, 2]
    assert not partial.exists()


def test_the_cli_says_a_stopped_run_is_kept_with_exit_status_2(write_spec, tmp_path):
    spec = write_spec(SPEC.replace("epochs: 3", "epochs: 1"))
    files = _images(tmp_path / "pics")
    _truncate(files[5])
    run = tmp_path / "run"
    result = runner.invoke(
        app, ["train", str(spec), "--data", str(tmp_path / "pics"), "--out", str(run), "-q"]
    )
    assert result.exit_code == 2, result.output
    assert f"image {files[5]} is damaged or truncated" in result.stderr
    assert f"then continue the run: graphspec train --resume {run}" in result.stderr
    assert (tmp_path / ".run.partial" / "spec.yaml").is_file()


def test_skip_bad_drops_bad_images_records_each_once_and_says_how_many(write_spec, tmp_path):
    spec = write_spec(SPEC)
    files = _images(tmp_path / "pics")
    for bad in (files[2], files[9]):
        _truncate(bad)
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        ["train", str(spec), "--data", str(tmp_path / "pics"), "--out", str(run), "--skip-bad", "2", "-q"],
    )
    assert result.exit_code == 0, result.output
    assert "skipped 2 bad examples (listed in skipped.jsonl)" in result.stdout
    records = [json.loads(line) for line in (run / "skipped.jsonl").read_text().splitlines()]
    assert sorted(r["file"] for r in records) == [str(files[2]), str(files[9])]
    assert all(r["row"] is None and "is damaged or truncated" in r["reason"] for r in records)
    assert all(r["epoch"] == 0 for r in records)
    assert json.loads((run / "history.json").read_text())["epoch"] == [0, 1, 2]
    assert json.loads((run / "overrides.json").read_text())["skip_bad"] == 2


def test_the_bad_example_past_skip_bad_stops_the_run_kept_naming_the_limit(write_spec, tmp_path):
    spec = write_spec(SPEC)
    files = _images(tmp_path / "pics")
    for bad in (files[2], files[9]):
        _truncate(bad)
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        ["train", str(spec), "--data", str(tmp_path / "pics"), "--out", str(run), "--skip-bad", "1", "-q"],
    )
    assert result.exit_code == 2, result.output
    assert "is bad example 2, past `--skip-bad 1`" in result.stderr
    assert f"graphspec train --resume {run}" in result.stderr
    assert len((tmp_path / ".run.partial" / "skipped.jsonl").read_text().splitlines()) == 1


def test_a_batch_of_bad_images_alone_trains_on_a_good_one_instead(write_spec, tmp_path):
    from graphspec.data.examples import Examples, bind
    from graphspec.data.skips import Skips
    from graphspec.keras.files import FileBatches

    files = _images(tmp_path / "pics", per_class=2)
    for bad in files[:2]:
        _truncate(bad)
    examples = bind(graphspec.load(write_spec(SPEC)), tmp_path / "pics")
    assert isinstance(examples, Examples)
    skips = Skips(2)
    batches = FileBatches(examples, 2, skips=skips)
    x, y = batches[0]
    assert x["image"].shape == (1, 16, 16, 3)
    np.testing.assert_array_equal(x["image"], examples.batch(np.asarray([2]))[0]["image"])
    assert len(skips) == 2


def test_skip_bad_takes_a_whole_number_zero_or_more(write_spec, tmp_path):
    spec = write_spec(SPEC)
    _images(tmp_path / "pics")
    data, runs = str(tmp_path / "pics"), str(tmp_path / "runs")
    result = runner.invoke(app, ["train", str(spec), "--data", data, "--skip-bad", "-1", "--runs-dir", runs])
    assert result.exit_code == 2
    assert (
        "`--skip-bad` takes how many bad examples may be skipped, a whole number 0 or more" in result.stderr
    )
    assert not (tmp_path / "runs").exists()


def test_skip_bad_on_data_checked_whole_before_training_is_refused(write_spec, tmp_path):
    spec = write_spec(SPEC)
    np.savez(tmp_path / "d.npz", image=np.zeros((4, 16, 16, 3), "float32"), label=np.zeros(4))
    result = runner.invoke(app, ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--skip-bad", "3"])
    assert result.exit_code == 2
    assert f"data {tmp_path / 'd.npz'} is checked whole before training" in result.stderr


def test_a_resumed_run_whose_recorded_skip_limit_is_damaged_is_refused(write_spec, tmp_path):
    spec = write_spec(SPEC.replace("epochs: 3", "epochs: 1"))
    files = _images(tmp_path / "pics")
    _truncate(files[5])
    run = tmp_path / "run"
    args = ["train", str(spec), "--data", str(tmp_path / "pics"), "--out", str(run), "--skip-bad", "0", "-q"]
    assert runner.invoke(app, args).exit_code == 2
    started = tmp_path / ".run.partial" / "overrides.json"
    started.write_text(json.dumps({**json.loads(started.read_text()), "skip_bad": "many"}))
    result = runner.invoke(app, ["train", "--resume", str(run)])
    assert result.exit_code == 2
    assert "'skip_bad' should be a whole number" in result.stderr


def test_skip_bad_drops_a_text_file_that_is_not_utf8_from_its_batch(write_spec, tmp_path):
    from graphspec.data.examples import bind
    from graphspec.data.skips import Skips
    from graphspec.keras.files import FileBatches

    spec = write_spec(
        """
        graphspec: 1
        name: texts
        inputs: {review: {shape: [], dtype: string}}
        layers: {words: {type: TextVectorization, max_tokens: 10, output_sequence_length: 4, in: review}}
        outputs: {words: {}}
        """
    )
    folder = tmp_path / "t" / "good"
    folder.mkdir(parents=True)
    for name in "abcd":
        (folder / f"{name}.txt").write_text(f"text {name}\n")
    (folder / "b.txt").write_bytes(b"na\xefve\n")
    examples = bind(graphspec.load(spec), tmp_path / "t", labelled=False)
    skips = Skips(1)
    batches = FileBatches(examples, 2, skips=skips)
    assert [np.asarray(batches[i][0]["review"]).tolist() for i in (0, 1)] == [
        [b"text a\n"],
        [b"text c\n", b"text d\n"],
    ]
    (record,) = skips.records
    assert record["file"] == str(folder / "b.txt")
    assert record["reason"].endswith("is not UTF-8 (byte 0xef)")


def test_skip_bad_skips_a_bad_val_data_image_and_one_adapt_reads_against_the_same_limit(write_spec, tmp_path):
    spec = write_spec(
        SPEC.replace(
            "  flat: {type: Flatten, in: image}",
            "  normal: {type: Normalization, adapt: true, in: image}\n  flat: {type: Flatten, in: normal}",
        )
    )
    files = _images(tmp_path / "pics", per_class=2)
    validation = _images(tmp_path / "val", per_class=2)
    _truncate(files[1])  # read by adapt, before training
    _truncate(validation[2])
    run = tmp_path / "run"
    args = ["train", str(spec), "--data", str(tmp_path / "pics"), "--val-data", str(tmp_path / "val")]
    result = runner.invoke(app, [*args, "--out", str(run), "--skip-bad", "2", "-q"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (run / "skipped.jsonl").read_text().splitlines()]
    assert sorted(r["file"] for r in records) == [str(files[1]), str(validation[2])]
    assert [r["epoch"] for r in records if r["file"] == str(files[1])] == [None]


def _trained_on_six_images(write_spec, tmp_path: Path) -> tuple[list[Path], Path]:
    """A run trained for one epoch on a folder `pics` of 3 images a class; its files, its run."""
    spec = write_spec(SPEC.replace("epochs: 3", "epochs: 1"))
    files = _images(tmp_path / "pics", per_class=3)
    run = tmp_path / "run"
    result = runner.invoke(
        app, ["train", str(spec), "--data", str(tmp_path / "pics"), "--out", str(run), "-q"]
    )
    assert result.exit_code == 0, result.output
    return files, run


def test_predict_skip_bad_leaves_out_a_damaged_image_and_its_id(write_spec, tmp_path):
    files, run = _trained_on_six_images(write_spec, tmp_path)
    expected = tmp_path / "expected.csv"
    assert (
        runner.invoke(
            app, ["predict", str(run), "--data", str(tmp_path / "pics"), "-o", str(expected)]
        ).exit_code
        == 0
    )
    _truncate(files[1])
    out = tmp_path / "p.csv"
    args = ["predict", str(run), "--data", str(tmp_path / "pics"), "-o", str(out), "--skip-bad", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == [f"5 predictions written to {out}", "skipped 1 bad example:"]
    assert result.stdout.splitlines()[2].startswith(f"  {files[1]}: image {files[1]} is damaged or truncated")
    # Every other image's row is the one predicted before the damage, in the same order.
    rows = expected.read_text().splitlines()
    assert out.read_text().splitlines() == rows[:2] + rows[3:]


def test_evaluate_skip_bad_scores_each_good_image_once_when_a_whole_batch_is_bad(write_spec, tmp_path):
    # Training fills a batch of bad files alone with a good one; scoring leaves it out, so the
    # metrics are those of the folder without the bad files.
    files, run = _trained_on_six_images(write_spec, tmp_path)
    _images(tmp_path / "good", per_class=3)
    for bad in files[:2]:  # a/0.png and a/1.png: the first batch of 2, whole
        (tmp_path / "good" / bad.parent.name / bad.name).unlink()
        _truncate(bad)
    expected = json.loads(
        runner.invoke(app, ["evaluate", str(run), "--data", str(tmp_path / "good"), "--json"]).stdout
    )
    args = ["evaluate", str(run), "--data", str(tmp_path / "pics"), "--skip-bad", "2", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examples"] == expected["examples"] == 4
    assert report["metrics"] == pytest.approx(expected["metrics"], rel=1e-5)
    assert [record["file"] for record in report["skipped"]] == [str(f) for f in files[:2]]
    refused = runner.invoke(app, [*args[:-3], "--skip-bad", "1"])
    assert refused.exit_code == 2
    assert f"{files[1]} is bad example 2, past `--skip-bad 1`: image {files[1]} is damaged" in refused.stderr

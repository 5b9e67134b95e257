"""Your own data (graphspec/data): folders, tables and .npz bound to a spec's inputs and
outputs, every kind of bad data refused with a located error, and real data learned from.

Every fixture is made at test time in tmp_path; the real data is scikit-learn's digits, written
out as a PNG folder and as a CSV table.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.data import npz, source
from graphspec.data.examples import bind
from graphspec.errors import SpecErrors

runner = CliRunner()

TABLE_SPEC = """
graphspec: 1
name: table
inputs:
  age: {shape: [1]}
  pixels: {shape: [3]}
layers:
  joined: {type: Concatenate, in: [age, pixels]}
  kind: {type: Dense, units: 2, activation: softmax, in: joined}
outputs:
  kind: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}
data:
  inputs:
    pixels: {columns: "p*"}
"""

IMAGE_SPEC = """
graphspec: 1
name: pictures
inputs:
  image: {shape: [4, 4, 3]}
layers:
  flat: {type: Flatten, in: image}
  label: {type: Dense, units: 2, activation: softmax, in: flat}
outputs:
  label: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}
train: {epochs: 1, batch_size: 2, seed: 0}
"""


def _message(exc: SpecErrors) -> str:
    return exc.diagnostics.render()


def _table(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _images(root: Path, classes: dict[str, int], mode: str = "RGB", size: int = 4) -> Path:
    rng = np.random.default_rng(0)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 255, size=(size, size, channels), dtype=np.uint8)
            Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(
                root / name / f"{i}.png"
            )
    return root


# --- which source a path is -------------------------------------------------------------------


def test_identify_tells_each_kind_of_data_apart(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros(3))
    _table(tmp_path / "t.csv", "a,b\n1,2\n")
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(2):
        _table(shards / f"part{i}.jsonl", '{"a": 1}\n')
    _images(tmp_path / "pics", {"cat": 1, "dog": 2})
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (2, 2)).save(flat / "x.jpg")
    texts = tmp_path / "texts" / "spam"
    texts.mkdir(parents=True)
    (texts / "1.txt").write_text("hi")
    assert source.identify(tmp_path / "a.npz").kind == source.NPZ
    assert source.identify(tmp_path / "t.csv").kind == source.TABLE
    assert len(source.identify(shards).files) == 2
    assert source.identify(str(shards / "*.jsonl")).kind == source.TABLE
    pics = source.identify(tmp_path / "pics")
    assert (pics.kind, pics.classes, pics.labels) == (source.IMAGES, ["cat", "dog"], ["cat", "dog", "dog"])
    assert source.identify(flat).labels is None
    assert source.identify(tmp_path / "texts").kind == source.TEXT


# --- the data: section, checked without data or TensorFlow ------------------------------------


def test_validate_checks_the_data_section_at_its_place(write_spec):
    spec = write_spec(
        TABLE_SPEC
        + """
  outputs:
    knd: {column: label}
"""
    )
    with pytest.raises(SpecErrors) as caught:
        graphspec.load(spec)
    text = _message(caught.value)
    assert "data: outputs names 'knd', which is not an output of the spec" in text
    assert "did you mean 'kind'?" in text
    assert f"{spec}:16:" in text  # the line of `knd:`


def test_validate_refuses_an_encoding_the_loss_does_not_take(write_spec):
    spec = write_spec(TABLE_SPEC + "  outputs:\n    kind: {encoding: regression}\n")
    with pytest.raises(SpecErrors) as caught:
        graphspec.load(spec)
    assert "has encoding regression, and its loss 'sparse_categorical_crossentropy' takes sparse" in _message(
        caught.value
    )


def test_validate_refuses_image_channels_unlike_the_input(write_spec):
    spec = write_spec(IMAGE_SPEC + "data:\n  inputs:\n    image: {image: {channels: 1}}\n")
    with pytest.raises(SpecErrors) as caught:
        graphspec.load(spec)
    assert "makes images of 1 channels, and input 'image' takes 3" in _message(caught.value)


# --- tables -----------------------------------------------------------------------------------


def test_a_table_feeds_columns_and_its_labels_are_classes(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    table = _table(tmp_path / "t.csv", "age,p0,p1,p2,kind\n30,1,2,3,cat\n40,4,5,6,dog\n50,7,8,9,cat\n")
    examples = bind(loaded, table)
    x, y = examples.batch(np.arange(3))
    assert x["age"].tolist() == [[30.0], [40.0], [50.0]]
    assert x["pixels"][1].tolist() == [4.0, 5.0, 6.0]
    assert y["kind"].tolist() == [0, 1, 0]
    assert examples.classes == {"kind": ["cat", "dog"]}
    assert examples.ids[0] == f"{table}:2"


def test_a_jsonl_table_reads_like_a_csv(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    rows = [
        {"age": 30, "p0": 1, "p1": 2, "p2": 3, "kind": 10},
        {"age": 40, "p0": 4, "p1": 5, "p2": 6, "kind": 2},
    ]
    table = _table(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    examples = bind(loaded, table)
    assert examples.classes == {"kind": ["2", "10"]}  # integers sort as numbers
    assert examples.batch(np.arange(2))[1]["kind"].tolist() == [1, 0]


def test_a_misspelled_column_is_refused_with_did_you_mean(write_spec, tmp_path):
    spec = write_spec(
        TABLE_SPEC.replace('{columns: "p*"}', "{columns: [p0, p1, p2]}\n    age: {column: agee}")
    )
    loaded = graphspec.load(spec)
    table = _table(tmp_path / "t.csv", "age,p0,p1,p2,kind\n30,1,2,3,cat\n")
    with pytest.raises(SpecErrors) as caught:
        bind(loaded, table)
    text = _message(caught.value)
    assert f"table {table} has no column 'agee' for input 'age'" in text
    assert "did you mean 'age'?" in text
    assert f"{spec}:14:19:" in text  # where the column is named


def test_a_missing_target_column_is_refused_before_reading(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    table = _table(tmp_path / "t.csv", "age,p0,p1,p2,knd\n30,1,2,3,cat\n")
    with pytest.raises(SpecErrors) as caught:
        bind(loaded, table)
    assert "has no column 'kind' for output 'kind'" in _message(caught.value)
    assert "did you mean 'knd'?" in _message(caught.value)


def test_a_cell_that_is_not_a_number_is_refused_with_file_line_and_column(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    table = _table(tmp_path / "t.csv", "age,p0,p1,p2,kind\n30,1,2,3,cat\n40,4,five,6,dog\n")
    with pytest.raises(SpecErrors) as caught:
        bind(loaded, table)
    text = _message(caught.value)
    assert f"{table}:3:1: error: row at line 3 of table {table}, column 'p1': 'five' is not a number" in text


def test_a_ragged_row_is_refused(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    table = _table(tmp_path / "t.csv", "age,p0,p1,p2,kind\n30,1,2,3,cat\n40,4,6,dog\n")
    with pytest.raises(SpecErrors) as caught:
        bind(loaded, table)
    assert "row at line 3 of table" in _message(caught.value)
    assert "has 4 cells; its header has 5 columns" in _message(caught.value)


def test_an_empty_table_is_refused(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    with pytest.raises(SpecErrors, match="is empty"):
        bind(loaded, _table(tmp_path / "t.csv", ""))
    with pytest.raises(SpecErrors, match="has no rows"):
        bind(loaded, _table(tmp_path / "h.csv", "age,p0,p1,p2,kind\n"))


def test_a_line_that_is_not_utf8_is_refused(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    table = tmp_path / "t.csv"
    table.write_bytes(b"age,p0,p1,p2,kind\n30,1,2,3,caf\xe9\n")
    with pytest.raises(SpecErrors) as caught:
        bind(loaded, table)
    assert f"line 2 of table {table} is not UTF-8 (byte 0xe9)" in _message(caught.value)


def test_a_2gb_line_is_refused_after_reading_its_bound(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    table = tmp_path / "t.csv"
    with open(table, "wb") as handle:  # a sparse file: 2 GB of one line, next to no disk
        handle.write(b"age,p0,p1,p2,kind\n")
        handle.seek(2_000_000_000)
        handle.write(b"\n")
    with pytest.raises(SpecErrors) as caught:
        bind(loaded, table)
    text = _message(caught.value)
    assert "line 2 of table" in text and "over 1,000,000 bytes long" in text
    assert "graphspec --limit data-line=N" in text


def test_an_unseen_label_is_refused_at_predict_time(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    table = _table(tmp_path / "t.csv", "age,p0,p1,p2,kind\n30,1,2,3,cat\n40,4,5,6,bird\n")
    with pytest.raises(SpecErrors) as caught:
        bind(loaded, table, classes={"kind": ["cat", "dog"]}, labelled=False)
    text = _message(caught.value)
    assert f"{table}:3: label 'bird' of output 'kind' is not one of its classes" in text
    assert "the model knows: cat, dog" in text


# --- folders ----------------------------------------------------------------------------------


def test_a_class_folder_with_no_files_is_refused(tmp_path):
    _images(tmp_path / "pics", {"cat": 1})
    (tmp_path / "pics" / "dog").mkdir()
    with pytest.raises(SpecErrors, match=r"class folder .*dog has no image or text files"):
        source.identify(tmp_path / "pics")


def test_a_symlink_loop_is_refused(tmp_path):
    _images(tmp_path / "pics", {"cat": 1})
    os.symlink(tmp_path / "pics", tmp_path / "pics" / "cat" / "again")
    with pytest.raises(SpecErrors, match="a symlink loop"):
        source.identify(tmp_path / "pics")
    os.unlink(tmp_path / "pics" / "cat" / "again")
    os.symlink("self", tmp_path / "pics" / "cat" / "self")  # a link to itself
    with pytest.raises(SpecErrors, match="broken, or a symlink loop"):
        source.identify(tmp_path / "pics")


def test_text_that_is_not_utf8_is_refused(write_spec, tmp_path):
    spec = write_spec(
        """
        graphspec: 1
        name: texts
        inputs:
          review: {shape: [], dtype: string}
        layers:
          vector: {type: TextVectorization, max_tokens: 10, output_sequence_length: 4, in: review}
        outputs:
          vector: {}
        """
    )
    loaded = graphspec.load(spec)
    (tmp_path / "t" / "good").mkdir(parents=True)
    (tmp_path / "t" / "good" / "a.txt").write_text("fine\n")
    (tmp_path / "t" / "good" / "b.txt").write_bytes(b"first line\nna\xefve\n")
    examples = bind(loaded, tmp_path / "t")
    assert examples.batch(np.array([0]))[0]["review"].tolist() == ["fine\n"]
    with pytest.raises(SpecErrors) as caught:
        examples.batch(np.array([1]))
    assert f"text file {tmp_path / 't' / 'good' / 'b.txt'}:2:3 is not UTF-8 (byte 0xef)" in _message(
        caught.value
    )


def test_a_corrupt_image_is_refused_before_training(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(IMAGE_SPEC))
    pics = _images(tmp_path / "pics", {"a": 2, "b": 2})
    (pics / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(SpecErrors) as caught:
        bind(loaded, pics)
    assert f"image {pics / 'b' / 'bad.png'} cannot be read" in _message(caught.value)


def test_an_image_with_the_wrong_channel_count_is_refused_unless_converted(write_spec, tmp_path):
    pics = _images(tmp_path / "pics", {"a": 1, "b": 1})
    _images(tmp_path / "pics", {"c": 1}, mode="L")
    with pytest.raises(SpecErrors) as caught:
        bind(graphspec.load(write_spec(IMAGE_SPEC)), pics)
    assert f"image {pics / 'c' / '0.png'} has 1 channel (L); input 'image' takes 3" in _message(caught.value)
    converting = graphspec.load(
        write_spec(IMAGE_SPEC + "data:\n  inputs:\n    image: {image: {convert: true}}\n")
    )
    x, y = bind(converting, pics).batch(np.arange(3))
    assert x["image"].shape == (3, 4, 4, 3)
    grey = np.asarray(Image.open(pics / "c" / "0.png"), dtype=np.float32)
    assert np.array_equal(x["image"][2], np.repeat(grey[..., None], 3, axis=-1))
    assert y["label"].tolist() == [0, 1, 2]


def test_a_truncated_image_found_mid_stream_stops_training_naming_it_with_the_run_kept(write_spec, tmp_path):
    spec = write_spec(IMAGE_SPEC)
    pics = _images(tmp_path / "pics", {"a": 2, "b": 2}, size=64)
    whole = (pics / "b" / "1.png").read_bytes()
    (pics / "b" / "1.png").write_bytes(whole[: len(whole) // 2])  # its header still reads
    spec.write_text(spec.read_text().replace("[4, 4, 3]", "[64, 64, 3]"))
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", str(spec), "--data", str(pics), "--runs-dir", str(runs), "-q"])
    assert result.exit_code == 2, result.output
    assert f"image {pics / 'b' / '1.png'} is damaged or truncated" in result.output
    # Nothing stands where a finished run would; the unfinished one is kept to resume.
    (partial,) = (runs / "pictures").iterdir()
    assert partial.name.startswith(".") and partial.name.endswith(".partial")
    assert "graphspec train --resume" in result.output


# --- .npz -------------------------------------------------------------------------------------


def _npz_bomb(path: Path, total_bytes: int) -> None:
    """An .npz of one float32 array of zeros that inflates to about `total_bytes`, written in
    milliseconds: the deflate stream of 1 MB of zeros after a full flush is the same bytes every
    time, so it is repeated; its CRC is that of the header and the zeros, so it can be read."""
    from numpy.lib import format as npy

    mb = 1 << 20
    count = total_bytes // mb
    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (count * mb // 4,)})
    head = header.getvalue()
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(bytes(mb)) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = first + segment * count + compressor.flush(zlib.Z_FINISH)
    size, name = len(head) + count * mb, b"x.npy"
    crc, zeros = zlib.crc32(head), bytes(mb)
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0)
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII",
        b"PK\x01\x02",
        20,
        20,
        0,
        8,
        0,
        0x21,
        crc,
        len(data),
        size,
        len(name),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    end = struct.pack(
        "<4sHHHHIIH",
        b"PK\x05\x06",
        0,
        0,
        1,
        1,
        len(central) + len(name),
        len(local) + len(name) + len(data),
        0,
    )
    path.write_bytes(local + name + data + central + name + end)


def test_an_npz_that_inflates_past_the_limit_is_refused_before_it_is_read(write_spec, tmp_path):
    bomb = tmp_path / "bomb.npz"
    _npz_bomb(bomb, 2_100_000_000)
    assert bomb.stat().st_size < 3_000_000
    spec = write_spec(
        """
        graphspec: 1
        name: bomb
        inputs:
          x: {shape: []}
        layers:
          y: {type: Dense, units: 1, in: x}
        outputs:
          y: {}
        """
    )
    # Read whole (tune, ensemble), it would be held in memory: refused by data-bytes.
    with pytest.raises(SpecErrors) as caught:
        npz.load(bomb, graphspec.load(spec))
    refusal = caught.value.diagnostics.render()
    assert f"data file {bomb}, whose arrays inflate to 2,099,249,280 bytes," in refusal
    assert "would go over the limit of 1,000,000,000 bytes of .npz arrays" in refusal
    assert "graphspec --limit data-bytes=N" in refusal
    # Trained on, it is streamed: a batch is held, and it is inflated to disk, charged to
    # data-disk, whose limit (here lowered under the bomb) refuses it before a byte is written.
    runs = tmp_path / "runs"
    result = runner.invoke(
        app,
        ["--limit", "data-disk=1000000000", "train", str(spec), "--data", str(bomb), "--runs-dir", str(runs)],
    )
    assert result.exit_code == 2, result.output
    assert f"data file {bomb}, whose compressed arrays inflate to 2,099,249,152 bytes," in result.output
    assert "would go over the limit of 1,000,000,000 bytes of compressed .npz arrays" in result.output
    assert "graphspec --limit data-disk=N" in result.output
    assert not runs.exists()


# --- real data: scikit-learn's digits ---------------------------------------------------------


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """scikit-learn's 1,797 8x8 digits as a folder of PNGs by class and as a CSV table."""
    datasets = pytest.importorskip(
        "sklearn.datasets", reason="scikit-learn (the test extra) is not installed"
    )
    loaded = datasets.load_digits()
    root = tmp_path_factory.mktemp("digits")
    order = np.random.default_rng(0).permutation(len(loaded.target))
    for i, (image, label) in enumerate(zip(loaded.images, loaded.target, strict=True)):
        folder = root / "png" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).astype(np.uint8), "L").save(folder / f"{i:04d}.png")
    lines = [",".join([f"p{i}" for i in range(64)] + ["label"])]
    lines += [",".join(str(int(v)) for v in loaded.data[i]) + f",{loaded.target[i]}" for i in order]
    (root / "digits.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def digits_run(digits, tmp_path_factory):
    """specs/image_classifier.yaml trained on the digits folder."""
    from graphspec.keras.train import DataSource, train

    loaded = graphspec.load(
        Path(__file__).parent.parent / "specs" / "image_classifier.yaml", ["train.epochs=4"]
    )
    out = tmp_path_factory.mktemp("runs") / "digits"
    return train(loaded, DataSource(data=digits / "png"), out=out, verbose=0)


def test_the_digits_png_folder_is_learned(digits_run):
    assert digits_run.metrics["val_accuracy"] >= 0.9
    classes = json.loads((digits_run.run_dir / "classes.json").read_text())
    assert classes == {"label": [str(i) for i in range(10)]}


def test_evaluate_scores_a_run_on_a_folder(digits_run, digits):
    result = runner.invoke(
        app, ["evaluate", str(digits_run.run_dir), "--data", str(digits / "png"), "--json"]
    )
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert scored["examples"] == 1797
    assert scored["metrics"]["accuracy"] >= 0.9
    assert set(scored["metrics"]) == {"accuracy", "loss"}


def test_predict_writes_one_row_per_image_with_its_class(digits_run, digits, tmp_path):
    out = tmp_path / "preds.csv"
    model = digits_run.run_dir / "model.keras"
    result = runner.invoke(app, ["predict", str(model), "--data", str(digits / "png" / "3"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = out.read_text().splitlines()
    assert rows[0].split(",")[:3] == ["id", "label_class", "label[0]"]
    assert len(rows) == 1 + len(list((digits / "png" / "3").iterdir()))
    predicted = [row.split(",")[1] for row in rows[1:]]
    assert predicted.count("3") >= 0.9 * len(predicted)
    assert rows[1].split(",")[0].endswith(".png")
    npz_out = tmp_path / "preds.npz"
    assert (
        runner.invoke(
            app, ["predict", str(model), "--data", str(digits / "png"), "-o", str(npz_out)]
        ).exit_code
        == 0
    )
    with np.load(npz_out) as saved:
        assert saved["label"].shape == (1797, 10)
        assert saved["label_class"].shape == (1797,)
        assert saved["id"][0].endswith("0000.png")


def test_predict_on_an_unseen_class_writes_nothing(digits_run, digits, tmp_path):
    unseen = tmp_path / "unseen"
    (unseen / "eleven").mkdir(parents=True)
    (unseen / "eleven" / "x.png").write_bytes((digits / "png" / "1" / "0001.png").read_bytes())
    out = tmp_path / "preds.csv"
    result = runner.invoke(app, ["predict", str(digits_run.run_dir), "--data", str(unseen), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "label 'eleven' of output 'label' is not one of its classes" in result.output
    assert list(tmp_path.iterdir()) == [unseen]


def test_the_digits_table_is_learned_with_a_test_set(digits, tmp_path):
    from graphspec.keras.train import DataSource, train

    table = (digits / "digits.csv").read_text().splitlines()
    (tmp_path / "train.csv").write_text("\n".join(table[:1501]) + "\n")
    (tmp_path / "test.csv").write_text("\n".join([table[0], *table[1501:]]) + "\n")
    loaded = graphspec.load(
        Path(__file__).parent.parent / "specs" / "tabular_classifier.yaml", ["train.epochs=8"]
    )
    result = train(
        loaded,
        DataSource(data=tmp_path / "train.csv", test_data=tmp_path / "test.csv"),
        out=tmp_path / "run",
        verbose=0,
    )
    assert result.metrics["val_accuracy"] >= 0.9
    assert result.metrics["test_accuracy"] >= 0.9
    tested = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert tested["accuracy"] == result.metrics["test_accuracy"]


def test_validate_checks_a_table_header_without_tensorflow(write_spec, tmp_path):
    import subprocess
    import sys

    spec = write_spec(TABLE_SPEC)
    table = _table(tmp_path / "t.csv", "age,p0,p1,p2,knd\n30,1,2,3,cat\n")
    for name in ("tensorflow", "keras"):  # stand-ins that fail on import
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} was imported')")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "graphspec", "validate", str(spec), "--data", str(table)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert f"table {table} has no column 'kind' for output 'kind'" in result.stderr
    assert "did you mean 'knd'?" in result.stderr
    table.write_text("age,p0,p1,p2,kind\n30,1,2,3,cat\n")
    assert subprocess.run(command, capture_output=True, text=True, env=env).returncode == 0


def test_an_image_past_the_pixel_limit_is_refused_from_its_header(write_spec, tmp_path):
    spec = write_spec(IMAGE_SPEC)
    pics = _images(tmp_path / "pics", {"a": 1, "b": 1})
    runs = tmp_path / "runs"
    result = runner.invoke(
        app, ["--limit", "image-pixels=15", "train", str(spec), "--data", str(pics), "--runs-dir", str(runs)]
    )
    assert result.exit_code == 2, result.output
    assert f"image {pics / 'a' / '0.png'} (4x4) would go over the limit of 15 pixels" in result.output
    assert not runs.exists()


def test_each_epoch_is_ordered_by_the_seed_and_its_number_so_a_resumed_run_reads_the_same(
    write_spec, monkeypatch
):
    from graphspec.data.examples import Examples
    from graphspec.keras.files import FileBatches

    x = np.arange(10, dtype=np.float32)[:, None]
    examples = Examples("m", [str(i) for i in range(10)], arrays={"x": x}, targets={"y": x.copy()})
    served = []
    batch = Examples.batch
    monkeypatch.setattr(
        Examples, "batch", lambda self, rows: served.append(rows.tolist()) or batch(self, rows)
    )
    loaded = graphspec.load(
        write_spec(
            """
            graphspec: 1
            name: tiny
            inputs: {x: {shape: [1]}}
            layers: {y: {type: Dense, units: 1, in: x}}
            outputs: {y: {loss: mse}}
            """
        )
    )
    batches = FileBatches(examples, 4, seed=3, shuffle=True, epochs=3)
    loaded.build().fit(batches, epochs=3, steps_per_epoch=batches.per_epoch, verbose=0)
    # Keras asks for batches from several threads, out of order, and some twice (it reads a
    # batch or two ahead to learn their shapes): what it was given is the three epochs' batches,
    # each epoch in the order its seed and number draw, and nothing else.
    orders = [np.random.default_rng((3, e)).permutation(10).tolist() for e in range(3)]
    expected = [order[i : i + 4] for order in orders for i in (0, 4, 8)]
    assert {tuple(b) for b in served} == {tuple(b) for b in expected}, served
    assert len(served) >= 9
    assert len({tuple(o) for o in orders}) == 3
    epochs = orders
    resumed = FileBatches(examples, 4, seed=3, shuffle=True, epochs=3, first_epoch=2)
    assert len(resumed) == 3
    assert [resumed[i][0]["x"][:, 0].tolist() for i in range(3)] == [
        [float(r) for r in epochs[2][i : i + 4]] for i in (0, 4, 8)
    ]


def test_columns_must_fill_the_input_they_feed(write_spec, tmp_path):
    loaded = graphspec.load(write_spec(TABLE_SPEC))
    table = _table(tmp_path / "t.csv", "age,p0,p1,kind\n30,1,2,cat\n")
    with pytest.raises(SpecErrors) as caught:
        bind(loaded, table)
    assert f"input 'pixels' has shape [3] (3 values), and reads 2 columns of table {table}" in _message(
        caught.value
    )


def test_the_data_section_is_part_of_the_training_fingerprint(write_spec):
    from graphspec.fingerprint import fingerprint

    first = fingerprint(graphspec.load(write_spec(TABLE_SPEC, "a.yaml")))
    other = fingerprint(graphspec.load(write_spec(TABLE_SPEC.replace('"p*"', '"q*"'), "b.yaml")))
    without = fingerprint(graphspec.load(write_spec(TABLE_SPEC.split("data:")[0], "c.yaml")))
    assert first.architecture == other.architecture == without.architecture
    assert len({first.training, other.training, without.training}) == 3


def test_a_table_too_large_to_keep_is_refused_at_the_line_that_passes_the_limit(write_spec, tmp_path):
    from graphspec import budget

    loaded = graphspec.load(write_spec(TABLE_SPEC))
    rows = "".join(f"{i},1,2,3,cat\n" for i in range(100))
    table = _table(tmp_path / "t.csv", "age,p0,p1,p2,kind\n" + rows)
    budget.activate(budget.Budget({"data-bytes": 1_000}))
    try:
        with pytest.raises(SpecErrors) as caught:
            bind(loaded, table)
    finally:
        budget.activate(None)
    text = _message(caught.value)
    # A row keeps 4 numbers, a 3-letter label and its id: 135 bytes; the 8th passes 1,000.
    assert f"{table}:9:1: error: table {table}, kept up to line 9 of {table}, would go over the limit" in text
    assert "graphspec --limit data-bytes=N" in text


def test_more_classes_than_the_output_has_units_is_refused_before_training(write_spec, tmp_path):
    spec = write_spec(IMAGE_SPEC)
    pics = _images(tmp_path / "pics", {"a": 1, "b": 1, "c": 1})
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", str(spec), "--data", str(pics), "--runs-dir", str(runs)])
    assert result.exit_code == 2, result.output
    assert f"output 'label' has 2 units, and data {pics} has 3 classes" in result.output
    assert f"{spec}:9:3:" in result.output  # the output in the spec
    assert not runs.exists() or not any(p.is_file() for p in runs.rglob("*"))


def test_an_image_folder_reads_as_keras_image_dataset_from_directory_reads_it(write_spec, tmp_path):
    import keras

    pics = _images(tmp_path / "pics", {"cat": 3, "dog": 4, "emu": 2})
    examples = bind(graphspec.load(write_spec(IMAGE_SPEC)), pics)
    x, y = examples.batch(np.arange(len(examples)))
    theirs = keras.utils.image_dataset_from_directory(
        pics, image_size=(4, 4), batch_size=None, shuffle=False, verbose=False
    )
    images, labels = zip(*[(np.asarray(i), int(label)) for i, label in theirs], strict=True)
    assert examples.classes["label"] == theirs.class_names == ["cat", "dog", "emu"]
    assert y["label"].tolist() == list(labels)
    assert np.array_equal(x["image"], np.stack(images))


def test_evaluate_on_the_same_examples_as_npz_gives_the_same_metrics(digits_run, digits, tmp_path):
    files = sorted((digits / "png").rglob("*.png"))[::10]
    arrays = {
        "image": np.stack([np.asarray(Image.open(f), dtype=np.float32)[..., None] for f in files]),
        "label": np.asarray([int(f.parent.name) for f in files], dtype=np.int32),
    }
    np.savez(tmp_path / "d.npz", **arrays)
    subset = tmp_path / "subset"
    for f in files:
        (subset / f.parent.name).mkdir(parents=True, exist_ok=True)
        (subset / f.parent.name / f.name).write_bytes(f.read_bytes())
    scored = []
    for data in (tmp_path / "d.npz", subset):
        result = runner.invoke(app, ["evaluate", str(digits_run.run_dir), "--data", str(data), "--json"])
        assert result.exit_code == 0, result.output
        scored.append(json.loads(result.stdout))
    assert scored[0]["examples"] == scored[1]["examples"] == len(files)
    assert scored[0]["metrics"] == pytest.approx(scored[1]["metrics"], rel=1e-6)
